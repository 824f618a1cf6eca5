"""Precompute the task data once: source pixels, quantised latents, decoded pixels.

    python3 training/tasks/latents.py --codec-onnx models/ls-f8-q2            # preferred
    python3 training/tasks/latents.py --codec-ckpt /tmp/ckpt.pt --codec-id ls-f8-q2-dev

Three steps (``--steps source,latents,decoded``, all by default), each resumable and skipped
when its arrays exist:

- ``source`` (codec-independent) -> ``<cache>/tasks/source/``: Imagenette train/val as uint8
  [N,224,224,3] with labels (index in sorted wnids) and CamVid train/val as uint8 [N,368,480,3]
  (360 rows padded to 368 by edge replication, so the side divides by 8) with masks uint8
  [N,368,480] (void = 11, also in the padded rows).
- ``latents`` -> ``<cache>/tasks/<codec id>/``: int16 latents of every source image through the
  codec's analysis transform and rounding, i.e. exactly what a client's encoder produces:
  Imagenette [N,64,28,28] for train, train flipped (the image is flipped before encoding) and
  val; CamVid [N,64,46,60] for train, train flipped and val.
- ``decoded``: the synthesis of those latents as uint8 pixels (the equal-bits RGB baselines).

The codec is the exported ONNX pair (``analysis.onnx``/``synthesis.onnx``, run by onnxruntime as
the product runs them) or a training checkpoint (``training/codec/model.py``). The codec dir's
``meta.json`` fingerprints the codec; arrays of another codec are never mixed in (``--force``
discards them).
"""
import argparse
import json
import os
import shutil
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import DEFAULT_CACHE, DEFAULT_DATA, REPO, expand, sha256_file  # noqa: E402

STRIDE = 8
IMAGENETTE_SIDE = 224
CAMVID_H, CAMVID_W, CAMVID_PAD_H = 360, 480, 368
CAMVID_VOID = 11
CHUNK = 128                     # images per resumable chunk


# ---------------------------------------------------------------- codec runtimes

class OnnxCodec:
    """The exported analysis/synthesis graphs through onnxruntime (what the product runs)."""

    def __init__(self, path, threads):
        import onnxruntime as ort
        folder = path if os.path.isdir(path) else os.path.dirname(path)
        self.files = {r: os.path.join(folder, f"{r}.onnx") for r in ("analysis", "synthesis")}
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.sessions = {r: ort.InferenceSession(p, opts, providers=["CPUExecutionProvider"])
                         for r, p in self.files.items() if os.path.exists(p)}
        if "analysis" not in self.sessions:
            raise SystemExit(f"no analysis.onnx in {folder}")
        self.location = os.path.abspath(folder)
        # What identifies the codec: file hashes, never paths (a GPU machine has other paths).
        self.fingerprint = {"kind": "onnx", **{f"{r}_sha256": sha256_file(p)
                                               for r, p in self.files.items() if os.path.exists(p)}}

    def analysis(self, x):
        """float32 [B,3,H,W] in [0,1] -> int16 [B,M,H/8,W/8]."""
        return self.sessions["analysis"].run(None, {"image": x})[0]

    def synthesis(self, y):
        """int16 latents -> float32 [B,3,8h,8w] in [0,1]."""
        if "synthesis" not in self.sessions:
            raise SystemExit("no synthesis.onnx beside analysis.onnx: cannot decode")
        return self.sessions["synthesis"].run(None, {"latents": y.astype(np.float32)})[0]


