"""Fine-tune a shipped codec's synthesis transform alone, for MS-SSIM as well as MSE.

    python3 training/codec/tune_synthesis.py --codec ls-f8-q2 --msssim_weight 1 --max_steps 3000
    python3 training/codec/tune_synthesis.py --run_name ... --resume          # continue exactly
    python3 training/codec/tune_synthesis.py --run_name ... --export_version 0.4.0

The analysis transform and the entropy tables stay as shipped, so every bitstream, every latent
and every model trained on latents stays valid: only the pixels a decoder draws from the same
latents change. The latents of the training crops are computed once by the shipped
``analysis.onnx`` itself (onnxruntime), so the synthesis learns from exactly the integers that
real bitstreams carry. The synthesis starts from the codec's training checkpoint (checked
against the shipped ``synthesis.onnx`` before training).

Loss (both terms relative to their value for the shipped synthesis on the validation crops,
so the weight reads as "how much MS-SSIM counts against MSE"):

    mse / mse_0 + msssim_weight * (1 - MS-SSIM) / (1 - MS-SSIM_0)

MS-SSIM as ``src/eval/metrics.ts`` measures it (per channel, 11-tap Gaussian, 5 scales), which
needs crops of at least 176 pixels. ``--export_version`` writes ``synthesis.onnx`` from the best
checkpoint (fp16 weights) and updates the codec's manifest entry; analysis and tables are not
touched. Checkpoints and logs live in ``<cache_dir>/runs/<run_name>``, outside the repository.
"""
import dataclasses
import datetime
import hashlib
import json
import math
import os
import random
import signal
import sys
import time
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(1, os.path.dirname(HERE))
from data import _images_in, _load, _random_crops, _center_crop, _walk_images, _is_val  # noqa: E402
from model import FactorizedCodec  # noqa: E402
from overrides import apply_overrides, parse_overrides  # noqa: E402
from train import save_atomic, to_tensor  # noqa: E402  (the codec trainer's own helpers)

REPO = os.path.dirname(os.path.dirname(HERE))
MSSSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


@dataclass
class Config:
    run_name: str = ""                  # default: <codec>-synth-w<msssim_weight>
    codec: str = "ls-f8-q2"             # shipped codec (models/manifest.json) whose analysis is kept
    ckpt: str = "~/.cache/latentsight/runs/gpu1/ls-f8-l0075.pt"   # its training checkpoint
    models: str = os.path.join(REPO, "models")
    data: str = "../shared/data"        # folder holding imagenette/ and camvid/
    images: str = ""                    # or any folder of images (recursive; 1 in 20 held out)
    cache_dir: str = "~/.cache/latentsight"
    out_dir: str = ""
    crop: int = 176                     # MS-SSIM's 5 scales need >= 176
    pool_size: int = 6000
    val_size: int = 64
    msssim_weight: float = 1.0
    batch_size: int = 8
    max_steps: int = 3000
    lr: float = 1e-4
    min_lr: float = 1e-6
    warmup_steps: int = 50
    grad_clip: float = 1.0
    seed: int = 1337
    num_threads: int = 2
    log_interval: int = 25
    ckpt_interval_s: float = 180.0
    val_interval: int = 250             # steps
    resume: bool = False
    export_version: str = ""            # export the best checkpoint as this codec version and stop
    lineage: str = ""                   # manifest note for the export


RUNTIME_KEYS = {"models", "data", "images", "cache_dir", "out_dir", "num_threads", "log_interval",
                "ckpt_interval_s", "resume", "export_version", "lineage"}


# --- MS-SSIM, as src/eval/metrics.ts computes it ---------------------------------------------

def _gauss(size=11, sigma=1.5):
    x = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-x * x / (2 * sigma * sigma))
    return g / g.sum()


def _blur(x, g):
    c = x.shape[1]
    x = F.conv2d(x, g.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, g.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def msssim(a, b):
    """Per-image MS-SSIM of (B, 3, H, W) tensors in [0, 1]: per channel, then the channel mean."""
    g = _gauss().to(a)
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    levels = []
    for i, w in enumerate(MSSSIM_WEIGHTS):
        mu_a, mu_b = _blur(a, g), _blur(b, g)
        saa = _blur(a * a, g) - mu_a * mu_a
        sbb = _blur(b * b, g) - mu_b * mu_b
        sab = _blur(a * b, g) - mu_a * mu_b
        cs = (2 * sab + c2) / (saa + sbb + c2)
        if i < len(MSSSIM_WEIGHTS) - 1:
            levels.append(F.relu(cs.mean(dim=(2, 3))) ** w)
            a, b = F.avg_pool2d(a, 2), F.avg_pool2d(b, 2)
        else:
            ssim = (2 * mu_a * mu_b + c1) / (mu_a * mu_a + mu_b * mu_b + c1) * cs
            levels.append(F.relu(ssim.mean(dim=(2, 3))) ** w)
    return torch.stack(levels).prod(dim=0).mean(dim=1)


# --- data: crops and the shipped analysis' latents of them, computed once ----------------------

def codec_entry(cfg):
    with open(os.path.join(cfg.models, "manifest.json")) as f:
        entries = {e["id"]: e for e in json.load(f)["models"]}
    if cfg.codec not in entries or entries[cfg.codec].get("kind") != "codec":
        raise SystemExit(f"{cfg.codec} is not a codec in {cfg.models}/manifest.json")
    return entries[cfg.codec]


def session(path):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, torch.get_num_threads())
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


