"""Fit context-adaptive entropy tables (table file v2, docs/FORMAT.md) for a shipped codec.

    python3 training/tasks/latents.py --codec-onnx models/ls-f8-q2 --steps source,latents   # once
    python3 training/codec/context_tables.py --codec ls-f8-q2 --write --version 0.3.0
    python3 training/codec/context_tables.py --codec ls-f8-q2 --zero-blocks    # all-zero segments on val

The codec's transforms stay as they are: the latents, and so every task model trained on them,
do not change. Only how the latents are entropy-coded does. Each latent value is coded with a
table chosen by its channel and a context of values the decoder already has:

- z: how many earlier channels are non-zero at the same position (binned by ``--edges``);
- a: |up| + |left| in the same channel, capped at ``--cap``.

That is C x B x (cap + 1) distributions (64 x 6 x 6 = 2,304 for the defaults), counted on the
training latents (Imagenette train and CamVid train, the codec's own training data; never Kodak),
then clustered into ``--tables`` shared tables by weighted k-means on code length, so the decoder's
lookups stay a few MB. Each table's range (values coded without escape) is the one of a few
candidates that codes its training counts in the fewest bits after 12-bit quantisation.

Configurations are compared on the validation latents (Imagenette val, CamVid val) against the
codec's factorized tables; ``--write`` writes ``models/<codec>/tables.lst`` (v2), keeps the
previous file as a legacy table set that decoders still accept (streams archived in R2, clients not
yet updated), and updates the manifest entry. Kodak is measured afterwards with
``npx latentsight eval rd`` and ``record_rd.py``.
"""
import argparse
import hashlib
import json
import math
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DEFAULT_MODELS = os.path.join(REPO, "models")
sys.path.insert(0, os.path.join(REPO, "training"))
sys.path.insert(0, HERE)
from reference.tables import ContextSpec, Table, TableSet, quantize_pmf  # noqa: E402

R = 127                      # counted values: -R..R (clipped; larger magnitudes are escapes anyway)
V = 2 * R + 1
MAX_VALUES = 128             # values per table besides the escape (the decoders' fast lookups)
TAIL_CANDIDATES = (0.0, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 3e-2)
CHUNK = 400


def load_sets(cache, codec, names):
    base = os.path.join(os.path.expanduser(cache), "tasks", codec)
    out = []
    for name in names:
        path = os.path.join(base, f"{name}.latents.npy")
        if not os.path.exists(path):
            sys.exit(f"{path} is missing: run training/tasks/latents.py --codec-onnx models/{codec} --steps source,latents")
        out.append((name, np.load(path, mmap_mode="r")))
    return out


def contexts(y, edges, cap):
    """Context index k of every value of y [N,C,H,W] (int32), exactly as the decoders compute it."""
    a = np.abs(y)
    near = np.zeros_like(a)
    near[:, :, 1:] += a[:, :, :-1]
    near[:, :, :, 1:] += a[:, :, :, :-1]
    nz = (y != 0).astype(np.int32)
    z = np.cumsum(nz, axis=1) - nz
    bins = np.searchsorted(np.asarray(edges), z, side="right")
    return bins * (cap + 1) + np.minimum(near, cap)


def chunks(sets):
    """The latents of ``sets`` (name, array [N,C,H,W]) as int32 arrays of at most CHUNK images."""
    for _, arr in sets:
        for s in range(0, len(arr), CHUNK):
            yield np.asarray(arr[s:s + CHUNK], dtype=np.int32)


def count(sets, channels, edges, cap):
    k_count = (len(edges) + 1) * (cap + 1)
    counts = np.zeros(channels * k_count * V)
    ch = np.arange(channels)[None, :, None, None]
    for y in chunks(sets):
        idx = (ch * k_count + contexts(y, edges, cap)) * V + np.clip(y, -R, R) + R
        counts += np.bincount(idx.ravel(), minlength=counts.size)
    return counts.reshape(channels, k_count, V)


