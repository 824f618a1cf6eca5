/**
 * Bitstream container v1: header, parts, checksum, limits. No platform API: runs unchanged in
 * browsers, workerd, Node and phone JS engines. The byte-level spec is `docs/FORMAT.md`.
 */
export { crc32c } from './crc32c.ts';
export { BitstreamError, type BitstreamErrorCode } from './errors.ts';
export { ElementType, FORMAT_LIMITS, FORMAT_VERSION, type Limits, MAGIC, PartTag, latentSide } from './format.ts';
export { type BitstreamHeader, type HeaderFields, readHeader } from './header.ts';
export { type Bitstream, type KnownModel, type ParseOptions, type Part, isRequired, parseBitstream } from './reader.ts';
export { type WriteInput, writeBitstream } from './writer.ts';
