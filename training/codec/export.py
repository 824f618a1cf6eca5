"""Export a codec checkpoint: ONNX transforms, quantised entropy tables, manifest entry.

    python3 -m pip install onnx==1.23.1 onnxruntime==1.30.0   # besides training/requirements.txt
    python3 training/codec/export.py --ckpt ~/.cache/latentsight/runs/ls-f8-q2/best.pt \\
        --id ls-f8-q2 --version 0.1.0

Writes ``<out>/<id>/analysis.onnx`` (image float32 [N,3,H,W] in [0,1], H and W multiples of 8
-> latents int16 [N,M,H/8,W/8], rounded and clipped in-graph), ``synthesis.onnx`` (latents
float32 [N,M,h,w] -> image float32 [N,3,8h,8w] in [0,1]) and ``tables.lst`` (one quantised pmf
per channel, ``reference.tables`` format), then adds or replaces the id's entry in
``<out>/manifest.json``. Before writing, onnxruntime's outputs are checked against torch's, and
fp16 weight storage is kept only where it leaves Kodak PSNR and rate unchanged (``--weights``).

Tables come from the learned CDF evaluated on every integer in [-4096, 4096], not from the
``quantiles`` the aux loss fits, so no refit of the quantiles is needed before export. Read-only
on the checkpoint; re-running with the same inputs rewrites the same files.
"""
import argparse
import copy
import datetime
import glob
import hashlib
import io
import json
import math
import os
import re
import subprocess
import sys
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
from model import GDN, FactorizedCodec  # noqa: E402
from onnx_macs import onnx_macs  # noqa: E402
from onnx_subpixel import subpixel  # noqa: E402
from onnx_weights import fp16_weights  # noqa: E402
from reference.tables import Table, TableSet, quantize_pmf  # noqa: E402

STRIDE = 8
OPSET = 17
MAX_VALUES = 128          # the TS decoder's fast path: at most 128 values plus the escape
MAX_FILE_BYTES = 10_000_000  # the limit per model file
GRID = 4096               # integer values evaluated per channel: [-GRID, GRID]
LICENSE = ("Trained on non-commercial research data (Imagenette under ImageNet terms, CamVid "
           "under CC BY-NC 4.0); the model inherits those terms: research use only.")


class BakedGDN(nn.Module):
    """GDN with its reparametrised beta and gamma computed once, so the graph is plain ONNX ops."""

    def __init__(self, gdn):
        super().__init__()
        c = gdn.beta.shape[0]
        self.inverse = gdn.inverse
        self.register_buffer("beta", gdn.beta_reparam(gdn.beta).detach().clone())
        self.register_buffer("gamma", gdn.gamma_reparam(gdn.gamma).detach().view(c, c, 1, 1).clone())

    def forward(self, x):
        norm = F.conv2d(x * x, self.gamma, self.beta)
        return x * torch.sqrt(norm) if self.inverse else x / torch.sqrt(norm)


def bake(seq):
    return nn.Sequential(*[BakedGDN(m) if isinstance(m, GDN) else m for m in seq])


class Analysis(nn.Module):
    def __init__(self, codec):
        super().__init__()
        self.g_a = bake(codec.g_a)

    def forward(self, image):
        # Round (half to even, like torch.round) and clip in-graph: callers get integers to code.
        return torch.clamp(torch.round(self.g_a(image)), -32768, 32767).to(torch.int16)


class Synthesis(nn.Module):
    def __init__(self, codec):
        super().__init__()
        self.g_s = bake(codec.g_s)

    def forward(self, latents):
        return torch.clamp(self.g_s(latents), 0, 1)


def to_onnx(module, example, in_name, out_name, in_dims, out_dims):
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (example,), f, dynamo=False, opset_version=OPSET,
                          input_names=[in_name], output_names=[out_name],
                          dynamic_axes={in_name: in_dims, out_name: out_dims})
    proto = onnx.load_from_string(f.getvalue())
    onnx.checker.check_model(proto)
    return proto


