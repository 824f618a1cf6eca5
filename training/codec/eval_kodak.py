"""Monitor a codec checkpoint on the 24 Kodak images (never used for training).

    python3 training/codec/eval_kodak.py --ckpt ~/.cache/latentsight/runs/ls-f8-q2/best.pt

Runs the model with actual rounding (images padded to a multiple of 8, cropped back,
reconstruction rounded to 8 bits) and prints JSON: mean PSNR and bpp estimated from the
learned likelihoods of the rounded latents, and MS-SSIM (as ``src/eval/metrics.ts`` computes it,
through ``tune_synthesis.msssim``). True bitstream sizes come from the product's coder: export the
checkpoint and run ``npx latentsight eval rd``.
"""
import argparse
import glob
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model import FactorizedCodec  # noqa: E402


def coded_bits(y_hat, model):
    """Size in bits of the real bitstream for integer latents ``y_hat``.

    TODO: call the project's rANS reference coder (training/ reference coder, quantised
    CDF tables from models/) once it exists; until then only the estimate is reported.
    """
    return None


def load_model(path):
    ckpt = torch.load(os.path.expanduser(path), map_location="cpu", weights_only=False)
    cfg = ckpt["config"]
    model = FactorizedCodec(cfg["N"], cfg["M"])
    model.load_state_dict(ckpt["model"])
    return model.eval(), ckpt


@torch.no_grad()
def evaluate_image(model, path):
    a = np.asarray(Image.open(path).convert("RGB"))
    x = torch.from_numpy(a.copy()).permute(2, 0, 1)[None].float() / 255.0
    h, w = x.shape[2:]
    ph, pw = (-h) % 8, (-w) % 8
    xp = F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x
    y_hat = torch.round(model.g_a(xp))
    x_hat = model.g_s(y_hat)[:, :, :h, :w].clamp(0, 1)
    x_hat = torch.round(x_hat * 255) / 255
    mse = F.mse_loss(x_hat, x).item()
    from tune_synthesis import msssim
    ms = float(msssim(x_hat, x)[0])
    bits_est = -torch.log2(model.entropy_bottleneck.likelihood(y_hat)).sum().item()
    bits = coded_bits(y_hat, model)
    return {"image": os.path.basename(path), "psnr": 10 * math.log10(1 / mse), "msssim": ms,
            "bpp_est": bits_est / (h * w), "bpp": None if bits is None else bits / (h * w)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--per_image", action="store_true", help="include per-image results")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model, ckpt = load_model(args.ckpt)
    files = sorted(glob.glob(os.path.join(args.data, "kodak", "kodim*.png")))
    if len(files) != 24:
        raise SystemExit(f"expected 24 Kodak images under {args.data}/kodak, found {len(files)}")
    rows = [evaluate_image(model, p) for p in files]
    out = {"ckpt": args.ckpt, "step": ckpt["step"], "lmbda": ckpt["config"]["lmbda"],
           "images": len(rows),
           "psnr": float(np.mean([r["psnr"] for r in rows])),
           "msssim": float(np.mean([r["msssim"] for r in rows])),
           "bpp_est": float(np.mean([r["bpp_est"] for r in rows])),
           "bpp": None}
    if args.per_image:
        out["per_image"] = rows
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
