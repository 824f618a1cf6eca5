"""Record a rate-distortion report as the measured metrics of the codecs in the manifest.

    npx latentsight eval rd --images ../shared/data/kodak --json > /tmp/rd.json
    python3 training/codec/record_rd.py /tmp/rd.json [--manifest models/manifest.json] [--codecs IDS]

For every codec of the report that the manifest lists, ``metrics.kodak`` becomes the report's
point (bpp, PSNR, MS-SSIM: means over the images), the bits saved against each reference codec
at equal PSNR and MS-SSIM, and the median encode/decode times, with the command that measured
them. Codecs not in the report, or not in ``--codecs`` when it is given (a new codec measured beside
the shipped ones, whose recorded figures stay), are left as they are. The figures are copied, never computed here.
"""
import argparse
import datetime
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export import update_manifest  # noqa: E402

COMMAND = "npx latentsight eval rd --images ../shared/data/kodak --json"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("report", help="the JSON printed by `latentsight eval rd --json`")
    ap.add_argument("--manifest", default=os.path.join(os.path.dirname(__file__), "..", "..",
                                                       "models", "manifest.json"))
    ap.add_argument("--set", default="kodak", help="name of the image set (the metrics key)")
    ap.add_argument("--codecs", help="comma-separated ids: record only these (default: every codec of the report)")
    args = ap.parse_args()
    with open(args.report) as f:
        report = json.load(f)
    with open(args.manifest) as f:
        entries = {e["id"]: e for e in json.load(f)["models"]}
    recorded = []
    for codec_id, savings in report["savings"].items():
        entry = entries.get(codec_id)
        if entry is None or entry.get("kind") != "codec" or (args.codecs and codec_id not in args.codecs.split(",")):
            continue
        (point,) = report["codecs"][codec_id]
        entry.setdefault("metrics", {})[args.set] = {
            "images": report["images"],
            "bpp": point["bpp"], "psnr": point["psnr"], "msssim": point["msssim"],
            "bits_saved_at_equal_quality": savings,
            "median_ms_per_image": report["timings_ms"].get(codec_id),
            "command": COMMAND if args.set == "kodak" else None,
            "version_measured": entry["version"],
            "measured": datetime.date.today().isoformat(),
        }
        update_manifest(args.manifest, entry)
        recorded.append(codec_id)
    print(json.dumps({"recorded": recorded}))


if __name__ == "__main__":
    main()
