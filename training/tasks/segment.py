"""Train a CamVid segmenter on latents, decoded RGB (same bitstreams) or original RGB.

    python3 training/tasks/segment.py --input latent --codec_id ls-f8-q2
    python3 training/tasks/segment.py --input decoded --codec_id ls-f8-q2
    python3 training/tasks/segment.py --input rgb
    python3 training/tasks/segment.py --input latent --resume

Needs the arrays of ``latents.py``. The head (1/8-scale convs, ASPP-lite, x2 upsampling stages
to 1/2, logits bilinearly to full size) is shared; RGB inputs get a stem of three stride-2
convs to the latents' shape (64 channels at 1/8). Training: random crops of ``crop`` latent
pixels (8 x ``crop`` image pixels, at 8-aligned offsets, so every input sees the same crops)
and random flips (latents: the precomputed latents of the flipped image), cross-entropy
ignoring void (11), optional median-frequency class weights. Evaluation on val at full
resolution (480 x 360): mIoU over the 11 classes, pixel accuracy and per-class IoU, void
ignored; val selects ``best.pt`` only.

Distillation: ``--teacher`` names a segmenter's logits from ``teacher.py`` (for a latent student
typically the ``seg-decoded-*`` baseline of the same codec, which reads the same bits through the
synthesis; for a pixel student, e.g. ``seg-rgb``, which read the original pixels); the loss
becomes ``kd_alpha`` x the per-pixel T^2 x KL(teacher || student at T) + (1 - ``kd_alpha``) x
the label loss, both weighted by the labelled pixels' class weights, the teacher's logits those
of the same image with the same flip, cropped like the input and upsampled to full size as the
teacher's own graph does. ``--kd_loss channel`` distils each class's map over the crop's positions
instead (channel-wise distillation, Shu et al. 2021), so that thin and small classes weigh no less
than large ones. ``--init`` starts from a checkpoint's weights (not its optimizer), e.g. a shipped
run's ``best.pt``; with ``--init_grow`` the checkpoint may be of the same network with fewer
residual blocks (the added ones start as the identity):

    python3 training/tasks/segment.py --input latent --codec_id ls-f8-q2 --latent_stem synthesis \
        --synth_skip 32 --blocks 4 --init RUN/best.pt --teacher TEACHERS/seg-decoded-ls-f8-q2.npy \
        --steps 3000 --lr 5e-4 --warmup_steps 100 --run_name seg-latent-ls-f8-q2-kd-ft
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
from nets import Segmenter  # noqa: E402
from onnx_init import check_against_onnx, freeze_batchnorm, load_onnx_weights  # noqa: E402

INPUTS = ("latent", "rgb", "decoded")
STRIDE = 8
CLASSES = 11
VOID = 11
HEIGHT = 360                           # CamVid rows; arrays are padded to 368


@dataclass
class Config:
    input: str = "latent"               # latent | rgb | decoded
    codec_id: str = "ls-f8-q2"
    cache_dir: str = DEFAULT_CACHE
    run_name: str = ""                  # default: seg-<input>[-<codec_id>]
    out_dir: str = ""
    # model: the head is shared by every input
    width: int = 128                    # channels at 1/8
    blocks: int = 2                     # BasicBlocks at 1/8 (dilations 1, 2, ...)
    up: str = "64,32"                   # channels of the x2 refinement stages (1/8 -> 1/2); the
                                        # logits are then upsampled bilinearly to full resolution
    stem_widths: str = "32,64,64"       # rgb / decoded: three 3x3 stride-2 convs
    latent_scale: bool = True
    latent_stem: str = "plain"          # latent: plain (scaled latents) | synthesis (nets.SynthesisStem)
    synth_out: int = 64                 # synthesis stem: channels of its 1/8 branch
    synth_skip: int = 0                 # synthesis stem: > 0 also feeds its 1/4 features (1x1 to
                                        # this many channels) to the head's 1/4 stage
    fuse: int = 0                       # synthesis stem with a skip: > 0 adds a bottleneck residual
                                        # block of this width where the skip joins the head at 1/4
    synth_train: bool = False           # synthesis stem: fine-tune the codec's transposed conv
    synth_blocks: int = 0               # synthesis stem: BasicBlocks at 1/4 (after a 1x1 conv to
    synth_block_width: int = 48         # this width), before its 1/8 branch and its skip
    # recipe (identical for every input)
    steps: int = 4000
    batch_size: int = 8
    crop: int = 32                      # latent pixels (x8 image pixels)
    optimizer: str = "adamw"
    lr: float = 2e-3
    min_lr: float = 1e-5
    weight_decay: float = 1e-4
    warmup_steps: int = 200
    class_weight: str = "median-freq"   # none | median-freq (SegNet's balancing)
    flip: bool = True
    teacher: str = ""                   # teacher.py's segmenter logits (.npy); "" = no distillation
    kd_alpha: float = 0.5
    kd_temperature: float = 1.0
    kd_loss: str = "pixel"              # pixel: per-pixel KL over classes | channel: per-class KL
                                        # over positions (channel-wise distillation, Shu et al. 2021)
    init: str = ""                      # start from this checkpoint's weights
    init_other_codec: bool = False      # allow --init from a run on another codec (common.load_init)
    init_grow: bool = False             # allow --init from the same network with fewer residual
                                        # blocks (common.grow_from; e.g. a larger synth_blocks)
    init_onnx: str = ""                 # start from an exported segmenter.onnx (onnx_init.py);
                                        # its BatchNorms stay frozen for the run
    freeze_bn: bool = False             # keep every BatchNorm frozen: an --init whose BatchNorms
                                        # came folded from a graph (stitch.py, or a run of --init_onnx)
    seed: int = 1337
    # runtime
    eval_interval: int = 500
    val_limit: int = 0
    num_threads: int = 1
    device: str = "auto"
    amp: bool = True
    log_interval: int = 20
    ckpt_interval_s: float = 300.0
    resume: bool = False


RUNTIME_KEYS = {"cache_dir", "out_dir", "num_threads", "device", "amp", "log_interval",
                "ckpt_interval_s", "resume", "eval_interval", "val_limit"}
CHOICES = {"input": INPUTS, "latent_stem": ("plain", "synthesis"), "kd_loss": ("pixel", "channel"),
           "optimizer": ("sgd", "adamw"), "device": ("auto", "cpu", "cuda"),
           "class_weight": ("none", "median-freq")}


def check_config(cfg):
    """Refuses options that contradict each other, before any data is read or any folder made."""
    if cfg.fuse and not (cfg.input == "latent" and cfg.latent_stem == "synthesis" and cfg.synth_skip):
        raise SystemExit("--fuse joins the synthesis stem's 1/4 skip: it needs --latent_stem "
                         "synthesis and --synth_skip")
    if cfg.kd_loss != "pixel" and not cfg.teacher:
        raise SystemExit(f"--kd_loss {cfg.kd_loss} distils from a teacher: give --teacher")
    if cfg.init and cfg.init_onnx:
        raise SystemExit("--init and --init_onnx exclude each other")


def arch_of(cfg):
    return {"task": "segment", "input": cfg.input, "classes": CLASSES, "latent_channels": 64,
            "width": cfg.width, "blocks": cfg.blocks, "up": int_list(cfg.up),
            "stem_widths": int_list(cfg.stem_widths),
            **({**synthesis_arch(cfg),
                **({"synth_skip": cfg.synth_skip} if cfg.synth_skip else {}),
                **({"fuse": cfg.fuse} if cfg.fuse else {}),
                **({"synth_train": True} if cfg.synth_train else {})}
               if cfg.input == "latent" and cfg.latent_stem == "synthesis" else {})}


def load_split(cfg, split):
    """(inputs, flipped latents or None, masks), memory-mapped."""
    tasks = os.path.join(expand(cfg.cache_dir), "tasks")
    masks = np.load(os.path.join(tasks, "source", f"camvid-{split}.masks.npy"), mmap_mode="r")
    flipped = None
    if cfg.input == "latent":
        d = os.path.join(tasks, cfg.codec_id)
        x = np.load(os.path.join(d, f"camvid-{split}.latents.npy"), mmap_mode="r")
        if split == "train":
            flipped = np.load(os.path.join(d, "camvid-train-flip.latents.npy"), mmap_mode="r")
    elif cfg.input == "decoded":
        x = np.load(os.path.join(tasks, cfg.codec_id, f"camvid-{split}.decoded.npy"), mmap_mode="r")
    else:
        x = np.load(os.path.join(tasks, "source", f"camvid-{split}.rgb.npy"), mmap_mode="r")
    if len(x) != len(masks):
        raise SystemExit(f"{split}: {len(x)} inputs but {len(masks)} masks; rerun latents.py")
    return x, flipped, masks


def to_tensor(arr):
    t = torch.from_numpy(np.array(arr))             # a copy: memory-mapped slices are read-only
    return t if t.dtype == torch.int16 else t.permute(0, 3, 1, 2).float().div_(255.0)


def batch_at(step, cfg, train):
    """Crops and flips of ``step``, drawn from (seed, step) only (exact resume)."""
    x_all, x_flip, masks = train
    rng = np.random.default_rng((cfg.seed, step))
    idx = rng.integers(0, len(masks), cfg.batch_size)
    flips = rng.random(cfg.batch_size) < 0.5 if cfg.flip else np.zeros(cfg.batch_size, bool)
    latent = cfg.input == "latent"
    h, w = (x_all.shape[2:] if latent else (x_all.shape[1] // STRIDE, x_all.shape[2] // STRIDE))
    c = cfg.crop
    xs, ms, crops = [], [], []
    for i, flip in zip(idx, flips):
        oy, ox = rng.integers(0, h - c + 1), rng.integers(0, w - c + 1)
        crops.append((oy, ox))
        m = masks[i][:, ::-1] if flip else masks[i]
        ms.append(m[oy * STRIDE:(oy + c) * STRIDE, ox * STRIDE:(ox + c) * STRIDE])
        if latent:
            src = x_flip[i] if flip else x_all[i]
            xs.append(src[:, oy:oy + c, ox:ox + c])
        else:
            src = x_all[i][:, ::-1] if flip else x_all[i]
            xs.append(src[oy * STRIDE:(oy + c) * STRIDE, ox * STRIDE:(ox + c) * STRIDE])
    return to_tensor(np.stack(xs)), torch.from_numpy(np.stack(ms).astype(np.int64)), (idx, flips, crops)


def teacher_at(teacher, where, crop):
    """The teacher's logits for the crops of ``batch_at`` (float32, at full crop size): its
    half-resolution logits cropped (the flipped image's for a flipped crop) and upsampled x2
    bilinearly, as the teacher's graph upsamples them."""
    idx, flips, crops = where
    h = crop * STRIDE // 2
    t = np.stack([teacher[i, int(f), :, oy * STRIDE // 2:oy * STRIDE // 2 + h, ox * STRIDE // 2:ox * STRIDE // 2 + h]
                  for i, f, (oy, ox) in zip(idx, flips, crops)])
    return F.interpolate(torch.from_numpy(t.astype(np.float32)), scale_factor=2, mode="bilinear",
                         align_corners=False)


def distill_loss(logits, teacher_logits, temperature, y, weight):
    """Per-pixel T^2 x KL(softmax(teacher / T) || softmax(student / T)), averaged over the labelled
    pixels with the label loss's class weights (so rare classes weigh as much as in the label loss)."""
    t = temperature
    kl = F.kl_div(F.log_softmax(logits / t, 1), F.log_softmax(teacher_logits / t, 1),
                  reduction="none", log_target=True).sum(1) * t * t
    keep = y != VOID
    w = keep.float() if weight is None else weight[y.clamp(max=CLASSES - 1)] * keep
    return (kl * w).sum() / w.sum().clamp(min=1e-6)


def channel_distill_loss(logits, teacher_logits, temperature):
    """Channel-wise distillation (Shu et al., ICCV 2021): each class's logit map becomes a
    distribution over the crop's positions, softmax(map / T); the loss is T^2 x KL(teacher ||
    student) of those distributions, averaged over images and classes. Every class's map counts
    once, however few pixels it covers, so where the teacher puts a pole or a pedestrian weighs no
    less than where it puts the road; void pixels count too (the teacher has an answer there)."""
    t = temperature
    kl = F.kl_div(F.log_softmax(logits.flatten(2) / t, 2), F.log_softmax(teacher_logits.flatten(2) / t, 2),
                  reduction="none", log_target=True).sum(2)
    return kl.mean() * t * t


def class_weights(masks, kind):
    """Median-frequency balancing (Eigen & Fergus; SegNet): w_c = median(f) / f_c, where f_c is
    the pixel frequency of class c among labelled pixels."""
    if kind == "none":
        return None
    counts = np.zeros(CLASSES + 1, np.int64)
    for m in masks:
        counts += np.bincount(np.asarray(m).ravel(), minlength=CLASSES + 1)[:CLASSES + 1]
    freq = counts[:CLASSES] / max(1, counts[:CLASSES].sum())
    freq = np.maximum(freq, 1e-6)
    return torch.tensor(np.median(freq) / freq, dtype=torch.float32)


def confusion(pred, truth):
    """The 11 x 11 confusion matrix (rows = truth) of predicted classes against a mask of the same
    shape, void pixels left out."""
    keep = truth != VOID
    return np.bincount(truth[keep].astype(np.int64) * CLASSES + pred[keep],
                       minlength=CLASSES * CLASSES).reshape(CLASSES, CLASSES)


def scores(conf):
    """mIoU, pixel accuracy and per-class IoU from an 11 x 11 confusion matrix (rows = truth)."""
    tp = np.diag(conf).astype(np.float64)
    union = conf.sum(0) + conf.sum(1) - tp
    iou = np.where(union > 0, tp / np.maximum(union, 1), np.nan)
    return {"miou": float(np.nanmean(iou)), "pixel_accuracy": float(tp.sum() / max(1, conf.sum())),
            "per_class_iou": [None if np.isnan(v) else float(v) for v in iou]}


@torch.no_grad()
def evaluate(model, val, cfg, device):
    """Full-resolution val: padded 368-row input, prediction cropped back to 360 rows."""
    x_all, _, masks = val
    n = min(len(masks), cfg.val_limit) if cfg.val_limit else len(masks)
    model.eval()
    conf = np.zeros((CLASSES, CLASSES), np.int64)
    for s in range(0, n, 4):
        x = to_tensor(x_all[s:min(n, s + 4)]).to(device)
        with autocast(device, cfg.amp):
            pred = model(x).argmax(1)[:, :HEIGHT].cpu().numpy().ravel()
        conf += confusion(pred, np.asarray(masks[s:min(n, s + 4), :HEIGHT]).ravel())
    train_mode(model, cfg)
    return {**{f"val_{k}": v for k, v in scores(conf).items()}, "val_n": n}


def frozen_bn(cfg):
    """Whether the run keeps its BatchNorms frozen: started from an ONNX file, or told to."""
    return bool(cfg.init_onnx or cfg.freeze_bn)


def train_mode(model, cfg):
    """model.train(), with the BatchNorms of a run started from an ONNX file kept frozen."""
    model.train()
    if frozen_bn(cfg):
        freeze_batchnorm(model)


def default_run_name(cfg):
    return "seg-rgb" if cfg.input == "rgb" else f"seg-{cfg.input}-{cfg.codec_id}"


def main():
    raw = parse_overrides(Config, sys.argv[1:])
    cfg = apply_overrides(Config(), raw, CHOICES)
    cfg.run_name = cfg.run_name or default_run_name(cfg)
    cfg, ckpt = resolve_run(Config, cfg, raw, RUNTIME_KEYS)
    check_config(cfg)
    os.makedirs(cfg.out_dir, exist_ok=True)
    print(json.dumps(dataclasses.asdict(cfg)), flush=True)
    torch.set_num_threads(cfg.num_threads)
    seed_everything(cfg.seed)
    device = pick_device(cfg.device)

    train, val = load_split(cfg, "train"), load_split(cfg, "val")
    arch = arch_of(cfg)
    model = Segmenter(arch)
    codec_parts = functools.partial(set_codec_parts, model, cfg, train[0], 400)
    codec_parts()
    example = to_tensor(val[0][:1])
    macs, params = count_macs(model, example)
    print(f"{cfg.input}: {fmt_macs(macs)} MACs at {tuple(example.shape[2:])} "
          f"({'latents' if cfg.input == 'latent' else 'pixels'}), {params / 1e6:.2f} M parameters; "
          f"train {len(train[2])}, val {len(val[2])}", flush=True)
    weights = class_weights(train[2], cfg.class_weight)
    teacher = None
    if cfg.teacher:
        teacher = np.load(expand(cfg.teacher), mmap_mode="r")
        want = (len(train[2]), 2, CLASSES, train[2].shape[1] // 2, train[2].shape[2] // 2)
        if teacher.shape != want:
            raise SystemExit(f"{cfg.teacher}: shape {teacher.shape}, expected {want} "
                             "(teacher.py on these train arrays)")
    if cfg.init and ckpt is None:
        load_init(model, cfg, arch, "val_miou", codec_parts,
                  (Segmenter, example) if cfg.init_grow else None)
    if cfg.init_onnx and ckpt is None:
        load_onnx_weights(model, expand(cfg.init_onnx))
        diff = check_against_onnx(model, expand(cfg.init_onnx), np.asarray(val[0][:2]))
        print(f"initialised from {cfg.init_onnx} (logits within {diff:.4f} of onnxruntime's; "
              "BatchNorms frozen)", flush=True)
    model.to(device)
    opt = make_optimizer(model, cfg.optimizer, cfg.lr, cfg.weight_decay)
    step, best, history = 0, {"val_miou": -1.0}, []
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        step, best, history = ckpt["step"], ckpt["best"], ckpt["history"]
        print(f"resumed at step {step}", flush=True)
    codec = codec_meta(cfg.cache_dir, cfg.codec_id) if cfg.input in ("latent", "decoded") else None
    if ckpt is not None and ckpt.get("codec") != codec:
        raise SystemExit(f"the cached latents are of another codec than this run's ({codec} vs "
                         f"{ckpt.get('codec')}): start a new run")
    meta = {"arch": arch, "macs": macs, "macs_input_shape": list(example.shape[1:]),
            "params": params, "codec": codec, "git_commit": git_commit(),
            "code": code_snapshot(), "task": "segment"}

    def checkpoint(path, resumable=True):
        """ckpt.pt resumes (optimizer included); best.pt holds weights only (~12 MB, exportable)."""
        state = {"optimizer": opt.state_dict()} if resumable else {}
        save_atomic({"model": model.state_dict(), **state, "step": step, "best": best,
                     "history": history, "config": dataclasses.asdict(cfg),
                     "frozen_bn": frozen_bn(cfg), **meta}, path)

    log = open(os.path.join(cfg.out_dir, "train.log.jsonl"), "a")
    w = weights.to(device) if weights is not None else None
    acc = np.zeros(2)
    t_log = t_ckpt = time.time()
    stop = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.append(1))
    train_mode(model, cfg)
    while step < cfg.steps and not stop:
        lr = lr_at(step, cfg.steps, cfg.lr, min(cfg.warmup_steps, cfg.steps // 5), cfg.min_lr)
        for g in opt.param_groups:
            g["lr"] = lr
        x, y, where = batch_at(step, cfg, train)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with autocast(device, cfg.amp):
            logits = model(x).float()
        loss = F.cross_entropy(logits, y, weight=w, ignore_index=VOID)
        if teacher is not None:
            t = teacher_at(teacher, where, cfg.crop).to(device)
            kd = (channel_distill_loss(logits, t, cfg.kd_temperature) if cfg.kd_loss == "channel"
                  else distill_loss(logits, t, cfg.kd_temperature, y, w))
            loss = cfg.kd_alpha * kd + (1 - cfg.kd_alpha) * loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        acc += [loss.item(), 1]
        if step % cfg.log_interval == 0 or step == cfg.steps:
            now = time.time()
            log_line(log, {"step": step, "loss": acc[0] / acc[1], "lr": lr,
                           "s_per_step": (now - t_log) / acc[1]})
            acc, t_log = np.zeros(2), now
        if step % cfg.eval_interval == 0 or step == cfg.steps:
            t0 = time.time()
            rec = {"step": step, **evaluate(model, val, cfg, device)}
            rec["eval_s"] = time.time() - t0
            history.append(rec)
            log_line(log, rec)
            if rec["val_miou"] > best["val_miou"]:
                best = rec
                checkpoint(os.path.join(cfg.out_dir, "best.pt"), resumable=False)
            t_log += time.time() - t0
        if time.time() - t_ckpt >= cfg.ckpt_interval_s or step == cfg.steps:
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
