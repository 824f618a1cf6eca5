"""Train the latentsight factorized-prior codec (nanoGPT style: config at the top).

    python3 training/codec/train.py --run_name ls-f8-q2 --lmbda 0.011 --max_steps 60000
    python3 training/codec/train.py --run_name ls-f8-q2 --resume      # continue exactly
    python3 training/codec/train.py --run_name ls-f8-q1 --lmbda 0.003 \\
        --init_from ~/.cache/latentsight/runs/ls-f8-q2/best.pt       # weights only
    python3 training/codec/train.py --device cuda --pool_file pack.npz --time_budget_s 440 ...
    python3 training/codec/train.py --run_name ls-f8-q2-ms --init_onnx models/ls-f8-q2 \
        --freeze_transforms_steps 2000 --msssim_lmbda 20 --crop 176 --lr 1e-4   # a shipped codec

``--init_onnx`` takes the transforms from a shipped codec's graphs (``from_onnx.py``: exact) when
its checkpoint is gone; the entropy model starts afresh and ``--freeze_transforms_steps`` fits it
alone first. ``--msssim_lmbda`` adds ``msssim_lmbda x (1 - MS-SSIM)`` to the loss (MS-SSIM as
``tune_synthesis.py`` and ``src/eval/metrics.ts`` compute it; its five scales need crops of 176).

``--time_budget_s`` (a GPU lease is short and its speed unknown ahead): after a few hundred
steps the run measures its speed and fixes ``max_steps`` so that the whole schedule, decay
included, ends within the budget; the value is saved in the config, so ``--resume`` keeps it.

Overrides are ``--key value`` or ``--key=value`` for any Config field; unknown keys are
rejected. Loss = lmbda * 255^2 * MSE + bpp; the entropy model's quantiles have their own
optimiser (aux loss). Checkpoints (atomic, every ckpt_interval_s of wall-clock) and
train.log.jsonl live in out_dir, outside the repository.
"""
import dataclasses
import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from data import Sampler, train_pool, val_crops  # noqa: E402
from model import FactorizedCodec  # noqa: E402
from overrides import apply_overrides, parse_overrides  # noqa: E402


@dataclass
class Config:
    run_name: str = "ls-f8-q2"
    data: str = "../shared/data"        # folder holding imagenette/ and camvid/
    images: str = ""                    # train on any folder of images instead (recursive)
    pool_file: str = ""                 # or a JPEG crop pack from data.py --pack (GPU machines)
    cache_dir: str = "~/.cache/latentsight"
    out_dir: str = ""                   # default: <cache_dir>/runs/<run_name>
    # model
    N: int = 96
    M: int = 64
    # rate-distortion trade-off: loss = lmbda * 255^2 * mse + bpp
    lmbda: float = 0.011
    # data
    crop: int = 128
    pool_size: int = 40000
    batch_size: int = 8
    rot90: bool = False                 # augment with transposes too (8 symmetries, not 4)
    # optimisation
    max_steps: int = 60000
    time_budget_s: float = 0.0          # >0: set max_steps from the measured speed (see above)
    lr: float = 3e-4
    min_lr: float = 1e-5
    warmup_steps: int = 500
    decay_frac: float = 0.3             # cosine decay over the last 30% of max_steps
    aux_lr: float = 1e-3
    grad_clip: float = 1.0
    seed: int = 1337
    # runtime
    device: str = "cpu"
    num_threads: int = 1
    log_interval: int = 50
    ckpt_interval_s: float = 180.0
    val_interval_s: float = 900.0
    resume: bool = False
    init_from: str = ""                 # checkpoint to take model weights from (fine-tune)
    init_onnx: str = ""                 # or a codec folder: transforms from its ONNX graphs
    freeze_transforms_steps: int = 0    # the first N steps fit the entropy model alone
    msssim_lmbda: float = 0.0           # > 0: loss += msssim_lmbda * (1 - MS-SSIM)


