/**
 * The learned image codec: image <-> latents <-> bitstream, over any `ModelRuntime`. No platform
 * API here; adapters: `runtime-node.ts`, `runtime-web.ts`, and `node.ts` (disk, sharp) for Node.
 */
export { type Codec, type CodecSource, loadCodec, sha256Hex } from './codec.ts';
export { type DecodeOptions, decodeBitstreamLatents, decodeImage } from './decode.ts';
export { type EncodeOptions, assertEncodable, encodeImage } from './encode.ts';
export { CodecError, type CodecErrorCode } from './errors.ts';
export { type CodecEntry, MANIFEST_SCHEMA, type Manifest, type ModelFile, findCodec, parseManifest } from './manifest.ts';
export { type DecodedImage, type RgbImage, fromPlanar, pixelStride, psnr, toPaddedPlanar } from './pixels.ts';
export type { ModelRuntime, ModelSession, Tensor } from './runtime.ts';
export { type LatentStats, latentStats } from './stats.ts';
