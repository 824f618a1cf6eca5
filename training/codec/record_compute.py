"""Record each codec's compute (MACs per image pixel of analysis and synthesis) in the manifest.

    python3 training/codec/record_compute.py [--manifest models/manifest.json]

``export.py`` writes the same ``compute`` field for a new export; this fills it in for codecs
exported before it existed. The figures are counted from the shipped ONNX graphs.
"""
import argparse
import json
import os
import sys

import onnx

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export import compute_of, update_manifest  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--manifest", default=os.path.join(os.path.dirname(__file__), "..", "..",
                                                       "models", "manifest.json"))
    args = ap.parse_args()
    root = os.path.dirname(os.path.abspath(args.manifest))
    with open(args.manifest) as f:
        codecs = [e for e in json.load(f)["models"] if e.get("kind") == "codec"]
    for entry in codecs:
        graphs = [onnx.load(os.path.join(root, entry["files"][r]["path"]))
                  for r in ("analysis", "synthesis")]
        entry["compute"] = compute_of(*graphs)
        update_manifest(args.manifest, entry)
        print(entry["id"], json.dumps(entry["compute"]))


if __name__ == "__main__":
    main()