# Fields that may change on --resume without changing the run itself.
RUNTIME_KEYS = {"data", "images", "cache_dir", "device", "out_dir", "num_threads", "log_interval",
                "ckpt_interval_s", "val_interval_s", "resume", "init_from", "init_onnx"}


def git_commit():
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                              text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def code_snapshot():
    """Source of this package: the run may start before the files are committed."""
    here = os.path.dirname(os.path.abspath(__file__))
    return {n: open(os.path.join(here, n)).read() for n in ("train.py", "model.py", "data.py")}


def lr_at(step, cfg):
    """Linear warmup, constant, then cosine to min_lr over the last decay_frac of max_steps."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    decay_start = int(cfg.max_steps * (1 - cfg.decay_frac))
    if step < decay_start:
        return cfg.lr
    t = min(1.0, (step - decay_start) / max(1, cfg.max_steps - decay_start))
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * t))


def to_tensor(batch_u8, device="cpu"):
    x = torch.from_numpy(np.ascontiguousarray(batch_u8)).to(device, non_blocking=True)
    return x.permute(0, 3, 1, 2).float() / 255.0


def msssim(a, b):
    from tune_synthesis import msssim as per_image   # the one MS-SSIM of the training code
    return per_image(a, b)


def rd_terms(model, x, lmbda, msssim_lmbda=0.0):
    """(loss, mse, bpp, MS-SSIM or 0): loss = lmbda 255^2 mse [+ msssim_lmbda (1 - MS-SSIM)] + bpp."""
    x_hat, lik = model(x)
    n_pixels = x.shape[0] * x.shape[2] * x.shape[3]
    bpp = torch.log(lik).sum() / (-math.log(2) * n_pixels)
    mse = F.mse_loss(x_hat, x)
    loss = lmbda * 255 ** 2 * mse + bpp
    ms = torch.zeros((), device=x.device)
    if msssim_lmbda > 0:
        ms = msssim(x_hat.clamp(0, 1), x).mean()
        loss = loss + msssim_lmbda * (1 - ms)
    return loss, mse, bpp, ms


@torch.no_grad()
def validate(model, val_u8, lmbda, device="cpu", msssim_lmbda=0.0):
    """Actual rounding; bpp estimated from the learned likelihoods of the rounded latents."""
    model.eval()
    x = to_tensor(val_u8, device)
    mses, bpps, mss = [], [], []
    for i in range(0, len(x), 16):
        xb = x[i:i + 16]
        x_hat, lik = model(xb)
        mses += ((x_hat.clamp(0, 1) - xb) ** 2).mean(dim=(1, 2, 3)).tolist()
        bits = -torch.log2(lik).sum(dim=(1, 2, 3))
        bpps += (bits / (xb.shape[2] * xb.shape[3])).tolist()
        if msssim_lmbda > 0:
            mss += msssim(x_hat.clamp(0, 1), xb).tolist()
    model.train()
    mse, bpp = float(np.mean(mses)), float(np.mean(bpps))
    psnr = float(np.mean([10 * math.log10(1 / max(m, 1e-12)) for m in mses]))
    rec = {"val_loss": lmbda * 255 ** 2 * mse + bpp, "val_mse": mse, "val_psnr": psnr,
           "val_bpp": bpp}
    if mss:
        rec["val_msssim"] = float(np.mean(mss))
        rec["val_loss"] += msssim_lmbda * (1 - rec["val_msssim"])
    return rec


def save_atomic(obj, path):
    tmp = path + ".tmp"
    torch.save(obj, tmp)
    os.replace(tmp, path)


def main():
    raw = parse_overrides(Config, sys.argv[1:])
    cfg = apply_overrides(Config(), raw)
    cfg.out_dir = os.path.expanduser(
        cfg.out_dir or os.path.join(cfg.cache_dir, "runs", cfg.run_name))
    ckpt_path = os.path.join(cfg.out_dir, "ckpt.pt")
    ckpt = None
    if cfg.resume:
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        changed = {k for k in raw if k not in RUNTIME_KEYS and k != "run_name"}
        saved = Config(**ckpt["config"])
        for k in (RUNTIME_KEYS - {"resume", "init_from"}) & set(raw):
            setattr(saved, k, getattr(cfg, k))
        for k in changed:
            print(f"warning: --resume with changed {k}: {getattr(saved, k)!r} -> "
                  f"{getattr(cfg, k)!r}", flush=True)
            setattr(saved, k, getattr(cfg, k))
        saved.resume, saved.init_from = True, ""
        cfg = saved
    elif os.path.exists(ckpt_path):
        raise SystemExit(f"{ckpt_path} exists: pass --resume, or a new --run_name")
    if cfg.msssim_lmbda > 0 and cfg.crop < 176:
        raise SystemExit(f"--msssim_lmbda needs --crop of at least 176 (MS-SSIM's five scales), not {cfg.crop}")
    if cfg.init_from and cfg.init_onnx:
        raise SystemExit("--init_from or --init_onnx, not both")
    os.makedirs(cfg.out_dir, exist_ok=True)
    print(json.dumps(dataclasses.asdict(cfg)), flush=True)

    torch.set_num_threads(cfg.num_threads)
    device = torch.device(cfg.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)

    sampler = Sampler(train_pool(cfg), cfg.seed, rot90=cfg.rot90)
    val_u8 = val_crops(cfg)
    print(f"train pool {sampler.pool.shape}, val {val_u8.shape}", flush=True)

    model = FactorizedCodec(cfg.N, cfg.M).to(device)
    main_params, aux_params = model.parameter_groups()
    opt = torch.optim.Adam(main_params, lr=cfg.lr)
    aux_opt = torch.optim.Adam(aux_params, lr=cfg.aux_lr)
    step, best_val, trained_s = 0, float("inf"), 0.0
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        aux_opt.load_state_dict(ckpt["aux_optimizer"])
        step, best_val, trained_s = ckpt["step"], ckpt["best_val"], ckpt["trained_s"]
        rng = ckpt["rng"]
        random.setstate(rng["python"])
        np.random.set_state(rng["numpy"])
        torch.set_rng_state(rng["torch"])
        if device.type == "cuda" and "cuda" in rng:
            torch.cuda.set_rng_state(rng["cuda"], device)
        sampler.load_state_dict(rng["sampler"])
        print(f"resumed from {ckpt_path} at step {step}", flush=True)
    elif cfg.init_from:
        src = torch.load(os.path.expanduser(cfg.init_from), map_location="cpu",
                         weights_only=False)
        model.load_state_dict(src["model"])
        print(f"initialised weights from {cfg.init_from} (step {src['step']})", flush=True)
    elif cfg.init_onnx:
        from from_onnx import load_transforms
        model.load_state_dict(load_transforms(cfg.init_onnx, cfg.N, cfg.M).state_dict())
        print(f"initialised the transforms from {cfg.init_onnx}/*.onnx (entropy model afresh)", flush=True)

    meta = {"git_commit": git_commit(), "code": code_snapshot()}

    def checkpoint(path):
        save_atomic({
            "model": model.state_dict(), "optimizer": opt.state_dict(),
            "aux_optimizer": aux_opt.state_dict(), "step": step, "best_val": best_val,
            "trained_s": trained_s, "config": dataclasses.asdict(cfg),
            "rng": {"python": random.getstate(), "numpy": np.random.get_state(),
                    "torch": torch.get_rng_state(), "sampler": sampler.state_dict(),
                    **({"cuda": torch.cuda.get_rng_state(device)}
                       if device.type == "cuda" else {})},
            **meta,
        }, path)

    stop = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.append(1))

    # Budgeted runs time 300 steps (or a tenth of the budget) from step start+50, when cudnn's
    # autotuning is over, then fix max_steps; 5% of the budget is left for validation and saving.
    budget = {"t0": time.time(), "mark": None, "start": step} if cfg.time_budget_s > 0 else None
    if budget and not cfg.resume:
        cfg.max_steps = 10 ** 9

    log = open(os.path.join(cfg.out_dir, "train.log.jsonl"), "a")
    # Running sums stay on the device: one host sync per log line, not per step.
    acc, acc_n = torch.zeros(5, device=device), 0
    t_log = t_ckpt = t_val = time.time()
    model.train()
    transforms = list(model.g_a.parameters()) + list(model.g_s.parameters())
    was_frozen = None
    while step < cfg.max_steps and not stop:
        frozen = step < cfg.freeze_transforms_steps
        if frozen != was_frozen:            # at the start, and once when the freeze ends
            for p in transforms:
                p.requires_grad_(not frozen)
            was_frozen = frozen
        lr = lr_at(step, cfg)
        for g in opt.param_groups:
            g["lr"] = lr
        t0 = time.time()
        x = to_tensor(sampler.batch(cfg.batch_size), device)
        loss, mse, bpp, ms = rd_terms(model, x, cfg.lmbda, 0.0 if frozen else cfg.msssim_lmbda)
        opt.zero_grad(set_to_none=True)
        (bpp if frozen else loss).backward()     # frozen: only the entropy model learns
        torch.nn.utils.clip_grad_norm_(main_params, cfg.grad_clip)
        opt.step()
        aux = model.aux_loss()
        aux_opt.zero_grad(set_to_none=True)
        aux.backward()
        aux_opt.step()
        step += 1
        trained_s += time.time() - t0
        acc += torch.stack([loss.detach(), mse.detach(), bpp.detach(), aux.detach(), ms.detach()])
        acc_n += 1

        now = time.time()
        if budget and cfg.max_steps == 10 ** 9:
            if step == budget["start"] + 50:
                torch.cuda.synchronize() if device.type == "cuda" else None
                budget["mark"] = (step, time.time())
            elif budget["mark"] and (step - budget["mark"][0] >= 300
                                     or now - budget["mark"][1] >= 0.1 * cfg.time_budget_s):
                torch.cuda.synchronize() if device.type == "cuda" else None
                rate = (step - budget["mark"][0]) / (time.time() - budget["mark"][1])
                left = 0.95 * cfg.time_budget_s - (time.time() - budget["t0"])
                cfg.max_steps = step + max(1, int(rate * left))
                print(json.dumps({"budget_s": cfg.time_budget_s, "steps_per_s": rate,
                                  "max_steps": cfg.max_steps}), flush=True)
        if step % cfg.log_interval == 0 or step == cfg.max_steps:
            m = (acc / acc_n).tolist()
            rec = {"step": step, "loss": m[0], "mse": m[1],
                   "psnr": 10 * math.log10(1 / max(m[1], 1e-12)), "bpp": m[2], "aux": m[3],
                   **({"msssim": m[4]} if cfg.msssim_lmbda > 0 and not frozen else {}),
                   **({"frozen_transforms": True} if frozen else {}),
                   "lr": lr, "steps_per_s": acc_n / (now - t_log), "time": now}
            log.write(json.dumps(rec) + "\n")
            log.flush()
            print(json.dumps(rec), flush=True)
            acc, acc_n, t_log = torch.zeros(5, device=device), 0, now
        last = step == cfg.max_steps
        if now - t_val >= cfg.val_interval_s or last:
            rec = {"step": step, **validate(model, val_u8, cfg.lmbda, device, cfg.msssim_lmbda),
                   "time": now}
            log.write(json.dumps(rec) + "\n")
            log.flush()
            print(json.dumps(rec), flush=True)
            if rec["val_loss"] < best_val:
                best_val = rec["val_loss"]
                checkpoint(os.path.join(cfg.out_dir, "best.pt"))
            t_val = time.time()
        if now - t_ckpt >= cfg.ckpt_interval_s or last:
            checkpoint(ckpt_path)
            t_ckpt = time.time()
        t_log += time.time() - now   # steps_per_s counts training, not validation/saving
    if stop:
        checkpoint(ckpt_path)
        print(f"stopped by signal at step {step}; checkpoint saved", flush=True)
    log.close()


if __name__ == "__main__":
    main()
