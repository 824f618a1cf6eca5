/**
 * The public result shapes of the analysis tasks, shared by the edge that produces them and the SDK
 * that consumes them (the OpenAPI document in functions/edge/openapi.ts describes the same JSON).
 */

export interface ClassifyResult {
  top: { label: string; id: string; score: number }[];
}

export interface SegmentResult {
  width: number;
  height: number;
  classes: { index: number; id: string; name: string; color: string }[];
  /** base64 of an indexed-colour PNG, one palette entry per class (colours as in `classes`). */
  mask: string;
  /** Share of the mask's pixels per class id, in [0, 1]; pixels of no class count in none. */
  fractions: Record<string, number>;
}
