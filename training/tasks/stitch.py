"""Start a latent segmenter from a pixel segmenter's trunk (model stitching with a hint loss).

    python3 training/tasks/stitch.py --codec_id ls-f8-q3 --latent_stem synthesis --synth_skip 32 \
        --blocks 4 --synth_blocks 2 --latent_onnx models/seg-latent-ls-f8-q3/segmenter.onnx \
        --trunk_onnx models/baselines/seg-decoded-ls-f8-q3/segmenter.onnx --trunk_blocks 2 \
        --hint_steps 1500 --run_name seg-latent-ls-f8-q3-stitch
    python3 training/tasks/segment.py ... --init RUN/stitched.pt --freeze_bn   # then fine-tune

A pixel segmenter of the same bits (``seg-decoded-*``) can start from ``seg-rgb``, which learnt
on original photographs; a latent head can only start from networks that read latents. Both
segmenters are ``stem -> SegHead`` with the same head past its first convolution
(``nets.Segmenter``): the pixel stem and the head's ``inp`` convolution make 128 channels at 1/8
of the image side from pixels, the latent stem and ``inp`` make the same shape from latents. So
the latent network can take everything after ``inp`` from the pixel network, if its own 1/8
features come to mean what the pixel network's do. This script:

1. rebuilds the latent network from its exported graph (``--latent_onnx``, onnx_init.py) and the
   pixel network from its own (``--trunk_onnx``), both checked against onnxruntime;
2. trains the latent stem and ``inp`` (the trunk is not used) for ``--hint_steps`` steps to give,
   on each training crop, the pixel network's ``inp`` features of the same crop of the decoded
   image: mean squared error at 1/8 (FitNets' hint, Romero et al. 2015) on ``segment.py``'s crops
   and flips, AdamW at ``--hint_lr`` with a short warmup and a cosine decay;
3. puts the pixel network's head after ``inp`` into the latent network. Where the latent head has
   more: residual blocks at 1/8 beyond ``--trunk_blocks`` start as the identity; the stem's 1/4
   skip channels in the second x2 stage keep their depthwise weights and start with a zero
   pointwise weight, so the stitched network first computes the pixel network's head on the
   latent features and learns to use the skip while fine-tuning;
4. measures val mIoU and writes ``<run>/stitched.pt``, a start for ``segment.py --init`` with
   ``--freeze_bn``: every BatchNorm came from a graph where it was folded into its convolution,
   so its statistics must stay frozen (onnx_init.py).

Val selects nothing here: the figure it prints is the start of the fine-tune, for the record.
"""
import dataclasses
import functools
import json
import os
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (apply_overrides, code_snapshot, codec_meta, count_macs, expand,  # noqa: E402
                    git_commit, log_line, lr_at, parse_overrides, save_atomic, seed_everything,
                    set_codec_parts)
from nets import Segmenter  # noqa: E402
from onnx_init import check_against_onnx, freeze_batchnorm, load_onnx_weights  # noqa: E402
import segment  # noqa: E402
from segment import STRIDE, arch_of, batch_at, evaluate, load_split, to_tensor  # noqa: E402


@dataclass
class StitchConfig(segment.Config):
    latent_onnx: str = ""              # the latent segmenter to start the stem and ``inp`` from
    trunk_onnx: str = ""               # the pixel segmenter (decoded or rgb) whose head is taken
    trunk_input: str = "decoded"       # what the trunk's network reads: decoded | rgb
    trunk_blocks: int = 2              # its residual blocks at 1/8
    trunk_stem_widths: str = "32,64,64"
    hint_steps: int = 1500
    hint_lr: float = 1e-3


def check_stitch(cfg):
    if cfg.input != "latent" or cfg.latent_stem != "synthesis":
        raise SystemExit("stitch.py starts a latent segmenter with a synthesis stem "
                         "(--latent_stem synthesis)")
    if not cfg.latent_onnx or not cfg.trunk_onnx:
        raise SystemExit("give --latent_onnx and --trunk_onnx")
    if cfg.trunk_input not in ("decoded", "rgb"):
        raise SystemExit("--trunk_input is decoded or rgb")
    if cfg.trunk_blocks > cfg.blocks:
        raise SystemExit(f"the trunk has {cfg.trunk_blocks} blocks at 1/8, the latent head "
                         f"{cfg.blocks}: the latent head must have at least as many")
    if cfg.fuse:
        raise SystemExit("--fuse is not stitched; grow it afterwards with segment.py --init_grow")


