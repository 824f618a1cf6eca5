"""An int8 variant of a shipped task model, for origins that run on CPUs.

    python3 training/tasks/quantize.py --model seg-latent-ls-f8-q2 [--data ../shared/data]

The model's graph from ``models/`` (its fp16 weights widened back to float32, its ConvTranspose in
sub-pixel form: ``training/onnx_subpixel.py``) is quantised statically by onnxruntime: QDQ format,
int8 weights per output channel, uint8 activations whose ranges come from train images encoded by
the codec's own analysis transform, as a client's encoder makes them: ``--calibration`` of the
model's own dataset (Imagenette or CamVid, a seeded sample) and ``--other`` of the other one. Ranges
seen only on the model's own scenes clip the activations of other images: calibrated on CamVid
alone (``--other 0``), the q2 segmenter's masks shared as little as 9.6% of their pixels with the
float model's on a Kodak image; with a third of Imagenette in the sample, at least 64% (median 92%;
``npm run bench -- int8``, docs/RESULTS.md). The report gives the agreement on further train images
of both datasets. Val is never read.

The result is a new manifest entry ``<id>-int8`` (same codec, labels, I/O and MACs, its own file
and sha256, ``quantized_from`` naming the source), placed after its source so that the source stays
the default; an edge serves it for its (codec, task) pair when ``TASK_MODELS`` names it. Its metrics
are left empty: measure them through the product path and record them with record_eval.py:

    npx latentsight eval segment --images ../shared/data/camvid/val --masks ../shared/data/camvid/valannot \\
        --model seg-latent-ls-f8-q2-int8 --json > /tmp/evals/seg-q2-int8.json
    python3 training/tasks/record_eval.py /tmp/evals/seg-q2-int8.json

On this project's 2-core Xeon (AVX-512 VNNI), onnxruntime runs the int8 segmenter about 2x faster
than the float graph; a GPU origin keeps the float models (docs/DEPLOY.md).
"""
import argparse
import copy
import datetime
import hashlib
import json
import os
import sys
import tempfile

import numpy as np
import onnx

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "codec"))   # its export.py (update_manifest), not ours
from onnx_subpixel import subpixel  # noqa: E402
from onnx_weights import widen_fp16  # noqa: E402
from export import update_manifest  # noqa: E402
from common import DEFAULT_DATA, REPO  # noqa: E402
from latents import CAMVID_H, CAMVID_PAD_H, CAMVID_W, IMAGENETTE_SIDE, camvid_files, imagenette_files, load_rgb, pad_rows  # noqa: E402

MODELS = os.path.join(REPO, "models")


DATASETS = {"classifier": "imagenette", "segmenter": "camvid"}


def train_latents(dataset, codec_dir, data, n, seed):
    """``n`` images of ``dataset``'s train split (a seeded sample) through the codec's analysis:
    int16 latents as a client's encoder makes them. Imagenette at 224x224, CamVid at 480x360 with
    its rows padded to 368, as the task models were trained."""
    import onnxruntime as ort
    if dataset == "imagenette":
        files, _ = imagenette_files(data, "train", 0)
        load = lambda p: load_rgb(p, (IMAGENETTE_SIDE, IMAGENETTE_SIDE))
    else:
        files, _ = camvid_files(data, "train", 0)
        load = lambda p: pad_rows(load_rgb(p, (CAMVID_W, CAMVID_H)))
    picked = np.random.default_rng(seed).permutation(len(files))[:n]
    analysis = ort.InferenceSession(os.path.join(codec_dir, "analysis.onnx"), providers=["CPUExecutionProvider"])
    name = analysis.get_inputs()[0].name
    return [analysis.run(None, {name: load(files[i]).astype(np.float32).transpose(2, 0, 1)[None] / 255.0})[0]
            for i in picked]


class Reader:
    """onnxruntime's CalibrationDataReader over a list of latents."""

    def __init__(self, name, arrays):
        self.name, self.it = name, iter(arrays)

    def get_next(self):
        x = next(self.it, None)
        return None if x is None else {self.name: x}


def head_nodes(proto):
    """The logits layer (the graph's last Conv, Gemm or MatMul) and every node that reads what it
    makes: softmax, top-k, resize, argmax. They stay in float: a fraction of a percent of the MACs,
    and quantised they would round the logits and the probabilities to 256 levels, so that the API's
    scores came in steps of 1/255 and near-equal classes tied in top-k and argmax."""
    nodes = list(proto.graph.node)
    last = max(i for i, n in enumerate(nodes) if n.op_type in ("Conv", "Gemm", "MatMul"))
    reached, names = set(nodes[last].output), [nodes[last].name]
    for n in nodes[last + 1:]:
        if any(i in reached for i in n.input):
            reached.update(n.output)
            names.append(n.name)
    return names


