"""Shared helpers of the task scripts: config overrides, seeds, checkpoints, schedule, MAC count.

Nothing here knows about a particular task; ``classify.py`` and ``segment.py`` import it.
"""
import hashlib
import json
import math
import os
import subprocess
import sys

import numpy as np
import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DEFAULT_CACHE = "~/.cache/latentsight"
DEFAULT_DATA = os.path.join(os.path.dirname(REPO), "shared", "data")
LICENSE = ("Trained on non-commercial research data (Imagenette under ImageNet terms, CamVid "
           "under CC BY-NC 4.0); the model inherits those terms: research use only.")


# ---------------------------------------------------------------- config overrides (nanoGPT)

sys.path.insert(0, os.path.dirname(HERE))
from overrides import apply_overrides, parse_overrides  # noqa: E402,F401  (re-exported to the task scripts)


def resolve_run(cfg_cls, cfg, raw, runtime_keys):
    """(config, checkpoint or None). Without --resume an existing ckpt.pt is refused; with it the
    saved config wins, except runtime keys; other changed keys are applied with a warning."""
    cfg.out_dir = expand(cfg.out_dir or os.path.join(cfg.cache_dir, "tasks", "runs", cfg.run_name))
    ckpt_path = os.path.join(cfg.out_dir, "ckpt.pt")
    if not cfg.resume:
        if os.path.exists(ckpt_path):
            raise SystemExit(f"{ckpt_path} exists: pass --resume, or another --run_name")
        return cfg, None
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    saved = cfg_cls(**ckpt["config"])
    for k in raw:
        if k in runtime_keys:
            setattr(saved, k, getattr(cfg, k))
        elif k != "run_name" and getattr(saved, k) != getattr(cfg, k):
            print(f"warning: --resume with changed {k}: {getattr(saved, k)!r} -> "
                  f"{getattr(cfg, k)!r}", flush=True)
            setattr(saved, k, getattr(cfg, k))
    saved.resume = True
    return saved, ckpt


def pick_device(name):
    return torch.device("cuda" if name == "cuda" or (name == "auto" and torch.cuda.is_available())
                        else "cpu")


def autocast(device, amp):
    """bf16 autocast on CUDA when ``amp``; a no-op on CPU."""
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp and device.type == "cuda")


def codec_meta(cache_dir, codec_id):
    """The codec fingerprint that latents.py wrote beside the arrays."""
    path = os.path.join(expand(cache_dir), "tasks", codec_id, "meta.json")
    with open(path) as f:
        return json.load(f).get("codec")


def synthesis_layer(cache_dir, codec_id):
    """(weight, bias, gamma, beta) of the first ConvTranspose and inverse GDN of the codec's
    synthesis.onnx, the very file whose sha256 latents.py recorded (a ConvTranspose in sub-pixel
    form is read back as the ConvTranspose: training/onnx_subpixel.py)."""
    import onnx
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    from onnx_subpixel import conv_layers
    with open(os.path.join(expand(cache_dir), "tasks", codec_id, "meta.json")) as f:
        meta = json.load(f)
    path = os.path.join(meta["codec_location"], "synthesis.onnx")
    if sha256_file(path) != meta["codec"].get("synthesis_sha256"):
        raise SystemExit(f"{path} is not the synthesis the cached latents were made with")
    layers = conv_layers(onnx.load(path))
    first = next(i for i, (op, _) in enumerate(layers) if op == "ConvTranspose")
    (weight, bias), (op, (gamma, beta)) = layers[first][1], layers[first + 1]   # then IGDN's 1x1 norm
    if op != "Conv" or gamma.shape[2:] != (1, 1):
        raise SystemExit(f"{path}: no inverse GDN after the first transposed convolution")
    return weight, bias, gamma, beta


def set_codec_parts(model, cfg, x_train, scale_images):
    """Sets what a latent network takes from its codec rather than learns: the per-channel latent
    scale (from ``scale_images`` train latents) and the synthesis stem's codec layer."""
    from nets import latent_input, synthesis_stem
    if cfg.input == "latent" and cfg.latent_scale:
        latent_input(model).scale.copy_(channel_scale(x_train, scale_images))
    stem = synthesis_stem(model)
    if stem is not None:
        stem.load_synthesis(*synthesis_layer(cfg.cache_dir, cfg.codec_id))