def trunk_arch(cfg):
    pixel = dataclasses.replace(cfg, input=cfg.trunk_input, blocks=cfg.trunk_blocks,
                                stem_widths=cfg.trunk_stem_widths)
    return arch_of(pixel)


def pixel_crops(pixels, where, crop):
    """The pixel crops (float NCHW in [0,1]) of ``batch_at``'s latent crops, flipped alike."""
    idx, flips, crops = where
    side = crop * STRIDE
    out = []
    for i, flip, (oy, ox) in zip(idx, flips, crops):
        src = pixels[i][:, ::-1] if flip else pixels[i]
        out.append(src[oy * STRIDE:oy * STRIDE + side, ox * STRIDE:ox * STRIDE + side])
    return to_tensor(np.stack(out))


def inp_features(model, x):
    """The head's ``inp`` output (128 channels at 1/8): where the two networks are joined."""
    s = model.stem(x)
    return model.head.inp(s[0] if isinstance(s, tuple) else s)


@torch.no_grad()
def take_trunk(latent, pixel, trunk_blocks):
    """Copies the pixel network's head after ``inp`` into the latent network (module docstring,
    step 3). Returns the names of the latent head's weights that did not come from it."""
    ours, theirs = latent.head.state_dict(), pixel.head.state_dict()
    kept = []
    for name, value in ours.items():
        if name.startswith("inp."):
            continue
        if name.startswith("blocks.") and int(name.split(".")[1]) >= trunk_blocks:
            kept.append(name)
            continue
        if name not in theirs:
            raise SystemExit(f"the pixel network's head has no {name}: another head design")
        src = theirs[name]
        if value.shape == src.shape:
            value.copy_(src)
        elif name.startswith("up.1.dw.") and value.shape[0] > src.shape[0]:
            value[:src.shape[0]].copy_(src)               # the skip's depthwise channels are kept
            kept.append(name + " (skip channels)")
        elif name == "up.1.pw.0.weight" and value.shape[1] > src.shape[1]:
            value[:, :src.shape[1]].copy_(src)
            value[:, src.shape[1]:].zero_()               # the skip starts unused
            kept.append(name + " (skip channels, zero)")
        else:
            raise SystemExit(f"{name}: {tuple(value.shape)} in the latent head, "
                             f"{tuple(src.shape)} in the pixel network's")
    # residual blocks beyond the trunk's start as the identity: the last BatchNorm's scale and
    # shift zero (its statistics are frozen at mean 0, variance 1 - eps)
    for b in latent.head.blocks[trunk_blocks:]:
        b.conv2[1].weight.zero_()
        b.conv2[1].bias.zero_()
    latent.head.load_state_dict(ours)
    return kept


