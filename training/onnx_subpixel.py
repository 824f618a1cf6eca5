"""Rewrites strided ConvTranspose nodes of an ONNX graph as Conv + DepthToSpace (sub-pixel form).

A transposed convolution with stride s computes each of its s x s output phases as an ordinary
convolution of the input with a subset of its taps; stacking the phases as channels and interleaving
them with DepthToSpace gives the same tensor. onnxruntime's CPU ConvTranspose is a GEMM followed by
col2im, while its Conv has blocked (NCHWc) kernels: the codecs' synthesis (three 5x5 stride-2
layers) of a 768x512 image runs about 1.6x faster in sub-pixel form (``python3
training/onnx_subpixel.py MODEL --check`` prints the timing of both and the largest difference
between their outputs; docs/RESULTS.md).

The new Conv reads a K' x K' window (K' = 3 for a 5x5 kernel at stride 2) for every phase, with
zeros at the taps a phase does not use: the file and the arithmetic run grow by K'^2 s^2 / k^2
(1.44x for these layers), the model's arithmetic does not. Each new Conv keeps the ConvTranspose it
replaced in its ``doc_string`` (``{"subpixel_of": {kernel, stride, pad, output_padding}}``), so
that ``transposed_weights`` gives the original weight back (from_onnx.py and segment.py read the
codec's layers through ``conv_layers``) and onnx_macs counts the ConvTranspose's multiply-accumulates,
the figure the manifests give.

    python3 training/onnx_subpixel.py --codec ls-f8-q2 --version 0.3.1                 # a shipped codec, in place

Only what the shipped graphs use is handled: group 1, dilation 1, explicit pads, no ``output_shape``,
a constant weight (an initializer, or an initializer behind one Cast as fp16 storage leaves it), and
an output length that is a multiple of the stride for every input length. Any other ConvTranspose
is left as it is.

    python3 training/onnx_subpixel.py MODEL.onnx --check                 # report only
    python3 training/onnx_subpixel.py MODEL.onnx -o out.onnx --check
"""
import argparse
import json
import math
import os
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


def transposed_weights(wc, bias, of):
    """The ConvTranspose weight (Cin, Cout, k, k) and bias that ``phase_kernel`` turned into ``wc``
    (Cout*s*s, Cin, K', K') and a bias repeated s*s times; ``of`` is the Conv's ``subpixel_of``."""
    s, p, k = of["stride"], of["pad"], of["kernel"]
    d_min = math.ceil((p - (k - 1)) / s)
    K = wc.shape[-1]
    phases = wc.reshape(-1, s, s, wc.shape[1], K, K)
    w = np.zeros((wc.shape[1], phases.shape[0], k, k), dtype=wc.dtype)
    for ky in range(k):
        for kx in range(k):
            # the phase and window tap that read tap (ky, kx): ky = ry + p - s * (d_min + a)
            ry, rx = (ky - p) % s, (kx - p) % s
            a, b = (ry + p - ky) // s - d_min, (rx + p - kx) // s - d_min
            w[:, :, ky, kx] = phases[:, ry, rx, :, a, b].T
    return w, (None if bias is None else bias[::s * s])


def subpixel_of(node):
    """The ConvTranspose parameters a rewritten Conv records, or None for any other node."""
    if node.op_type != "Conv" or not node.doc_string.startswith("{"):
        return None
    return json.loads(node.doc_string).get("subpixel_of")


