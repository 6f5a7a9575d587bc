#!/usr/bin/env python3
"""Forward-pass benchmark: DepthLens against PyTorch (eager and its best mode) and ONNX
Runtime on the same weights and inputs, interleaved in one run so that the ratios hold on
a noisy machine.

    swift build -c release --product depthlens
    python3 tools/bench/run_bench.py --depthlens .build/release/depthlens

Also times torch.compile (inductor, frozen weights) unless --no-compile; the best of
traced+frozen+optimize_for_inference and torch.compile is "best PyTorch".

For each network (CIFAR ResNet layout: widths 16/32/64, 1x28x28 inputs, 10 classes, option
A shortcuts; 9, 27 and 54 blocks) and batch size, every engine is timed once per round,
rounds interleaved, each engine in a process of its own; the median of the rounds is reported (images/s), with the ratios of
DepthLens to each other engine and the share of the machine's fp32 peak (an FMA loop,
tools/bench/peak_fma.c). The DepthLens logits are checked against PyTorch's first.
Needs: torch, h5py, numpy, onnx, onnxruntime; gcc for the peak loop.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from depthlens_ref.export import write_checkpoint  # noqa: E402
from depthlens_ref.model import CifarResNet, default_architecture, randomize_batchnorm  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def architecture(blocks: int) -> dict:
    per_stage = blocks // 3
    return default_architecture(stages=[
        {"blocks": per_stage, "width": 16, "stride": 1},
        {"blocks": per_stage, "width": 32, "stride": 2},
        {"blocks": per_stage, "width": 64, "stride": 2},
    ])


def flops_per_image(arch: dict, size: int) -> float:
    """Multiply-adds of the convolutions and the head, times two."""
    macs, h, cin = arch["in_channels"] * arch["stem_width"] * 9 * size * size, size, arch["stem_width"]
    for stage in arch["stages"]:
        for b in range(stage["blocks"]):
            stride = stage["stride"] if b == 0 else 1
            h = (h + 2 - 3) // stride + 1
            cout = stage["width"]
            macs += (cin * cout * 9 + cout * cout * 9) * h * h
            if arch["shortcut"] == "B" and (stride != 1 or cin != cout):
                macs += cin * cout * h * h
            cin = cout
    macs += cin * arch["num_classes"]
    return 2.0 * macs


def make_model(blocks: int, seed: int) -> tuple[dict, torch.nn.Module]:
    torch.manual_seed(seed)
    arch = architecture(blocks)
    model = CifarResNet(arch)
    randomize_batchnorm(model, torch.Generator().manual_seed(seed))
    return arch, model.eval()


class Peak:
    """The fp32 peak (GFLOP/s) of `threads` cores: the FMA loop on one thread, times the
    thread count, the best of the measurements in every round. One thread, because a
    static two-thread loop runs at the pace of whichever thread another process delays,
    which on a shared machine measures the load rather than the cores."""

    def __init__(self, threads: int, folder: str):
        self.threads, self.binary = threads, os.path.join(folder, "peak_fma")
        self.best = 0.0
        try:
            subprocess.run(["gcc", "-O3", "-march=native", "-fopenmp", os.path.join(HERE, "peak_fma.c"),
                            "-o", self.binary], check=True, capture_output=True)
        except (OSError, subprocess.CalledProcessError) as error:
            print(f"peak: not measured ({error})", file=sys.stderr)
            self.binary = None

    def measure(self) -> float | None:
        if not self.binary:
            return None
        out = subprocess.run([self.binary, "1", "100000000"], check=True, capture_output=True, text=True)
        self.best = max(self.best, float(out.stdout.strip()) * self.threads)
        return self.best


class Engine:
    name = ""

    def time_once(self, batch: int) -> float:
        """Images per second for one repetition."""
        raise NotImplementedError


class TorchEngine(Engine):
    def __init__(self, name: str, fn, inputs: torch.Tensor, images: int):
        self.name, self.fn, self.inputs, self.images = name, fn, inputs, images
        self.warmed: set[int] = set()

    def time_once(self, batch: int) -> float:
        x = self.inputs[:batch].contiguous()
        batches = max(1, self.images // batch)
        with torch.inference_mode():
            if batch not in self.warmed:
                for _ in range(2):
                    self.fn(x)
                self.warmed.add(batch)
            start = time.perf_counter()
            for _ in range(batches):
                self.fn(x)
            return batches * batch / (time.perf_counter() - start)


class OnnxEngine(Engine):
    name = "onnxruntime"

    def __init__(self, model: torch.nn.Module, inputs: torch.Tensor, images: int, threads: int, folder: str, tag: str):
        import onnxruntime as ort
        path = os.path.join(folder, f"{tag}.onnx")
        sample = inputs[:2].contiguous()
        kwargs = dict(input_names=["x"], output_names=["logits"], dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}},
                      opset_version=17)
        try:
            torch.onnx.export(model, (sample,), path, dynamo=False, **kwargs)
        except TypeError:
            torch.onnx.export(model, (sample,), path, **kwargs)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.inputs, self.images = inputs.numpy(), images
        self.warmed: set[int] = set()

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"x": x})[0]

    def time_once(self, batch: int) -> float:
        x = np.ascontiguousarray(self.inputs[:batch])
        batches = max(1, self.images // batch)
        if batch not in self.warmed:
            for _ in range(2):
                self.run(x)
            self.warmed.add(batch)
        start = time.perf_counter()
        for _ in range(batches):
            self.run(x)
        return batches * batch / (time.perf_counter() - start)


def build_engine(name: str, blocks: int, data: str, images: int, threads: int, folder: str) -> Engine:
    """One engine, in the process that will time it."""
    torch.set_num_threads(threads)
    _, model = make_model(blocks, seed=blocks)
    with h5py.File(data) as f:
        inputs = torch.from_numpy(f["images"][...])
    if name == "torch-eager":
        return TorchEngine(name, model, inputs, images)
    if name == "torch-jit":
        with torch.inference_mode():
            traced = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(model, inputs[:2])))
        return TorchEngine(name, traced, inputs, images)
    if name == "torch-compile":
        import torch._inductor.config as inductor
        inductor.freezing = True
        compiled = torch.compile(model, dynamic=False)
        return TorchEngine(name, compiled, inputs, images)
    if name == "onnxruntime":
        return OnnxEngine(model, inputs, images, threads, folder, f"resnet-{blocks}")
    raise ValueError(name)


def serve_engine(connection, name: str, blocks: int, data: str, images: int, threads: int, folder: str) -> None:
    try:
        engine = build_engine(name, blocks, data, images, threads, folder)
    except Exception as error:  # noqa: BLE001
        connection.send(f"unavailable: {error}")
        return
    connection.send("ready")
    while (batch := connection.recv()) is not None:
        connection.send(engine.time_once(batch))


class ProcessEngine(Engine):
    """An engine in a process of its own, so that one library's idle threads (spinning
    OpenMP or ONNX Runtime workers) never run beside another library's timing."""

    def __init__(self, name: str, blocks: int, data: str, images: int, threads: int, folder: str):
        import multiprocessing
        self.name = name
        context = multiprocessing.get_context("spawn")
        self.connection, child = context.Pipe()
        self.process = context.Process(target=serve_engine, args=(child, name, blocks, data, images, threads, folder))
        self.process.start()
        status = self.connection.recv()
        if status != "ready":
            self.process.join()
            raise RuntimeError(status)

    def time_once(self, batch: int) -> float:
        self.connection.send(batch)
        return self.connection.recv()

    def close(self) -> None:
        self.connection.send(None)
        self.process.join()


