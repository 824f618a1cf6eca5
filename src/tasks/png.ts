/**
 * A minimal PNG encoder for class masks: 8-bit indexed colour (colour type 3) with a palette and
 * optional transparency, rows unfiltered, compressed with CompressionStream('deflate') (the zlib
 * format PNG's IDAT wants). Enough for segmentation masks, which compress well without filters.
 *
 *   PNG = signature, IHDR, PLTE, [tRNS], IDAT, IEND; each chunk = u32 BE length, type, data, CRC-32
 */

const SIGNATURE = Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a);

/** CRC-32 (ISO 3309, reflected polynomial 0xEDB88320), the checksum of PNG chunks: one table, built once. */
const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/**
 * CRC-32 of bytes (not CRC-32C, which the bitstream uses).
 *
 * @example
 * crc32(new TextEncoder().encode('IEND')) // 0xae426082
 */
export function crc32(bytes: Uint8Array, crc = 0): number {
  let c = ~crc >>> 0;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

export interface PaletteImage {
  width: number;
  height: number;
  /** One palette index per pixel, row-major. */
  indices: Uint8Array;
  /** RGB triples, one per palette entry (1..256 entries). */
  palette: Uint8Array;
  /** Alpha per palette entry (may be shorter than the palette: the rest is opaque). */
  alpha?: Uint8Array;
}

/**
 * Encodes an indexed-colour PNG.
 *
 * @example
 * const png = await encodePalettePng({ width: 2, height: 1, indices: Uint8Array.of(0, 1), palette: Uint8Array.of(0, 0, 0, 255, 0, 0) })
 */
export async function encodePalettePng(image: PaletteImage): Promise<Uint8Array> {
  const { width, height, indices, palette, alpha } = image;
  if (!(width >= 1 && height >= 1) || indices.length !== width * height) throw new RangeError(`${indices.length} indices for ${width}x${height}`);
  const entries = palette.length / 3;
  if (!Number.isInteger(entries) || entries < 1 || entries > 256) throw new RangeError('a palette holds 1..256 RGB triples');
  const ihdr = new Uint8Array(13);
  const view = new DataView(ihdr.buffer);
  view.setUint32(0, width);
  view.setUint32(4, height);
  ihdr.set([8, 3, 0, 0, 0], 8); // bit depth 8, colour type 3 (indexed), deflate, no filter method, no interlace
  // Each row starts with its filter type byte: 0 = none.
  const raw = new Uint8Array(height * (width + 1));
  for (let y = 0; y < height; y++) raw.set(indices.subarray(y * width, (y + 1) * width), y * (width + 1) + 1);
  const chunks = [chunk('IHDR', ihdr), chunk('PLTE', palette)];
  if (alpha && alpha.length) chunks.push(chunk('tRNS', alpha.subarray(0, entries)));
  chunks.push(chunk('IDAT', await deflate(raw)), chunk('IEND', new Uint8Array(0)));
  const total = chunks.reduce((n, c) => n + c.length, SIGNATURE.length);
  const out = new Uint8Array(total);
  out.set(SIGNATURE, 0);
  let at = SIGNATURE.length;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

async function deflate(bytes: Uint8Array): Promise<Uint8Array> {
  // Blob's types take ArrayBuffer-backed views only; ours never view a SharedArrayBuffer.
  const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(new CompressionStream('deflate'));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/**
 * Base64 of bytes, in 32 KiB slices so that large masks do not overflow the argument limit.
 *
 * @example
 * base64(Uint8Array.of(0xff)) // '/w=='
 */
export function base64(bytes: Uint8Array): string {
  let binary = '';
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}
