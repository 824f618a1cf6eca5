/**
 * Standard Webhooks signatures (https://www.standardwebhooks.com): every delivery carries
 *
 *   webhook-id:        the message id, the same on every retry (receivers deduplicate on it)
 *   webhook-timestamp: seconds since the epoch of this attempt (receivers refuse old ones)
 *   webhook-signature: space-separated `v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>`,
 *                      one per valid secret (two while a rotated secret is still honoured)
 *
 * Secrets are `whsec_` + base64 of 32 random bytes; the HMAC key is the decoded bytes.
 */

const SECRET_PREFIX = 'whsec_';
const SECRET_BYTES = 32;
const encoder = new TextEncoder();

/**
 * A new endpoint secret.
 *
 * @example
 * newSecret() // 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw...'
 */
export function newSecret(): string {
  return SECRET_PREFIX + base64(crypto.getRandomValues(new Uint8Array(SECRET_BYTES)));
}

/**
 * The `webhook-signature` value of a message: one `v1,` signature per secret.
 *
 * @example
 * await signatureHeader(['whsec_...'], 'msg_1', 1735689600, '{"type":"analysis.completed"}') // 'v1,K5oZ...'
 */
export async function signatureHeader(secrets: readonly string[], id: string, timestamp: number, body: string): Promise<string> {
  const content = encoder.encode(`${id}.${timestamp}.${body}`);
  const signatures = await Promise.all(
    secrets.map(async (secret) => {
      const key = await crypto.subtle.importKey('raw', secretBytes(secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
      return `v1,${base64(new Uint8Array(await crypto.subtle.sign('HMAC', key, content)))}`;
    }),
  );
  return signatures.join(' ');
}

/** The HMAC key of a `whsec_` secret. */
function secretBytes(secret: string): Uint8Array<ArrayBuffer> {
  const text = secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : secret;
  return Uint8Array.from(atob(text), (ch) => ch.charCodeAt(0));
}

function base64(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
  return btoa(s);
}