class OnnxGraph:
    """One exported codec graph run op by op in PyTorch, on any device: the same function as
    onnxruntime's (fp16-stored weights widen exactly to float32; every op in float32, TF32 off),
    for a GPU machine whose onnxruntime has no GPU provider. Only the ops the codec export
    emits are known; any other is refused rather than guessed."""

    OPS = ("Conv", "ConvTranspose", "DepthToSpace", "Mul", "Div", "Sqrt", "Round", "Clip", "Constant", "Cast")
    CASTS = {1: "float", 5: "int16", 6: "int32"}   # TensorProto codes; values stay float32 here

    def __init__(self, path, device):
        import onnx
        from onnx import helper, numpy_helper
        proto = onnx.load(path)
        as_t = lambda a: torch.from_numpy(np.asarray(a, dtype=np.float32).copy()).to(device)
        self.values = {i.name: as_t(numpy_helper.to_array(i)) for i in proto.graph.initializer}
        self.nodes = []
        for n in proto.graph.node:
            if n.op_type not in self.OPS:
                raise SystemExit(f"{path}: op {n.op_type} is unknown to the torch runtime")
            attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
            if n.op_type == "Constant":
                self.values[n.output[0]] = as_t(numpy_helper.to_array(attrs["value"]))
            elif n.op_type == "Cast" and attrs["to"] not in self.CASTS:
                raise SystemExit(f"{path}: Cast to {attrs['to']} is unknown to the torch runtime")
            elif n.op_type == "DepthToSpace" and attrs.get("mode", b"DCR") not in (b"CRD", "CRD"):
                raise SystemExit(f"{path}: DepthToSpace mode {attrs.get('mode')} is unknown to the torch runtime")
            else:
                pads = attrs.get("pads", [0, 0, 0, 0])
                if pads[:2] != pads[2:]:
                    raise SystemExit(f"{path}: asymmetric pads {pads}")
                attrs["padding"] = tuple(pads[:2])
                self.nodes.append((n.op_type, list(n.input), n.output[0], attrs))
        self.input, self.output = proto.graph.input[0].name, proto.graph.output[0].name

    @torch.no_grad()
    def __call__(self, x):
        v = dict(self.values)
        v[self.input] = x
        for op, ins, out, a in self.nodes:
            i = [v[k] for k in ins if k]
            if op == "Conv":
                r = F.conv2d(i[0], i[1], i[2] if len(i) > 2 else None, a.get("strides", 1),
                             a["padding"], a.get("dilations", 1), a.get("group", 1))
            elif op == "ConvTranspose":
                r = F.conv_transpose2d(i[0], i[1], i[2] if len(i) > 2 else None,
                                       a.get("strides", 1), a["padding"],
                                       a.get("output_padding", 0), a.get("group", 1),
                                       a.get("dilations", 1))
            elif op == "DepthToSpace":             # CRD: channel c * b * b + dy * b + dx
                r = F.pixel_shuffle(i[0], a["blocksize"])
            elif op == "Mul":
                r = i[0] * i[1]
            elif op == "Div":
                r = i[0] / i[1]
            elif op == "Sqrt":
                r = torch.sqrt(i[0])
            elif op == "Round":
                r = torch.round(i[0])           # half to even, as ONNX Round
            elif op == "Clip":
                r = torch.clamp(i[0], float(i[1]), float(i[2]))
            elif a["to"] == 1:                  # Cast to float: the values are float32 already
                r = i[0]
            else:                               # Cast to int: truncation, as ONNX casts
                r = torch.trunc(i[0])
            v[out] = r
        return v[self.output]


class TorchOnnxCodec(OnnxCodec):
    """The exported ONNX pair, run by ``OnnxGraph`` on ``device`` (a GPU): the same codec, with
    the same fingerprint, as ``OnnxCodec``. ``check`` measures how many latents differ from
    onnxruntime's on real images (float summation order can move a value across .5)."""

    def __init__(self, path, threads, device):
        super().__init__(path, threads)
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
        self.device = torch.device(device)
        self.graphs = {r: OnnxGraph(p, self.device) for r, p in self.files.items()
                       if os.path.exists(p)}

    def analysis(self, x):
        y = self.graphs["analysis"](torch.from_numpy(x).to(self.device))
        return y.cpu().numpy().astype(np.int16)

    def synthesis(self, y):
        if "synthesis" not in self.graphs:
            raise SystemExit("no synthesis.onnx beside analysis.onnx: cannot decode")
        return self.graphs["synthesis"](torch.from_numpy(y.astype(np.float32)).to(self.device)
                                        ).cpu().numpy()

    def check(self, x):
        """Fraction of latents (and of decoded 8-bit pixels) that differ from onnxruntime's."""
        ours, ref = self.analysis(x), super().analysis(x)
        rep = {"images": len(x), "latents_differing": float(np.mean(ours != ref)),
               "latents_max_abs_diff": int(np.abs(ours.astype(np.int32) - ref).max())}
        if "synthesis" in self.graphs:
            a, b = to_u8(self.synthesis(ref)), to_u8(super().synthesis(ref))
            rep["pixels_differing"] = float(np.mean(a != b))
            rep["pixels_max_abs_diff"] = int(np.abs(a.astype(np.int16) - b).max())
        return rep


