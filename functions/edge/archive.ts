/**
 * Stored bitstreams in R2 `BITSTREAMS`, kept for keys whose record sets `store_bitstreams`, so
 * that the re-evaluation job can run new model versions on them.
 *
 *   key:      bitstreams/<tenant, URI-encoded>/<hex SHA-256 of the bitstream>.lsb
 *   metadata: codec, table_hash, width, height, first_request_id, stored_at (ISO 8601)
 */
import type { BitstreamHeader } from '../../src/bitstream/index.ts';
import { Recent } from './recent.ts';

export const BITSTREAM_MEDIA_TYPE = 'application/vnd.latentsight+bitstream';

/**
 * The R2 key of a tenant's bitstream.
 *
 * @example
 * bitstreamKey('acme', 'ab12...') // 'bitstreams/acme/ab12....lsb'
 */
export function bitstreamKey(tenant: string, bitstreamSha256: string): string {
  return `bitstreams/${encodeURIComponent(tenant)}/${bitstreamSha256}.lsb`;
}

/** Keys this isolate knows are stored (archived bitstreams are never deleted): a repeat, such as a
 * cache hit on a popular image, skips even the HEAD (an R2 class B operation and a round trip). */
const knownStored = new Recent<true>(4096);

/**
 * Stores a bitstream unless the tenant already has it (a HEAD costs less than a rewrite, and a
 * key this isolate has stored or seen needs neither). Returns whether it wrote.
 *
 * @example
 * ctx.waitUntil(storeBitstream(env.BITSTREAMS, 'acme', sha, bytes, header, requestId))
 */
export async function storeBitstream(
  bucket: R2Bucket,
  tenant: string,
  bitstreamSha256: string,
  bytes: Uint8Array,
  header: BitstreamHeader,
  requestId: string,
): Promise<boolean> {
  const key = bitstreamKey(tenant, bitstreamSha256);
  if (knownStored.get(key)) return false;
  if (await bucket.head(key)) {
    knownStored.set(key, true);
    return false;
  }
  await bucket.put(key, bytes, {
    httpMetadata: { contentType: BITSTREAM_MEDIA_TYPE },
    customMetadata: {
      codec: header.modelId,
      table_hash: header.tableHash,
      width: String(header.width),
      height: String(header.height),
      first_request_id: requestId,
      stored_at: new Date().toISOString(),
    },
    sha256: bitstreamSha256,
  });
  knownStored.set(key, true);
  return true;
}