def load_init(model, cfg, arch, metric, set_codec_parts, grow=None):
    """Loads ``--init``'s weights (not its optimizer) into ``model``.

    A run on another codec's latents is refused unless ``cfg.init_other_codec``: fine-tuning a
    head to a successor codec whose transforms started from its predecessor's, so that its latent
    channels keep their meaning. Then ``set_codec_parts()`` (the function above, bound to this run)
    sets what the run derives from its own codec again, over the init's copy.

    An init whose BatchNorms were folded from a graph is refused unless ``cfg.freeze_bn``.
    Another architecture is refused unless ``grow`` is given (segment.py ``--init_grow``): then
    ``model`` may be the init's network with residual blocks added (``grow_from``)."""
    init = torch.load(expand(cfg.init), map_location="cpu", weights_only=False)
    # BatchNorms folded from a graph (stitch.py; a run of --init_onnx) are only right with their
    # statistics frozen (segment.py --freeze_bn)
    if init.get("frozen_bn") and not getattr(cfg, "freeze_bn", False):
        raise SystemExit(f"--init {cfg.init}: its BatchNorms were folded from a graph and must "
                         "stay frozen: add --freeze_bn")
    if init["arch"] != arch and grow is None:
        raise SystemExit(f"--init {cfg.init}: another architecture ({init['arch']})")
    # the latents are the analysis transform's alone (a synthesis rewritten in sub-pixel form,
    # training/onnx_subpixel.py, is the same function and keeps them valid)
    theirs = (init.get("codec") or {}).get("analysis_sha256")
    other = (cfg.input in ("latent", "decoded")
             and theirs != codec_meta(cfg.cache_dir, cfg.codec_id).get("analysis_sha256"))
    if other and not cfg.init_other_codec:
        raise SystemExit(f"--init {cfg.init}: trained on another codec's latents "
                         "(--init_other_codec fine-tunes it to this codec's)")
    state = {k: v.float() if v.is_floating_point() else v for k, v in init["model"].items()}
    grown = ""
    if init["arch"] != arch:
        diff = grow_from(model, init["arch"], state, *grow, cfg.init)
        changed = {k: init["arch"].get(k) for k in arch if init["arch"].get(k) != arch[k]}
        grown = f", grown from {changed} (logits within {diff:.2g} of the init's)"
    else:
        model.load_state_dict(state)
    if other:
        set_codec_parts()
    print(f"initialised from {cfg.init} ({metric} {init['best'].get(metric)}{grown}"
          f"{', another codec: codec parts from ' + cfg.codec_id if other else ''})", flush=True)


def grow_from(model, their_arch, state, build, example, path, tol=1e-4):
    """Starts ``model`` from a smaller network of its family: every weight of ``state`` (the
    network ``build(their_arch)``) must be in ``model`` with the same shape, and the weights
    ``model`` has beyond them keep their initialisation. Added residual blocks start as the
    identity (nets.BasicBlock zero-initialises its last BatchNorm's scale), so the grown network
    computes what the init did; that is checked on ``example`` (eval mode), and the largest
    difference of the logits is returned."""
    ours = model.state_dict()
    extra = sorted(set(state) - set(ours))
    reshaped = sorted(k for k in state if k in ours and ours[k].shape != state[k].shape)
    if extra or reshaped:
        why = ([f"missing here: {', '.join(extra[:3])}"] if extra else []) + \
              ([f"other shapes: {', '.join(reshaped[:3])}"] if reshaped else [])
        raise SystemExit(f"--init {path}: not a smaller network of this one's family "
                         f"({their_arch}; {'; '.join(why)})")
    model.load_state_dict(state, strict=False)
    theirs = build(their_arch)
    theirs.load_state_dict(state)
    was_training = model.training
    theirs.eval()
    model.eval()
    with torch.no_grad():
        diff = (theirs(example) - model(example)).abs().max().item()
    model.train(was_training)
    if not diff <= tol:
        raise SystemExit(f"--init {path}: the grown network does not start as the init's function "
                         f"(logits differ by {diff:.3g}): only residual blocks may be added")
    return diff