def latents_of(analysis, crops_u8, batch=32):
    out = []
    for i in range(0, len(crops_u8), batch):
        x = crops_u8[i:i + batch].transpose(0, 3, 1, 2).astype(np.float32) / 255.0
        out.append(analysis.run(None, {"image": np.ascontiguousarray(x)})[0])
    return np.concatenate(out)


def crop_plan(cfg, rng):
    """(path, n, lo, hi) of the training crops: never Kodak, never a val image."""
    if cfg.images:
        files = [p for p in _walk_images(cfg.images) if not _is_val(p)]
        n = max(1, -(-cfg.pool_size // max(1, len(files))))
        return [(p, n, cfg.crop, 512) for p in files]
    inet = _images_in(os.path.join(cfg.data, "imagenette", "train", "*", "*"))
    camvid = _images_in(os.path.join(cfg.data, "camvid", "train", "*"))
    if not inet or not camvid:
        raise SystemExit(f"imagenette/camvid training images not found under {cfg.data}")
    n_cam = max(1, int(0.3 * cfg.pool_size) // len(camvid))
    n_inet = min(len(inet), cfg.pool_size - n_cam * len(camvid))
    picked = sorted(rng.choice(len(inet), n_inet, replace=False))
    # Imagenette is 224 px JPEG: a mild downscale (to 176-200) softens its 8x8 blocks.
    return ([(inet[i], 1, cfg.crop, 200) for i in picked]
            + [(p, n_cam, cfg.crop, 360) for p in camvid])


def val_plan(cfg):
    if cfg.images:
        files = [p for p in _walk_images(cfg.images) if _is_val(p)][:cfg.val_size]
        return [(p, min(512, min(_load(p).size))) for p in files]
    inet = _images_in(os.path.join(cfg.data, "imagenette", "val", "*", "*"))
    camvid = _images_in(os.path.join(cfg.data, "camvid", "val", "*"))
    half = cfg.val_size // 2
    files = inet[::max(1, len(inet) // half)][:half]
    files += camvid[::max(1, len(camvid) // (cfg.val_size - len(files)))][:cfg.val_size - len(files)]
    return [(p, 224 if "imagenette" in p else 270) for p in files]


def datasets(cfg, entry, analysis):
    """((crops, latents) train, (crops, latents) val), cached by settings and analysis sha256."""
    key = json.dumps([1, cfg.crop, cfg.pool_size, cfg.val_size, cfg.seed, cfg.data, cfg.images,
                      entry["files"]["analysis"]["sha256"]])
    path = os.path.join(os.path.expanduser(cfg.cache_dir), "synth",
                        f"{cfg.codec}_{hashlib.sha1(key.encode()).hexdigest()[:12]}.npz")
    if os.path.exists(path):
        with np.load(path) as z:
            return (z["x"], z["y"]), (z["vx"], z["vy"])
    t0 = time.time()
    rng = np.random.default_rng(cfg.seed)
    crops = []
    for p, n, lo, hi in crop_plan(cfg, rng):
        crops += _random_crops(_load(p), rng, n, cfg.crop, lo, hi)
    x = np.stack(crops)
    vx = np.stack([_center_crop(_load(p), cfg.crop, s) for p, s in val_plan(cfg)])
    print(f"{len(x)} train and {len(vx)} val crops in {time.time() - t0:.0f} s; latents...", flush=True)
    y, vy = latents_of(analysis, x), latents_of(analysis, vx)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    np.savez(path + ".tmp.npz", x=x, y=y, vx=vx, vy=vy)
    os.replace(path + ".tmp.npz", path)
    print(f"cached {path} ({time.time() - t0:.0f} s)", flush=True)
    return (x, y), (vx, vy)


# --- training --------------------------------------------------------------------------------

def lr_at(step, cfg):
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    t = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps))
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * t))


@torch.no_grad()
def evaluate(g_s, vx, vy):
    """PSNR (8-bit output, as decoders write it) and MS-SSIM over the val crops."""
    g_s.eval()
    psnr, ms = [], []
    for i in range(0, len(vx), 16):
        x = to_tensor(vx[i:i + 16])
        x_hat = torch.round(g_s(torch.from_numpy(vy[i:i + 16].astype(np.float32))).clamp(0, 1) * 255) / 255
        mse = ((x_hat - x) ** 2).mean(dim=(1, 2, 3))
        psnr += (10 * torch.log10(1 / mse.clamp_min(1e-12))).tolist()
        ms += msssim(x_hat, x).tolist()
    g_s.train()
    return {"val_psnr": float(np.mean(psnr)), "val_msssim": float(np.mean(ms)),
            "val_msssim_db": float(-10 * math.log10(1 - np.mean(ms)))}


def check_start(g_s, entry, cfg, vy):
    """The checkpoint's synthesis must be the shipped one (up to its fp16 weights)."""
    synth = session(os.path.join(cfg.models, entry["files"]["synthesis"]["path"]))
    y = vy[:4].astype(np.float32)
    ref = synth.run(None, {"latents": y})[0]
    with torch.no_grad():
        mine = g_s(torch.from_numpy(y)).clamp(0, 1).numpy()
    err = float(np.abs(ref - mine).max())
    if err > 2e-2:
        raise SystemExit(f"{cfg.ckpt} is not {cfg.codec}'s synthesis (max abs error {err:.3g})")
    return err


def train(cfg, entry):
    out = cfg.out_dir
    ckpt_path = os.path.join(out, "ckpt.pt")
    torch.set_num_threads(cfg.num_threads)
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    analysis = session(os.path.join(cfg.models, entry["files"]["analysis"]["path"]))
    (x, y), (vx, vy) = datasets(cfg, entry, analysis)
    del analysis
    print(f"train {x.shape} latents {y.shape}, val {vx.shape}", flush=True)

    src = torch.load(os.path.expanduser(cfg.ckpt), map_location="cpu", weights_only=False)
    codec = FactorizedCodec(src["config"]["N"], src["config"]["M"])
    codec.load_state_dict(src["model"])
    g_s = codec.g_s
    err = check_start(g_s, entry, cfg, vy)
    base = evaluate(g_s, vx, vy)
    print(json.dumps({"shipped_vs_checkpoint_max_abs": err, "start": base}), flush=True)
    opt = torch.optim.Adam(g_s.parameters(), lr=cfg.lr)
    rng = np.random.default_rng(cfg.seed)
    step, best, ref = 0, None, None
    if cfg.resume:
        ck = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        g_s.load_state_dict(ck["g_s"])
        opt.load_state_dict(ck["optimizer"])
        step, best, ref = ck["step"], ck["best"], ck["ref"]
        rng.bit_generator.state = ck["rng"]["numpy"]
        torch.set_rng_state(ck["rng"]["torch"])
        print(f"resumed at step {step}", flush=True)
    if ref is None:
        # Loss normalisers from the shipped synthesis on the val crops (fixed for the run).
        ref = {"mse": 10 ** (-base["val_psnr"] / 10), "one_minus_msssim": 1 - base["val_msssim"]}

    def checkpoint(path, extra=None):
        save_atomic({"g_s": g_s.state_dict(), "optimizer": opt.state_dict(), "step": step,
                     "best": best, "ref": ref, "config": dataclasses.asdict(cfg),
                     "start": base, "rng": {"numpy": rng.bit_generator.state,
                                            "torch": torch.get_rng_state()}, **(extra or {})}, path)

    stop = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.append(1))
    log = open(os.path.join(out, "train.log.jsonl"), "a")
    acc, n_acc, t_log, t_ckpt = np.zeros(3), 0, time.time(), time.time()
    while step < cfg.max_steps and not stop:
        lr = lr_at(step, cfg)
        for grp in opt.param_groups:
            grp["lr"] = lr
        idx = rng.integers(0, len(x), cfg.batch_size)
        xb, yb = x[idx], y[idx].astype(np.float32)
        target = to_tensor(xb)
        x_hat = g_s(torch.from_numpy(yb)).clamp(0, 1)
        mse = F.mse_loss(x_hat, target)
        ms = msssim(x_hat, target).mean()
        loss = mse / ref["mse"] + cfg.msssim_weight * (1 - ms) / ref["one_minus_msssim"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(g_s.parameters(), cfg.grad_clip)
        opt.step()
        step += 1
        acc += [loss.item(), mse.item(), ms.item()]
        n_acc += 1
        if step % cfg.log_interval == 0:
            now = time.time()
            m = acc / n_acc
            rec = {"step": step, "loss": m[0], "psnr": 10 * math.log10(1 / m[1]), "msssim": m[2],
                   "lr": lr, "steps_per_s": n_acc / (now - t_log)}
            print(json.dumps(rec), flush=True)
            log.write(json.dumps(rec) + "\n")
            log.flush()
            acc, n_acc, t_log = np.zeros(3), 0, now
        if step % cfg.val_interval == 0 or step == cfg.max_steps:
            rec = {"step": step, **evaluate(g_s, vx, vy)}
            rec["val_loss"] = ((10 ** (-rec["val_psnr"] / 10)) / ref["mse"]
                               + cfg.msssim_weight * (1 - rec["val_msssim"]) / ref["one_minus_msssim"])
            print(json.dumps(rec), flush=True)
            log.write(json.dumps(rec) + "\n")
            log.flush()
            if best is None or rec["val_loss"] < best["val_loss"]:
                best = rec
                checkpoint(os.path.join(out, "best.pt"))
        if time.time() - t_ckpt >= cfg.ckpt_interval_s or step == cfg.max_steps:
            checkpoint(ckpt_path)
            t_ckpt = time.time()
    checkpoint(ckpt_path)
    print(json.dumps({"stopped_at": step, "best": best, "start": base}), flush=True)


# --- export ----------------------------------------------------------------------------------

def export(cfg, entry):
    """synthesis.onnx from best.pt (fp16 weights), checked against torch; manifest updated."""
    from export import Synthesis, fp16_weights, sha256, to_onnx, update_manifest
    ck = torch.load(os.path.join(cfg.out_dir, "best.pt"), map_location="cpu", weights_only=False)
    src = torch.load(os.path.expanduser(ck["config"]["ckpt"]), map_location="cpu", weights_only=False)
    codec = FactorizedCodec(src["config"]["N"], src["config"]["M"])
    codec.g_s.load_state_dict(ck["g_s"])
    codec.eval()
    m = entry["channels"]
    example = torch.zeros(1, m, 4, 4)
    proto = fp16_weights(to_onnx(Synthesis(codec).eval(), example, "latents", "image",
                                 {0: "N", 2: "h", 3: "w"}, {0: "N", 2: "8h", 3: "8w"}))
    data = proto.SerializeToString()
    check = np.random.default_rng(0).integers(-3, 4, (1, m, 8, 12)).astype(np.float32)
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    with torch.no_grad():
        err = float(np.abs(sess.run(None, {"latents": check})[0]
                           - Synthesis(codec)(torch.from_numpy(check)).numpy()).max())
    if err > 5e-3:
        raise SystemExit(f"exported synthesis disagrees with torch: max abs error {err:.3g}")
    rel = entry["files"]["synthesis"]["path"]
    with open(os.path.join(cfg.models, rel), "wb") as f:
        f.write(data)
    previous = {"version": entry["version"], "synthesis_sha256": entry["files"]["synthesis"]["sha256"]}
    entry["version"] = cfg.export_version
    entry["files"]["synthesis"].update(sha256=sha256(data), bytes=len(data))
    entry["training"]["synthesis"] = {
        "tuned": "synthesis transform fine-tuned alone; analysis, tables and latents unchanged",
        "config": ck["config"], "step": ck["step"], "val_start": ck["start"], "val_best": ck["best"],
        "previous": previous, "command": "python3 training/codec/tune_synthesis.py "
        + " ".join(f"--{k} {v}" for k, v in ck["config"].items()
                   if k in ("codec", "msssim_weight", "max_steps", "lr", "crop", "pool_size")),
        "lineage": cfg.lineage, "exported": datetime.date.today().isoformat(),
        "weights": "fp16", "onnx_vs_torch_max_abs": err}
    update_manifest(os.path.join(cfg.models, "manifest.json"), entry)
    print(json.dumps({"wrote": rel, "bytes": len(data), "sha256": entry["files"]["synthesis"]["sha256"],
                      "version": cfg.export_version, "val_best": ck["best"], "val_start": ck["start"]},
                     indent=1))


def main():
    raw = parse_overrides(Config, sys.argv[1:])
    cfg = apply_overrides(Config(), raw)
    cfg.run_name = cfg.run_name or f"{cfg.codec}-synth-w{cfg.msssim_weight:g}"
    cfg.out_dir = os.path.expanduser(cfg.out_dir or os.path.join(cfg.cache_dir, "runs", cfg.run_name))
    entry = codec_entry(cfg)
    if cfg.export_version:
        return export(cfg, entry)
    ckpt_path = os.path.join(cfg.out_dir, "ckpt.pt")
    if cfg.resume:
        saved = torch.load(ckpt_path, map_location="cpu", weights_only=False)["config"]
        keep = {k: getattr(cfg, k) for k in RUNTIME_KEYS & set(raw)}
        cfg = Config(**{**saved, **keep, "resume": True})
    elif os.path.exists(ckpt_path):
        raise SystemExit(f"{ckpt_path} exists: pass --resume, or a new --run_name")
    os.makedirs(cfg.out_dir, exist_ok=True)
    print(json.dumps(dataclasses.asdict(cfg)), flush=True)
    train(cfg, entry)


if __name__ == "__main__":
    main()