class TorchCodec:
    """A codec training checkpoint (FactorizedCodec); rounding as the ONNX export does it."""

    def __init__(self, path, threads, device="cpu"):
        sys.path.insert(0, os.path.join(REPO, "training", "codec"))
        from model import FactorizedCodec
        torch.set_num_threads(threads)
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        cfg = ckpt["config"]
        self.model = FactorizedCodec(cfg["N"], cfg["M"]).eval()
        self.model.load_state_dict(ckpt["model"])
        self.device = torch.device(device)
        self.model.to(self.device)
        self.location = os.path.abspath(path)
        self.fingerprint = {"kind": "ckpt", "step": ckpt["step"],
                            "run_name": cfg.get("run_name"), "lmbda": cfg.get("lmbda"),
                            "sha256": sha256_file(path)}

    @torch.no_grad()
    def analysis(self, x):
        y = torch.round(self.model.g_a(torch.from_numpy(x).to(self.device)))
        return torch.clamp(y, -32768, 32767).cpu().numpy().astype(np.int16)

    @torch.no_grad()
    def synthesis(self, y):
        x = self.model.g_s(torch.from_numpy(y.astype(np.float32)).to(self.device))
        return x.clamp(0, 1).cpu().numpy()


# ---------------------------------------------------------------- resumable array filling

def fill(path, shape, dtype, produce, batch):
    """Writes ``produce(start, stop)`` (rows start..stop) into a .npy of ``shape``, in chunks.

    Progress survives an interruption: rows go to ``<path>.partial.npy`` and the count of
    finished rows to ``<path>.partial.json``; the file is renamed into place when complete.
    Returns seconds spent (0 when the array already existed).
    """
    if os.path.exists(path):
        arr = np.load(path, mmap_mode="r")
        if arr.shape == tuple(shape) and arr.dtype == dtype:
            print(f"  exists: {os.path.basename(path)} {arr.shape}", flush=True)
            return 0.0
        raise SystemExit(f"{path} has shape {arr.shape} {arr.dtype}, expected {shape} {dtype}; "
                         "delete it or pass --force")
    part, prog = path + ".partial.npy", path + ".partial.json"
    out, done = None, 0
    if os.path.exists(part) and os.path.exists(prog):
        out = np.load(part, mmap_mode="r+")
        if out.shape == tuple(shape) and out.dtype == dtype:
            done = json.load(open(prog))["done"]
        else:
            out = None
    if out is None:
        out = np.lib.format.open_memmap(part, mode="w+", dtype=dtype, shape=tuple(shape))
    t0, n = time.time(), shape[0]
    if done:
        print(f"  resuming {os.path.basename(path)} at row {done}", flush=True)
    while done < n:
        stop = min(n, done + CHUNK)
        for s in range(done, stop, batch):
            out[s:min(stop, s + batch)] = produce(s, min(stop, s + batch))
        out.flush()
        done = stop
        with open(prog, "w") as f:
            json.dump({"done": done}, f)
        rate = (time.time() - t0) / max(1, done)
        print(f"  {os.path.basename(path)}: {done}/{n}  ({1000 * rate:.0f} s per 1000 images)",
              flush=True)
    del out
    os.replace(part, path)
    os.remove(prog)
    return time.time() - t0


# ---------------------------------------------------------------- source images

