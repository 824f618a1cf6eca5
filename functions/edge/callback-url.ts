/**
 * Which URLs the edge may send webhooks to (SSRF guard). Checked when an endpoint is registered and
 * again before every delivery:
 *
 * - https only; plain http only in development, and then only to a loopback host;
 * - no user name or password in the URL, at most `MAX_URL_LENGTH` characters;
 * - in production no loopback, private, link-local, shared (CGNAT), multicast, reserved or
 *   unspecified address, in any spelling: the WHATWG URL parser turns decimal (`2130706433`), octal
 *   (`0177.0.0.1`), hex (`0x7f.1`) and short (`127.1`) IPv4 forms into dotted quads, and IPv6
 *   literals are checked whole, with the IPv4 address inside IPv4-mapped, -compatible, NAT64 and
 *   6to4 forms checked as IPv4;
 * - no name that is local by definition (`localhost`, `*.localhost`, `*.local`, `*.internal`,
 *   `*.home.arpa`, single-label names).
 *
 * A public name that resolves to a private address cannot be caught here (Workers have no DNS API);
 * Cloudflare's `fetch` does not reach private networks from a Worker, which covers that case in
 * production.
 */
import { ProblemError } from './problem.ts';

/** Longest accepted callback URL. */
export const MAX_URL_LENGTH = 2048;

export interface CallbackUrlPolicy {
  /** Development (`ENVIRONMENT=development`): http to a loopback host is allowed, and loopback hosts are. */
  development: boolean;
}

/**
 * Checks a callback URL and returns it normalised (`URL.href`). Throws a 422 `ProblemError`
 * (`invalid-callback-url`) that says what is wrong.
 *
 * @example
 * checkCallbackUrl('https://hooks.example.com/latentsight', { development: false }) // 'https://hooks.example.com/latentsight'
 * checkCallbackUrl('https://[::ffff:10.0.0.1]/', { development: false }) // throws CALLBACK_URL_FORBIDDEN_HOST
 */
export function checkCallbackUrl(value: unknown, policy: CallbackUrlPolicy): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_URL_LENGTH) {
    throw invalid('CALLBACK_URL_INVALID', `A callback URL must be a string of 1 to ${MAX_URL_LENGTH} characters.`);
  }
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw invalid('CALLBACK_URL_INVALID', 'The callback URL is not an absolute URL.');
  }
  if (url.username || url.password) throw invalid('CALLBACK_URL_INVALID', 'The callback URL must not carry a user name or password.');
  const host = url.hostname.toLowerCase();
  const loopback = isLoopbackHost(host);
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && policy.development && loopback)) {
    throw invalid(
      'CALLBACK_URL_SCHEME',
      policy.development ? 'A callback URL must be https (http only to localhost in development).' : 'A callback URL must be https.',
    );
  }
  if (policy.development && loopback) return url.href;
  const reason = forbiddenHost(host);
  if (reason) throw invalid('CALLBACK_URL_FORBIDDEN_HOST', `The callback URL's host ${url.hostname} is ${reason}; webhooks go to public hosts only.`);
  return url.href;
}

/**
 * Why a (parsed, lower-case) host is not a public destination, or undefined if it is one.
 *
 * @example
 * forbiddenHost('10.1.2.3') // 'a private address'
 * forbiddenHost('example.com') // undefined
 */
export function forbiddenHost(host: string): string | undefined {
  // `host` is a URL's hostname: IPv4 in every spelling is already a dotted quad, IPv6 is bracketed.
  if (host.startsWith('[') && host.endsWith(']')) return forbiddenIpv6(host.slice(1, -1));
  const v4 = parseDottedIpv4(host);
  if (v4 !== undefined) return forbiddenIpv4(v4);
  const name = host.endsWith('.') ? host.slice(0, -1) : host;
  if (name === 'localhost' || name.endsWith('.localhost')) return 'a loopback name';
  if (!name.includes('.')) return 'a single-label (local) name';
  if (/\.(local|internal|home\.arpa|localdomain|lan)$/.test(name)) return 'a local-network name';
  // A name whose last label is numeric would have been parsed as IPv4; anything left that looks numeric is odd.
  if (/^[0-9.]+$/.test(name) || /^0x/i.test(name)) return 'not a valid address';
  return undefined;
}

function isLoopbackHost(host: string): boolean {
  if (host === 'localhost' || host === 'localhost.' || host.endsWith('.localhost')) return true;
  if (host === '[::1]') return true;
  const v4 = parseDottedIpv4(host);
  return v4 !== undefined && v4 >>> 24 === 127;
}

