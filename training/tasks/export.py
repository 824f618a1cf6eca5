"""Export a task checkpoint to ONNX with post-processing in the graph, and its manifest entry.

    python3 training/tasks/export.py --id cls-latent-ls-f8-q2 --version 0.1.0 \\
        --ckpt ~/.cache/latentsight/tasks/runs/cls-latent-ls-f8-q2/best.pt [--write-manifest]

Graphs (dynamic batch axis ``N``):

- classifier on latents: ``latents`` int16 [N,64,h,w] (cast in-graph) -> ``scores`` float32
  [N,5] (softmax probabilities of the top 5, descending) and ``classes`` int64 [N,5].
- classifier on pixels (rgb, rgb-cheap, decoded): ``image`` float32 [N,3,224,224] in [0,1].
- segmenter on latents: ``latents`` int16 [N,64,h,w] -> ``mask`` uint8 [N,8h,8w] (argmax).
- segmenter on pixels: ``image`` float32 [N,3,H,W] in [0,1], H and W multiples of 8 -> ``mask``
  uint8 [N,H,W].

Latent models go to ``<out>/<id>/``, baselines to ``<out>/baselines/<id>/``. Before writing,
onnxruntime is checked against torch (on cached val data when present, else random inputs, at
two batch sizes), and the MACs counted on the ONNX graph against the torch count. The manifest
entry is printed; ``--write-manifest`` also merges it into ``<out>/manifest.json``.
"""
import argparse
import dataclasses
import datetime
import hashlib
import io
import json
import os
import re
import sys
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from onnx_macs import onnx_macs  # noqa: E402
from onnx_subpixel import subpixel  # noqa: E402
from onnx_weights import fp16_weights as fp16_storage  # noqa: E402
from common import DEFAULT_CACHE, DEFAULT_DATA, LICENSE, REPO, count_macs, expand, git_commit  # noqa: E402
import classify  # noqa: E402
import segment  # noqa: E402
from nets import Classifier, Segmenter  # noqa: E402

OPSET = 17
TOP_K = 5
MAX_BYTES = 15 * 2 ** 20