class DepthLensEngine(Engine):
    name = "depthlens"

    def __init__(self, binary: str, checkpoint: str, data: str, images: int, threads: int, backend: str):
        self.binary, self.checkpoint, self.data = binary, checkpoint, data
        self.images, self.threads, self.backend = images, threads, backend

    def bench(self, batch: int, repeats: int = 1, lesions: bool = False) -> dict:
        command = [self.binary, "bench", self.checkpoint, "--data", self.data, "--batch-size", str(batch),
                   "--threads", str(self.threads), "--repeats", str(repeats), "--images", str(self.images),
                   "--backend", self.backend]
        if lesions:
            command.append("--lesions")
        out = subprocess.run(command, check=True, capture_output=True, text=True)
        return json.loads(out.stdout.strip().splitlines()[-1])

    def time_once(self, batch: int) -> float:
        return self.bench(batch)["images_per_second"]


def check_logits(binary: str, checkpoint: str, data: str, model: torch.nn.Module, inputs: torch.Tensor,
                 threads: int, folder: str) -> tuple[float, bool]:
    out = os.path.join(folder, "predict.h5")
    subprocess.run([binary, "predict", checkpoint, "--data", data, "-o", out, "--batch-size", "256",
                    "--threads", str(threads)], check=True, capture_output=True)
    with h5py.File(out) as f:
        ours = f["logits"][...]
    with torch.inference_mode():
        theirs = model(inputs).numpy()
    return float(np.abs(ours - theirs).max()), bool((ours.argmax(1) == theirs.argmax(1)).all())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--depthlens", default=".build/release/depthlens", help="release build of the CLI")
    parser.add_argument("--blocks", default="9,27,54")
    parser.add_argument("--batches", default="64,256")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds; medians are reported")
    parser.add_argument("--images", type=int, default=512, help="images per timed repetition")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile (inductor, frozen weights)")
    parser.add_argument("--lesions", action="store_true",
                        help="also time the L+1 single-block lesions: configurations API against independent passes")
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    blocks_list = [int(b) for b in args.blocks.split(",")]
    batches = [int(b) for b in args.batches.split(",")]
    folder = tempfile.mkdtemp(prefix="depthlens-bench-")
    peak = Peak(args.threads, folder)
    first = peak.measure()
    print(f"machine: {os.cpu_count()} cores; fp32 peak of {args.threads} cores (FMA loop, first measurement): "
          + (f"{first:.0f} GFLOP/s" if first else "not measured"))
    print(f"torch {torch.__version__}; threads {args.threads}; rounds {args.rounds}; {args.images} images a repetition")
    inputs = torch.randn(max(batches), 1, 28, 28, generator=torch.Generator().manual_seed(7))
    data = os.path.join(folder, "inputs.h5")
    with h5py.File(data, "w") as f:
        f.create_dataset("images", data=inputs.numpy())

    results = []
    for blocks in blocks_list:
        arch, model = make_model(blocks, seed=blocks)
        checkpoint = os.path.join(folder, f"resnet-{blocks}.ckpt.h5")
        write_checkpoint(checkpoint, arch, model.state_dict())
        diff, same = check_logits(args.depthlens, checkpoint, data, model, inputs, args.threads, folder)
        print(f"\n{blocks} blocks ({flops_per_image(arch, 28) / 1e6:.0f} MFLOP/image): "
              f"max |logit diff| vs PyTorch {diff:.2e}, same argmax: {same}")
        engines: list[Engine] = [DepthLensEngine(args.depthlens, checkpoint, data, args.images, args.threads, "fast")]
        names = ["torch-eager", "torch-jit"] + ([] if args.no_compile else ["torch-compile"]) + ["onnxruntime"]
        for name in names:
            try:
                engines.append(ProcessEngine(name, blocks, data, args.images, args.threads, folder))
            except RuntimeError as error:
                print(f"{name}: {error}")
        for batch in batches:
            runs: dict[str, list[float]] = {e.name: [] for e in engines}
            for _ in range(args.rounds):
                for engine in engines:
                    runs[engine.name].append(engine.time_once(batch))
                peak.measure()
            medians = {name: statistics.median(values) for name, values in runs.items()}
            best_torch = max(v for k, v in medians.items() if k.startswith("torch-") and k != "torch-eager")
            ours = medians["depthlens"]
            row = {"blocks": blocks, "batch": batch, "images_per_second": medians, "runs": runs,
                   "ratio_vs_eager": ours / medians["torch-eager"], "ratio_vs_best_torch": ours / best_torch,
                   "max_logit_diff": diff, "same_argmax": same}
            if "onnxruntime" in medians:
                row["ratio_vs_onnxruntime"] = ours / medians["onnxruntime"]
            row["gflops"] = ours * flops_per_image(arch, 28) / 1e9
            results.append(row)
            print(f"  batch {batch}: " + ", ".join(f"{k} {v:.0f}" for k, v in medians.items()) + " images/s")
            print(f"    DepthLens / eager {row['ratio_vs_eager']:.2f}x, / best PyTorch {row['ratio_vs_best_torch']:.2f}x"
                  + (f", / ONNX Runtime {row['ratio_vs_onnxruntime']:.2f}x" if "ratio_vs_onnxruntime" in row else "")
                  + f", {row['gflops']:.0f} GFLOP/s")
        for engine in engines:
            if isinstance(engine, ProcessEngine):
                engine.close()
        if args.lesions:
            lesion = DepthLensEngine(args.depthlens, checkpoint, data, args.images, args.threads, "fast").bench(
                min(batches), repeats=3, lesions=True)
            speedup = lesion["lesions_independent_seconds"] / lesion["lesions_shared_seconds"]
            results.append({"blocks": blocks, "lesions": lesion, "lesion_speedup": speedup})
            print(f"  {lesion['lesion_configurations']} single-block lesions, batch {lesion['batch']}: "
                  f"shared prefixes {lesion['lesions_shared_seconds']:.2f} s, independent passes "
                  f"{lesion['lesions_independent_seconds']:.2f} s ({speedup:.2f}x); peak RSS {lesion['peak_rss_mib']:.0f} MiB")
    for row in results:
        if "gflops" in row and peak.best:
            row["percent_of_peak"] = 100 * row["gflops"] / peak.best
    print(f"\nfp32 peak of {args.threads} cores: {peak.best:.0f} GFLOP/s (best one-thread FMA loop x {args.threads})\n")
    print("| blocks | batch | DepthLens | PyTorch eager | best PyTorch | ONNX Runtime | vs eager | vs best PyTorch "
          "| vs ONNX Runtime | % of peak |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in results:
        if "images_per_second" not in row:
            continue
        m = row["images_per_second"]
        best = max((v, k) for k, v in m.items() if k.startswith("torch-") and k != "torch-eager")
        print(f"| {row['blocks']} | {row['batch']} | {m['depthlens']:.0f} | {m['torch-eager']:.0f} "
              f"| {best[0]:.0f} ({best[1][6:]}) | {m.get('onnxruntime', float('nan')):.0f} | {row['ratio_vs_eager']:.2f}x "
              f"| {row['ratio_vs_best_torch']:.2f}x | {row.get('ratio_vs_onnxruntime', float('nan')):.2f}x "
              f"| {row.get('percent_of_peak', float('nan')):.0f}% |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"peak_gflops": peak.best, "threads": args.threads, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
