#!/usr/bin/env python3
"""Forward-pass benchmark: DepthLens against PyTorch (eager and its best mode) and ONNX
Runtime on the same weights and inputs, interleaved in one run so that the ratios hold on
a noisy machine.

    swift build -c release --product depthlens
    python3 tools/bench/run_bench.py --depthlens .build/release/depthlens
    python3 tools/bench/run_bench.py --models timm/resnet18,timm/resnet50,torchvision/resnet50

Also times torch.compile (inductor, frozen weights) unless --no-compile; the best of
traced+frozen+optimize_for_inference and torch.compile is "best PyTorch".

For each network and batch size, every engine is timed once per round,
rounds interleaved, each engine in a process of its own; the median of the rounds is reported (images/s), with the ratios of
DepthLens to each other engine and the share of the machine's fp32 peak (an FMA loop,
tools/bench/peak_fma.c). The DepthLens logits are checked against PyTorch's first; the
peak resident memory of the `depthlens bench` process is reported beside its speed.

Networks: `--blocks` names CIFAR ResNets (widths 16/32/64, 1x28x28 inputs, 10 classes,
option A shortcuts; default 9, 27 and 54 blocks, batches 64 and 256); `--models` names
ImageNet networks of timm or torchvision (ResNets, ViTs, ConvNeXts: random weights and
batch-norm statistics, seeded; 3x224x224 inputs, 1000 classes; default batches 1, 16 and
64), read by DepthLens as a plain state_dict dump with `--arch`, or the bundled
Fashion-MNIST models' architectures as tools/train_timm.py builds them (`recipe/vit`,
`recipe/convnext`: 1x28x28 inputs, random weights exported by train_timm.export with the
`depthlens_architecture` metadata, so DepthLens reads them as it reads the shipped files;
`recipe/vit=data/fmnist-vit.safetensors` benchmarks a trained file instead). FLOPs are
counted by hooks on every convolution and linear layer and on attention's two products
(two per multiply-add).

    python3 tools/bench/run_bench.py --models timm/vit_small_patch16_224,timm/convnext_tiny --no-compile
    python3 tools/bench/run_bench.py --models recipe/vit,recipe/convnext --no-compile
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

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))  # tools/: depthlens_ref, train_timm
from depthlens_ref.export import write_checkpoint  # noqa: E402
from depthlens_ref.interop import import_vision  # noqa: E402
from depthlens_ref.model import CifarResNet, default_architecture, randomize_batchnorm  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def architecture(blocks: int) -> dict:
    per_stage = blocks // 3
    return default_architecture(stages=[
        {"blocks": per_stage, "width": 16, "stride": 1},
        {"blocks": per_stage, "width": 32, "stride": 2},
        {"blocks": per_stage, "width": 64, "stride": 2},
    ])


def make_model(blocks: int, seed: int) -> tuple[dict, torch.nn.Module]:
    """A CIFAR ResNet of `blocks` blocks with seeded random weights and statistics."""
    torch.manual_seed(seed)
    arch = architecture(blocks)
    model = CifarResNet(arch)
    randomize_batchnorm(model, torch.Generator().manual_seed(seed))
    return arch, model.eval()


class Network:
    """One benchmarked network: `spec` is a CIFAR block count ("54"), an ImageNet model
    ("timm/resnet50", "torchvision/resnet50", "timm/vit_small_patch16_224",
    "timm/convnext_tiny"), or a Fashion-MNIST recipe of tools/train_timm.py ("recipe/vit",
    "recipe/convnext": the bundled models' architectures, 1x28x28 inputs), with random
    weights unless the recipe names a trained file ("recipe/vit=data/fmnist-vit.safetensors").
    Every process that builds it from the spec gets the same weights (seeded), so engines
    in processes of their own agree."""

    def __init__(self, spec: str):
        self.spec = spec
        self.recipe = spec.startswith("recipe/")
        self.imagenet = "/" in spec and not self.recipe
        self.input_shape = (3, 224, 224) if self.imagenet else (1, 28, 28)
        name, _, self.checkpoint = spec.partition("=")
        self.recipe_name = name.removeprefix("recipe/") if self.recipe else None
        if self.checkpoint and not self.recipe:
            raise SystemExit(f"'{spec}': only a recipe network (recipe/NAME=FILE) takes a trained file")

    @property
    def label(self) -> str:
        if self.recipe:
            return f"{self.spec} ({'trained' if self.checkpoint else 'random weights'})"
        return self.spec if self.imagenet else f"{self.spec} blocks"

    @property
    def seed(self) -> int:
        return int(self.spec) if self.spec.isdigit() else sum(map(ord, self.spec))

    @property
    def tag(self) -> str:
        return self.spec.partition("=")[0].replace("/", "-")

    def build(self) -> torch.nn.Module:
        if self.recipe:
            import train_timm
            if self.recipe_name not in train_timm.RECIPES:
                raise SystemExit(f"unknown recipe in '{self.spec}': {', '.join(sorted(train_timm.RECIPES))}")
            torch.manual_seed(self.seed)
            model = train_timm.build(train_timm.RECIPES[self.recipe_name])
            if self.checkpoint:
                from safetensors.torch import load_file
                model.load_state_dict(load_file(self.checkpoint))
            return model.eval()
        if not self.imagenet:
            return make_model(int(self.spec), seed=self.seed)[1]
        library, _, name = self.spec.partition("/")
        torchvision, timm = import_vision()
        torch.manual_seed(self.seed)
        if library == "timm":
            model = timm.create_model(name, pretrained=False)
        elif library == "torchvision":
            model = getattr(torchvision.models, name)(weights=None)
        else:
            raise SystemExit(f"unknown library in '{self.spec}': timm, torchvision or recipe")
        randomize_batchnorm(model, torch.Generator().manual_seed(self.seed))
        return model.eval()

    def write(self, model: torch.nn.Module, folder: str) -> tuple[str, list[str]]:
        """The file DepthLens reads and the extra arguments it needs."""
        if self.recipe:
            if self.checkpoint:
                return self.checkpoint, []
            # Exported as train_timm.py exports the bundled models: the file names its architecture.
            import train_timm
            path = os.path.join(folder, f"{self.tag}.safetensors")
            recipe = train_timm.RECIPES[self.recipe_name]
            train_timm.export(model, path, train_timm.architecture_record(self.recipe_name, recipe, model))
            return path, []
        if not self.imagenet:
            path = os.path.join(folder, f"resnet-{self.tag}.ckpt.h5")
            write_checkpoint(path, architecture(int(self.spec)), model.state_dict())
            return path, []
        from safetensors.torch import save_file
        path = os.path.join(folder, f"{self.tag}.safetensors")
        save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, path)
        return path, ["--arch", self.spec]


def flops_per_image(model: torch.nn.Module, input_shape: tuple[int, ...]) -> float:
    """Two FLOPs per multiply-add of every convolution and linear layer, and of attention's
    two batched products, counted by hooks on one forward pass (element-wise work, softmax
    included, is left out, as is usual)."""
    macs = 0

    def count(module, inputs, output):
        nonlocal macs
        if isinstance(module, torch.nn.Conv2d):
            kh, kw = module.kernel_size
            macs += output.numel() * (module.in_channels // module.groups) * kh * kw
        else:
            macs += output.numel() * module.in_features

    def attention(module, inputs, output):
        # q kᵀ and p v of every head: tokens x tokens x width multiply-adds each.
        nonlocal macs
        _, tokens, width = inputs[0].shape
        macs += 2 * tokens * tokens * width

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    hooks += [m.register_forward_hook(attention) for m in model.modules()
              if hasattr(m, "qkv") and hasattr(m, "num_heads")]  # timm's Attention
    with torch.inference_mode():
        model(torch.zeros(1, *input_shape))
    for hook in hooks:
        hook.remove()
    return 2.0 * macs


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


def build_engine(name: str, spec: str, data: str, images: int, threads: int, folder: str) -> Engine:
    """One engine, in the process that will time it."""
    torch.set_num_threads(threads)
    model = Network(spec).build()
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
        return OnnxEngine(model, inputs, images, threads, folder, Network(spec).tag)
    raise ValueError(name)


def serve_engine(connection, name: str, spec: str, data: str, images: int, threads: int, folder: str) -> None:
    try:
        engine = build_engine(name, spec, data, images, threads, folder)
    except Exception as error:  # noqa: BLE001
        connection.send(f"unavailable: {error}")
        return
    connection.send("ready")
    while (batch := connection.recv()) is not None:
        connection.send(engine.time_once(batch))


class ProcessEngine(Engine):
    """An engine in a process of its own, so that one library's idle threads (spinning
    OpenMP or ONNX Runtime workers) never run beside another library's timing."""

    def __init__(self, name: str, spec: str, data: str, images: int, threads: int, folder: str):
        import multiprocessing
        self.name = name
        context = multiprocessing.get_context("spawn")
        self.connection, child = context.Pipe()
        self.process = context.Process(target=serve_engine, args=(child, name, spec, data, images, threads, folder))
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

    def __init__(self, binary: str, checkpoint: str, extra: list[str], data: str, images: int, threads: int,
                 backend: str):
        self.binary, self.checkpoint, self.extra, self.data = binary, checkpoint, extra, data
        self.images, self.threads, self.backend = images, threads, backend
        self.peak_rss_mib: dict[int, float] = {}

    def bench(self, batch: int, repeats: int = 1, lesions: bool = False) -> dict:
        command = [self.binary, "bench", self.checkpoint, *self.extra, "--data", self.data, "--batch-size", str(batch),
                   "--threads", str(self.threads), "--repeats", str(repeats), "--images", str(self.images),
                   "--backend", self.backend]
        if lesions:
            command.append("--lesions")
        out = subprocess.run(command, check=True, capture_output=True, text=True)
        return json.loads(out.stdout.strip().splitlines()[-1])

    def time_once(self, batch: int) -> float:
        result = self.bench(batch)
        self.peak_rss_mib[batch] = max(self.peak_rss_mib.get(batch, 0.0), result["peak_rss_mib"])
        return result["images_per_second"]