def cluster(dists, tables, iters=20):
    """Weighted k-means of count vectors [M,V] under code length: returns (assignment, centroids)."""
    w = dists.sum(1)
    order = np.argsort(-w, kind="stable")
    live = order[w[order] > 0]
    cent = dists[live[:tables]] + 0.02
    cent /= cent.sum(1, keepdims=True)
    assign = np.zeros(len(dists), dtype=np.int64)
    for _ in range(iters):
        cost = -(dists @ np.log2(cent).T)
        assign = cost.argmin(1)
        for t in range(len(cent)):
            m = assign == t
            if m.any():
                s = dists[m].sum(0) + 0.02
                cent[t] = s / s.sum()
    return assign, cent


def escape_bits(values):
    """Bits of the escape payload of values beyond a range: nibble count + nibbles (4 bits each)."""
    return 4 + 4 * np.maximum(1, np.ceil(np.log2(values + 1) / 4))


def table_cost(c, lo, hi, precision):
    """Quantised table for counts c [V] over values lo..hi (+ escape) and its code length in bits."""
    v = np.arange(-R, R + 1)
    inside = (v >= lo) & (v <= hi)
    esc_mass = c[~inside].sum()
    pmf = list(c[inside] + 0.02) + [max(esc_mass, 0.02)]
    freqs = quantize_pmf(pmf, precision)
    f = np.asarray(freqs, dtype=np.float64)
    bits = -(c[inside] * np.log2(f[:-1] / (1 << precision))).sum()
    dist = np.where(v > hi, (v - hi - 1) * 2, (lo - 1 - v) * 2 + 1)[~inside]
    bits += (c[~inside] * (-math.log2(f[-1] / (1 << precision)) + escape_bits(dist))).sum()
    return Table(int(lo), tuple(freqs)), bits


def build_table(c, precision):
    """The cheapest of a few tail cut-offs for a cluster's counts c [V]."""
    v = np.arange(-R, R + 1)
    total = c.sum()
    best = None
    for tail in TAIL_CANDIDATES:
        below = np.cumsum(c) - c          # mass strictly below each value
        above = total - np.cumsum(c)      # mass strictly above
        ok_lo = np.nonzero(below <= tail * total / 2)[0]
        ok_hi = np.nonzero(above <= tail * total / 2)[0]
        lo, hi = int(v[ok_lo[-1]]), int(v[ok_hi[0]])
        lo, hi = min(lo, 0), max(hi, 0)
        if hi - lo + 1 > MAX_VALUES:
            window = np.convolve(c[lo + R:hi + R + 1], np.ones(MAX_VALUES), mode="valid")
            lo += int(np.argmax(window))
            hi = lo + MAX_VALUES - 1
        table, bits = table_cost(c, lo, hi, precision)
        if best is None or bits < best[1]:
            best = (table, bits)
    return best[0]


def fit(train, channels, edges, cap, n_tables, precision):
    counts = count(train, channels, edges, cap)
    k_count = counts.shape[1]
    assign, _ = cluster(counts.reshape(-1, V), n_tables)
    used = sorted(set(assign.tolist()))
    remap = {t: i for i, t in enumerate(used)}
    flat = counts.reshape(-1, V)
    tables = [build_table(flat[assign == t].sum(0), precision) for t in used]
    table_map = tuple(remap[int(t)] for t in assign)
    spec = ContextSpec(kind=1, channels=channels, cap=cap, edges=tuple(edges), table_map=table_map)
    assert len(table_map) == channels * k_count
    return TableSet(precision, tuple(tables), context=spec)


def value_bits(y, ts):
    """Ideal code length (bits) of each value of y [N,C,H,W] (int32) under ``ts`` (v1 or v2), an
    escape at its coded cost."""
    ctx = ts.context
    channels = y.shape[1]
    k_count = (len(ctx.edges) + 1) * (ctx.cap + 1) if ctx else 1
    tmap = np.asarray(ctx.table_map) if ctx else np.arange(channels)
    lows = np.array([t.low for t in ts.tables])
    highs = np.array([t.high for t in ts.tables])
    width = max(len(t.freqs) for t in ts.tables)
    logf = np.full((len(ts.tables), width), np.nan)
    for i, t in enumerate(ts.tables):
        logf[i, :len(t.freqs)] = -np.log2(np.asarray(t.freqs) / (1 << ts.precision))
    esc = np.array([logf[i, len(t.freqs) - 1] for i, t in enumerate(ts.tables)])
    k = contexts(y, ctx.edges, ctx.cap) if ctx else np.zeros_like(y)
    t = tmap[np.arange(channels)[None, :, None, None] * k_count + k]
    lo, hi = lows[t], highs[t]
    inside = (y >= lo) & (y <= hi)
    dist = np.where(y > hi, (y - hi - 1) * 2, (lo - 1 - y) * 2 + 1)
    return np.where(inside, logf[t, np.clip(y - lo, 0, width - 1)], esc[t] + escape_bits(np.maximum(dist, 0)))


