"""Train an Imagenette classifier on latents, RGB, cheap-stem RGB or decoded RGB (one recipe).

    python3 training/tasks/classify.py --input latent --codec_id ls-f8-q2
    python3 training/tasks/classify.py --input rgb            # same trunk, ResNet stem, stage at 56
    python3 training/tasks/classify.py --input rgb-cheap      # same trunk, patchify stem
    python3 training/tasks/classify.py --input decoded --codec_id ls-f8-q2   # synthesis output
    python3 training/tasks/classify.py --input latent --resume               # continue exactly
    python3 training/tasks/classify.py --input latent --teacher ~/.cache/latentsight/tasks/teachers/cls-rgb.npy \
        --init RUN/best.pt --epochs 8 --lr 0.01 --run_name cls-latent-ls-f8-q2-kd   # distilled (teacher.py)

Needs the arrays of ``latents.py`` under ``<cache_dir>/tasks/``. Any Config field is an
override (``--key value``); unknown keys and bad values are rejected. Every input gets the
same recipe: epochs, batch, optimiser, cosine schedule, label smoothing, random flips (for
latents, the precomputed latents of the flipped image) and random crops after zero padding
by ``pad`` latent pixels (8 x ``pad`` image pixels). Val is used for model selection only
(``best.pt``); checkpoints and ``train.log.jsonl`` go to ``out_dir``, outside the repository.

Distillation (latent inputs): ``--teacher`` names the logits of ``teacher.py`` (a classifier on
another input, typically the RGB baseline); the loss becomes ``kd_alpha`` x T^2 x KL(teacher || student
at temperature T) + (1 - kd_alpha) x the label loss, the teacher's logits being those of the same image
with the same flip, uncropped. ``--init`` starts from a checkpoint's weights (not its optimizer).
"""
import dataclasses
import functools
import json
import os
import signal
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (DEFAULT_CACHE, apply_overrides, autocast, code_snapshot,  # noqa: E402
                    codec_meta, count_macs, expand, fmt_macs, git_commit, int_list, load_init,
                    log_line, lr_at, make_optimizer, parse_overrides, pick_device, resolve_run,
                    save_atomic, seed_everything, set_codec_parts, synthesis_arch)
from nets import Classifier  # noqa: E402

INPUTS = ("latent", "rgb", "rgb-cheap", "decoded")
STRIDE = 8


@dataclass
class Config:
    input: str = "latent"               # latent | rgb | rgb-cheap | decoded
    codec_id: str = "ls-f8-q2"          # whose latents / decoded pixels (ignored by rgb inputs)
    cache_dir: str = DEFAULT_CACHE
    run_name: str = ""                  # default: cls-<input>[-<codec_id>]
    out_dir: str = ""                   # default: <cache_dir>/tasks/runs/<run_name>
    # model: the trunk (stages at 28, 14, 7) is shared by every input
    widths: str = "64,128,256"
    blocks: str = "2,2,2"
    latent_kernel: int = 3              # latent stem: 1x1 or 3x3 conv to widths[0]
    latent_stem: str = "plain"          # latent: plain | synthesis (nets.SynthesisStem first, as
    synth_out: int = 64                 # the segmenters'; its 1/8 branch's channels and
    synth_blocks: int = 0               # BasicBlocks at 1/4 after a 1x1 conv to
    synth_block_width: int = 48         # this width)
    latent_scale: bool = True           # multiply channel c by 1/std_c (fixed, from train)
    rgb_width: int = 64                 # rgb / decoded: 7x7/2 stem + stage at 56 of this width
    rgb_blocks: int = 2
    cheap_width: int = 32               # rgb-cheap: 4x4/4 patchify width
    # recipe (identical for every input)
    epochs: int = 16                    # CPU budget; see training/README.md
    batch_size: int = 64
    optimizer: str = "sgd"              # sgd (Nesterov, momentum 0.9) | adamw
    lr: float = 0.1
    min_lr: float = 0.0
    weight_decay: float = 5e-4
    warmup_steps: int = 300
    label_smoothing: float = 0.1
    pad: int = 2                        # random-crop padding in latent pixels (x8 for images)
    flip: bool = True
    seed: int = 1337
    # distillation and fine-tuning (latent inputs; see the module's doc)
    teacher: str = ""                   # teacher.py's logits (.npy); "" = no distillation
    kd_alpha: float = 0.5
    kd_temperature: float = 4.0
    init: str = ""                      # start from this checkpoint's weights
    init_other_codec: bool = False      # allow --init from a run on another codec (common.load_init)
    # runtime
    max_steps: int = 0                  # > 0: the schedule spans this many steps (smoke tests)
    eval_interval: int = 0              # steps between val passes; 0: once per epoch
    val_limit: int = 0                  # > 0: evaluate on the first N val images only
    num_threads: int = 1
    device: str = "auto"                # auto | cpu | cuda
    amp: bool = True                    # bf16 autocast on CUDA (ignored on CPU)
    log_interval: int = 20
    ckpt_interval_s: float = 300.0
    resume: bool = False


