/**
 * Task results: top-k labels, segmentation masks as palette PNGs, class fractions. No platform API
 * beyond web standards (CompressionStream), so the edge, browsers and Node share it.
 */
export { type PaletteImage, base64, crc32, encodePalettePng } from './png.ts';
export type { ClassifyResult, SegmentResult } from './results.ts';
