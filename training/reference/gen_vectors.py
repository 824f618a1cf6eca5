"""Write the golden vectors in ``test/vectors/`` that pin bitstream format v1 and the rANS coder.

    python3 training/reference/gen_vectors.py [--out test/vectors]

The TypeScript side (``test/unit/vectors.test.ts``) decodes every stream to exactly the stored
latents and re-encodes the latents to exactly the stored bytes. Output is deterministic: rerunning
this script must leave ``git status`` clean.
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
from reference.tables import Table, TableSet, quantize_pmf  # noqa: E402


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
    index = []
    for case in cases:
        ts = table_sets[case["tables"]]
        width, height = case["size"]
        stride = case["stride"]
        shape = (len(ts.tables), -(-height // stride), -(-width // stride))
        assert len(case["latents"]) == shape[0] * shape[1] * shape[2], case["name"]
        body = encode_latents(case["latents"], shape, ts, case["lanes"])
        assert decode_latents(body, shape, ts) == case["latents"]
        stream = write_stream(Stream(width, height, stride, shape[0], f"vec-{case['tables']}", ts.table_hash(), body,
                                     case.get("extra", [])))
        assert read_stream(stream).latents == body
        (out / f"{case['name']}.lsb").write_bytes(stream)
        (out / f"{case['name']}.i16").write_bytes(struct.pack(f"<{len(case['latents'])}h", *case["latents"]))
        index.append({
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
        })
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