def main():
    raw = parse_overrides(StitchConfig, sys.argv[1:])
    cfg = apply_overrides(StitchConfig(input="latent"), raw, segment.CHOICES)
    check_stitch(cfg)
    cfg.run_name = cfg.run_name or f"seg-latent-{cfg.codec_id}-stitch"
    cfg.out_dir = expand(cfg.out_dir or os.path.join(cfg.cache_dir, "tasks", "runs", cfg.run_name))
    out = os.path.join(cfg.out_dir, "stitched.pt")
    if os.path.exists(out):
        raise SystemExit(f"{out} exists: another --run_name")
    os.makedirs(cfg.out_dir, exist_ok=True)
    print(json.dumps(dataclasses.asdict(cfg)), flush=True)
    torch.set_num_threads(cfg.num_threads)
    seed_everything(cfg.seed)

    train, val = load_split(cfg, "train"), load_split(cfg, "val")
    tasks = os.path.join(expand(cfg.cache_dir), "tasks")
    pix_dir = os.path.join(tasks, cfg.codec_id) if cfg.trunk_input == "decoded" else os.path.join(tasks, "source")
    kind = "decoded" if cfg.trunk_input == "decoded" else "rgb"
    pixels = {s: np.load(os.path.join(pix_dir, f"camvid-{s}.{kind}.npy"), mmap_mode="r")
              for s in ("train", "val")}

    arch = arch_of(cfg)
    latent = Segmenter(arch)
    codec_parts = functools.partial(set_codec_parts, latent, cfg, train[0], 400)
    codec_parts()
    load_onnx_weights(latent, expand(cfg.latent_onnx))
    d_lat = check_against_onnx(latent, expand(cfg.latent_onnx), np.asarray(val[0][:2]))
    pixel = Segmenter(trunk_arch(cfg))
    load_onnx_weights(pixel, expand(cfg.trunk_onnx))
    d_pix = check_against_onnx(pixel, expand(cfg.trunk_onnx), np.asarray(pixels["val"][:2]))
    print(f"rebuilt {cfg.latent_onnx} (logits within {d_lat:.4f} of onnxruntime's) and "
          f"{cfg.trunk_onnx} ({d_pix:.4f})", flush=True)
    freeze_batchnorm(latent)
    pixel.eval().requires_grad_(False)

    # the hint: the latent stem and ``inp`` learn the pixel network's ``inp`` features
    params = [p for n, p in latent.named_parameters()
              if p.requires_grad and (n.startswith("stem.") or n.startswith("head.inp."))]
    opt = torch.optim.AdamW(params, lr=cfg.hint_lr, weight_decay=0.0)
    log = open(os.path.join(cfg.out_dir, "stitch.log.jsonl"), "a")
    acc, t0 = [], time.time()
    for step in range(cfg.hint_steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, cfg.hint_steps, cfg.hint_lr, min(100, cfg.hint_steps // 5), cfg.min_lr)
        x, _, where = batch_at(step, cfg, train)
        with torch.no_grad():
            want = inp_features(pixel, pixel_crops(pixels["train"], where, cfg.crop))
        got = inp_features(latent, x)
        loss = F.mse_loss(got, want) / want.pow(2).mean().clamp(min=1e-8)   # relative: 1 = no fit
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        acc.append(loss.item())
        if (step + 1) % cfg.log_interval == 0 or step + 1 == cfg.hint_steps:
            log_line(log, {"hint_step": step + 1, "relative_mse": float(np.mean(acc)),
                           "s_per_step": (time.time() - t0) / len(acc)})
            acc, t0 = [], time.time()

    kept = take_trunk(latent, pixel, cfg.trunk_blocks)
    print("latent head weights not from the pixel network: "
          f"{sorted({k.rsplit('.', 2)[0] if k.startswith('blocks.') else k for k in kept})}", flush=True)
    rec = evaluate(latent, val, cfg, torch.device("cpu"))
    freeze_batchnorm(latent)
    log_line(log, {"stitched": True, **rec})
    macs, n_params = count_macs(latent, to_tensor(val[0][:1]))
    codec = codec_meta(cfg.cache_dir, cfg.codec_id)
    seg_cfg = {k: v for k, v in dataclasses.asdict(cfg).items()
               if k in {f.name for f in dataclasses.fields(segment.Config)}}
    save_atomic({"model": latent.state_dict(), "step": 0, "best": rec, "history": [rec],
                 "config": seg_cfg, "stitch": {k: getattr(cfg, k) for k in
                                               ("latent_onnx", "trunk_onnx", "trunk_input",
                                                "trunk_blocks", "hint_steps", "hint_lr")},
                 "frozen_bn": True, "arch": arch, "macs": macs, "params": n_params,
                 "codec": codec, "git_commit": git_commit(), "code": code_snapshot(),
                 "task": "segment"}, out)
    print(json.dumps({"stitched": out, "val_miou": rec["val_miou"], "macs": macs}), flush=True)


if __name__ == "__main__":
    main()
