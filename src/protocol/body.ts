/**
 * Reading a request body under a byte limit, shared by the edge and the origin: each passes the
 * error it answers with, so the limit is enforced the same way in both and reported in each one's
 * own error type.
 */

/** Joins chunks into one array of `length` bytes (the chunk itself when there is one). */
export function concat(chunks: Uint8Array[], length: number): Uint8Array {
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(length);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/**
 * The body's bytes. Refuses a Content-Length over `maxBytes` before reading, and stops reading
 * (cancelling the stream) as soon as a body without one goes over; `tooLarge(declared)` makes the
 * error, with the declared length when the header gave it away.
 *
 * @example
 * const bytes = await readLimited(request, 64 << 20, () => new Error('too large'))
 */
export async function readLimited(request: Request, maxBytes: number, tooLarge: (declared?: string) => Error): Promise<Uint8Array> {
  const declared = request.headers.get('content-length');
  if (declared !== null && Number(declared) > maxBytes) throw tooLarge(declared);
  if (!request.body) return new Uint8Array(0);
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      await reader.cancel().catch(() => {});
      throw tooLarge();
    }
    chunks.push(value);
  }
  return concat(chunks, total);
}
