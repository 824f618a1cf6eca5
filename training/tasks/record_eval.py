"""Record product-path evaluations as measured metrics of the task models in the manifest.

    npx latentsight eval classify --data ../shared/data/imagenette/val --model cls-latent-ls-f8-q2 \\
        --json > /tmp/evals/cls-latent-q2.json          # one JSON object per file, any number
    python3 training/tasks/record_eval.py /tmp/evals/*.json [--manifest models/manifest.json]

Each report whose model (``id@version``) is in the manifest, measured on the model's own input
(a latent model on latents, a baseline on what it was trained on, through the codec it was trained
on), becomes that entry's
``metrics.product_path``: the figures, the command that measured them and the date. Reports of a
model on another input (an RGB network fed decoded pixels) or another codec's output (a decoded
baseline reading a successor codec's reconstructions) are comparisons, left to
docs/RESULTS.md. The figures are copied, never computed here.
"""
import argparse
import datetime
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "codec"))
from export import update_manifest  # noqa: E402

DATA = {"classify": "--data ../shared/data/imagenette/val",
        "segment": "--images ../shared/data/camvid/val --masks ../shared/data/camvid/valannot"}
FIGURES = {"classify": ("top1", "top5"), "segment": ("miou", "pixel_accuracy", "per_class_iou")}


def own_input(entry):
    return {"rgb-cheap": "rgb"}.get(entry["input"], entry["input"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("reports", nargs="+", help="files holding the JSON of `latentsight eval ... --json`")
    ap.add_argument("--manifest", default=os.path.join(os.path.dirname(__file__), "..", "..",
                                                       "models", "manifest.json"))
    args = ap.parse_args()
    with open(args.manifest) as f:
        entries = {e["id"]: e for e in json.load(f)["models"]}
    for path in args.reports:
        with open(path) as f:
            report = json.load(f)
        model_id, _, version = report["model"].partition("@")
        entry = entries.get(model_id)
        if (entry is None or entry["version"] != version or report["input"] != own_input(entry)
                or report.get("codec") != entry.get("codec")):
            print(f"{path}: {report['model']} on {report['input']}"
                  f"{' (' + report['codec'] + ')' if report.get('codec') else ''}: not recorded", flush=True)
            continue
        command = (f"npx latentsight eval {report['task']} {DATA[report['task']]}"
                   + (f" --input {report['input']}" if report["input"] != "latent" else "")
                   + f" --model {model_id} --json")
        entry["metrics"]["product_path"] = {
            "n": report["n"], "bpp": report["bpp"], "macs": report["macs"],
            **{k: report[k] for k in FIGURES[report["task"]]},
            "command": command, "measured": datetime.date.today().isoformat(),
        }
        update_manifest(args.manifest, entry)
        print(f"{path}: {report['model']} recorded", flush=True)


if __name__ == "__main__":
    main()
