"""Rewrites strided ConvTranspose nodes of an ONNX graph as Conv + DepthToSpace (sub-pixel form).

A transposed convolution with stride s computes each of its s x s output phases as an ordinary
convolution of the input with a subset of its taps; stacking the phases as channels and interleaving
them with DepthToSpace gives the same tensor. onnxruntime's CPU ConvTranspose is a GEMM followed by
col2im, while its Conv has blocked (NCHWc) kernels: on this project's 5x5 stride-2 layers the
sub-pixel form is several times faster (``python3 training/onnx_subpixel.py MODEL --check`` prints
the timing of both and the largest difference between their outputs).

The new Conv reads a K' x K' window (K' = 3 for a 5x5 kernel at stride 2) for every phase, with
zeros at the taps a phase does not use, so a graph MAC count (onnx_macs) rises by K'^2 s^2 / k^2
(1.44x for these layers) though the arithmetic the model needs does not; ``deconv_macs`` in the
report keeps the ConvTranspose count, which is the one the manifests give.

Only what the shipped graphs use is handled: group 1, dilation 1, explicit pads, no ``output_shape``,
a constant weight (an initializer, or an initializer behind one Cast as fp16 storage leaves it), and
an output length that is a multiple of the stride for every input length. Any other ConvTranspose
is left as it is.

    python3 training/onnx_subpixel.py models/ls-f8-q2/synthesis.onnx --check        # report only
    python3 training/onnx_subpixel.py models/ls-f8-q2/synthesis.onnx -o out.onnx --check
"""
import argparse
import json
import math
import sys
import time

import numpy as np
import onnx
from onnx import helper, numpy_helper, TensorProto


def _attrs(node):
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _constant(graph, name):
    """(initializer, cast_node or None) behind a tensor name, or (None, None)."""
    inits = {i.name: i for i in graph.initializer}
    if name in inits:
        return inits[name], None
    for n in graph.node:
        if name in n.output:
            if n.op_type == "Cast" and n.input[0] in inits:
                return inits[n.input[0]], n
            return None, None
    return None, None


def phase_kernel(w, stride, pad_begin, kernel):
    """The Conv weight (Cout*s*s, Cin, K', K') and its begin pad for ConvTranspose weight w
    (Cin, Cout, k, k), channels ordered c*s*s + ry*s + rx (DepthToSpace mode CRD).

    Output row Y = s*m + r reads input row m + d through tap ky = r + p - s*d, for every d with
    0 <= ky < k; the Conv window spans d_min..d_max over all phases."""
    s, p, k = stride, pad_begin, kernel
    d_min = math.ceil((p - (k - 1)) / s)
    d_max = (s - 1 + p) // s
    K = d_max - d_min + 1
    cin, cout = w.shape[:2]
    out = np.zeros((cout, s, s, cin, K, K), dtype=w.dtype)
    for ry in range(s):
        for rx in range(s):
            for a in range(K):
                ky = ry + p - s * (d_min + a)
                if not 0 <= ky < k:
                    continue
                for b in range(K):
                    kx = rx + p - s * (d_min + b)
                    if 0 <= kx < k:
                        out[:, ry, rx, :, a, b] = w[:, :, ky, kx].T
    return out.reshape(cout * s * s, cin, K, K), -d_min, K


def _plan(node, graph):
    """The rewrite of one ConvTranspose, or None with the reason it is left alone."""
    at = _attrs(node)
    k = list(at.get("kernel_shape", []))
    s = list(at.get("strides", [1, 1]))
    pads = list(at.get("pads", [0, 0, 0, 0]))
    op = list(at.get("output_padding", [0, 0]))
    if at.get("group", 1) != 1 or any(d != 1 for d in at.get("dilations", [1, 1])):
        return None, "group or dilation"
    if "output_shape" in at or at.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        return None, "output_shape or auto_pad"
    if len(k) != 2 or k[0] != k[1] or s[0] != s[1] or s[0] < 2 or len(set(pads)) != 1 or op[0] != op[1]:
        return None, "not a square strided 2-D kernel with equal pads"
    init, cast = _constant(graph, node.input[1])
    if init is None:
        return None, "weight is not a constant"
    k, s, p, op = k[0], s[0], pads[0], op[0]
    # Output length (H - 1) s - 2p + k + op = s H + c: a multiple of s for every H when s | c.
    c = -s - 2 * p + k + op
    if c % s:
        return None, "output length not a multiple of the stride"
    w = numpy_helper.to_array(init)
    wc, pad_b, K = phase_kernel(w, s, p, k)
    pad_e = c // s - pad_b + K - 1
    if pad_b < 0 or pad_e < 0:
        return None, "negative pads"
    bias = None
    if len(node.input) > 2 and node.input[2]:
        binit, bcast = _constant(graph, node.input[2])
        if binit is None:
            return None, "bias is not a constant"
        bias = (np.repeat(numpy_helper.to_array(binit), s * s), bcast)
    return dict(wc=wc, cast=cast, bias=bias, stride=s, pads=[pad_b, pad_b, pad_e, pad_e], K=K,
                deconv_macs_per_pixel=w.shape[0] * w.shape[1] * k * k), None


