"""How sure is a difference of mIoU between two segmenters? A paired bootstrap over val images.

    python3 training/tasks/paired.py models/seg-latent-ls-f8-q3/segmenter.onnx \
        models/baselines/seg-decoded-ls-f8-q3/segmenter.onnx --codec_id ls-f8-q3

Each exported segmenter reads the val input of its kind from ``latents.py``'s arrays (a graph
that takes int16 latents reads the codec's latents; one that takes an image reads the decoded
pixels of the same codec, or with ``--rgb`` the original pixels), and gives one 11 x 11
confusion matrix per image (void ignored, the 360 real rows). The mIoU of a set of images is that
of the summed matrices, as ``segment.py`` and ``latentsight eval segment`` compute it. The
bootstrap draws the val images with replacement ``--rounds`` times, the same draw for both
models, and reports the difference A - B on all images and its 2.5th and 97.5th percentiles:
if that interval holds zero, val cannot tell the two apart. Prints one JSON object.
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import DEFAULT_CACHE, expand  # noqa: E402
from segment import HEIGHT, confusion, scores, to_tensor  # noqa: E402


def confusions(pred, truth):
    """[N, 11, 11] confusion matrices (rows = truth) of masks against masks, void ignored."""
    return np.stack([confusion(p, t) for p, t in zip(pred, truth)])


def miou(conf):
    return scores(conf)["miou"]


def paired_bootstrap(conf_a, conf_b, rounds, seed=0):
    """(difference of mIoU A - B on all images, [2.5th, 97.5th] percentiles of the difference over
    ``rounds`` resamples of the images, the fraction of resamples where A >= B)."""
    rng = np.random.default_rng(seed)
    n = len(conf_a)
    diffs = np.empty(rounds)
    for r in range(rounds):
        idx = rng.integers(0, n, n)
        diffs[r] = miou(conf_a[idx].sum(0)) - miou(conf_b[idx].sum(0))
    whole = miou(conf_a.sum(0)) - miou(conf_b.sum(0))
    return whole, np.percentile(diffs, [2.5, 97.5]).tolist(), float(np.mean(diffs >= 0))


def predict(path, tasks, codec_id, rgb, threads):
    """The graph's uint8 masks on every val image, cropped to the 360 real rows."""
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    inp = session.get_inputs()[0]
    if inp.type == "tensor(int16)":
        x, kind = np.load(os.path.join(tasks, codec_id, "camvid-val.latents.npy"), mmap_mode="r"), "latents"
    else:
        name = (os.path.join(tasks, "source", "camvid-val.rgb.npy") if rgb
                else os.path.join(tasks, codec_id, "camvid-val.decoded.npy"))
        x, kind = np.load(name, mmap_mode="r"), "original pixels" if rgb else "decoded pixels"
    preds = []
    for s in range(0, len(x), 4):
        batch = to_tensor(x[s:s + 4]).numpy()
        preds.append(session.run(None, {inp.name: batch})[0][:, :HEIGHT])
    return np.concatenate(preds), kind


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", help="segmenter.onnx (A)")
    ap.add_argument("b", help="segmenter.onnx (B)")
    ap.add_argument("--codec_id", required=True, help="whose latents and decoded pixels are read")
    ap.add_argument("--rgb", action="store_true", help="an image graph reads the original pixels")
    ap.add_argument("--rounds", type=int, default=10000)
    ap.add_argument("--cache_dir", default=DEFAULT_CACHE)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    if args.rounds < 100:
        raise SystemExit("--rounds: at least 100")
    tasks = os.path.join(expand(args.cache_dir), "tasks")
    truth = np.load(os.path.join(tasks, "source", "camvid-val.masks.npy"), mmap_mode="r")[:, :HEIGHT]
    out, confs = {}, []
    for key, path in (("a", args.a), ("b", args.b)):
        pred, kind = predict(path, tasks, args.codec_id, args.rgb, args.threads)
        if pred.shape != truth.shape:
            raise SystemExit(f"{path}: masks of shape {pred.shape}, the val masks are {truth.shape}")
        conf = confusions(pred, np.asarray(truth))
        confs.append(conf)
        out[key] = {"model": path, "input": kind, "miou": miou(conf.sum(0))}
    whole, interval, share = paired_bootstrap(*confs, args.rounds)
    out.update({"n": len(truth), "difference": whole, "interval_95": interval,
                "a_at_least_b": share, "rounds": args.rounds})
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