def conv_layers(proto):
    """[(op, [weight, bias...])] of the graph's Conv and ConvTranspose nodes in order, weights as
    float32 (fp16 storage widened); a sub-pixel Conv is given back as the ConvTranspose it was."""
    init = {i.name: numpy_helper.to_array(i).astype(np.float32) for i in proto.graph.initializer}
    casts = {n.output[0]: n.input[0] for n in proto.graph.node if n.op_type == "Cast"}
    layers = []
    for n in proto.graph.node:
        if n.op_type not in ("Conv", "ConvTranspose"):
            continue
        arrays = [init[casts.get(name, name)] for name in n.input[1:] if name]
        of = subpixel_of(n)
        if of:
            w, b = transposed_weights(arrays[0], arrays[1] if len(arrays) > 1 else None, of)
            layers.append(("ConvTranspose", [w] + ([] if b is None else [b])))
        else:
            layers.append((n.op_type, arrays))
    return layers


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
                of={"kernel": k, "stride": s, "pad": p, "output_padding": op}), None


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
                                      doc_string=json.dumps({"subpixel_of": plan["of"]}),
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


def rewrite_codec(codec_id, version, manifest_path, shape):
    """Rewrites a shipped codec's synthesis.onnx in place and its manifest entry: new sha256 and
    size, the given version, and the rewrite's check under ``training.synthesis_subpixel``. The
    analysis transform, the tables, and so every bitstream and latent, are unchanged."""
    import datetime
    import hashlib
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "codec"))
    from export import update_manifest
    with open(manifest_path) as f:
        entry = next((e for e in json.load(f)["models"] if e["id"] == codec_id and e["kind"] == "codec"), None)
    if entry is None:
        raise SystemExit(f"no codec {codec_id} in {manifest_path}")
    path = os.path.join(os.path.dirname(manifest_path), entry["files"]["synthesis"]["path"])
    with open(path, "rb") as f:
        before = hashlib.sha256(f.read()).hexdigest()
    original = onnx.load(path)
    rewritten, report = subpixel(original)
    if not any(r["rewritten"] for r in report):
        raise SystemExit(f"{path}: no ConvTranspose to rewrite")
    check = compare(original, rewritten, shape)
    if check["outputs"][0]["max_abs"] > 1e-4:
        raise SystemExit(f"{path}: the rewritten graph differs by {check['outputs'][0]['max_abs']}")
    data = rewritten.SerializeToString()
    with open(path, "wb") as f:
        f.write(data)
    entry["files"]["synthesis"].update(sha256=hashlib.sha256(data).hexdigest(), bytes=len(data))
    entry["training"]["synthesis_subpixel"] = {
        "from_version": entry["version"], "from_sha256": before, "layers": sum(r["rewritten"] for r in report),
        "check": check, "date": datetime.date.today().isoformat(),
        "command": f"python3 training/onnx_subpixel.py --codec {codec_id} --version {version}"}
    entry["version"] = version
    update_manifest(manifest_path, entry)
    return entry["training"]["synthesis_subpixel"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", nargs="?", help="an ONNX file (report only, or -o)")
    ap.add_argument("-o", "--out", help="write the rewritten graph here")
    ap.add_argument("--check", action="store_true", help="compare outputs and timing with onnxruntime")
    ap.add_argument("--shape", default="1,64,64,96", help="input shape for --check (default: a 768x512 image's latents)")
    ap.add_argument("--codec", help="rewrite this shipped codec's synthesis.onnx and its manifest entry instead")
    ap.add_argument("--version", help="with --codec: the entry's new version")
    ap.add_argument("--manifest", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models", "manifest.json"))
    args = ap.parse_args()
    shape = [int(v) for v in args.shape.split(",")]
    if args.codec:
        if not args.version:
            raise SystemExit("--codec needs --version (the file changes, so does the version)")
        json.dump(rewrite_codec(args.codec, args.version, args.manifest, shape), sys.stdout, indent=1)
        print()
        return
    if not args.model:
        raise SystemExit("give an ONNX file, or --codec ID --version V")
    original = onnx.load(args.model)
    rewritten, report = subpixel(original)
    result = {"model": args.model, "nodes": report}
    if args.check:
        result["check"] = compare(original, rewritten, shape)
    if args.out:
        onnx.save(rewritten, args.out)
        result["out"] = args.out
    json.dump(result, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