@torch.no_grad()
def build_tables(eb, precision, tail_mass):
    """One table per channel: P(v) = CDF(v + 1/2) - CDF(v - 1/2) of the learned density, on the
    smallest range leaving at most ``tail_mass`` outside (or the 128-value window of most mass);
    the escape gets the rest. Computed in float64 from the CDF itself, so it needs no quantiles."""
    eb = copy.deepcopy(eb).double()
    c = eb.channels
    v = torch.arange(-GRID, GRID + 1, dtype=torch.float64)
    x = v.repeat(c, 1, 1)
    lower = eb._logits_cumulative(x - 0.5, stop_gradient=True)[:, 0]
    upper = eb._logits_cumulative(x + 0.5, stop_gradient=True)[:, 0]
    sign = -torch.sign(lower + upper)  # evaluate in the tail where sigmoid is accurate
    pmf = torch.abs(torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower)).numpy()
    below = torch.sigmoid(lower[:, 0]).numpy()
    above = torch.sigmoid(-upper[:, -1]).numpy()
    tables = []
    for ch in range(c):
        p = pmf[ch]
        mass_below = below[ch] + np.concatenate([[0.0], np.cumsum(p)[:-1]])
        mass_above = above[ch] + np.concatenate([np.cumsum(p[::-1])[::-1][1:], [0.0]])
        lo = int(np.nonzero(mass_below <= tail_mass / 2)[0][-1])
        hi = int(np.nonzero(mass_above <= tail_mass / 2)[0][0])
        if hi - lo + 1 > MAX_VALUES:
            window = np.convolve(p[lo:hi + 1], np.ones(MAX_VALUES), mode="valid")
            lo += int(np.argmax(window))
            hi = lo + MAX_VALUES - 1
        inside = p[lo:hi + 1]
        escape = max(below[ch] + above[ch] + p[:lo].sum() + p[hi + 1:].sum(), 1e-12)
        freqs = quantize_pmf(list(inside) + [escape], precision)
        tables.append(Table(int(v[lo]), tuple(freqs)))
    return TableSet(precision, tuple(tables))


def table_bits(latents, tables):
    """Ideal code length of int latents [C,h,w] under the quantised tables (escapes included)."""
    total = 0.0
    scale = 1 << tables.precision
    for ch, t in enumerate(tables.tables):
        vals = latents[ch].astype(np.int64).ravel()
        if not vals.any():
            continue  # all-zero channels are skipped in the stream
        freqs = np.asarray(t.freqs, dtype=np.float64)
        inside = (vals >= t.low) & (vals <= t.high)
        total += -np.log2(freqs[vals[inside] - t.low] / scale).sum()
        dist = np.where(vals > t.high, (vals - t.high - 1) * 2, (t.low - 1 - vals) * 2 + 1)[~inside]
        nibbles = np.maximum(1, np.ceil(np.log2(dist + 1) / 4))
        total += (~inside).sum() * -math.log2(freqs[-1] / scale) + (4 + 4 * nibbles).sum()
    return total


def run_session(proto, name, array):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(proto.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {name: array})[0]


def load_image(path):
    a = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0
    x = a.transpose(2, 0, 1)[None]
    h, w = x.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (0, -h % STRIDE), (0, -w % STRIDE)), mode="edge")
    return x, np.ascontiguousarray(xp)


def rd_point(analysis, synthesis, tables, path):
    """(psnr, bpp, latents, pixels) of one image through the ONNX graphs, 8-bit output as decoders write it."""
    x, xp = load_image(path)
    y = run_session(analysis, "image", xp)
    x_hat = run_session(synthesis, "latents", y.astype(np.float32))[:, :, :x.shape[2], :x.shape[3]]
    mse = float(np.mean((np.round(x_hat * 255) / 255 - x) ** 2))
    pixels = x.shape[2] * x.shape[3]
    return 10 * math.log10(1 / mse), table_bits(y[0], tables) / pixels, y, pixels


@torch.no_grad()
def check_against_torch(codec, analysis, synthesis, image):
    """onnxruntime vs torch on one padded image: latent mismatches and synthesis max error."""
    xt = torch.from_numpy(image)
    y_torch = torch.round(codec.g_a(xt)).numpy().astype(np.int16)
    y_ort = run_session(analysis, "image", image)
    assert y_ort.dtype == np.int16 and y_ort.shape == y_torch.shape, (y_ort.dtype, y_ort.shape)
    mismatch = float(np.mean(y_ort != y_torch))
    x_torch = codec.g_s(torch.from_numpy(y_torch.astype(np.float32))).clamp(0, 1).numpy()
    x_ort = run_session(synthesis, "latents", y_torch.astype(np.float32))
    err = float(np.abs(x_torch - x_ort).max())
    if mismatch > 1e-3 or err > 1e-3:
        raise SystemExit(f"onnxruntime disagrees with torch: {mismatch:.2e} of latents differ, "
                         f"synthesis max error {err:.2e}")
    return {"latent_mismatch": mismatch, "synthesis_max_abs_err": err}


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def git_commit():
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=HERE, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def tensor(name, dtype, dims):
    return {"name": name, "dtype": dtype, "dims": dims}