def quantize(proto, input_name, latents, method):
    """(int8 graph, names of the nodes left in float)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process
    with tempfile.TemporaryDirectory() as tmp:
        src, pre, out = (os.path.join(tmp, f) for f in ("float.onnx", "pre.onnx", "int8.onnx"))
        onnx.save(proto, src)
        quant_pre_process(src, pre, skip_symbolic_shape=True)
        head = head_nodes(onnx.load(pre))
        quantize_static(pre, out, Reader(input_name, latents), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                        nodes_to_exclude=head,
                        calibrate_method={"minmax": CalibrationMethod.MinMax,
                                          "percentile": CalibrationMethod.Percentile}[method])
        result = onnx.load(out)
    onnx.checker.check_model(result)
    return result, head


def agreement(float_proto, int8_proto, input_name, latents):
    """Fraction of top-1 classes / mask pixels that the int8 graph shares with the float graph."""
    import onnxruntime as ort
    sessions = [ort.InferenceSession(p.SerializeToString(), providers=["CPUExecutionProvider"]) for p in (float_proto, int8_proto)]
    same = total = 0
    for x in latents:
        a, b = (s.run(None, {input_name: x})[-1] for s in sessions)
        a, b = (v[..., 0] if v.ndim == 2 else v for v in (a, b))
        same += int((a == b).sum())
        total += a.size
    return same / total


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="manifest id of a task model on latents")
    ap.add_argument("--data", default=DEFAULT_DATA)
    ap.add_argument("--manifest", default=os.path.join(MODELS, "manifest.json"))
    ap.add_argument("--calibration", type=int, default=64, help="train images of the model's own dataset for the activation ranges")
    ap.add_argument("--other", type=int, default=32, help="train images of the other dataset, added to the calibration")
    ap.add_argument("--check", type=int, default=16, help="further images of each dataset for the agreement check")
    ap.add_argument("--method", choices=["minmax", "percentile"], default="minmax")
    ap.add_argument("--seed", type=int, default=1337)
    args = ap.parse_args()

    with open(args.manifest) as f:
        entries = {e["id"]: e for e in json.load(f)["models"]}
    entry = entries.get(args.model)
    if not entry or entry["kind"] not in ("classifier", "segmenter") or entry["input"] != "latent":
        raise SystemExit(f"{args.model}: not a task model on latents in {args.manifest}")
    codec = entries[entry["codec"]]
    models = os.path.dirname(os.path.abspath(args.manifest))     # manifest paths are relative to it
    src_path = os.path.join(models, entry["files"]["model"]["path"])
    source = onnx.load(src_path)
    input_name = source.graph.input[0].name

    own = DATASETS[entry["kind"]]
    other = next(d for d in DATASETS.values() if d != own)
    codec_dir = os.path.dirname(os.path.join(models, codec["files"]["analysis"]["path"]))
    own_latents = train_latents(own, codec_dir, args.data, args.calibration + args.check, args.seed)
    other_latents = train_latents(other, codec_dir, args.data, args.other + args.check, args.seed + 1)
    calib = own_latents[:args.calibration] + other_latents[:args.other]
    widened, rewrites = subpixel(widen_fp16(source))
    int8, head = quantize(widened, input_name, calib, args.method)
    unit = "top-1 classes" if entry["kind"] == "classifier" else "mask pixels"
    agree = {name: {"images": args.check, "fraction": round(agreement(source, int8, input_name, lat), 6)}
             for name, lat in ((own, own_latents[args.calibration:]), (other, other_latents[args.other:]))}

    qid = f"{entry['id']}-int8"
    rel = os.path.join(qid, os.path.basename(entry["files"]["model"]["path"]))
    data = int8.SerializeToString()
    os.makedirs(os.path.join(models, qid), exist_ok=True)
    with open(os.path.join(models, rel), "wb") as f:
        f.write(data)
    with open(src_path, "rb") as f:
        src_sha = hashlib.sha256(f.read()).hexdigest()
    out = copy.deepcopy(entry)
    out.update(id=qid, files={"model": {"path": rel, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}},
               metrics={}, weights={"stored": "int8", "format": "QDQ: int8 weights per output channel, uint8 activations",
                                    "calibration": {"train_images": {own: args.calibration, other: args.other},
                                                    "seed": args.seed, "method": args.method},
                                    "agreement_with_source": {"unit": unit, "train_images_not_in_calibration": agree},
                                    "subpixel_rewrites": sum(r["rewritten"] for r in rewrites),
                                    "float_nodes": head},
               quantized_from={"id": entry["id"], "version": entry["version"], "sha256": src_sha},
               quantized_at=datetime.date.today().isoformat())
    update_manifest(args.manifest, out)
    print(json.dumps({"id": qid, "file": rel, "bytes": len(data), "agreement": agree}))


if __name__ == "__main__":
    main()
