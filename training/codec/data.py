"""Training data for the codec: a crop pool packed once into a uint8 .npy file.

Sources (never Kodak): Imagenette train (JPEG q~75 at 224x224, downscaled 0.5-0.8 before
cropping so the codec does not learn 8x8 block artefacts) and CamVid train (lossless WebP,
random downscale 0.5-1.0) -- or, with ``--images DIR``, any folder of images (recursive).
The pool is cached under ``cache_dir`` keyed by its settings; training samples batches from
it in memory with random flips.

Run as a script to pack ahead of time:
    python3 training/codec/data.py --data ../shared/data [--images DIR] [--cache_dir DIR]

A GPU machine is reached with at most 64 MiB of files, so ``--pack OUT.npz`` also writes a
random subset of the pool as JPEG (quality 95, 4:4:4: about 10.7 KB and 42 dB per 128x128
crop, far above the 26-34 dB the codec is trained for) plus the raw validation crops; train
from it with ``train.py --pool_file OUT.npz``.
"""
import argparse
import glob
import hashlib
import json
import os
import time

import numpy as np
from PIL import Image

PACK_VERSION = 1
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".ppm")


def _images_in(pattern):
    return sorted(p for p in glob.glob(pattern) if p.lower().endswith(IMAGE_EXTS))


def _walk_images(root):
    out = []
    for dirpath, _, names in os.walk(root):
        out += [os.path.join(dirpath, n) for n in names if n.lower().endswith(IMAGE_EXTS)]
    return sorted(out)


def _is_val(path):
    """Deterministic 1-in-20 hold-out for a user's own folder."""
    return int(hashlib.sha1(path.encode()).hexdigest(), 16) % 20 == 0


def _load(path):
    with Image.open(path) as im:
        return im.convert("RGB")


def _resize_short(img, short):
    w, h = img.size
    s = short / min(w, h)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    return img.resize(size, Image.LANCZOS) if size != img.size else img


def _random_crops(img, rng, n, crop, lo, hi):
    """n crops; the short side is redrawn in [lo, hi] (downscale only) every few crops."""
    per_scale = 1 if n <= 4 else 8
    short0 = min(img.size)
    lo, hi = max(lo, crop), min(hi, short0)
    if hi < crop:
        return []
    out = []
    while len(out) < n:
        scaled = _resize_short(img, rng.uniform(lo, hi) if hi > lo else hi)
        a = np.asarray(scaled)
        for _ in range(min(per_scale, n - len(out))):
            y = rng.integers(0, a.shape[0] - crop + 1)
            x = rng.integers(0, a.shape[1] - crop + 1)
            out.append(a[y:y + crop, x:x + crop])
    return out


def _center_crop(img, crop, short):
    a = np.asarray(_resize_short(img, max(short, crop)))
    y, x = (a.shape[0] - crop) // 2, (a.shape[1] - crop) // 2
    return a[y:y + crop, x:x + crop]


