/**
 * The edge's limits on bitstreams, stricter than the format's (docs/FORMAT.md, section 5). No
 * platform API and no bindings, so that bench/edge.ts measures decoding under the same limits.
 */
import type { Limits } from '../../src/bitstream/index.ts';

/**
 * An image of up to 4096 x 4096 and 2^22 latent elements (64 channels of a 2048 x 2048 image at
 * stride 8): enough for photos, and one decode stays within a Worker's CPU budget.
 */
export const EDGE_LIMITS: Partial<Limits> = { maxDimension: 4096, maxLatentElements: 1 << 22 };
