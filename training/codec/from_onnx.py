"""Rebuild a shipped codec's transforms in PyTorch from its exported ONNX graphs.

    python3 training/codec/from_onnx.py models/ls-f8-q2          # check against onnxruntime

A training checkpoint holds the codec's entropy model as well; the exported graphs do not (the
tables hold its quantised CDFs). What the graphs do hold, exactly, is every weight of the analysis
and synthesis transforms: three (transposed) 5x5 convolutions each, with a GDN or inverse GDN
(a 1x1 convolution of x^2 by gamma, plus beta) between them. ``load_transforms`` copies those
into ``model.FactorizedCodec`` (GDN parameters through the inverse of their non-negative
reparametrisation) and leaves the entropy model as initialised, so that ``train.py --init_onnx``
can fine-tune a shipped codec when its checkpoint is gone: the density is refitted first, with the
transforms frozen (``--freeze_transforms_steps``).
"""
import argparse
import os
import sys

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from model import GDN, FactorizedCodec  # noqa: E402


def graph_weights(path):
    """[(op, [arrays])] of the graph's Conv / ConvTranspose nodes in order, fp16 weights as fp32; a
    ConvTranspose exported in sub-pixel form (Conv + DepthToSpace) comes back as the ConvTranspose."""
    import onnx
    from onnx_subpixel import conv_layers
    return conv_layers(onnx.load(path))


def _load_sequence(seq, weights, path):
    """seq: conv, GDN, conv, GDN, conv. weights: the graph's five (transposed) convolutions."""
    if len(weights) != len(seq):
        raise SystemExit(f"{path}: {len(weights)} convolutions, the codec has {len(seq)} layers")
    for layer, (op, arrays) in zip(seq, weights):
        if isinstance(layer, GDN):
            gamma, beta = arrays
            c = beta.shape[0]
            if op != "Conv" or gamma.shape != (c, c, 1, 1):
                raise SystemExit(f"{path}: expected a GDN's 1x1 convolution, got {op} {gamma.shape}")
            layer.gamma.data.copy_(layer.gamma_reparam.init(torch.from_numpy(gamma).view(c, c)))
            layer.beta.data.copy_(layer.beta_reparam.init(torch.from_numpy(beta)))
        else:
            weight, bias = arrays
            if tuple(layer.weight.shape) != weight.shape:
                raise SystemExit(f"{path}: weight {weight.shape}, the codec's is {tuple(layer.weight.shape)}")
            layer.weight.data.copy_(torch.from_numpy(weight))
            layer.bias.data.copy_(torch.from_numpy(bias))


def load_transforms(codec_dir, N=96, M=64):
    """A FactorizedCodec whose g_a and g_s are the graphs' (the entropy model freshly initialised)."""
    codec = FactorizedCodec(N, M)
    for seq, name in ((codec.g_a, "analysis.onnx"), (codec.g_s, "synthesis.onnx")):
        path = os.path.join(codec_dir, name)
        _load_sequence(seq, graph_weights(path), path)
    return codec


@torch.no_grad()
def compare(codec, codec_dir, image):
    """(fraction of latents that differ, max abs pixel difference) against onnxruntime."""
    import onnxruntime as ort
    x = np.asarray(image, np.float32).transpose(2, 0, 1)[None] / 255.0
    h, w = x.shape[2] // 8 * 8, x.shape[3] // 8 * 8
    x = np.ascontiguousarray(x[:, :, :h, :w])
    run = lambda name, feed: ort.InferenceSession(os.path.join(codec_dir, name),  # noqa: E731
                                                  providers=["CPUExecutionProvider"]).run(None, feed)[0]
    y_ref = run("analysis.onnx", {"image": x})
    x_ref = run("synthesis.onnx", {"latents": y_ref.astype(np.float32)})
    y = torch.round(codec.g_a(torch.from_numpy(x))).clamp(-32768, 32767).numpy().astype(y_ref.dtype)
    x_hat = codec.g_s(torch.from_numpy(y_ref.astype(np.float32))).clamp(0, 1).numpy()
    return float(np.mean(y != y_ref)), float(np.abs(x_hat - x_ref).max())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("codec_dir", help="a folder with analysis.onnx and synthesis.onnx, e.g. models/ls-f8-q2")
    ap.add_argument("--image", default=os.path.join(os.path.dirname(__file__), "..", "..", "test",
                                                    "fixtures", "kodim23.png"))
    args = ap.parse_args()
    codec = load_transforms(args.codec_dir).eval()
    differ, err = compare(codec, args.codec_dir, Image.open(args.image).convert("RGB"))
    print(f"latents differing from onnxruntime: {differ:.2e}; synthesis max abs error {err:.2e}")
    if differ > 1e-3 or err > 1e-3:
        raise SystemExit("the rebuilt transforms do not match the graphs")


if __name__ == "__main__":
    main()
