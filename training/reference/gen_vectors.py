"""Write the golden vectors in ``test/vectors/`` that pin bitstream format v1 and the rANS coders.

    python3 training/reference/gen_vectors.py [--out test/vectors]

The TypeScript side (``test/unit/vectors.test.ts``) decodes every stream to exactly the stored
latents and re-encodes the latents to exactly the stored bytes. Output is deterministic: rerunning
this script must leave ``git status`` clean.

Cases with ``"coder": 2`` in ``vectors.json`` use a v2 table file (``tables-ctx-*.lst``, context
section) and coder 2; cases without the field use a v1 table file and coder 1. The coder-2 cases
come after the coder-1 ones and draw from their own random generator, so adding them left every
earlier file byte-identical.
"""
from __future__ import annotations

import argparse
import json
import math
import random
import struct
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    __package__ = "reference"

from reference.container import Stream, read_stream, write_stream  # noqa: E402
from reference.crc32c import crc32c  # noqa: E402
from reference.latents import decode_latents, encode_latents  # noqa: E402
from reference.tables import ContextSpec, Table, TableSet, quantize_pmf  # noqa: E402


def laplace_table(scale: float, precision: int, min_mass: float = 1e-6) -> Table:
    def mass(v: float) -> float:
        cdf = lambda x: 0.5 * math.exp(x / scale) if x < 0 else 1 - 0.5 * math.exp(-x / scale)  # noqa: E731
        return cdf(v + 0.5) - cdf(v - 0.5)

    r = 0
    while mass(r + 1) > min_mass and r < 200:
        r += 1
    pmf = [mass(v) for v in range(-r, r + 1)]
    pmf.append(max(1 - sum(pmf), 1e-12))
    return Table(-r, tuple(quantize_pmf(pmf, precision)))


def laplace_latents(rng: random.Random, scales: list[float], n: int) -> list[int]:
    out = []
    for s in scales:
        for _ in range(n):
            mag = rng.expovariate(1 / s)
            out.append(int(round(mag if rng.random() < 0.5 else -mag)))
    return out


def smooth_field(rng: random.Random, height: int, width: int, low: float, high: float) -> list[float]:
    """A spatially smooth positive field (raster order): a few random cosines, mapped to low..high."""
    waves = [(rng.uniform(0.05, 0.35), rng.uniform(0.05, 0.35), rng.uniform(0, 2 * math.pi)) for _ in range(4)]
    raw = [sum(math.cos(fy * i + fx * j + ph) for fy, fx, ph in waves) for i in range(height) for j in range(width)]
    lo, hi = min(raw), max(raw)
    return [low * (high / low) ** ((r - lo) / (hi - lo)) for r in raw]


def correlated_latents(rng: random.Random, scales: list[float], height: int, width: int) -> list[int]:
    """Laplace latents whose scale is ``scales[c]`` times one smooth field shared by all channels.

    Large and small values cluster in space and across channels, so the coder-2 contexts (nonzero
    count of earlier channels, |up| + |left|) take many different values.
    """
    field = smooth_field(rng, height, width, 0.08, 4.0)
    out = []
    for s in scales:
        for f in field:
            mag = rng.expovariate(1 / (s * f))
            out.append(int(round(mag if rng.random() < 0.5 else -mag)))
    return out


def context_map(channels: int, cap: int, bins: int, rule) -> tuple[int, ...]:
    """Table map of a v2 file: ``rule(c, zbin, a)`` for every channel c and context (zbin, a)."""
    return tuple(rule(c, b, a) for c in range(channels) for b in range(bins) for a in range(cap + 1))


