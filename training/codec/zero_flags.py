"""Estimate a zero-segment flag on top of a codec's context tables (analysis for a coder 3; nothing ships).

    python3 training/codec/zero_flags.py --codec ls-f8-q2 [--block 8]

Coder 2 decodes every latent value of a coded channel, but most row segments of 8 values are all
zero and cost the context tables well under a bit (``context_tables.py --zero-blocks``). A flag per
segment, "all zero", coded with a probability chosen by a small context, would let a decoder skip
those segments' values. This script estimates what that costs in size, on the val latents, with:

- flag context: the segment's largest count of earlier non-zero channels (the context tables' 6 bins),
  whether the segment above and the one to the left have a non-zero value (6 x 2 x 2 = 24 per channel);
  probabilities counted on the training latents;
- values of the other segments coded exactly as now (their tables are not refitted to "this segment
  is not all zero", so the estimate is pessimistic).

Prints, per val set: bpp now, bpp with flags, flag bits per segment, and the fraction of segments
(and so of symbol steps) a decoder would skip. Ideal code lengths, not coded bytes.
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import context_tables as ct  # noqa: E402  (also puts training/ on the path)
from reference.tables import TableSet  # noqa: E402

BIN_EDGES = (1, 2, 4, 8, 14)


def segments(y, block):
    """Per segment of ``block`` values along rows: has a non-zero value, flag context; per channel: coded."""
    n, c, h, w = y.shape
    cut = w - w % block
    nz = y != 0
    z = np.cumsum(nz, axis=1) - nz
    nonzero = nz[..., :cut].reshape(n, c, h, cut // block, block).any(-1)
    zmax = z[..., :cut].reshape(n, c, h, cut // block, block).max(-1)
    up = np.zeros_like(nonzero)
    up[:, :, 1:] = nonzero[:, :, :-1]
    left = np.zeros_like(nonzero)
    left[..., 1:] = nonzero[..., :-1]
    k = np.searchsorted(np.asarray(BIN_EDGES), zmax, side="right") * 4 + up * 2 + left
    coded = ct.coded_channels(y)
    return nonzero, k, np.broadcast_to(coded[:, :, None, None], nonzero.shape), cut


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--codec", required=True)
    ap.add_argument("--cache-dir", default="~/.cache/latentsight")
    ap.add_argument("--block", type=int, default=8)
    args = ap.parse_args()
    entry = next(m for m in json.load(open(os.path.join(ct.REPO, "models", "manifest.json")))["models"] if m["id"] == args.codec)
    ts = TableSet.from_bytes(open(os.path.join(ct.REPO, "models", entry["files"]["tables"]["path"]), "rb").read())
    if ts.context is None:
        sys.exit(f"{args.codec}'s tables have no context section")
    channels = entry["channels"]
    contexts = (len(BIN_EDGES) + 1) * 4
    counts = np.zeros((channels, contexts, 2))
    for y in ct.chunks(ct.load_sets(args.cache_dir, args.codec, ["imagenette-train", "camvid-train"])):
        nonzero, k, coded, _ = segments(y, args.block)
        ch = np.broadcast_to(np.arange(channels)[None, :, None, None], nonzero.shape)
        idx = (ch[coded] * contexts + k[coded]) * 2 + nonzero[coded]
        counts += np.bincount(idx, minlength=counts.size).reshape(counts.shape)
    p = np.clip((counts + 0.5) / (counts + 0.5).sum(-1, keepdims=True), 1 / 4096, 1 - 1 / 4096)
    for name, arr in ct.load_sets(args.cache_dir, args.codec, ["imagenette-val", "camvid-val"]):
        flag_bits = saved = 0.0
        segs = zero_segs = 0
        for y in ct.chunks([(name, arr)]):
            nonzero, k, coded, cut = segments(y, args.block)
            ch = np.broadcast_to(np.arange(channels)[None, :, None, None], nonzero.shape)
            flag_bits += float(-np.log2(p[ch[coded], k[coded], nonzero[coded].astype(int)]).sum())
            # An all-zero segment holds only zeros: its values' bits are what the flag saves.
            per_segment = ct.value_bits(y, ts)[..., :cut].reshape(*nonzero.shape, args.block).sum(-1)
            saved += float(per_segment[coded & ~nonzero].sum())
            segs += int(coded.sum())
            zero_segs += int((coded & ~nonzero).sum())
        bits, _ = ct.bits_of([(name, arr)], ts)
        pixels = len(arr) * arr.shape[2] * arr.shape[3] * 64
        print(json.dumps({"set": name, "block": args.block, "bpp_now": round(bits / pixels, 4),
                          "bpp_with_flags": round((bits - saved + flag_bits) / pixels, 4),
                          "flag_bits_per_segment": round(flag_bits / segs, 3),
                          "segments_skipped": round(zero_segs / segs, 3)}), flush=True)


if __name__ == "__main__":
    main()