def coded_channels(y):
    """[N,C]: the channels a stream codes (not all zero)."""
    return (y != 0).reshape(y.shape[0], y.shape[1], -1).any(-1)


def bits_of(sets, ts):
    """Ideal code length (bits) of every latent in ``sets`` under ``ts`` (v1 or v2), all-zero
    channels skipped as the stream skips them; also the number of values coded."""
    total, values = 0.0, 0
    for y in chunks(sets):
        coded = coded_channels(y)
        total += float(value_bits(y, ts).reshape(*coded.shape, -1).sum(-1)[coded].sum())
        values += int(coded.sum()) * y.shape[2] * y.shape[3]
    return total, values


def zero_blocks(sets, ts, block=8):
    """For the next coder: of the row segments of ``block`` values in coded channels, the fraction
    that are all zero, and the bits ``ts`` spends on them (what a zero-block flag would have to beat)."""
    blocks = zero = 0
    bits = 0.0
    for y in chunks(sets):
        n, c, h, w = y.shape
        cut = w - w % block
        coded = coded_channels(y)
        seg = y[..., :cut].reshape(n, c, h, cut // block, block)
        all_zero = ~(seg != 0).any(-1) & coded[:, :, None, None]
        blocks += int(coded.sum()) * h * (cut // block)
        zero += int(all_zero.sum())
        bits += float(value_bits(y, ts)[..., :cut].reshape(seg.shape).sum(-1)[all_zero].sum())
    return {"block": block, "all_zero_fraction": round(zero / max(blocks, 1), 4),
            "bits_per_all_zero_block": round(bits / max(zero, 1), 4)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--codec", required=True, help="codec id in models/ (its latents must be in the tasks cache)")
    ap.add_argument("--cache-dir", default="~/.cache/latentsight")
    ap.add_argument("--models", default=DEFAULT_MODELS,
                    help="the models folder holding the codec (a copy, for a candidate not yet shipped)")
    ap.add_argument("--tables", type=int, default=256, help="shared tables after clustering (<= 1024)")
    ap.add_argument("--cap", type=int, default=5, help="|up| + |left| is capped at this")
    ap.add_argument("--edges", default="1,2,4,8,14", help="bin edges of the earlier channels' non-zero count")
    ap.add_argument("--precision", type=int, default=12)
    ap.add_argument("--sweep", action="store_true", help="compare a few configurations on val, write nothing")
    ap.add_argument("--write", action="store_true", help="write models/<codec>/tables.lst and the manifest entry")
    ap.add_argument("--version", help="the codec's new version (required with --write)")
    ap.add_argument("--no-legacy", action="store_true",
                    help="with --write: drop the previous tables instead of keeping them for decoding "
                         "(a new codec's first release, whose factorized tables coded no stream)")
    ap.add_argument("--zero-blocks", action="store_true",
                    help="report, for the shipped context tables, the all-zero row segments on val and their bits")
    args = ap.parse_args()

    models = args.models
    manifest_path = os.path.join(models, "manifest.json")
    manifest = json.load(open(manifest_path))
    entry = next(m for m in manifest["models"] if m["id"] == args.codec and m["kind"] == "codec")
    old_path = os.path.join(models, entry["files"]["tables"]["path"])
    old = TableSet.from_bytes(open(old_path, "rb").read())
    if args.zero_blocks:
        if old.context is None:
            sys.exit(f"{old_path} has no context section")
        for name, arr in load_sets(args.cache_dir, args.codec, ["imagenette-val", "camvid-val"]):
            print(json.dumps({"set": name, **zero_blocks([(name, arr)], old)}), flush=True)
        return
    if old.context is not None:
        sys.exit(f"{old_path} is already a context table set")
    channels = entry["channels"]

    train = load_sets(args.cache_dir, args.codec, ["imagenette-train", "camvid-train"])
    val = load_sets(args.cache_dir, args.codec, ["imagenette-val", "camvid-val"])
    val_pixels = {name: len(a) * a.shape[2] * a.shape[3] * 64 for name, a in val}

    def report(label, ts, started):
        row = {"config": label, "tables": len(ts.tables), "fit_s": round(time.time() - started, 1)}
        for name, arr in val:
            bits, _ = bits_of([(name, arr)], ts)
            row[f"{name}_bpp"] = round(bits / val_pixels[name], 5)
        print(json.dumps(row), flush=True)
        return row

    started = time.time()
    base = report("factorized (shipped v1)", old, started)
    configs = [(args.tables, args.cap, args.edges)]
    if args.sweep:
        configs = [(256, 5, "1,2,4,8,14"), (128, 5, "1,2,4,8,14"), (64, 5, "1,2,4,8,14"),
                   (256, 3, "1,2,4,8,14"), (256, 7, "1,2,3,5,8,12,18")]
    rows = []
    for n_tables, cap, edges in configs:
        started = time.time()
        ts = fit(train, channels, [int(e) for e in edges.split(",")], cap, n_tables, args.precision)
        row = report(f"context T={n_tables} cap={cap} edges={edges}", ts, started)
        row["saving"] = {k: round(1 - row[k] / base[k], 4) for k in row if k.endswith("_bpp")}
        print(json.dumps({"saving_vs_factorized": row["saving"]}), flush=True)
        rows.append((row, ts))
    if not args.write:
        return
    from export import update_manifest  # torch and onnx: only when writing
    if not args.version:
        sys.exit("--write needs --version")
    row, ts = rows[0]
    folder = os.path.dirname(old_path)
    legacy_name = None if args.no_legacy else f"tables-{entry['version']}.lst"
    data = ts.to_bytes()
    if legacy_name:
        os.replace(old_path, os.path.join(folder, legacy_name))
    open(old_path, "wb").write(data)
    if legacy_name:
        entry.setdefault("legacy_tables", []).insert(0, {
            "version": entry["version"],
            "path": f"{args.codec}/{legacy_name}",
            "sha256": entry["files"]["tables"]["sha256"],
            "bytes": entry["files"]["tables"]["bytes"],
            "table_hash": entry["table_hash"],
            "analysis_sha256": entry["files"]["analysis"]["sha256"],
            "note": "decode only: streams coded before this version with the same transforms (archived bitstreams, clients not yet updated)",
        })
    digest = hashlib.sha256(data).hexdigest()
    entry["files"]["tables"] = {"path": f"{args.codec}/tables.lst", "sha256": digest, "bytes": len(data)}
    entry["table_hash"] = digest[:16]
    entry["version"] = args.version
    entry["entropy_model"] = {
        "kind": "context tables (table file v2, coder 2)",
        "context": {"edges": list(ts.context.edges), "cap": ts.context.cap,
                    "contexts_per_channel": (len(ts.context.edges) + 1) * (ts.context.cap + 1)},
        "tables": len(ts.tables),
        "fitted_on": "latents of Imagenette train (224x224) and CamVid train (480x368) through this codec's analysis",
        "command": f"python3 training/codec/context_tables.py --codec {args.codec} "
                   + (f"--models {args.models} " if args.models != DEFAULT_MODELS else "")
                   + f"--tables {args.tables} "
                   f"--cap {ts.context.cap} --edges {','.join(map(str, ts.context.edges))} --write --version {args.version}"
                   + (" --no-legacy" if args.no_legacy else ""),
        "val_bpp": {k: v for k, v in row.items() if k.endswith("_bpp")},
        "val_bpp_factorized": {k: v for k, v in base.items() if k.endswith("_bpp")},
    }
    update_manifest(manifest_path, entry)
    print(json.dumps({"wrote": old_path, "bytes": len(data), "table_hash": digest[:16], "legacy": legacy_name}))


if __name__ == "__main__":
    main()