RUNTIME_KEYS = {"cache_dir", "out_dir", "num_threads", "device", "amp", "log_interval",
                "ckpt_interval_s", "resume", "eval_interval", "val_limit"}
CHOICES = {"input": INPUTS, "latent_stem": ("plain", "synthesis"), "optimizer": ("sgd", "adamw"),
           "device": ("auto", "cpu", "cuda")}


def arch_of(cfg, classes):
    return {"task": "classify", "input": cfg.input, "classes": classes, "latent_channels": 64,
            "widths": int_list(cfg.widths), "blocks": int_list(cfg.blocks),
            "latent_kernel": cfg.latent_kernel, "rgb_width": cfg.rgb_width,
            "rgb_blocks": cfg.rgb_blocks, "cheap_width": cfg.cheap_width,
            **(synthesis_arch(cfg) if cfg.input == "latent" and cfg.latent_stem == "synthesis" else {})}


def load_split(cfg, split):
    """(inputs, flipped inputs or None, labels) as memory-mapped arrays."""
    tasks = os.path.join(expand(cfg.cache_dir), "tasks")
    labels = np.load(os.path.join(tasks, "source", f"imagenette-{split}.labels.npy"))
    flipped = None
    if cfg.input == "latent":
        d = os.path.join(tasks, cfg.codec_id)
        x = np.load(os.path.join(d, f"imagenette-{split}.latents.npy"), mmap_mode="r")
        if split == "train":
            flipped = np.load(os.path.join(d, "imagenette-train-flip.latents.npy"), mmap_mode="r")
    elif cfg.input == "decoded":
        x = np.load(os.path.join(tasks, cfg.codec_id, f"imagenette-{split}.decoded.npy"),
                    mmap_mode="r")
    else:
        x = np.load(os.path.join(tasks, "source", f"imagenette-{split}.rgb.npy"), mmap_mode="r")
    if len(x) != len(labels):
        raise SystemExit(f"{split}: {len(x)} inputs but {len(labels)} labels; rerun latents.py")
    return x, flipped, labels


def to_tensor(arr, device="cpu"):
    """Latents stay int16 (the network casts); uint8 HWC pixels -> float NCHW in [0,1]. The
    conversion happens on ``device``, so only the compact arrays cross to a GPU."""
    t = torch.from_numpy(np.array(arr)).to(device)   # a copy: memory-mapped slices are read-only
    return t if t.dtype == torch.int16 else t.permute(0, 3, 1, 2).float().div_(255.0)


def augment(x, rng, pad, flip_pixels):
    """Random horizontal flip (pixels only: latents use the precomputed flipped copy) and a
    random crop of the original size after zero padding by ``pad`` on every side."""
    b, _, h, w = x.shape
    if flip_pixels:
        sel = torch.from_numpy(rng.random(b) < 0.5).to(x.device)
        x = torch.where(sel[:, None, None, None], x.flip(3), x)
    if pad:
        xp = F.pad(x, (pad, pad, pad, pad))
        off = rng.integers(0, 2 * pad + 1, size=(b, 2))
        x = torch.stack([xp[i, :, oy:oy + h, ox:ox + w] for i, (oy, ox) in enumerate(off)])
    return x