def imagenette_files(data, split, limit_per_class):
    root = os.path.join(data, "imagenette")
    wnids = sorted(json.load(open(os.path.join(root, "classes.json"))))
    files, labels = [], []
    for label, wnid in enumerate(wnids):
        names = sorted(n for n in os.listdir(os.path.join(root, split, wnid))
                       if n.lower().endswith((".jpeg", ".jpg", ".png")))
        names = names[:limit_per_class] if limit_per_class else names
        files += [os.path.join(root, split, wnid, n) for n in names]
        labels += [label] * len(names)
    return files, np.asarray(labels, dtype=np.uint8)


def camvid_files(data, split, limit):
    root = os.path.join(data, "camvid")
    names = sorted(n for n in os.listdir(os.path.join(root, split)) if n.endswith(".webp"))
    names = names[:limit] if limit else names
    images = [os.path.join(root, split, n) for n in names]
    masks = [os.path.join(root, split + "annot", os.path.splitext(n)[0] + ".png") for n in names]
    missing = [m for m in masks if not os.path.exists(m)]
    if missing:
        raise SystemExit(f"{len(missing)} CamVid masks missing, e.g. {missing[0]}")
    return images, masks


def load_rgb(path, size=None):
    with Image.open(path) as im:
        im = im.convert("RGB")
        if size and im.size != size:      # Imagenette here is already 224x224; others are squashed
            im = im.resize(size, Image.BICUBIC)
        return np.asarray(im)


def pad_rows(a, value=None):
    """360 -> 368 rows: edge replication for images, ``value`` (void) for masks."""
    extra = CAMVID_PAD_H - a.shape[0]
    if value is None:
        return np.pad(a, ((0, extra),) + ((0, 0),) * (a.ndim - 1), mode="edge")
    return np.pad(a, ((0, extra),) + ((0, 0),) * (a.ndim - 1), constant_values=value)


def write_list(path, items):
    with open(path, "w") as f:
        f.write("\n".join(items) + "\n")