def check_logits(binary: str, checkpoint: str, extra: list[str], data: str, model: torch.nn.Module,
                 inputs: torch.Tensor, threads: int, folder: str) -> tuple[float, bool]:
    out = os.path.join(folder, "predict.h5")
    subprocess.run([binary, "predict", checkpoint, *extra, "--data", data, "-o", out, "--batch-size", "256",
                    "--threads", str(threads)], check=True, capture_output=True)
    with h5py.File(out) as f:
        ours = f["logits"][...]
    with torch.inference_mode():
        theirs = model(inputs).numpy()
    return float(np.abs(ours - theirs).max()), bool((ours.argmax(1) == theirs.argmax(1)).all())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--depthlens", default=".build/release/depthlens", help="release build of the CLI")
    parser.add_argument("--blocks", help="CIFAR ResNets by block count (default 9,27,54 when --models is absent)")
    parser.add_argument("--models", help="ImageNet networks, e.g. timm/resnet50,torchvision/resnet50,timm/vit_small_patch16_224,"
                        "timm/convnext_tiny; or the bundled models' recipes (tools/train_timm.py), e.g. recipe/vit,"
                        "recipe/convnext, random weights, or recipe/vit=data/fmnist-vit.safetensors for a trained file")
    parser.add_argument("--batches", help="batch sizes (default 64,256 for CIFAR ResNets, else 1,16,64)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds; medians are reported")
    parser.add_argument("--images", type=int, help="images per timed repetition (default 512 CIFAR, 64 ImageNet)")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile (inductor, frozen weights)")
    parser.add_argument("--no-jit", action="store_true",
                        help="skip TorchScript (traced, frozen); with --no-compile too, no 'best PyTorch' column")
    parser.add_argument("--lesions", action="store_true",
                        help="also time the L+1 single-block lesions: configurations API against independent passes")
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    specs = args.models.split(",") if args.models else []
    if args.blocks or not specs:
        specs = (args.blocks or "9,27,54").split(",") + specs
    networks = [Network(spec) for spec in specs]
    if len({n.input_shape for n in networks}) > 1:
        raise SystemExit("--blocks and --models need inputs of different sizes: benchmark them in separate runs")
    imagenet = networks[0].imagenet
    cifar_only = not any(n.imagenet or n.recipe for n in networks)
    batches = [int(b) for b in (args.batches or ("64,256" if cifar_only else "1,16,64")).split(",")]
    images = args.images or (64 if imagenet else 512)
    folder = tempfile.mkdtemp(prefix="depthlens-bench-")
    peak = Peak(args.threads, folder)
    first = peak.measure()
    print(f"machine: {os.cpu_count()} cores; fp32 peak of {args.threads} cores (FMA loop, first measurement): "
          + (f"{first:.0f} GFLOP/s" if first else "not measured"))
    print(f"torch {torch.__version__}; threads {args.threads}; rounds {args.rounds}; {images} images a repetition")
    inputs = torch.randn(max(batches + [2]), *networks[0].input_shape, generator=torch.Generator().manual_seed(7))
    data = os.path.join(folder, "inputs.h5")
    with h5py.File(data, "w") as f:
        f.create_dataset("images", data=inputs.numpy())

    results = []
    for network in networks:
        model = network.build()
        flops = flops_per_image(model, network.input_shape)
        checkpoint, extra = network.write(model, folder)
        diff, same = check_logits(args.depthlens, checkpoint, extra, data, model, inputs, args.threads, folder)
        print(f"\n{network.label} ({flops / 1e9:.2f} GFLOP/image): "
              f"max |logit diff| vs PyTorch {diff:.2e}, same argmax: {same}")
        ours = DepthLensEngine(args.depthlens, checkpoint, extra, data, images, args.threads, "fast")
        engines: list[Engine] = [ours]
        names = (["torch-eager"] + ([] if args.no_jit else ["torch-jit"]) + ([] if args.no_compile else ["torch-compile"])
                 + ["onnxruntime"])
        for name in names:
            try:
                engines.append(ProcessEngine(name, network.spec, data, images, args.threads, folder))
            except RuntimeError as error:
                print(f"{name}: {error}")
        for batch in batches:
            runs: dict[str, list[float]] = {e.name: [] for e in engines}
            for _ in range(args.rounds):
                for engine in engines:
                    runs[engine.name].append(engine.time_once(batch))
                peak.measure()
            medians = {name: statistics.median(values) for name, values in runs.items()}
            best_torch = max((v for k, v in medians.items() if k.startswith("torch-") and k != "torch-eager"), default=None)
            speed = medians["depthlens"]
            row = {"network": network.spec, "batch": batch, "images_per_second": medians, "runs": runs,
                   "ratio_vs_eager": speed / medians["torch-eager"],
                   "max_logit_diff": diff, "same_argmax": same, "depthlens_peak_rss_mib": ours.peak_rss_mib[batch]}
            if best_torch:
                row["ratio_vs_best_torch"] = speed / best_torch
            if "onnxruntime" in medians:
                row["ratio_vs_onnxruntime"] = speed / medians["onnxruntime"]
            row["gflops"] = {name: value * flops / 1e9 for name, value in medians.items()}
            results.append(row)
            print(f"  batch {batch}: " + ", ".join(f"{k} {v:.1f}" for k, v in medians.items()) + " images/s")
            print(f"    DepthLens / eager {row['ratio_vs_eager']:.2f}x"
                  + (f", / best PyTorch {row['ratio_vs_best_torch']:.2f}x" if "ratio_vs_best_torch" in row else "")
                  + (f", / ONNX Runtime {row['ratio_vs_onnxruntime']:.2f}x" if "ratio_vs_onnxruntime" in row else "")
                  + f", {row['gflops']['depthlens']:.0f} GFLOP/s, peak RSS {row['depthlens_peak_rss_mib']:.0f} MiB")
        for engine in engines:
            if isinstance(engine, ProcessEngine):
                engine.close()
        if args.lesions:
            lesion = ours.bench(min(batches), repeats=3, lesions=True)
            speedup = lesion["lesions_independent_seconds"] / lesion["lesions_shared_seconds"]
            results.append({"network": network.spec, "lesions": lesion, "lesion_speedup": speedup})
            print(f"  {lesion['lesion_configurations']} single-block lesions, batch {lesion['batch']}: "
                  f"shared prefixes {lesion['lesions_shared_seconds']:.2f} s, independent passes "
                  f"{lesion['lesions_independent_seconds']:.2f} s ({speedup:.2f}x); peak RSS {lesion['peak_rss_mib']:.0f} MiB")
    for row in results:
        if "gflops" in row and peak.best:
            row["percent_of_peak"] = {name: 100 * value / peak.best for name, value in row["gflops"].items()}
    print(f"\nfp32 peak of {args.threads} cores: {peak.best:.0f} GFLOP/s (best one-thread FMA loop x {args.threads})\n")
    print("| network | batch | DepthLens | PyTorch eager | best PyTorch | ONNX Runtime | vs eager | vs best PyTorch "
          "| vs ONNX Runtime | % of peak: DepthLens / ORT / eager | DepthLens peak RSS |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for row in results:
        if "images_per_second" not in row:
            continue
        m, share = row["images_per_second"], row.get("percent_of_peak", {})
        best = max(((v, k) for k, v in m.items() if k.startswith("torch-") and k != "torch-eager"), default=None)
        shares = " / ".join(f"{share[k]:.0f}%" if k in share else "-" for k in ("depthlens", "onnxruntime", "torch-eager"))
        best_cell = f"{best[0]:.1f} ({best[1][6:]})" if best else "-"
        best_ratio = f"{row['ratio_vs_best_torch']:.2f}x" if best else "-"
        print(f"| {row['network']} | {row['batch']} | {m['depthlens']:.1f} | {m['torch-eager']:.1f} "
              f"| {best_cell} | {m.get('onnxruntime', float('nan')):.1f} | {row['ratio_vs_eager']:.2f}x "
              f"| {best_ratio} | {row.get('ratio_vs_onnxruntime', float('nan')):.2f}x "
              f"| {shares} | {row['depthlens_peak_rss_mib']:.0f} MiB |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"peak_gflops": peak.best, "threads": args.threads, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
