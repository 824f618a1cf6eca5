"""Seconds per training step and MACs of every task network, measured side by side; prints JSON.

    nice -n 19 python3 training/tasks/bench.py [--rounds 5] [--threads 1] [--device cpu]

Each round times one step (forward, backward, SGD update) of every network in turn on random
inputs of the training shapes (classifiers: batch 64 at 224 px / 28x28 latents; segmenters:
batch 8 crops of 256 px / 32x32 latents), so that load from other processes hits all of them
alike; the median over rounds is reported, with the ratio to the latent network. The first
round is a warm-up and is dropped. Inference (eval, no grad) per image is timed as well.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import classify  # noqa: E402
import segment  # noqa: E402
from common import count_macs  # noqa: E402
from nets import Classifier, Segmenter  # noqa: E402


def networks():
    """name -> (model, train input, train target, one eval input)."""
    out = {}
    for inp in classify.INPUTS[:3]:          # decoded = the rgb network
        cfg = classify.Config(input=inp)
        model = Classifier(classify.arch_of(cfg, 10))
        if inp == "latent":
            x, x1 = (torch.randint(-4, 5, (n, 64, 28, 28), dtype=torch.int16)
                     for n in (cfg.batch_size, 1))
        else:
            x, x1 = torch.rand(cfg.batch_size, 3, 224, 224), torch.rand(1, 3, 224, 224)
        out[f"classify-{inp}"] = (model, x, torch.randint(0, 10, (cfg.batch_size,)), x1)
    for inp in segment.INPUTS[:2]:
        cfg = segment.Config(input=inp)
        model = Segmenter(segment.arch_of(cfg))
        c, b = cfg.crop, cfg.batch_size
        if inp == "latent":
            x = torch.randint(-4, 5, (b, 64, c, c), dtype=torch.int16)
            x1 = torch.randint(-4, 5, (1, 64, 46, 60), dtype=torch.int16)
        else:
            x, x1 = torch.rand(b, 3, 8 * c, 8 * c), torch.rand(1, 3, 368, 480)
        out[f"segment-{inp}"] = (model, x, torch.randint(0, 11, (b, 8 * c, 8 * c)), x1)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dev = torch.device(args.device)
    nets = networks()
    times = {k: {"train": [], "infer": []} for k in nets}
    info = {}
    for name, (model, x, y, x1) in nets.items():
        macs, params = count_macs(model, x1)
        info[name] = {"macs": macs, "params": params, "train_batch": list(x.shape),
                      "eval_input": list(x1.shape)}
        model.to(dev)
    opts = {k: torch.optim.SGD(m.parameters(), lr=1e-3, momentum=0.9)
            for k, (m, *_) in nets.items()}
    for r in range(args.rounds + 1):
        for name, (model, x, y, x1) in nets.items():
            model.train()
            x, y = x.to(dev), y.to(dev)
            t = time.perf_counter()
            loss = F.cross_entropy(model(x), y)
            opts[name].zero_grad(set_to_none=True)
            loss.backward()
            opts[name].step()
            if dev.type == "cuda":
                torch.cuda.synchronize()
            t_train = time.perf_counter() - t
            model.eval()
            with torch.no_grad():
                t = time.perf_counter()
                model(x1.to(dev))
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                t_infer = time.perf_counter() - t
            if r:                                      # round 0 warms up
                times[name]["train"].append(t_train)
                times[name]["infer"].append(t_infer)
    base = {"classify": "classify-latent", "segment": "segment-latent"}
    report = {"threads": args.threads, "device": args.device, "rounds": args.rounds, "nets": {}}
    for name in nets:
        ref = base[name.split("-")[0]]
        rec = dict(info[name])
        rec["s_per_step"] = float(np.median(times[name]["train"]))
        rec["s_per_image_eval"] = float(np.median(times[name]["infer"]))
        rec["macs_vs_latent"] = info[name]["macs"] / info[ref]["macs"]
        rec["step_time_vs_latent"] = rec["s_per_step"] / float(np.median(times[ref]["train"]))
        report["nets"][name] = rec
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