def batch_at(step, cfg, train, steps_per_epoch, device="cpu"):
    """The batch of ``step``: order and augmentation depend on (seed, step) only, so a resumed
    run sees exactly the batches it would have seen."""
    x_all, x_flip, labels = train
    epoch, pos = divmod(step, steps_per_epoch)
    order = np.random.default_rng((cfg.seed, epoch)).permutation(len(labels))
    idx = np.sort(order[pos * cfg.batch_size:(pos + 1) * cfg.batch_size])
    rng = np.random.default_rng((cfg.seed, 1, step))
    use_flip = np.zeros(len(idx), bool)
    if cfg.input == "latent" and cfg.flip:
        use_flip = rng.random(len(idx)) < 0.5
        arr = np.where(use_flip[:, None, None, None], x_flip[idx], x_all[idx])
    else:
        arr = x_all[idx]
    pad = cfg.pad if cfg.input == "latent" else cfg.pad * STRIDE
    x = augment(to_tensor(arr, device), rng, pad, cfg.flip and cfg.input != "latent")
    return x, torch.from_numpy(labels[idx].astype(np.int64)).to(device), idx, use_flip


def distill_loss(logits, teacher_logits, temperature):
    """T^2 x KL(softmax(teacher / T) || softmax(student / T)), batch mean (Hinton et al. 2015)."""
    t = temperature
    return F.kl_div(F.log_softmax(logits / t, 1), F.log_softmax(teacher_logits / t, 1),
                    reduction="batchmean", log_target=True) * t * t


@torch.no_grad()
def evaluate(model, val, cfg, device):
    """top-1, top-5 and mean loss on val (or its first val_limit images)."""
    x_all, _, labels = val
    n = min(len(labels), cfg.val_limit) if cfg.val_limit else len(labels)
    model.eval()
    top1 = top5 = loss = 0.0
    for s in range(0, n, 100):
        x = to_tensor(x_all[s:min(n, s + 100)], device)
        y = torch.from_numpy(labels[s:min(n, s + 100)].astype(np.int64)).to(device)
        with autocast(device, cfg.amp):
            logits = model(x).float()
        loss += F.cross_entropy(logits, y, reduction="sum").item()
        top = logits.topk(5, 1).indices
        top1 += (top[:, 0] == y).sum().item()
        top5 += (top == y[:, None]).any(1).sum().item()
    model.train()
    return {"val_top1": top1 / n, "val_top5": top5 / n, "val_loss": loss / n, "val_n": n}


def default_run_name(cfg):
    return (f"cls-{cfg.input}" if cfg.input in ("rgb", "rgb-cheap")
            else f"cls-{cfg.input}-{cfg.codec_id}")


