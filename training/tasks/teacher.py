"""A trained classifier's logits on every Imagenette train image, as the teacher of a distilled run.

    python3 training/tasks/teacher.py ~/.cache/latentsight/tasks/runs/cls-rgb/best.pt
    python3 training/tasks/classify.py --input latent --teacher ~/.cache/latentsight/tasks/teachers/cls-rgb.npy

Writes ``<cache_dir>/tasks/teachers/<name>.npy``: float32 [N, 2, classes], the logits of image i
as it is (``[:, 0]``) and flipped left-right (``[:, 1]``), in the order of the train arrays of
``latents.py``, so that a student that read image i (or its flipped latents) looks up its teacher.
The teacher reads its own input kind (pixels for ``rgb``; a latent teacher reads the latents and
their flipped copy) without random crops. Train images only: val never teaches.

The teacher may also be an exported classifier (``classifier.onnx`` of ``export.py``, e.g.
``models/baselines/cls-rgb/classifier.onnx``): its logits are the input of the graph's Softmax,
read through onnxruntime, so a shipped baseline teaches without its training checkpoint.

    python3 training/tasks/teacher.py models/baselines/cls-rgb/classifier.onnx --name cls-rgb

An exported segmenter teaches a latent segmenter the same way (``segment.py --teacher``): its
logits at the head's 1/2 resolution (the input of the graph's final Resize) on every CamVid train
image and its flip, float16 [N, 2, classes, H/2, W/2]; a ``seg-decoded-*`` baseline reads the
decoded pixels of its codec (``--codec_id``), which ``latents.py`` made from the same bitstreams.

    python3 training/tasks/teacher.py models/baselines/seg-decoded-ls-f8-q2/segmenter.onnx \
        --name seg-decoded-ls-f8-q2 --codec_id ls-f8-q2 --batch 8
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import DEFAULT_CACHE, expand  # noqa: E402
from classify import to_tensor  # noqa: E402
from nets import Classifier  # noqa: E402
from segment import VOID  # noqa: E402


class OnnxTeacher:
    """An exported model whose logits are exposed as an extra graph output: a classifier's
    pre-softmax logits, or a segmenter's logits before the in-graph upsampling to full size (the
    input of the Resize that feeds its ArgMax), i.e. at the head's own 1/2 resolution."""

    def __init__(self, path, num_threads, latents=False):
        """``latents``: the graph reads int16 latents (a latent segmenter, for onnx_init's check)
        rather than pixels."""
        import onnx
        import onnxruntime as ort
        proto = onnx.load(path)
        softmax = [n for n in proto.graph.node if n.op_type == "Softmax"]
        argmax = [n for n in proto.graph.node if n.op_type == "ArgMax"]
        if len(softmax) == 1:
            self.task, self.logits = "classify", softmax[0].input[0]
        elif len(argmax) == 1 and not softmax:
            resize = [n for n in proto.graph.node if n.op_type == "Resize" and argmax[0].input[0] in n.output]
            if len(resize) != 1:
                raise SystemExit(f"{path}: the segmenter's ArgMax does not read a Resize (export.py's segmenter)")
            self.task, self.logits = "segment", resize[0].input[0]
        else:
            raise SystemExit(f"{path}: expected one Softmax (export.py's classifier) or one ArgMax "
                             f"(its segmenter), found {len(softmax)} and {len(argmax)}")
        proto.graph.output.append(onnx.helper.make_tensor_value_info(self.logits, onnx.TensorProto.FLOAT, None))
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = num_threads
        self.session = ort.InferenceSession(proto.SerializeToString(), opts,
                                            providers=["CPUExecutionProvider"])
        inp = self.session.get_inputs()[0]
        want, what = ("tensor(int16)", "latent batch") if latents else ("tensor(float)", "RGB image batch")
        if inp.type != want or len(inp.shape) != 4 or (not latents and inp.shape[1] != 3):
            raise SystemExit(f"{path}: input {inp.name} {inp.type} {inp.shape} is not an {what}")
        self.input = inp.name

    def __call__(self, x):
        """x: float NCHW in [0,1] (or int16 latents) -> logits [N, classes] (classifier) or
        [N, classes, H/2, W/2] (segmenter)."""
        return torch.from_numpy(self.session.run([self.logits], {self.input: x.numpy()})[0])