def _plan(cfg):
    """List of (path, n_crops, lo, hi) for the training pool."""
    if cfg.images:
        files = [p for p in _walk_images(cfg.images) if not _is_val(p)]
        if not files:
            raise SystemExit(f"no training images found under {cfg.images}")
        n = min(64, -(-cfg.pool_size // len(files)))
        # Large photos: short side drawn in [256, 512] (downscaling removes sensor noise).
        return [(p, n, 0.5 * 512, 512) for p in files]
    inet = _images_in(os.path.join(cfg.data, "imagenette", "train", "*", "*"))
    camvid = _images_in(os.path.join(cfg.data, "camvid", "train", "*"))
    if not inet or not camvid:
        raise SystemExit(f"imagenette/camvid training images not found under {cfg.data}")
    n_cam = max(1, int(0.3 * cfg.pool_size) // len(camvid))
    n_inet = max(1, round((cfg.pool_size - n_cam * len(camvid)) / len(inet)))
    return ([(p, n_inet, 0.5 * 224, 0.8 * 224) for p in inet]
            + [(p, n_cam, 0.5 * 360, 360) for p in camvid])


def _cache_path(cfg, kind, plan):
    key = json.dumps([PACK_VERSION, kind, cfg.crop, cfg.pool_size, cfg.seed,
                      [(os.path.abspath(p), n, lo, hi) for p, n, lo, hi in plan]])
    digest = hashlib.sha1(key.encode()).hexdigest()[:12]
    return os.path.join(os.path.expanduser(cfg.cache_dir), f"{kind}_{cfg.crop}_{digest}.npy")


def _save_atomic(path, arr):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp.npy"
    np.save(tmp, arr)
    os.replace(tmp, path)


def write_jpeg_pack(path, pool, val, n, quality=95, seed=0):
    """``n`` random crops of ``pool`` as JPEG bytes, and ``val`` raw, in one .npz file."""
    import io
    idx = np.sort(np.random.default_rng(seed).choice(len(pool), min(n, len(pool)), replace=False))
    blobs = []
    for i in idx:
        buf = io.BytesIO()
        Image.fromarray(np.asarray(pool[i])).save(buf, "JPEG", quality=quality, subsampling=0)
        blobs.append(np.frombuffer(buf.getvalue(), np.uint8))
    offsets = np.cumsum([0] + [len(b) for b in blobs]).astype(np.int64)
    meta = {"crops": len(idx), "of": len(pool), "quality": quality, "seed": seed}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    np.savez(path, jpeg=np.concatenate(blobs), offsets=offsets, val=val,
             meta=np.frombuffer(json.dumps(meta).encode(), np.uint8))
    return meta


def read_jpeg_pack(path):
    """(train uint8 (K, h, w, 3), val uint8) from ``write_jpeg_pack``'s file."""
    import io
    with np.load(path) as z:
        jpeg, offsets, val = z["jpeg"], z["offsets"], z["val"]
    crops = [np.asarray(Image.open(io.BytesIO(jpeg[a:b].tobytes())).convert("RGB"))
             for a, b in zip(offsets[:-1], offsets[1:])]
    return np.stack(crops), val


def train_pool(cfg):
    """uint8 array (K, crop, crop, 3), packed on first use and cached."""
    if getattr(cfg, "pool_file", ""):
        return read_jpeg_pack(cfg.pool_file)[0]
    plan = _plan(cfg)
    path = _cache_path(cfg, "pool", plan)
    if os.path.exists(path):
        return np.load(path)
    rng = np.random.default_rng(cfg.seed)
    t0, crops = time.time(), []
    for i, (p, n, lo, hi) in enumerate(plan):
        crops += _random_crops(_load(p), rng, n, cfg.crop, lo, hi)
        if i % 2000 == 0:
            print(f"packing {i}/{len(plan)} images, {len(crops)} crops", flush=True)
    pool = np.stack(crops)
    _save_atomic(path, pool)
    print(f"packed {len(pool)} crops into {path} in {time.time() - t0:.0f}s", flush=True)
    return pool


def val_crops(cfg, n=64):
    """Fixed held-out crops (Imagenette val + CamVid val, or the user folder's hold-out)."""
    if getattr(cfg, "pool_file", ""):
        with np.load(cfg.pool_file) as z:
            return z["val"]
    if cfg.images:
        files = [p for p in _walk_images(cfg.images) if _is_val(p)][:n]
        if not files:   # tiny folder: nothing held out, monitor on training images
            print("warning: no held-out images in --images; validating on training images")
            files = _walk_images(cfg.images)[:n]
        short = [min(512, min(_load(p).size)) for p in files]
    else:
        inet = _images_in(os.path.join(cfg.data, "imagenette", "val", "*", "*"))
        camvid = _images_in(os.path.join(cfg.data, "camvid", "val", "*"))
        files = inet[::max(1, len(inet) // (n // 2))][:n // 2]
        files += camvid[::max(1, len(camvid) // (n - len(files)))][:n - len(files)]
        short = [0.7 * 224 if "imagenette" in p else 0.75 * 360 for p in files]
    plan = [(p, 1, s, s) for p, s in zip(files, short)]
    path = _cache_path(cfg, "val", plan)
    if os.path.exists(path):
        return np.load(path)
    arr = np.stack([_center_crop(_load(p), cfg.crop, round(s)) for p, s in zip(files, short)])
    _save_atomic(path, arr)
    return arr


class Sampler:
    """Random batches with random horizontal/vertical flips (and, with ``rot90``, transposes:
    all eight symmetries of the square); state is checkpointable."""

    def __init__(self, pool, seed, rot90=False):
        self.pool = pool
        self.rng = np.random.default_rng(seed)
        self.rot90 = rot90

    def batch(self, size):
        idx = self.rng.integers(0, len(self.pool), size)
        b = self.pool[idx]
        flip_h = self.rng.random(size) < 0.5
        flip_v = self.rng.random(size) < 0.5
        b[flip_h] = b[flip_h, :, ::-1]
        b[flip_v] = b[flip_v, ::-1]
        if self.rot90:
            t = self.rng.random(size) < 0.5
            b[t] = b[t].transpose(0, 2, 1, 3)
        return b

    def state_dict(self):
        return self.rng.bit_generator.state

    def load_state_dict(self, state):
        self.rng.bit_generator.state = state


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--images", default="")
    ap.add_argument("--cache_dir", default="~/.cache/latentsight")
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--pool_size", type=int, default=40000)
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument("--pack", default="", help="also write N pool crops as JPEG to this .npz")
    ap.add_argument("--pack_n", type=int, default=4000)
    cfg = ap.parse_args()
    pool, val = train_pool(cfg), val_crops(cfg)
    print(pool.shape, val.shape)
    if cfg.pack:
        meta = write_jpeg_pack(cfg.pack, pool, val, cfg.pack_n, seed=cfg.seed)
        print(f"wrote {cfg.pack}: {os.path.getsize(cfg.pack) / 1e6:.1f} MB, {meta}")


if __name__ == "__main__":
    main()
