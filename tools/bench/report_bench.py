#!/usr/bin/env python3
"""End-to-end benchmark of `depthlens report` (the standard study) against the same
analyses written plainly in PyTorch, and the peak memory of `depthlens report`.

    swift build -c release --product depthlens
    python3 tools/bench/report_bench.py --depthlens .build/release/depthlens

The network is the 54-block ResNet-110 layout (widths 16/32/64, 1x28x28, 10 classes) with
random weights and a linear survival schedule (p_L = 0.5, expectation rule); the data are
random images with random labels (timing and memory do not depend on the values). The
PyTorch script evaluates the same number of sub-networks of each kind as the report does
with its defaults (single-block lesions, k-block lesions for k = 1...10 with 3 trials,
an 8-member pass-level ensemble with the deterministic and full networks, 8 depths with 3
trials each, every one with the full network as reference), batch by batch, and computes
accuracy and NLL for each: the way a user would write it, one forward pass per
sub-network, dropped blocks skipped.
"""
from __future__ import annotations

import argparse
import os
import random
import re
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from depthlens_ref.export import write_checkpoint  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from run_bench import make_model  # noqa: E402


def configurations(p: list[float], seed: int = 0) -> list[list[float]]:
    """Gate vectors in the numbers the report evaluates them (expectation rule: kept blocks p_l)."""
    L = len(p)
    rng = random.Random(seed)
    full = [1.0] * L
    deterministic = list(p)

    def without(dropped):
        return [0.0 if l in dropped else p[l] for l in range(L)]

    lesions = [deterministic] + [without({l}) for l in range(L)]
    lesions += [without(set(rng.sample(range(L), k))) for k in range(1, 11) for _ in range(3)]
    ensemble = [[p[l] if rng.random() < p[l] else 0.0 for l in range(L)] for _ in range(8)] + [deterministic]
    depths = [round(d) for d in np.linspace(1, L, 8)]
    depth = [without(set(rng.sample(range(L), L - d))) for d in depths for _ in range(3)]
    # Each analysis also evaluates the full network as its reference.
    return lesions + [full] + ensemble + [full] + depth + [full]


def pytorch_study(model, images: torch.Tensor, labels: torch.Tensor, gates: list[list[float]], batch: int) -> float:
    start = time.perf_counter()
    with torch.inference_mode():
        for g in gates:
            vector = torch.tensor(g)
            correct, nll = 0, 0.0
            for i in range(0, len(images), batch):
                logits = model(images[i:i + batch], gates=vector)
                correct += int((logits.argmax(1) == labels[i:i + batch]).sum())
                nll += float(F.cross_entropy(logits, labels[i:i + batch], reduction="sum"))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--depthlens", default=".build/release/depthlens")
    parser.add_argument("--images", type=int, default=2000, help="the report's default --limit")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--skip-pytorch", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    folder = tempfile.mkdtemp(prefix="depthlens-report-bench-")
    arch, model = make_model(54, seed=54)
    L = 54
    p = [1 - (l + 1) / L * 0.5 for l in range(L)]
    training = {"schedule": {"name": "linear", "params": {"pL": 0.5}}, "survival_probabilities": p,
                "gate_granularity": "batch", "test_time_rule": "expectation", "input_size": [28, 28],
                "normalization": {"mean": [0.0], "std": [1.0]}}
    checkpoint = os.path.join(folder, "resnet-54.ckpt.h5")
    write_checkpoint(checkpoint, arch, model.state_dict(), training=training)
    generator = torch.Generator().manual_seed(3)
    images = torch.randn(args.images, 1, 28, 28, generator=generator)
    labels = torch.randint(0, 10, (args.images,), generator=generator)
    data = os.path.join(folder, "data.h5")
    with h5py.File(data, "w") as f:
        f.create_dataset("images", data=images.numpy())
        f.create_dataset("labels", data=labels.numpy().astype(np.int64))

    command = ["/usr/bin/time", "-v", args.depthlens, "report", checkpoint, "--data", data, "--limit", str(args.images),
               "--threads", str(args.threads), "--batch-size", str(args.batch_size), "-o", os.path.join(folder, "report"),
               "--quiet"]
    start = time.perf_counter()
    run = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if run.returncode != 0:
        sys.exit(f"depthlens report failed:\n{run.stderr[-3000:]}")
    peak_kib = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", run.stderr).group(1))
    print(f"depthlens report, {args.images} images, 54 blocks: {seconds:.1f} s, peak RSS {peak_kib / 1024:.0f} MiB")
    timings = re.findall(r"report: (\w+) done in ([\d.]+) s", run.stderr)
    if timings:
        print("  " + ", ".join(f"{name} {t} s" for name, t in timings))
    if args.skip_pytorch:
        return
    gates = configurations(p)
    torch_seconds = pytorch_study(model, images, labels, gates, args.batch_size)
    print(f"plain PyTorch (eager), {len(gates)} sub-networks: {torch_seconds:.1f} s")
    print(f"speed-up of depthlens report: {torch_seconds / seconds:.2f}x")


if __name__ == "__main__":
    main()