def context_cases() -> tuple[dict[str, TableSet], list[dict]]:
    """Table sets (v2) and cases for coder 2, from their own random generator."""
    rng = random.Random(20270311)
    ctx_scales = (0.15, 0.35, 0.7, 1.4, 2.8, 5.6)
    wide_scales = tuple(0.1 * 1.45**t for t in range(10))
    table_sets = {
        # 8 channels, 6 tables: the table depends on channel, nz bin (edges 1, 2, 4) and |up| + |left| (cap 3).
        "ctx-p12-c8": TableSet(12, tuple(laplace_table(s, 12) for s in ctx_scales), ContextSpec(
            1, 8, 3, (1, 2, 4),
            context_map(8, 3, 4, lambda c, b, a: max(0, min(5, a + b // 2 + c % 3 - 1))))),
        # 64 channels, 10 tables shared by groups of 16 channels; precision 14, cap 2, edges 3, 10, 30.
        "ctx-p14-c64": TableSet(14, tuple(laplace_table(s, 14) for s in wide_scales), ContextSpec(
            1, 64, 2, (3, 10, 30),
            context_map(64, 2, 4, lambda c, b, a: min(9, 3 - c // 16 + a + b if c < 48 else 9 - 2 * a)))),
    }
    c8 = [0.3 * 1.3**c for c in range(8)]
    field = correlated_latents(rng, c8, 24, 40)
    skipped = list(field)
    skipped[2 * 960:3 * 960] = [0] * 960
    tiny = correlated_latents(rng, c8, 5, 7)
    # Escapes of every size, and an |up| + |left| of 65535 at (2, 4) of channel 5.
    for pos, v in zip(range(3, 280, 13), [300, -300, 32767, -32768, 4095, -4096, 40, -41, 1000, -1000]):
        tiny[pos] = v
    tiny[5 * 35 + 1 * 7 + 4] = -32768
    tiny[5 * 35 + 2 * 7 + 3] = 32767
    c64 = [3.0 * 0.93**c for c in range(64)]
    cases = [
        dict(name="ctx-correlated", tables="ctx-p12-c8", size=(40, 24), stride=1, lanes=4, latents=field),
        dict(name="ctx-three-lanes-skipped-channel", tables="ctx-p12-c8", size=(40, 24), stride=1, lanes=3,
             latents=skipped),
        dict(name="ctx-tiny-escapes", tables="ctx-p12-c8", size=(7, 5), stride=1, lanes=1, latents=tiny),
        dict(name="ctx-64-channels-eight-lanes", tables="ctx-p14-c64", size=(96, 64), stride=8, lanes=8,
             latents=correlated_latents(rng, c64, 8, 12)),
    ]
    for case in cases:
        case["coder"] = 2
    return table_sets, cases


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[2] / "test" / "vectors"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(20261126)

    table_sets = {
        "p12-c3": TableSet(12, tuple(laplace_table(s, 12) for s in (0.4, 1.0, 2.5))),
        "p16-c8": TableSet(16, tuple(laplace_table(0.2 + 0.4 * c, 16) for c in range(8))),
        "p8-c2": TableSet(8, tuple(laplace_table(s, 8) for s in (0.7, 3.0))),
        "p12-c64": TableSet(12, tuple(laplace_table(0.08 * 1.06**c, 12) for c in range(64))),
    }
    for name, ts in table_sets.items():
        (out / f"tables-{name}.lst").write_bytes(ts.to_bytes())

    extremes = [0, 1, -1, 40, -41, 300, -300, 4095, -4096, 32767, -32768]
    tiny = laplace_latents(rng, [0.4, 1.0, 2.5], 35)
    for i, v in enumerate(extremes):
        tiny[7 * i + 3] = v
    with_zero_channel = list(tiny)
    with_zero_channel[35:70] = [0] * 35

    cases = [
        dict(name="tiny-escapes", tables="p12-c3", size=(7, 5), stride=1, lanes=4, latents=tiny),
        dict(name="tiny-one-lane", tables="p12-c3", size=(7, 5), stride=1, lanes=1, latents=tiny),
        dict(name="three-lanes-skipped-channel", tables="p12-c3", size=(7, 5), stride=1, lanes=3,
             latents=with_zero_channel),
        dict(name="precision-16", tables="p16-c8", size=(128, 128), stride=8, lanes=4,
             latents=laplace_latents(rng, [0.2 + 0.4 * c for c in range(8)], 256)),
        dict(name="precision-8-eight-lanes", tables="p8-c2", size=(81, 70), stride=8, lanes=8,
             latents=laplace_latents(rng, [0.7, 3.0], 99)),
        dict(name="laplace-64-channels", tables="p12-c64", size=(96, 64), stride=8, lanes=4,
             latents=laplace_latents(rng, [0.08 * 1.06**c for c in range(64)], 96)),
        dict(name="all-zero", tables="p12-c3", size=(13, 3), stride=2, lanes=4, latents=[0] * (3 * 2 * 7)),
        dict(name="optional-part", tables="p12-c3", size=(7, 5), stride=1, lanes=2, latents=tiny,
             extra=[("note", b"optional parts are skipped by readers that do not know them")]),
    ]
    ctx_table_sets, ctx_cases = context_cases()
    table_sets.update(ctx_table_sets)
    for name, ts in ctx_table_sets.items():
        assert TableSet.from_bytes(ts.to_bytes()) == ts, name
        (out / f"tables-{name}.lst").write_bytes(ts.to_bytes())
    cases += ctx_cases

    index = []
    for case in cases:
        ts = table_sets[case["tables"]]
        width, height = case["size"]
        stride = case["stride"]
        shape = (ts.channels, -(-height // stride), -(-width // stride))
        assert len(case["latents"]) == shape[0] * shape[1] * shape[2], case["name"]
        body = encode_latents(case["latents"], shape, ts, case["lanes"])
        assert decode_latents(body, shape, ts) == case["latents"]
        stream = write_stream(Stream(width, height, stride, shape[0], f"vec-{case['tables']}", ts.table_hash(), body,
                                     case.get("extra", [])))
        assert read_stream(stream).latents == body
        (out / f"{case['name']}.lsb").write_bytes(stream)
        (out / f"{case['name']}.i16").write_bytes(struct.pack(f"<{len(case['latents'])}h", *case["latents"]))
        entry = {
            "name": case["name"],
            "tables": f"tables-{case['tables']}.lst",
            "table_hash": ts.table_hash(),
            "model_id": f"vec-{case['tables']}",
            "width": width,
            "height": height,
            "stride": stride,
            "shape": list(shape),
            "lanes": case["lanes"],
            "stream": f"{case['name']}.lsb",
            "latents": f"{case['name']}.i16",
            "extra_parts": [{"tag": t, "hex": b.hex()} for t, b in case.get("extra", [])],
            "stream_bytes": len(stream),
        }
        if "coder" in case:
            assert body[0] == case["coder"]
            entry["coder"] = case["coder"]
        index.append(entry)
    checks = {s: crc32c(s.encode()) for s in ("", "a", "123456789", "latentsight")}
    doc = {
        "generator": "training/reference/gen_vectors.py",
        "format_version": 1,
        "crc32c": [{"input": k, "crc": v} for k, v in checks.items()],
        "cases": index,
    }
    (out / "vectors.json").write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {len(index)} cases to {out}")


if __name__ == "__main__":
    main()
