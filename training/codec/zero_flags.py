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

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), ""))
sys.path.insert(0, HERE)
import context_tables as ct  # noqa: E402
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
    coded = nz.reshape(n, c, -1).any(-1)
    return nonzero, k, np.broadcast_to(coded[:, :, None, None], nonzero.shape), cut


def zero_value_bits(y, ts):
    """Bits the context tables spend on each zero value of y (0 for non-zero values)."""
    ctx = ts.context
    k_count = (len(ctx.edges) + 1) * (ctx.cap + 1)
    t = np.asarray(ctx.table_map)[np.arange(y.shape[1])[None, :, None, None] * k_count + ct.contexts(y, ctx.edges, ctx.cap)]
    width = max(len(tb.freqs) for tb in ts.tables)
    logf = np.zeros((len(ts.tables), width))
    for i, tb in enumerate(ts.tables):
        logf[i, :len(tb.freqs)] = -np.log2(np.asarray(tb.freqs) / (1 << ts.precision))
    lows = np.array([tb.low for tb in ts.tables])
    return np.where(y == 0, logf[t, np.clip(-lows[t], 0, width - 1)], 0.0)


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
    for _, arr in ct.load_sets(args.cache_dir, args.codec, ["imagenette-train", "camvid-train"]):
        for s in range(0, len(arr), ct.CHUNK):
            nonzero, k, coded, _ = segments(np.asarray(arr[s:s + ct.CHUNK], dtype=np.int32), args.block)
            ch = np.broadcast_to(np.arange(channels)[None, :, None, None], nonzero.shape)
            idx = (ch[coded] * contexts + k[coded]) * 2 + nonzero[coded]
            counts += np.bincount(idx, minlength=counts.size).reshape(counts.shape)
    p = np.clip((counts + 0.5) / (counts + 0.5).sum(-1, keepdims=True), 1 / 4096, 1 - 1 / 4096)
    for name, arr in ct.load_sets(args.cache_dir, args.codec, ["imagenette-val", "camvid-val"]):
        flag_bits = saved = 0.0
        segs = zero_segs = 0
        for s in range(0, len(arr), ct.CHUNK):
            y = np.asarray(arr[s:s + ct.CHUNK], dtype=np.int32)
            nonzero, k, coded, cut = segments(y, args.block)
            ch = np.broadcast_to(np.arange(channels)[None, :, None, None], nonzero.shape)
            flag_bits += float(-np.log2(p[ch[coded], k[coded], nonzero[coded].astype(int)]).sum())
            per_segment = zero_value_bits(y, ts)[..., :cut].reshape(*nonzero.shape, args.block).sum(-1)
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