def segment_teacher(model, args, tasks):
    """The segmenter's half-resolution logits on every CamVid train image, as it is and flipped
    left-right: float16 [N, 2, classes, H/2, W/2]. Its pixels are those it was trained on: the
    codec's decoded train images for a ``decoded`` teacher (``--codec_id``), else the source."""
    if args.codec_id:
        x_all = np.load(os.path.join(tasks, args.codec_id, "camvid-train.decoded.npy"), mmap_mode="r")
    else:
        x_all = np.load(os.path.join(tasks, "source", "camvid-train.rgb.npy"), mmap_mode="r")
    n = min(len(x_all), args.limit) if args.limit else len(x_all)
    masks = np.load(os.path.join(tasks, "source", "camvid-train.masks.npy"), mmap_mode="r")
    out, agree = None, np.zeros(2)
    for s in range(0, n, args.batch):
        e = min(n, s + args.batch)
        x = torch.from_numpy(np.array(x_all[s:e])).permute(0, 3, 1, 2).float().div_(255.0)
        for flip in (0, 1):
            logits = model(x.flip(3) if flip else x).numpy()
            if out is None:
                out = np.zeros((n, 2) + logits.shape[1:], np.float16)
            out[s:e, flip] = logits
        full = F.interpolate(torch.from_numpy(out[s:e, 0].astype(np.float32)), scale_factor=2,
                             mode="bilinear", align_corners=False)
        pred, truth = full.argmax(1).numpy(), np.asarray(masks[s:e])
        keep = truth != VOID
        agree += [(pred[keep] == truth[keep]).sum(), keep.sum()]
        print(f"{e}/{n}", flush=True)
    return out, {"train_pixel_accuracy": round(float(agree[0] / max(1, agree[1])), 4)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ckpt", help="a classifier checkpoint (best.pt of classify.py) or an exported "
                    "RGB classifier.onnx")
    ap.add_argument("--name", default="", help="output name (default: the checkpoint's run name)")
    ap.add_argument("--cache_dir", default=DEFAULT_CACHE)
    ap.add_argument("--num_threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--limit", type=int, default=0, help="> 0: the first N images only (tests)")
    ap.add_argument("--codec_id", default="", help="an exported segmenter: the codec whose decoded "
                    "CamVid train images it reads (a seg-decoded-* baseline); default: the source pixels")
    args = ap.parse_args()
    torch.set_num_threads(args.num_threads)

    if args.ckpt.endswith(".onnx"):
        if not args.name:
            raise SystemExit("--name is required for an ONNX teacher")
        model = OnnxTeacher(expand(args.ckpt), args.num_threads)
        arch, cfg = {"input": "rgb", "classes": None}, {}
        if model.task == "segment":
            tasks = os.path.join(expand(args.cache_dir), "tasks")
            out, check = segment_teacher(model, args, tasks)
            path = os.path.join(tasks, "teachers", f"{args.name}.npy")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            np.save(path, out)
            print(json.dumps({"teacher": path, "images": len(out), "shape": list(out.shape), **check,
                              "codec_id": args.codec_id or None, "ckpt": args.ckpt}), flush=True)
            return
    else:
        ckpt = torch.load(expand(args.ckpt), map_location="cpu", weights_only=False)
        arch, cfg = ckpt["arch"], ckpt["config"]
        if arch.get("task") != "classify":
            raise SystemExit(f"{args.ckpt} is a {arch.get('task')} checkpoint, not a classifier")
        model = Classifier(arch)
        model.load_state_dict(ckpt["model"])
        model.eval()

    tasks = os.path.join(expand(args.cache_dir), "tasks")
    if arch["input"] == "latent":
        d = os.path.join(tasks, cfg["codec_id"])
        plain = np.load(os.path.join(d, "imagenette-train.latents.npy"), mmap_mode="r")
        flipped = np.load(os.path.join(d, "imagenette-train-flip.latents.npy"), mmap_mode="r")
    elif arch["input"] in ("rgb", "rgb-cheap"):
        plain = np.load(os.path.join(tasks, "source", "imagenette-train.rgb.npy"), mmap_mode="r")
        flipped = None
    else:
        raise SystemExit(f"a {arch['input']} teacher is not supported (rgb, rgb-cheap or latent)")
    n = min(len(plain), args.limit) if args.limit else len(plain)

    out = None
    with torch.no_grad():
        for s in range(0, n, args.batch):
            e = min(n, s + args.batch)
            x = to_tensor(plain[s:e])
            logits = model(x).float().numpy()
            if out is None:
                out = np.zeros((n, 2, logits.shape[1]), np.float32)
            out[s:e, 0] = logits
            x = to_tensor(flipped[s:e]) if flipped is not None else x.flip(3)
            out[s:e, 1] = model(x).float().numpy()
            if (s // args.batch) % 10 == 0:
                print(f"{e}/{n}", flush=True)

    name = args.name or cfg.get("run_name") or "teacher"
    path = os.path.join(tasks, "teachers", f"{name}.npy")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    np.save(path, out)
    labels = np.load(os.path.join(tasks, "source", "imagenette-train.labels.npy"))[:n]
    agree = float((out[:, 0].argmax(1) == labels).mean())
    print(json.dumps({"teacher": path, "images": n, "train_top1_unaugmented": round(agree, 4),
                      "input": arch["input"], "ckpt": args.ckpt}), flush=True)


if __name__ == "__main__":
    main()
