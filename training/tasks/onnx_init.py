"""Start a segmenter's run from a shipped ONNX file when its training checkpoint is gone.

    python3 training/tasks/segment.py --input decoded --codec_id ls-f8-q3 \\
        --init_onnx models/baselines/seg-rgb/segmenter.onnx --steps 2500 --lr 5e-4 ...

``export.py`` folds each BatchNorm into the convolution before it and stores the weights as fp16,
so the graph holds, per convolution, one weight and one bias. ``load_onnx_weights`` puts them
back into ``nets.Segmenter``: the weight into the convolution, the bias into the BatchNorm after
it, whose statistics become the identity (mean 0, variance 1 - eps, scale 1). Such a network is
only right with those statistics frozen, so a run started this way keeps every BatchNorm in eval
mode (``freeze_batchnorm``) and trains the convolutions and the BatchNorms' shift and scale; the
export folds them again as before.

The graph's convolutions are matched to the network's in order, shape by shape, and the result is
checked against onnxruntime on real inputs (``check_against_onnx``): the logits before the final
upsampling must agree. A graph of another architecture fails there, not silently.

A latent segmenter with a synthesis stem (``nets.SynthesisStem``) begins with its codec's first
synthesis layer, a transposed convolution and the inverse GDN's 1x1 convolution. Those are not
learnt: the run sets them from its codec (``common.set_codec_parts``), so the graph's copies must
equal them (within fp16 storage) and are then passed over; a graph made for another codec fails.
"""
import os
import sys

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # onnx_subpixel


def graph_convs(path, model):
    """[(weight, bias or None)] of the graph's learnt Conv nodes in node order, as float32 arrays
    (onnx_subpixel.conv_layers, which widens the exporter's fp16 initialisers). For a network with
    a synthesis stem the graph's first two layers are the codec's (see the module docstring)."""
    import onnx
    from nets import synthesis_stem
    from onnx_subpixel import conv_layers
    layers = conv_layers(onnx.load(path))
    stem = synthesis_stem(model)
    if stem is not None:
        if len(layers) < 2 or [op for op, _ in layers[:2]] != ["ConvTranspose", "Conv"]:
            raise SystemExit(f"{path}: does not begin with a synthesis layer; the network's stem does")
        codec = [stem.deconv.weight, stem.deconv.bias, stem.gamma, stem.beta]
        theirs = layers[0][1] + layers[1][1]
        if any(tuple(c.shape) != t.shape or not np.allclose(c.detach().numpy(), t, rtol=2e-3, atol=1e-4)
               for c, t in zip(codec, theirs)):
            raise SystemExit(f"{path}: its synthesis layer is not this run's codec's")
        layers = layers[2:]
    if any(op != "Conv" for op, _ in layers):
        raise SystemExit(f"{path}: a transposed convolution where the network has none")
    return [(a[0], a[1] if len(a) > 1 else None) for _, a in layers]


def conv_slots(model):
    """[(conv, batchnorm or None)] of the network in module order: each Conv2d with the
    BatchNorm2d that follows it in the same nn.Sequential (nets.conv_bn), if any."""
    slots = []
    for module in model.modules():
        if isinstance(module, nn.Sequential):
            kids = list(module.children())
            for i, k in enumerate(kids):
                if isinstance(k, nn.Conv2d):
                    bn = kids[i + 1] if i + 1 < len(kids) and isinstance(kids[i + 1], nn.BatchNorm2d) else None
                    slots.append((k, bn))
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    seen = {id(c) for c, _ in slots}
    slots += [(c, None) for c in convs if id(c) not in seen]
    return slots


def load_onnx_weights(model, path):
    """Copies the graph's folded convolutions into ``model`` (see the module docstring), matched to
    the network's Conv2d modules in the order a forward pass runs them (the graph's node order);
    every pair must agree in shape."""
    weights = graph_convs(path, model)
    slots = conv_slots(model)
    if len(weights) != len(slots):
        raise SystemExit(f"{path}: {len(weights)} convolutions, the network has {len(slots)}")
    order = execution_order(model, slots)
    with torch.no_grad():
        for (conv, bn), (w, b) in zip(order, weights):
            if tuple(conv.weight.shape) != w.shape:
                raise SystemExit(f"{path}: a convolution of shape {w.shape} where the network has "
                                 f"{tuple(conv.weight.shape)}: another architecture")
            conv.weight.copy_(torch.from_numpy(w))
            bias = torch.from_numpy(b) if b is not None else torch.zeros(w.shape[0])
            if bn is not None:
                bn.running_mean.zero_()
                bn.running_var.fill_(1.0 - bn.eps)
                bn.weight.fill_(1.0)
                bn.bias.copy_(bias)
            elif conv.bias is not None:
                conv.bias.copy_(bias)
            elif b is not None and np.any(b != 0):
                raise SystemExit(f"{path}: a convolution with a bias where the network has none")


def execution_order(model, slots):
    """The slots in the order a forward pass runs their convolutions (a hook per Conv2d)."""
    ran, hooks = [], []
    by_conv = {id(c): (c, bn) for c, bn in slots}
    for conv, _ in slots:
        hooks.append(conv.register_forward_hook(lambda m, i, o: ran.append(by_conv[id(m)])))
    was = model.training
    model.eval()
    with torch.no_grad():
        model(example_input(model))
    model.train(was)
    for h in hooks:
        h.remove()
    if len(ran) != len(slots):
        raise SystemExit(f"a forward pass ran {len(ran)} of the network's {len(slots)} convolutions")
    return ran


def example_input(model):
    """A small input of the network's kind: int16 latents or an RGB image."""
    from nets import latent_input
    scale = latent_input(model)
    if scale is not None:
        return torch.zeros(1, scale.scale.shape[0], 8, 8, dtype=torch.int16)
    return torch.zeros(1, 3, 64, 64)


def freeze_batchnorm(model):
    """Every BatchNorm in eval mode (running statistics fixed; scale and shift still train)."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


def check_against_onnx(model, path, x, tol=0.05):
    """Runs ``x`` (uint8 [N,H,W,3] pixels or int16 latents) through the network and through the
    graph with onnxruntime; raises unless the logits before the final upsampling agree within
    ``tol`` (fp16 weights) and returns the largest difference."""
    from segment import to_tensor
    from teacher import OnnxTeacher
    t = to_tensor(x)
    ref = OnnxTeacher(path, 1, latents=t.dtype == torch.int16)
    want = ref(t).float()
    got = []
    hook = model.head.cls.register_forward_hook(lambda m, i, o: got.append(o))
    was = model.training
    model.eval()
    with torch.no_grad():
        model(t)
    model.train(was)
    hook.remove()
    diff = float((got[0] - want).abs().max())
    if not diff <= tol:
        raise SystemExit(f"{path}: the rebuilt network's logits differ from onnxruntime's by {diff:.4f}")
    return diff