def main():
    raw = parse_overrides(Config, sys.argv[1:])
    cfg = apply_overrides(Config(), raw, CHOICES)
    cfg.run_name = cfg.run_name or default_run_name(cfg)
    cfg, ckpt = resolve_run(Config, cfg, raw, RUNTIME_KEYS)
    os.makedirs(cfg.out_dir, exist_ok=True)
    print(json.dumps(dataclasses.asdict(cfg)), flush=True)
    torch.set_num_threads(cfg.num_threads)
    seed_everything(cfg.seed)
    device = pick_device(cfg.device)

    train, val = load_split(cfg, "train"), load_split(cfg, "val")
    classes = 10
    arch = arch_of(cfg, classes)
    model = Classifier(arch)
    codec_parts = functools.partial(set_codec_parts, model, cfg, train[0], 1000)
    codec_parts()
    example = to_tensor(val[0][:1])
    macs, params = count_macs(model, example)
    print(f"{cfg.input}: {fmt_macs(macs)} MACs, {params / 1e6:.2f} M parameters, input "
          f"{tuple(example.shape)} {example.dtype}; train {len(train[2])}, val {len(val[2])}",
          flush=True)
    model.to(device)
    opt = make_optimizer(model, cfg.optimizer, cfg.lr, cfg.weight_decay)
    steps_per_epoch = len(train[2]) // cfg.batch_size
    if steps_per_epoch == 0:
        raise SystemExit(f"batch_size {cfg.batch_size} exceeds the {len(train[2])} train images")
    total = cfg.max_steps or cfg.epochs * steps_per_epoch
    eval_interval = cfg.eval_interval or steps_per_epoch
    step, best, history = 0, {"val_top1": -1.0}, []
    teacher = None
    if cfg.teacher:
        if cfg.input != "latent":
            raise SystemExit("--teacher distils into latent classifiers only")
        teacher = np.load(expand(cfg.teacher), mmap_mode="r")
        if teacher.shape != (len(train[2]), 2, classes):
            raise SystemExit(f"{cfg.teacher}: shape {teacher.shape}, expected "
                             f"{(len(train[2]), 2, classes)} (teacher.py on these train arrays)")
    if cfg.init and ckpt is None:
        load_init(model, cfg, arch, "val_top1", codec_parts)
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        step, best, history = ckpt["step"], ckpt["best"], ckpt["history"]
        print(f"resumed at step {step}", flush=True)
    codec = codec_meta(cfg.cache_dir, cfg.codec_id) if cfg.input in ("latent", "decoded") else None
    if ckpt is not None and ckpt.get("codec") != codec:
        raise SystemExit(f"the cached latents are of another codec than this run's ({codec} vs "
                         f"{ckpt.get('codec')}): start a new run")
    meta = {"arch": arch, "macs": macs, "params": params, "codec": codec,
            "git_commit": git_commit(), "code": code_snapshot(), "task": "classify"}

    def checkpoint(path, resumable=True):
        """ckpt.pt resumes (optimizer included); best.pt holds weights only (~12 MB, exportable)."""
        state = {"optimizer": opt.state_dict()} if resumable else {}
        save_atomic({"model": model.state_dict(), **state, "step": step, "best": best,
                     "history": history, "config": dataclasses.asdict(cfg), **meta}, path)

    log = open(os.path.join(cfg.out_dir, "train.log.jsonl"), "a")
    acc = np.zeros(3)
    t_log = t_ckpt = time.time()
    stop = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.append(1))
    model.train()
    while step < total and not stop:
        lr = lr_at(step, total, cfg.lr, min(cfg.warmup_steps, total // 5), cfg.min_lr)
        for g in opt.param_groups:
            g["lr"] = lr
        x, y, idx, flipped = batch_at(step, cfg, train, steps_per_epoch, device)
        with autocast(device, cfg.amp):
            logits = model(x).float()
        loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
        if teacher is not None:
            t = torch.from_numpy(np.asarray(teacher[idx, flipped.astype(np.int64)])).to(device)
            loss = cfg.kd_alpha * distill_loss(logits, t, cfg.kd_temperature) + (1 - cfg.kd_alpha) * loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        acc += [loss.item(), (logits.argmax(1) == y).float().mean().item(), 1]
        if step % cfg.log_interval == 0 or step == total:
            now = time.time()
            log_line(log, {"step": step, "epoch": round(step / steps_per_epoch, 3),
                           "loss": acc[0] / acc[2], "train_top1": acc[1] / acc[2], "lr": lr,
                           "s_per_step": (now - t_log) / acc[2]})
            acc, t_log = np.zeros(3), now
        if step % eval_interval == 0 or step == total:
            t0 = time.time()
            rec = {"step": step, **evaluate(model, val, cfg, device)}
            rec["eval_s"] = time.time() - t0
            history.append(rec)
            log_line(log, rec)
            if rec["val_top1"] > best["val_top1"]:
                best = rec
                checkpoint(os.path.join(cfg.out_dir, "best.pt"), resumable=False)
            t_log += time.time() - t0          # s_per_step counts training only
        if time.time() - t_ckpt >= cfg.ckpt_interval_s or step == total:
            checkpoint(os.path.join(cfg.out_dir, "ckpt.pt"))
            t_ckpt = time.time()
    if stop:
        checkpoint(os.path.join(cfg.out_dir, "ckpt.pt"))
        print(f"stopped by signal at step {step}; checkpoint saved; continue with --resume",
              flush=True)
        return
    result = {"run_name": cfg.run_name, "input": cfg.input, "codec_id": cfg.codec_id,
              "macs": macs, "params": params, "steps": step, "best": best}
    with open(os.path.join(cfg.out_dir, "result.json"), "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
