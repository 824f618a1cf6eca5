/**
 * SHA-256, HMAC-SHA256 and hex through WebCrypto: the same in workerd, browsers and Node.
 */

const encoder = new TextEncoder();

/**
 * SHA-256 of bytes or of a string's UTF-8 encoding.
 *
 * @example
 * hex(await sha256('key')) // '2c70e12b7a0646f92279f427c7b38e7334d8e5389cff167a1dc30e73f826b683'
 */
export async function sha256(data: Uint8Array | string): Promise<Uint8Array> {
  const bytes = typeof data === 'string' ? encoder.encode(data) : data;
  return new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
}

/**
 * HMAC-SHA256 of a string's UTF-8 encoding under a string key.
 *
 * @example
 * hex(await hmacSha256('secret', 'message'))
 */
export async function hmacSha256(key: string, message: string): Promise<Uint8Array> {
  const cryptoKey = await crypto.subtle.importKey('raw', encoder.encode(key), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  return new Uint8Array(await crypto.subtle.sign('HMAC', cryptoKey, encoder.encode(message)));
}

/**
 * Lower-case hex of bytes.
 *
 * @example
 * hex(Uint8Array.of(0, 255)) // '00ff'
 */
export function hex(bytes: Uint8Array): string {
  let out = '';
  for (let i = 0; i < bytes.length; i++) out += (bytes[i] < 16 ? '0' : '') + bytes[i].toString(16);
  return out;
}
