/**
 * SHA-256 and hex through WebCrypto: the same in workerd, browsers and Node.
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