def synthesis_arch(cfg):
    """The arch keys of a latent network whose stem is nets.SynthesisStem (classify.py and
    segment.py share its config fields synth_out, synth_blocks and synth_block_width)."""
    return {"latent_stem": "synthesis", "synth_hidden": 96, "synth_out": cfg.synth_out,
            **({"synth_blocks": cfg.synth_blocks, "synth_block_width": cfg.synth_block_width}
               if cfg.synth_blocks else {})}


def channel_scale(x_train, n=1000):
    """1/std per latent channel over (up to) n train images; 1 for (nearly) constant channels."""
    sample = np.asarray(x_train[:n], dtype=np.float32)
    std = sample.std(axis=(0, 2, 3))
    scale = np.where(std > 0.05, 1.0 / np.maximum(std, 0.05), 1.0)
    return torch.from_numpy(scale.astype(np.float32))


def int_list(text):
    """'64,128,256' -> [64, 128, 256] (config fields stay strings, so overrides stay simple)."""
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise SystemExit(f"expected comma-separated integers, got {text!r}")


# ---------------------------------------------------------------- run bookkeeping

def seed_everything(seed):
    import random
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def git_commit():
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=HERE, capture_output=True,
                             text=True, timeout=10)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def code_snapshot():
    """Source of this package: a run may start before its code is committed."""
    return {n: open(os.path.join(HERE, n)).read()
            for n in sorted(os.listdir(HERE)) if n.endswith(".py")}


def save_atomic(obj, path):
    tmp = path + ".tmp"
    torch.save(obj, tmp)
    os.replace(tmp, path)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def expand(path):
    return os.path.abspath(os.path.expanduser(path))


def log_line(fh, rec):
    """One JSON line to stdout and to the run's log."""
    line = json.dumps(rec)
    print(line, flush=True)
    if fh is not None:
        fh.write(line + "\n")
        fh.flush()


def lr_at(step, total, peak, warmup, min_lr=0.0):
    """Linear warmup over ``warmup`` steps, then cosine from ``peak`` to ``min_lr`` at ``total``."""
    if step < warmup:
        return peak * (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_lr + 0.5 * (peak - min_lr) * (1 + math.cos(math.pi * t))


def make_optimizer(model, name, lr, weight_decay, momentum=0.9):
    """SGD (Nesterov) or AdamW; no weight decay on BatchNorm parameters and biases."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=True)
    return torch.optim.AdamW(groups, lr=lr)


# ---------------------------------------------------------------- MACs and parameters

def count_macs(model, *inputs):
    """Multiply-accumulates of one forward pass per item of the batch, from hooks on
    Conv2d / ConvTranspose2d / Linear (the layers that dominate; BN, ReLU, pooling and
    interpolation are not counted, as usual), plus ``functional_macs(input)`` of any module
    that defines it (convolutions it calls as functions). Returns (macs, params).
    """
    total = [0]

    def conv_hook(m, inp, out):
        k = m.kernel_size[0] * m.kernel_size[1] * (m.in_channels // m.groups)
        total[0] += out[0].numel() * k            # out[0]: one item of the batch

    def tconv_hook(m, inp, out):
        k = m.kernel_size[0] * m.kernel_size[1] * (m.out_channels // m.groups)
        total[0] += inp[0][0].numel() * k         # every input value is scattered to k outputs

    def linear_hook(m, inp, out):
        total[0] += out[0].numel() * m.in_features

    def functional_hook(m, inp, out):           # convolutions a module runs as F.conv2d
        total[0] += m.functional_macs(inp[0][:1])

    hooks = []
    for mod in model.modules():
        if isinstance(mod, nn.Conv2d):
            hooks.append(mod.register_forward_hook(conv_hook))
        elif isinstance(mod, nn.ConvTranspose2d):
            hooks.append(mod.register_forward_hook(tconv_hook))
        elif isinstance(mod, nn.Linear):
            hooks.append(mod.register_forward_hook(linear_hook))
        if hasattr(mod, "functional_macs"):
            hooks.append(mod.register_forward_hook(functional_hook))
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(*inputs)
    model.train(was_training)
    for h in hooks:
        h.remove()
    params = sum(p.numel() for p in model.parameters())
    return total[0], params


def fmt_macs(macs):
    return f"{macs / 1e6:.1f} M" if macs < 1e9 else f"{macs / 1e9:.2f} G"