class ClassifierGraph(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        probs = torch.softmax(self.net(x).float(), dim=1)
        scores, classes = torch.topk(probs, TOP_K, dim=1, largest=True, sorted=True)
        return scores, classes


class SegmenterGraph(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return torch.argmax(self.net(x), dim=1).to(torch.uint8)


def tensor(name, dtype, dims):
    return {"name": name, "dtype": dtype, "dims": dims}


def graph_spec(arch):
    """(wrapper class, example input, input spec, output specs, dynamic axes, notes)."""
    latent = arch["input"] == "latent"
    if arch["task"] == "classify":
        outs = [tensor("scores", "float32", ["N", TOP_K]), tensor("classes", "int64", ["N", TOP_K])]
        dyn = {"scores": {0: "N"}, "classes": {0: "N"}}
        if latent:
            return (ClassifierGraph, torch.zeros(2, 64, 28, 28, dtype=torch.int16),
                    tensor("latents", "int16", ["N", 64, "h", "w"]), outs,
                    {"latents": {0: "N", 2: "h", 3: "w"}, **dyn},
                    "latents of a 224x224 image (28x28); softmax top-5, descending")
        return (ClassifierGraph, torch.rand(2, 3, 224, 224),
                tensor("image", "float32", ["N", 3, 224, 224]), outs, {"image": {0: "N"}, **dyn},
                "image in [0,1]; softmax top-5, descending")
    if latent:
        return (SegmenterGraph, torch.zeros(2, 64, 46, 60, dtype=torch.int16),
                tensor("latents", "int16", ["N", 64, "h", "w"]),
                [tensor("mask", "uint8", ["N", "8h", "8w"])],
                {"latents": {0: "N", 2: "h", 3: "w"}, "mask": {0: "N", 1: "H", 2: "W"}},
                "per-pixel argmax over 11 classes; crop the mask to the image size")
    return (SegmenterGraph, torch.rand(2, 3, 368, 480),
            tensor("image", "float32", ["N", 3, "H", "W"]),
            [tensor("mask", "uint8", ["N", "H", "W"])],
            {"image": {0: "N", 2: "H", 3: "W"}, "mask": {0: "N", 1: "H", 2: "W"}},
            "image in [0,1], H and W multiples of 8 (pad by edge replication); per-pixel argmax")


def to_onnx(module, example, in_spec, out_specs, dynamic):
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (example,), f, dynamo=False, opset_version=OPSET,
                          input_names=[in_spec["name"]],
                          output_names=[o["name"] for o in out_specs],
                          dynamic_axes=dynamic)
    proto = onnx.load_from_string(f.getvalue())
    onnx.checker.check_model(proto)
    return proto


def session(proto):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(proto.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def check_inputs(arch, ckpt, cache_dir, n=None):
    """Real val inputs from the latents.py cache when present, else random ones."""
    cfg = ckpt["config"]
    tasks = os.path.join(expand(cache_dir), "tasks")
    name = "imagenette-val" if arch["task"] == "classify" else "camvid-val"
    kind = {"latent": "latents", "decoded": "decoded"}.get(arch["input"], "rgb")
    folder = "source" if kind == "rgb" else cfg["codec_id"]
    path = os.path.join(tasks, folder, f"{name}.{kind}.npy")
    n = n or (8 if arch["task"] == "classify" else 3)
    if os.path.exists(path):
        a = np.array(np.load(path, mmap_mode="r")[:n])
        return (a if a.dtype == np.int16 else
                np.ascontiguousarray(a.transpose(0, 3, 1, 2), dtype=np.float32) / 255.0), path
    rng = np.random.default_rng(0)
    if arch["input"] == "latent":
        shape = (n, 64, 28, 28) if arch["task"] == "classify" else (n, 64, 46, 60)
        return rng.integers(-3, 4, shape).astype(np.int16), "random"
    shape = (n, 3, 224, 224) if arch["task"] == "classify" else (n, 3, 368, 480)
    return rng.random(shape, dtype=np.float32), "random"


@torch.no_grad()
def check(graph, proto, arch, x):
    """onnxruntime vs torch at batch sizes len(x) and 1; raises on disagreement."""
    sess, name = session(proto), proto.graph.input[0].name
    report = {}
    for b in (len(x), 1):
        xb = x[:b]
        ref = graph(torch.from_numpy(xb))
        got = sess.run(None, {name: xb})
        if arch["task"] == "classify":
            s_ref, c_ref = ref[0].numpy(), ref[1].numpy()
            assert got[0].dtype == np.float32 and got[1].dtype == np.int64, [g.dtype for g in got]
            assert got[0].shape == (b, TOP_K) and got[1].shape == (b, TOP_K)
            err = float(np.abs(got[0] - s_ref).max())
            top1 = float(np.mean(got[1][:, 0] == c_ref[:, 0]))
            if err > 1e-4 or top1 < 1.0:
                raise SystemExit(f"onnxruntime disagrees with torch: scores max error {err:.2e}, "
                                 f"top-1 agreement {top1:.3f}")
            report[f"batch_{b}"] = {"scores_max_abs_err": err, "top1_agreement": top1,
                                    "descending": bool(np.all(np.diff(got[0], axis=1) <= 0))}
        else:
            m_ref = ref.numpy()
            assert got[0].dtype == np.uint8 and got[0].shape == m_ref.shape, got[0].shape
            agree = float(np.mean(got[0] == m_ref))
            if agree < 0.999:
                raise SystemExit(f"onnxruntime disagrees with torch on {1 - agree:.2%} of pixels")
            report[f"batch_{b}"] = {"pixel_agreement": agree}
    return report


def fp16_weights(proto):
    """Weights of 16 values or more stored as float16 (training/onnx_weights.py)."""
    return fp16_storage(proto, min_elements=16)


def choose_weights(proto, arch, ckpt, args, n_cls=512, n_seg=16):
    """fp16 storage halves the file; kept when its outputs match fp32's on real val inputs."""
    if args.weights != "auto":
        return {"stored": args.weights, "checked": False}
    x, source = check_inputs(arch, ckpt, args.cache_dir, n=n_cls if arch["task"] == "classify" else n_seg)
    s32, s16 = session(proto), session(fp16_weights(proto))
    name = proto.graph.input[0].name
    agree = []
    for i in range(0, len(x), 8):
        a, b = s32.run(None, {name: x[i:i + 8]})[-1], s16.run(None, {name: x[i:i + 8]})[-1]
        agree.append(np.mean((a[:, 0] == b[:, 0]) if arch["task"] == "classify" else (a == b)))
    agreement = float(np.mean(agree))
    what = "top1_agreement" if arch["task"] == "classify" else "pixel_agreement"
    return {"stored": "fp16" if agreement >= 0.995 else "fp32", "checked": True, "inputs": source,
            "n": len(x), what: agreement}


def labels_of(task, data):
    if task == "classify":
        classes = json.load(open(os.path.join(data, "imagenette", "classes.json")))
        return [{"id": w, "name": classes[w]} for w in sorted(classes)], None
    meta = json.load(open(os.path.join(data, "camvid", "classes.json")))
    return [{"id": i, "name": n} for i, n in enumerate(meta["classes"])], meta["void_index"]


def synthesis_macs(codec_id, shape_hw):
    """MACs of the codec's synthesis at a latent size, from its ONNX graph in models/<codec_id>/."""
    path = os.path.join(REPO, "models", codec_id, "synthesis.onnx")
    if not os.path.exists(path):
        print(f"warning: {path} not found: macs_path leaves out the synthesis", flush=True)
        return None
    return onnx_macs(onnx.load(path), [1, 64, *shape_hw])


KSERVE_DATATYPES = {"int16": "INT16", "float32": "FP32", "int64": "INT64", "uint8": "UINT8"}


def kserve_spec(spec):
    """{name, dtype, dims} -> the origin manifest's {name, datatype, shape}."""
    return {"name": spec["name"], "datatype": KSERVE_DATATYPES[spec["dtype"]],
            "shape": [d if isinstance(d, int) else -1 for d in spec["dims"]]}


def manifest_entry(args, ckpt, arch, files, in_spec, out_specs, notes, macs, data):
    cfg, task = ckpt["config"], arch["task"]
    labels, void = labels_of(task, data)
    latent_hw = (28, 28) if task == "classify" else (46, 60)
    entry = {
        "id": args.id, "kind": "classifier" if task == "classify" else "segmenter",
        "version": args.version, "input": arch["input"],
        "codec": cfg["codec_id"] if arch["input"] in ("latent", "decoded") else None,
        "files": files,
        "shapes": {"model": {"inputs": [in_spec], "outputs": out_specs, "notes": notes}},
        # What the origin serves (KServe v2 names and datatypes; -1 for a dynamic axis).
        "inputs": [kserve_spec(in_spec)], "outputs": [kserve_spec(o) for o in out_specs],
        "labels": labels,
        "macs": macs, "params": ckpt["params"],
        "macs_at": ("224x224 image (28x28 latents)" if task == "classify"
                    else "480x368 image (46x60 latents; CamVid padded from 360 rows)"),
    }
    if void is not None:
        entry["void_index"] = void
    entry["macs_path"] = macs
    if arch["input"] == "decoded":
        syn = synthesis_macs(cfg["codec_id"], latent_hw)
        entry["synthesis_macs"] = syn
        entry["macs_path"] = macs + syn if syn else None
    data_note = ("Imagenette train (../shared/data/imagenette/train), label = index of sorted wnid"
                 if task == "classify" else
                 "CamVid train (../shared/data/camvid/train), void = 11 ignored")
    entry["training"] = {"data": data_note, "steps": ckpt["step"], "config": cfg,
                         "codec": ckpt.get("codec"), "git_commit": ckpt.get("git_commit"),
                         "export_commit": git_commit(),
                         "exported": datetime.date.today().isoformat()}
    if args.note:
        entry["training"]["note"] = args.note
    entry["license"] = LICENSE
    best = {k: v for k, v in ckpt["best"].items() if k not in ("eval_s",)}
    script, module = ("classify.py", classify) if task == "classify" else ("segment.py", segment)
    defaults = dataclasses.asdict(module.Config())
    changed = [f"--{k} {v}" for k, v in cfg.items()
               if k not in module.RUNTIME_KEYS and k not in ("run_name", "out_dir")
               and (k == "input" or v != defaults.get(k) or (k == "codec_id" and entry["codec"]))
               and not (k == "codec_id" and not entry["codec"])]
    dataset = "imagenette" if task == "classify" else "camvid"
    entry["metrics"] = {"split": f"{dataset} val (../shared/data, the model selection split)",
                        **best,
                        "command": " ".join([f"python3 training/tasks/{script}", *changed])}
    return entry


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", required=True, help="best.pt of a classify.py / segment.py run")
    ap.add_argument("--id", required=True, help="stable model id, [a-z0-9._-]{1,32}")
    ap.add_argument("--version", required=True)
    ap.add_argument("--out", default=os.path.join(REPO, "models"))
    ap.add_argument("--data", default=DEFAULT_DATA, help="for the label lists (classes.json)")
    ap.add_argument("--cache-dir", "--cache_dir", default=DEFAULT_CACHE,
                    help="val inputs for the check")
    ap.add_argument("--write-manifest", "--write_manifest", action="store_true")
    ap.add_argument("--note", default="", help="where and how it was trained, for the manifest")
    ap.add_argument("--weights", choices=["auto", "fp16", "fp32"], default="auto",
                    help="auto: fp16 storage unless it changes >0.5%% of top-1 classes / mask pixels "
                         "against fp32 on val inputs")
    args = ap.parse_args()
    if not re.fullmatch(r"[a-z0-9._-]{1,32}", args.id):
        raise SystemExit(f"--id {args.id!r}: 1-32 characters of [a-z0-9._-]")
    torch.set_num_threads(1)
    ckpt = torch.load(expand(args.ckpt), map_location="cpu", weights_only=False)
    arch = ckpt["arch"]
    net = (Classifier if arch["task"] == "classify" else Segmenter)(arch)
    net.load_state_dict(ckpt["model"])
    net.eval()
    wrapper, example, in_spec, out_specs, dynamic, notes = graph_spec(arch)
    graph = wrapper(net).eval()
    proto = subpixel(to_onnx(graph, example, in_spec, out_specs, dynamic))[0]   # ConvTranspose as Conv + DepthToSpace

    x, source = check_inputs(arch, ckpt, args.cache_dir)
    report = {"check_inputs": source, "torch_vs_onnxruntime": check(graph, proto, arch, x)}
    macs = onnx_macs(proto, [1] + list(example.shape[1:]))
    torch_macs = count_macs(net, example)[0]      # today's counter (the run's may predate it)
    report["macs"] = {"onnx": macs, "torch": torch_macs, "at_training": ckpt["macs"]}
    if abs(macs - torch_macs) > 0.01 * torch_macs:
        raise SystemExit(f"MAC counts disagree: ONNX graph {macs}, torch hooks {torch_macs}")

    report["weights"] = choose_weights(proto, arch, ckpt, args)
    if report["weights"]["stored"] == "fp16":
        proto = fp16_weights(proto)
    data = proto.SerializeToString()
    if len(data) > MAX_BYTES:
        raise SystemExit(f"{len(data)} bytes: over the {MAX_BYTES}-byte limit per model file")
    role = "classifier" if arch["task"] == "classify" else "segmenter"
    rel = f"{args.id}/{role}.onnx"
    rel = rel if arch["input"] == "latent" else f"baselines/{rel}"
    path = os.path.join(expand(args.out), rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    files = {"model": {"path": rel, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}}
    entry = manifest_entry(args, ckpt, arch, files, in_spec, out_specs, notes, macs,
                           expand(args.data))
    # Metrics come from the fp32 network; `weights` says how the file stores them and how closely
    # the stored graph agrees with fp32 on val inputs.
    entry["weights"] = report["weights"]
    if args.write_manifest:
        manifest_path = os.path.join(expand(args.out), "manifest.json")
        manifest = {"schema": 1, "models": []}
        if os.path.exists(manifest_path):
            with open(manifest_path) as f:
                manifest = json.load(f)
        ids = [e["id"] for e in manifest["models"]]
        if args.id in ids:
            manifest["models"][ids.index(args.id)] = entry
        else:
            manifest["models"].append(entry)
        with open(manifest_path, "w") as f:
            json.dump(manifest, f, indent=2)
            f.write("\n")
    report["written"] = path
    print(json.dumps({"entry": entry, "report": report}, indent=1))


if __name__ == "__main__":
    main()