def manifest_entry(args, ckpt, files, tables, m):
    cfg = ckpt["config"]
    data = cfg.get("images") or "Imagenette train + CamVid train (from ../shared/data)"
    return {
        "id": args.id, "kind": "codec", "version": args.version, "stride": STRIDE, "channels": m,
        "files": files, "table_hash": tables.table_hash(), "table_precision": tables.precision,
        "shapes": {
            "analysis": {"inputs": [tensor("image", "float32", ["N", 3, "H", "W"])],
                         "outputs": [tensor("latents", "int16", ["N", m, "H/8", "W/8"])],
                         "notes": "image in [0,1]; H and W multiples of 8 (pad by edge replication)"},
            "synthesis": {"inputs": [tensor("latents", "float32", ["N", m, "h", "w"])],
                          "outputs": [tensor("image", "float32", ["N", 3, "8h", "8w"])],
                          "notes": "output clamped to [0,1]"},
        },
        "training": {"data": data, "steps": ckpt["step"], "lambda": cfg["lmbda"], "config": cfg,
                     "git_commit": ckpt.get("git_commit"), "export_commit": git_commit(),
                     "exported": datetime.date.today().isoformat(),
                     **({"lineage": args.lineage} if args.lineage else {})},
        "license": LICENSE,
        "metrics": {},
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--id", required=True)
    ap.add_argument("--version", required=True)
    ap.add_argument("--out", default=os.path.join(HERE, "..", "..", "models"))
    ap.add_argument("--precision", type=int, default=12)
    ap.add_argument("--tail_mass", type=float, default=1e-6)
    ap.add_argument("--weights", choices=["auto", "fp16", "fp32"], default="auto",
                    help="auto: fp16 storage unless it costs > 0.02 dB or > 0.5%% rate on the check images")
    ap.add_argument("--lineage", default="", help="how the checkpoint came to be (manifest note)")
    ap.add_argument("--kodak", default=os.path.join(HERE, "..", "..", "..", "shared", "data", "kodak"))
    ap.add_argument("--check_images", type=int, default=3, help="Kodak images for the fp16 check")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)

    ckpt = torch.load(os.path.expanduser(args.ckpt), map_location="cpu", weights_only=False)
    cfg = ckpt["config"]
    codec = FactorizedCodec(cfg["N"], cfg["M"])
    codec.load_state_dict(ckpt["model"])
    codec.eval()
    m = cfg["M"]

    # Image sides are H, W; latent sides h, w (= H/8, W/8).
    image_dims, latent_dims = {0: "N", 2: "H", 3: "W"}, {0: "N", 2: "h", 3: "w"}
    analysis = to_onnx(Analysis(codec).eval(), torch.rand(1, 3, 64, 64), "image", "latents", image_dims, latent_dims)
    # Its transposed convolutions in sub-pixel form (Conv + DepthToSpace): the same output, about 1.5x
    # faster in onnxruntime on CPUs; `check` compares the result with torch.
    synthesis = subpixel(to_onnx(Synthesis(codec).eval(), torch.zeros(1, m, 8, 8), "latents", "image", latent_dims, image_dims))[0]
    tables = build_tables(codec.entropy_bottleneck, args.precision, args.tail_mass)

    images = sorted(glob.glob(os.path.join(args.kodak, "kodim*.png")))[:args.check_images]
    if not images:
        raise SystemExit(f"no Kodak images under {args.kodak}: pass --kodak DIR")
    a16, s16 = fp16_weights(analysis), fp16_weights(synthesis)
    report = check(codec, (analysis, synthesis), (a16, s16), tables, images)
    use16 = args.weights == "fp16" or (args.weights == "auto" and report["fp16_holds"])
    report["weights"] = "fp16" if use16 else "fp32"
    files = write_files(os.path.join(args.out, args.id), args.id, {
        "analysis": ("analysis.onnx", (a16 if use16 else analysis).SerializeToString()),
        "synthesis": ("synthesis.onnx", (s16 if use16 else synthesis).SerializeToString()),
        "tables": ("tables.lst", tables.to_bytes()),
    })
    entry = manifest_entry(args, ckpt, files, tables, m)
    entry["training"]["weights"] = report["weights"]
    entry["compute"] = compute_of(analysis, synthesis)
    entry["training"]["export_check"] = {k: report[k] for k in ("check_images", "fp32", "fp16")}
    update_manifest(os.path.join(args.out, "manifest.json"), entry)
    report.update(id=args.id, table_hash=entry["table_hash"], sizes={r: v["bytes"] for r, v in files.items()})
    print(json.dumps(report, indent=1))


