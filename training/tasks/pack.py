"""Pack task data into files small enough to carry to a GPU machine, and unpack them there.

    python3 training/tasks/pack.py --codec-id ls-f8-q2 --parts imagenette-latent,camvid-latent
    python3 training/tasks/pack.py --files imagenette,camvid          # the source images as tars
    python3 training/tasks/pack.py --unpack .device-data/ls-f8-q2 --cache-dir /tmp/lsc \\
        --data .device-data/data                                       # on the GPU machine

Writes into ``<out>/<codec_id>/`` (replaced on every run; ``.device-data/`` is git-ignored)
two kinds of content, each split into files of at most ``--max-mb`` (default 56: a device
call carries at most 64 MiB, the repository's ~4 MiB included, so k files take k calls while
the machine stays warm), listed in ``index.json``:

- ``--parts``: cached arrays of ``latents.py`` -> ``pack-<k>.bin`` (the index says which array
  lies in which file, at which offset, its dtype, shape and sha256). Latents are stored as
  int8 when every value fits (checked; int16 again on unpacking), every array bz2-compressed
  (~10 MB/s here: 30% larger than lzma's output on latents, at 20x its speed).
- ``--files``: data-folder subtrees (``imagenette``, ``camvid``) as they are (JPEG / WebP / PNG,
  already compressed) -> ``files-<k>.tar``, unpacked under ``--data``; ``latents.py`` then runs
  on the machine's cores (the RGB and decoded baselines need the pixels, which no array pack
  holds within the limit).

``--unpack`` restores whatever of the index is present (the rest came or comes by another
call): tars under ``--data``, arrays in the ``latents.py`` cache layout (``tasks/source/``,
``tasks/<codec_id>/``) so that ``classify.py`` and ``segment.py`` run unchanged with
``--cache_dir``; every array's sha256 is checked.
"""
import argparse
import bz2
import hashlib
import io
import json
import os
import shutil
import sys
import tarfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import DEFAULT_CACHE, DEFAULT_DATA, REPO, expand  # noqa: E402

# part -> [(folder, file)]; folder "codec" is tasks/<codec_id>/, "source" is tasks/source/
def _split(dataset, files):
    """[(folder, file)] of a part: "source" is tasks/source/, "codec" is tasks/<codec_id>/."""
    return [(folder, f"{dataset}-{name}.npy") for folder, name in files]


_LABELS = {"imagenette": [("source", "train.labels"), ("source", "val.labels")],
           "camvid": [("source", "train.masks"), ("source", "val.masks")]}
PARTS = {}
for _ds in ("imagenette", "camvid"):
    PARTS[f"{_ds}-latent"] = _split(_ds, _LABELS[_ds] + [
        ("codec", "train.latents"), ("codec", "train-flip.latents"), ("codec", "val.latents")])
    PARTS[f"{_ds}-rgb"] = _split(_ds, _LABELS[_ds] + [
        ("source", "train.rgb"), ("source", "val.rgb")])
    PARTS[f"{_ds}-decoded"] = _split(_ds, _LABELS[_ds] + [
        ("codec", "train.decoded"), ("codec", "val.decoded")])
DEFAULT_PARTS = "imagenette-latent,camvid-latent"
BLOCK = 64 << 20               # raw bytes compressed per bz2 stream (bounded memory)


def sha256(a):
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def compress(a):
    """npy bytes of ``a`` (int16 narrowed to int8 when lossless), bz2 in blocks."""
    stored = a
    if a.dtype == np.int16 and a.size and a.min() >= -128 and a.max() <= 127:
        stored = a.astype(np.int8)
    buf = io.BytesIO()
    np.save(buf, stored)
    raw = buf.getvalue()
    blocks = [bz2.compress(raw[i:i + BLOCK], 9) for i in range(0, len(raw), BLOCK)]
    return blocks, str(stored.dtype)


def pack_files(args, out, index):
    """Tars of data-folder subtrees, split at ``max_mb``; files keep their paths under --data."""
    data, limit = expand(args.data), int(args.max_mb * 2 ** 20)
    names = []
    for sub in args.files.split(","):
        root = os.path.join(data, sub)
        if not os.path.isdir(root):
            raise SystemExit(f"{root} is not a folder")
        for dirpath, _, files in os.walk(root):
            names += [os.path.relpath(os.path.join(dirpath, f), data) for f in sorted(files)]
    tar = None

    def written(tar):
        # --gzip: compressed bytes on disk so far (the gzip buffer is flushed first); else the
        # tar offset. Either way the next file's raw size bounds what it adds.
        if args.gzip:
            tar.fileobj.flush()
            return tar.fileobj.fileobj.tell()
        return tar.offset

    for rel in sorted(names):
        # header + padding of this file, then tar's end blocks and record padding (10 KiB)
        n = os.path.getsize(os.path.join(data, rel)) + 1024 + 10240
        if tar is None or written(tar) + n > limit:
            if tar:
                tar.close()
            name = f"files-{len(index['tars']) + 1}.tar"
            index["tars"].append(name)
            tar = tarfile.open(os.path.join(out, name), "w:gz" if args.gzip else "w")
        tar.add(os.path.join(data, rel), arcname=rel)
    if tar:
        tar.close()


