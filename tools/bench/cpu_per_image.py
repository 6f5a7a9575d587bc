#!/usr/bin/env python3
"""CPU seconds per image of DepthLens, ONNX Runtime and PyTorch eager on one thread each.

On the shared development machine the wall clock measures the load as much as the engines
(other processes hold the cores, and a two-thread engine waits for its descheduled thread).
The CPU time a process is given for the same images is far less sensitive to that: its
ratio between engines is the ratio of their throughputs on one free core. Each engine runs
in a process of its own on the same seeded weights and inputs as run_bench.py, one thread,
after warm-up passes.

    python3 tools/bench/cpu_per_image.py --depthlens .build/release/depthlens \\
        --models timm/resnet18,timm/resnet50,torchvision/resnet50 --batches 1,16
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run_bench  # noqa: E402


def torch_cpu(model, x, repeats: int) -> float:
    with torch.inference_mode():
        model(x)
        start = time.process_time()
        for _ in range(repeats):
            model(x)
        return (time.process_time() - start) / (repeats * len(x))


def onnx_cpu(model, inputs, batch: int, repeats: int, folder: str, tag: str) -> float:
    engine = run_bench.OnnxEngine(model, inputs, batch, 1, folder, tag)
    x = np.ascontiguousarray(inputs[:batch].numpy())
    for _ in range(2):
        engine.run(x)
    start = time.process_time()
    for _ in range(repeats):
        engine.run(x)
    return (time.process_time() - start) / (repeats * batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--depthlens", default=".build/release/depthlens")
    parser.add_argument("--models", default="timm/resnet18,timm/resnet50,torchvision/resnet50")
    parser.add_argument("--batches", default="1,16")
    parser.add_argument("--images", type=int, default=32, help="images timed per engine and batch size")
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args()
    torch.set_num_threads(1)
    batches = [int(b) for b in args.batches.split(",")]
    folder = tempfile.mkdtemp(prefix="depthlens-cpu-")
    inputs = torch.randn(max(batches + [2]), 3, 224, 224, generator=torch.Generator().manual_seed(7))
    data = os.path.join(folder, "inputs.h5")
    with h5py.File(data, "w") as f:
        f.create_dataset("images", data=inputs.numpy())
    rows = []
    print("| network | batch | DepthLens ms/image | ONNX Runtime ms/image | eager ms/image | ORT / DepthLens | eager / DepthLens |")
    print("|---|---|---|---|---|---|---|")
    for spec in args.models.split(","):
        network = run_bench.Network(spec)
        model = network.build()
        checkpoint, extra = network.write(model, folder)
        for batch in batches:
            repeats = max(1, args.images // batch)
            out = subprocess.run([args.depthlens, "bench", checkpoint, *extra, "--data", data, "--batch-size", str(batch),
                                  "--threads", "1", "--repeats", str(repeats), "--images", str(batch)],
                                 check=True, capture_output=True, text=True)
            ours = json.loads(out.stdout.strip().splitlines()[-1])["cpu_seconds_per_image"]
            ort = onnx_cpu(model, inputs, batch, repeats, folder, spec.replace("/", "-"))
            eager = torch_cpu(model, inputs[:batch], repeats)
            rows.append({"network": spec, "batch": batch, "depthlens": ours, "onnxruntime": ort, "torch-eager": eager})
            print(f"| {spec} | {batch} | {1000 * ours:.0f} | {1000 * ort:.0f} | {1000 * eager:.0f} "
                  f"| {ort / ours:.2f}x | {eager / ours:.2f}x |", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