def check(codec, graphs32, graphs16, tables, images):
    """onnxruntime vs torch, then fp32 vs fp16 weights on Kodak (PSNR, rate under the tables)."""
    report = {"torch_vs_onnxruntime": check_against_torch(codec, *graphs32, load_image(images[0])[1]),
              "check_images": [os.path.basename(p) for p in images]}
    rows32 = [rd_point(*graphs32, tables, p) for p in images]
    rows16 = [rd_point(*graphs16, tables, p) for p in images]
    for name, rows in (("fp32", rows32), ("fp16", rows16)):
        report[name] = {"psnr": float(np.mean([r[0] for r in rows])), "bpp_tables": float(np.mean([r[1] for r in rows]))}
    report["fp16_holds"] = (report["fp16"]["psnr"] > report["fp32"]["psnr"] - 0.02
                            and report["fp16"]["bpp_tables"] < report["fp32"]["bpp_tables"] * 1.005)
    # The quantised tables should cost about what the learned density itself predicts.
    with torch.no_grad():
        lik = codec.entropy_bottleneck.likelihood
        bits = [-torch.log2(lik(torch.from_numpy(y.astype(np.float32)))).sum().item() / px for _, _, y, px in rows32]
    report["bpp_learned_density"] = float(np.mean(bits))
    return report


def write_files(out_dir, model_id, blobs):
    os.makedirs(out_dir, exist_ok=True)
    files = {}
    for role, (name, data) in blobs.items():
        if len(data) > MAX_FILE_BYTES:
            raise SystemExit(f"{name} is {len(data)} bytes; the limit is {MAX_FILE_BYTES}")
        with open(os.path.join(out_dir, name), "wb") as f:
            f.write(data)
        files[role] = {"path": f"{model_id}/{name}", "sha256": sha256(data), "bytes": len(data)}
    return files


def compute_of(analysis, synthesis, side=256):
    """MACs per image pixel of each transform (convolutions only; both scale with the pixel
    count), from the graphs at side x side: what a decoded-pixel path adds per image."""
    m = analysis.graph.output[0].type.tensor_type.shape.dim[1].dim_value or 64
    return {"analysis_macs_per_pixel": onnx_macs(analysis, [1, 3, side, side]) / side ** 2,
            "synthesis_macs_per_pixel":
                onnx_macs(synthesis, [1, m, side // STRIDE, side // STRIDE]) / side ** 2,
            "counted": "Conv and ConvTranspose multiply-accumulates of the ONNX graphs"}


def update_manifest(path, entry):
    """Adds the entry, or replaces the one with its id in place (the first codec is the default)."""
    manifest = {"schema": 1, "models": []}
    if os.path.exists(path):
        with open(path) as f:
            manifest = json.load(f)
    ids = [e["id"] for e in manifest["models"]]
    if entry["id"] in ids:
        manifest["models"][ids.index(entry["id"])] = entry
    else:
        manifest["models"].append(entry)
    text = json.dumps(manifest, indent=2)
    # Lists of plain values (tensor dims, file names) on one line each.
    text = re.sub(r"\[\s+([^\[\]{}]*?)\s+\]", lambda mt: json.dumps(json.loads(f"[{mt.group(1)}]")), text)
    with open(path + ".tmp", "w") as f:
        f.write(text + "\n")
    os.replace(path + ".tmp", path)


if __name__ == "__main__":
    main()