def pack(args):
    tasks = os.path.join(expand(args.cache_dir), "tasks")
    out = os.path.join(expand(args.out), args.codec_id)
    if os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(out)
    index = {"codec_id": args.codec_id, "arrays": [], "files": [], "tars": []}
    if args.files:
        pack_files(args, out, index)
    parts = args.parts if args.parts is not None else "" if args.files else DEFAULT_PARTS
    wanted = []
    for part in filter(None, parts.split(",")):
        if part not in PARTS:
            raise SystemExit(f"unknown part {part!r}; known: {', '.join(PARTS)}")
        wanted += [e for e in PARTS[part] if e not in wanted]
    limit = int(args.max_mb * 2 ** 20)
    for folder in ("source", args.codec_id) if wanted else ():
        meta = os.path.join(tasks, folder, "meta.json")
        if os.path.exists(meta):
            key = "source" if folder == "source" else "codec"
            with open(meta) as f:
                index.setdefault("meta", {})[key] = json.load(f)
    current, size = None, 0
    for folder, name in wanted:
        path = os.path.join(tasks, "source" if folder == "source" else args.codec_id, name)
        a = np.load(path, mmap_mode="r")
        if args.limit and a.shape[0] > args.limit:
            a = a[np.linspace(0, a.shape[0] - 1, args.limit).astype(int)]  # spread over classes
        a = np.asarray(a)
        blocks, stored = compress(a)
        n = sum(len(b) for b in blocks)
        if n > limit:
            raise SystemExit(f"{name} alone is {n / 2**20:.1f} MiB > --max_mb {args.max_mb}: "
                             "use --limit or a larger --max_mb")
        if current is None or size + n > limit:
            current = f"pack-{len(index['files']) + 1}.bin"
            index["files"].append(current)
            size = 0
        with open(os.path.join(out, current), "ab") as f:
            f.write(b"".join(blocks))
        index["arrays"].append({"folder": folder, "name": name, "file": current, "offset": size,
                                "blocks": [len(b) for b in blocks], "dtype": str(a.dtype),
                                "stored": stored, "shape": list(a.shape), "sha256": sha256(a)})
        size += n
        print(f"  {name}: {a.nbytes / 2**20:.1f} MiB -> {n / 2**20:.2f} MiB ({stored}) "
              f"in {current}", flush=True)
    with open(os.path.join(out, "index.json"), "w") as f:
        json.dump(index, f, indent=1)
    sizes = {fn: os.path.getsize(os.path.join(out, fn)) / 2 ** 20
             for fn in index["files"] + index["tars"]}
    print(json.dumps({"out": out, "files_mib": sizes, "total_mib": sum(sizes.values())}, indent=1))


def unpack(args):
    src = expand(args.unpack)
    index = json.load(open(os.path.join(src, "index.json")))
    tasks = os.path.join(expand(args.cache_dir), "tasks")
    for name in index.get("tars", []):
        if os.path.exists(os.path.join(src, name)):
            with tarfile.open(os.path.join(src, name)) as tar:
                tar.extractall(expand(args.data), filter="data")
            print(f"  {name} -> {expand(args.data)}", flush=True)
        else:
            print(f"  {name} not here (carried by another call?)", flush=True)
    for e in index["arrays"]:
        if not os.path.exists(os.path.join(src, e["file"])):
            print(f"  {e['name']}: {e['file']} not here (carried by another call?)", flush=True)
            continue
        folder = os.path.join(tasks, "source" if e["folder"] == "source" else index["codec_id"])
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(src, e["file"]), "rb") as f:
            f.seek(e["offset"])
            raw = b"".join(bz2.decompress(f.read(n)) for n in e["blocks"])
        a = np.load(io.BytesIO(raw)).astype(e["dtype"])
        if sha256(a) != e["sha256"]:
            raise SystemExit(f"{e['name']}: checksum mismatch after unpacking")
        np.save(os.path.join(folder, e["name"]), a)
        print(f"  {e['name']} {a.shape} {a.dtype}", flush=True)
    for key, meta in index.get("meta", {}).items():
        folder = os.path.join(tasks, "source" if key == "source" else index["codec_id"])
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "meta.json"), "w") as f:
            json.dump(meta, f, indent=1)
    print(f"unpacked into {tasks}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--codec-id", "--codec_id", default="ls-f8-q2")
    ap.add_argument("--cache-dir", "--cache_dir", default=DEFAULT_CACHE)
    ap.add_argument("--parts", default=None,
                    help=f"comma-separated, of: {', '.join(PARTS)}; default {DEFAULT_PARTS} "
                    "without --files, none with it")
    ap.add_argument("--files", default="", help="data subfolders to tar, e.g. imagenette,camvid")
    ap.add_argument("--gzip", action="store_true",
                    help="--files: gzip each tar (JPEG/WebP gain nothing, the tar headers and "
                    "padding of small files ~8%%)")
    ap.add_argument("--data", default=DEFAULT_DATA, help="--files: source; --unpack: target")
    ap.add_argument("--out", default=os.path.join(REPO, ".device-data"))
    ap.add_argument("--max-mb", "--max_mb", type=float, default=56.0,
                    help="MiB per pack file (a call carries 64 MiB, the repository included)")
    ap.add_argument("--limit", type=int, default=0, help="keep N evenly spaced items per array")
    ap.add_argument("--unpack", help="a packed folder to restore into --cache_dir")
    args = ap.parse_args()
    unpack(args) if args.unpack else pack(args)


if __name__ == "__main__":
    main()