def subpixel(proto):
    """A copy of ``proto`` with every ConvTranspose it can rewrite in sub-pixel form, and a report."""
    proto = onnx.ModelProto.FromString(proto.SerializeToString())
    g = proto.graph
    nodes, report = [], []
    for node in g.node:
        if node.op_type != "ConvTranspose":
            nodes.append(node)
            continue
        plan, why = _plan(node, g)
        if plan is None:
            report.append({"node": node.name, "rewritten": False, "why": why})
            nodes.append(node)
            continue
        base = node.name.strip("/").replace("/", "_") or node.output[0]
        inputs = [node.input[0]]
        for role, arr, cast in (("weight", plan["wc"], plan["cast"]),
                                ("bias", *(plan["bias"] or (None, None)))):
            if arr is None:
                continue
            name = f"{base}.subpixel_{role}"
            if cast is not None:  # fp16 storage stays fp16 (the rearrangement is exact)
                g.initializer.append(numpy_helper.from_array(arr, name + "_fp16"))
                nodes.append(helper.make_node("Cast", [name + "_fp16"], [name], to=TensorProto.FLOAT))
            else:
                g.initializer.append(numpy_helper.from_array(arr, name))
            inputs.append(name)
        phases = f"{base}.subpixel_phases"
        K = plan["K"]
        nodes.append(helper.make_node("Conv", inputs, [phases], name=f"{node.name}_subpixel_conv",
                                      kernel_shape=[K, K], pads=plan["pads"], strides=[1, 1]))
        nodes.append(helper.make_node("DepthToSpace", [phases], list(node.output), name=f"{node.name}_subpixel_d2s",
                                      blocksize=plan["stride"], mode="CRD"))
        report.append({"node": node.name, "rewritten": True, "kernel": K, "stride": plan["stride"]})
    del g.node[:]
    g.node.extend(nodes)
    _drop_unused(g)
    onnx.checker.check_model(proto)
    return proto, report


def _drop_unused(g):
    """Removes initializers and Cast nodes that nothing reads any more (the old weights)."""
    while True:
        used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
        dead = [n for n in g.node if n.op_type == "Cast" and not any(o in used for o in n.output)]
        for n in dead:
            g.node.remove(n)
        used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
        stale = [i for i in g.initializer if i.name not in used]
        for i in stale:
            g.initializer.remove(i)
        if not dead and not stale:
            return


def compare(original, rewritten, shape, runs=5, seed=0):
    """Largest output difference and median run times of both graphs on one random input."""
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sessions = [ort.InferenceSession(p.SerializeToString(), opts, providers=["CPUExecutionProvider"])
                for p in (original, rewritten)]
    inp = sessions[0].get_inputs()[0]
    dtype = {"tensor(float)": np.float32, "tensor(int16)": np.int16}[inp.type]
    x = np.random.default_rng(seed).normal(0, 2, size=shape).round().astype(dtype)
    outs, times = [], []
    for sess in sessions:
        out = sess.run(None, {inp.name: x})
        ts = []
        for _ in range(runs):
            t0 = time.perf_counter()
            sess.run(None, {inp.name: x})
            ts.append(time.perf_counter() - t0)
        outs.append(out)
        times.append(float(np.median(ts)) * 1000)
    diffs = []
    for a, b in zip(*outs):
        if np.issubdtype(a.dtype, np.floating):
            diffs.append({"max_abs": float(np.abs(a - b).max()), "scale": float(np.abs(a).max())})
        else:
            diffs.append({"differ": float((a != b).mean())})
    return {"input_shape": list(shape), "outputs": diffs, "ms_original": round(times[0], 2),
            "ms_subpixel": round(times[1], 2), "speedup": round(times[0] / times[1], 2)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("-o", "--out", help="write the rewritten graph here")
    ap.add_argument("--check", action="store_true", help="compare outputs and timing with onnxruntime")
    ap.add_argument("--shape", default="1,64,64,96", help="input shape for --check (default: a 768x512 image's latents)")
    args = ap.parse_args()
    original = onnx.load(args.model)
    rewritten, report = subpixel(original)
    result = {"model": args.model, "nodes": report}
    if args.check:
        result["check"] = compare(original, rewritten, [int(v) for v in args.shape.split(",")])
    if args.out:
        onnx.save(rewritten, args.out)
        result["out"] = args.out
    json.dump(result, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