/** A dotted quad (what the URL parser leaves of every IPv4 spelling) as an unsigned 32-bit number. */
function parseDottedIpv4(host: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(host);
  if (!m) return undefined;
  const parts = m.slice(1).map(Number);
  if (parts.some((p) => p > 255)) return undefined;
  return ((parts[0] << 24) | (parts[1] << 16) | (parts[2] << 8) | parts[3]) >>> 0;
}

/** IPv4 ranges that are not public unicast (RFC 6890 and friends): [network, prefix length, what]. */
const IPV4_BLOCKED: [number, number, string][] = [
  [0x00000000, 8, 'an unspecified ("this network") address'],
  [0x0a000000, 8, 'a private address'],
  [0x64400000, 10, 'a shared (CGNAT) address'],
  [0x7f000000, 8, 'a loopback address'],
  [0xa9fe0000, 16, 'a link-local address'],
  [0xac100000, 12, 'a private address'],
  [0xc0000000, 24, 'an IETF protocol address'],
  [0xc0000200, 24, 'a documentation address'],
  [0xc0a80000, 16, 'a private address'],
  [0xc6120000, 15, 'a benchmarking address'],
  [0xc6336400, 24, 'a documentation address'],
  [0xcb007100, 24, 'a documentation address'],
  [0xe0000000, 4, 'a multicast address'],
  [0xf0000000, 4, 'a reserved or broadcast address'],
];

function forbiddenIpv4(address: number): string | undefined {
  for (const [network, bits, what] of IPV4_BLOCKED) {
    const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
    if ((address & mask) >>> 0 === network) return what;
  }
  return undefined;
}

/**
 * Parses an IPv6 literal as the URL parser serialises it (compressed, lower-case hex groups, an
 * embedded IPv4 address already rewritten to hex, no zone) into its 8 groups; anything else is
 * undefined, and so refused.
 */
function parseIpv6(text: string): number[] | undefined {
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const parse = (part: string) => (part === '' ? [] : part.split(':').map((g) => (/^[0-9a-f]{1,4}$/.test(g) ? parseInt(g, 16) : NaN)));
  const head = parse(halves[0]);
  const rest = halves.length === 2 ? parse(halves[1]) : [];
  if ([...head, ...rest].some(Number.isNaN)) return undefined;
  const total = head.length + rest.length;
  if (halves.length === 1 ? total !== 8 : total > 7) return undefined;
  return [...head, ...Array<number>(8 - total).fill(0), ...rest];
}

function forbiddenIpv6(text: string): string | undefined {
  const g = parseIpv6(text);
  if (!g) return 'not a valid IPv6 address';
  const v4 = ((g[6] << 16) | g[7]) >>> 0;
  const zeroUntil = (n: number) => g.slice(0, n).every((x) => x === 0);
  if (g.every((x) => x === 0)) return 'the unspecified address';
  if (zeroUntil(7) && g[7] === 1) return 'a loopback address';
  // ::ffff:a.b.c.d (mapped), ::a.b.c.d (compatible, deprecated), 64:ff9b::a.b.c.d (NAT64).
  if (zeroUntil(5) && g[5] === 0xffff) return forbiddenIpv4(v4);
  if (zeroUntil(6)) return forbiddenIpv4(v4) ?? 'an IPv4-compatible address';
  if (g[0] === 0x64 && g[1] === 0xff9b && g.slice(2, 6).every((x) => x === 0)) return forbiddenIpv4(v4);
  // 6to4: 2002:AABB:CCDD::/48 embeds the IPv4 address AA.BB.CC.DD.
  if (g[0] === 0x2002) return forbiddenIpv4(((g[1] << 16) | g[2]) >>> 0);
  if ((g[0] & 0xfe00) === 0xfc00) return 'a unique-local (private) address';
  if ((g[0] & 0xffc0) === 0xfe80) return 'a link-local address';
  if ((g[0] & 0xffc0) === 0xfec0) return 'a site-local address';
  if ((g[0] & 0xff00) === 0xff00) return 'a multicast address';
  if (g[0] === 0x2001 && g[1] === 0x0db8) return 'a documentation address';
  if (g[0] === 0x0100 && g[1] === 0 && g[2] === 0 && g[3] === 0) return 'a discard-only address';
  return undefined;
}

function invalid(code: string, detail: string): ProblemError {
  return new ProblemError('invalid-callback-url', code, detail);
}