def source_step(args, src):
    os.makedirs(src, exist_ok=True)
    timing = {}
    if "imagenette" in args.datasets:
        for split in ("train", "val"):
            files, labels = imagenette_files(args.data, split, args.limit_per_class)
            rel = [os.path.relpath(f, args.data) for f in files]
            write_list(os.path.join(src, f"imagenette-{split}.files.txt"), rel)
            np.save(os.path.join(src, f"imagenette-{split}.labels.npy"), labels)
            side = IMAGENETTE_SIDE
            timing[f"imagenette-{split}"] = fill(
                os.path.join(src, f"imagenette-{split}.rgb.npy"), (len(files), side, side, 3),
                np.uint8, lambda a, b: np.stack([load_rgb(f, (side, side)) for f in files[a:b]]),
                args.batch)
    if "camvid" in args.datasets:
        for split in ("train", "val"):
            images, masks = camvid_files(args.data, split, args.camvid_limit)
            write_list(os.path.join(src, f"camvid-{split}.files.txt"),
                       [os.path.relpath(f, args.data) for f in images])
            n = len(images)

            def read_image(path):
                a = load_rgb(path)
                if a.shape[:2] != (CAMVID_H, CAMVID_W):
                    raise SystemExit(f"{path}: {a.shape[1]}x{a.shape[0]}, expected 480x360")
                return pad_rows(a)

            timing[f"camvid-{split}"] = fill(
                os.path.join(src, f"camvid-{split}.rgb.npy"), (n, CAMVID_PAD_H, CAMVID_W, 3),
                np.uint8, lambda a, b: np.stack([read_image(p) for p in images[a:b]]), 4)
            fill(os.path.join(src, f"camvid-{split}.masks.npy"), (n, CAMVID_PAD_H, CAMVID_W),
                 np.uint8, lambda a, b: np.stack([pad_rows(np.asarray(Image.open(p)), CAMVID_VOID)
                                                  for p in masks[a:b]]), 4)
    root = args.data
    meta = {"data": os.path.abspath(root),
            "limit_per_class": args.limit_per_class, "camvid_limit": args.camvid_limit,
            "camvid": {"height": CAMVID_H, "width": CAMVID_W, "padded_height": CAMVID_PAD_H,
                       "void_index": CAMVID_VOID, "padding": "edge rows (image), void (mask)"}}
    if os.path.exists(os.path.join(root, "imagenette", "classes.json")):
        classes = json.load(open(os.path.join(root, "imagenette", "classes.json")))
        wnids = sorted(classes)
        meta["imagenette"] = {"wnids": wnids, "names": [classes[w] for w in wnids]}
    if os.path.exists(os.path.join(root, "camvid", "classes.json")):
        with open(os.path.join(root, "camvid", "classes.json")) as f:
            meta["camvid"]["classes"] = json.load(f)["classes"]
    with open(os.path.join(src, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    return timing


# ---------------------------------------------------------------- latents and decoded pixels

def to_nchw(u8):
    return np.ascontiguousarray(u8.transpose(0, 3, 1, 2), dtype=np.float32) / 255.0


def to_u8(x):
    return np.clip(np.round(x * 255.0), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)


def sets_of(args):
    """(name, source array, flipped?) for every latent array to compute."""
    out = []
    if "imagenette" in args.datasets:
        out += [("imagenette-train", "imagenette-train", False),
                ("imagenette-train-flip", "imagenette-train", True),
                ("imagenette-val", "imagenette-val", False)]
    if "camvid" in args.datasets:
        out += [("camvid-train", "camvid-train", False),
                ("camvid-train-flip", "camvid-train", True),
                ("camvid-val", "camvid-val", False)]
    return out


def latents_step(args, codec, src, dst):
    timing, stats = {}, {}
    for name, source, flip in sets_of(args):
        rgb = np.load(os.path.join(src, f"{source}.rgb.npy"), mmap_mode="r")
        n, h, w, _ = rgb.shape
        batch = args.batch if h <= IMAGENETTE_SIDE else 2

        def encode(a, b, rgb=rgb, flip=flip):
            x = rgb[a:b, :, ::-1] if flip else rgb[a:b]
            return codec.analysis(to_nchw(x))

        probe = codec.analysis(to_nchw(rgb[:1]))
        path = os.path.join(dst, f"{name}.latents.npy")
        timing[name] = fill(path, (n,) + probe.shape[1:], np.int16, encode, batch)
        y = np.load(path, mmap_mode="r")
        sample = np.asarray(y[:min(n, 512)])
        stats[name] = {"zero_fraction": float(np.mean(sample == 0)), "min": int(sample.min()),
                       "max": int(sample.max()),
                       "active_channels": int(np.sum(np.abs(sample).max(axis=(0, 2, 3)) > 0))}
        print(f"  {name}: {stats[name]}", flush=True)
    return timing, stats


def decoded_step(args, codec, dst):
    timing = {}
    for name, _, flip in sets_of(args):
        if flip:
            continue                    # RGB training flips decoded pixels like any pixels
        y = np.load(os.path.join(dst, f"{name}.latents.npy"), mmap_mode="r")
        n, _, h, w = y.shape
        batch = args.batch if h * STRIDE <= IMAGENETTE_SIDE else 2
        timing[name] = fill(os.path.join(dst, f"{name}.decoded.npy"),
                            (n, h * STRIDE, w * STRIDE, 3), np.uint8,
                            lambda a, b, y=y: to_u8(codec.synthesis(np.asarray(y[a:b]))), batch)
    return timing


def check_codec_dir(dst, fingerprint, force):
    meta_path = os.path.join(dst, "meta.json")
    if os.path.exists(meta_path):
        old = json.load(open(meta_path)).get("codec")
        if old != fingerprint:
            if not force:
                raise SystemExit(f"{dst} holds arrays of another codec ({old}); pass --force to "
                                 "discard them, or another --codec-id")
            shutil.rmtree(dst)
    os.makedirs(dst, exist_ok=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=DEFAULT_DATA)
    ap.add_argument("--cache-dir", "--cache_dir", default=DEFAULT_CACHE)
    ap.add_argument("--codec-onnx", "--codec_onnx",
                    help="folder of analysis.onnx + synthesis.onnx (or the file)")
    ap.add_argument("--codec-ckpt", "--codec_ckpt",
                    help="codec training checkpoint (copy it first if it is live)")
    ap.add_argument("--codec-id", "--codec_id",
                    help="names the cache folder; default: the ONNX folder's name")
    ap.add_argument("--datasets", default="imagenette,camvid")
    ap.add_argument("--steps", default="source,latents,decoded")
    ap.add_argument("--limit-per-class", "--limit_per_class", type=int, default=0,
                    help="Imagenette: first K per class")
    ap.add_argument("--camvid-limit", "--camvid_limit", type=int, default=0,
                    help="CamVid: first K of each split")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu",
                    help="cpu, or cuda: a checkpoint, or the ONNX graphs run in PyTorch")
    ap.add_argument("--check", type=int, default=8,
                    help="--codec-onnx on cuda: compare this many images with onnxruntime first")
    ap.add_argument("--force", action="store_true")
    args = ap.parse_args()
    args.data, args.datasets = expand(args.data), args.datasets.split(",")
    steps = set(args.steps.split(","))
    if steps - {"source", "latents", "decoded"}:
        raise SystemExit(f"unknown steps {steps - {'source', 'latents', 'decoded'}}")
    torch.set_num_threads(args.threads)
    tasks = os.path.join(expand(args.cache_dir), "tasks")
    src = os.path.join(tasks, "source")
    report = {}
    if "source" in steps:
        report["source_s"] = source_step(args, src)
    if steps & {"latents", "decoded"}:
        if bool(args.codec_onnx) == bool(args.codec_ckpt):
            raise SystemExit("pass exactly one of --codec-onnx DIR and --codec-ckpt FILE")
        if args.codec_onnx:
            if args.device == "cpu":
                codec = OnnxCodec(expand(args.codec_onnx), args.threads)
            else:
                codec = TorchOnnxCodec(expand(args.codec_onnx), args.threads, args.device)
            codec_id = args.codec_id or os.path.basename(os.path.dirname(codec.files["analysis"]))
        else:
            codec = TorchCodec(expand(args.codec_ckpt), args.threads, args.device)
            if not args.codec_id:
                raise SystemExit("--codec-ckpt needs --codec-id (a checkpoint is not a release)")
            codec_id = args.codec_id
        dst = os.path.join(tasks, codec_id)
        check_codec_dir(dst, codec.fingerprint, args.force)
        meta_path = os.path.join(dst, "meta.json")
        meta = json.load(open(meta_path)) if os.path.exists(meta_path) else {}
        meta.update(codec_id=codec_id, codec=codec.fingerprint, codec_location=codec.location)
        if isinstance(codec, TorchOnnxCodec):
            meta["runtime"] = f"OnnxGraph (PyTorch {torch.__version__}) on {args.device}"
            if args.check:
                name = "imagenette-val" if "imagenette" in args.datasets else "camvid-val"
                rgb = np.load(os.path.join(src, f"{name}.rgb.npy"), mmap_mode="r")
                rep = codec.check(to_nchw(np.asarray(rgb[:args.check])))
                print(f"  torch vs onnxruntime on {name}: {rep}", flush=True)
                meta.setdefault("runtime_check", {})[name] = rep
        else:
            meta["runtime"] = "onnxruntime" if args.codec_onnx else f"checkpoint on {args.device}"
        if "latents" in steps:
            report["latents_s"], meta["latent_stats"] = latents_step(args, codec, src, dst)
        if "decoded" in steps:
            report["decoded_s"] = decoded_step(args, codec, dst)
        meta.setdefault("timing_s", {}).update({k: v for k, v in report.items() if k != "source_s"})
        with open(meta_path, "w") as f:
            json.dump(meta, f, indent=1)
        report["codec_dir"] = dst
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
