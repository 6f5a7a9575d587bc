#!/usr/bin/env python3
"""Exports a timm or torchvision ResNet to a DepthLens checkpoint (format v1), or writes
a plain state_dict dump of it.

The network is built by its own library (`timm.create_model` or
`torchvision.models.NAME`, no download), the weights (a .pt/.pth file holding the
state_dict itself, or a training checkpoint with it under "state_dict", "model" or
"state_dict_ema") are loaded strictly into it, so that every name and shape is checked
by PyTorch before any file is written, and the architecture is read from the model:

    python3 tools/export_timm.py timm/resnet50 out.h5 --weights model.pth --drop-path-rate 0.1
    python3 tools/export_timm.py torchvision/resnet18 out.h5 --weights resnet18.pth
    python3 tools/export_timm.py timm/resnet50d out.h5 --weights model.pth --drop-path-rate 0.05
    python3 tools/export_timm.py timm/resnet18 dump.h5 --weights model.pth --plain-dump

The checkpoint's `training` record says how drop path was trained: schedule
`linear-from-zero` with r = --drop-path-rate (timm's rule, block_dpr = r * l / (L - 1)
for blocks l = 0...L-1 counted across stages), per-example gates, the inverted test-time
rule (timm's DropPath scales kept residuals by 1/p). torchvision's ResNets have no drop
path: give --drop-path-rate only if you trained them with one. --normalization imagenet
records timm's and torchvision's ImageNet mean and std.

--plain-dump writes one dataset per key at the root, as `h5py` writes a dict of arrays;
DepthLens reads it with `--arch timm/resnet18` (docs/interop.md).

From Python, for a model in memory (timm or torchvision, any widths and class count):

    from export_timm import export
    export(model, "out.h5", drop_path_rate=0.1)
"""
from __future__ import annotations

import argparse
import os
import sys

import h5py
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from depthlens_ref import interop  # noqa: E402
from depthlens_ref.export import provenance, write_checkpoint  # noqa: E402

IMAGENET = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}


def load_state_dict(path: str) -> dict:
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "state_dict_ema"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise SystemExit(f"{path}: not a state_dict (a dict of tensors)")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def build(name: str, state: dict | None, num_classes: int | None, in_chans: int | None, drop_path_rate: float):
    library, _, model_name = name.partition("/")
    base = model_name[:-1] if library == "timm" and model_name.endswith("d") else model_name
    if library not in ("timm", "torchvision") or base not in interop.PRESETS:
        raise SystemExit(f"unknown model '{name}'; known: " + ", ".join(
            [f"timm/{m}" for m in interop.PRESETS] + [f"timm/{m}d" for m in interop.PRESETS]
            + [f"torchvision/{m}" for m in interop.TORCHVISION_MODELS]))
    if library == "torchvision" and model_name not in interop.TORCHVISION_MODELS:
        raise SystemExit(f"torchvision has no {model_name}")
    if state is not None:
        num_classes = num_classes or state["fc.weight"].shape[0]
        in_chans = in_chans or state["conv1.weight"].shape[1]
    num_classes, in_chans = num_classes or 1000, in_chans or 3
    torchvision, timm = interop.import_vision()
    if library == "timm":
        model = timm.create_model(model_name, pretrained=False, num_classes=num_classes, in_chans=in_chans,
                                  drop_path_rate=drop_path_rate)
    else:
        if in_chans != 3:
            raise SystemExit("torchvision ResNets take 3 input channels")
        model = getattr(torchvision.models, model_name)(weights=None, num_classes=num_classes)
    if state is not None:
        model.load_state_dict(state, strict=True)
    model.eval()
    return library, model_name, model


def write_plain_dump(path: str, state: dict) -> None:
    with h5py.File(path, "w") as f:
        for key, value in state.items():
            f.create_dataset(key, data=value.detach().cpu().numpy())


def export(model: torch.nn.Module, path: str, drop_path_rate: float = 0.0, normalization: dict | None = IMAGENET,
           input_size: list[int] | None = None, **extra) -> dict:
    """Writes `model` (a timm or torchvision ResNet) as a DepthLens checkpoint; returns
    the architecture. Raises ValueError for variants DepthLens does not compute, or when
    the architecture read from the model does not reproduce its forward pass."""
    arch = interop.architecture_of(model)
    interop.check_architecture(model, arch)
    if arch["in_channels"] != 3:
        normalization = None
    training = interop.training_metadata(model, drop_path_rate, normalization=normalization,
                                         input_size=input_size, **extra)
    write_checkpoint(path, arch, model.state_dict(), training,
                     provenance("tools/export_timm.py", model=type(model).__module__ + "." + type(model).__name__))
    return arch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="timm/resnet18, timm/resnet50, torchvision/resnet34, ...")
    parser.add_argument("output")
    parser.add_argument("--weights", help="state_dict file (.pt/.pth); without it, random initialisation")
    parser.add_argument("--num-classes", type=int)
    parser.add_argument("--in-chans", type=int)
    parser.add_argument("--drop-path-rate", type=float, default=0.0,
                        help="timm drop_path_rate the network was trained with (recorded; default 0)")
    parser.add_argument("--normalization", choices=["imagenet", "none"], default="imagenet")
    parser.add_argument("--input-size", type=int, nargs=2, metavar=("H", "W"))
    parser.add_argument("--dataset")
    parser.add_argument("--plain-dump", action="store_true", help="write a plain state_dict dump instead")
    args = parser.parse_args()

    state = load_state_dict(args.weights) if args.weights else None
    library, model_name, model = build(args.model, state, args.num_classes, args.in_chans, args.drop_path_rate)
    if args.plain_dump:
        write_plain_dump(args.output, model.state_dict())
        print(f"{args.output}: plain state_dict dump of {args.model}; load with --arch {args.model}")
        return
    arch = interop.architecture_of(model)
    interop.check_architecture(model, arch)
    normalization = IMAGENET if args.normalization == "imagenet" and arch["in_channels"] == 3 else None
    extra = {"dataset": args.dataset} if args.dataset else {}
    training = interop.training_metadata(model, args.drop_path_rate, normalization=normalization,
                                         input_size=args.input_size, **extra)
    write_checkpoint(args.output, arch, model.state_dict(), training,
                     provenance("tools/export_timm.py", model=args.model, library_version=(
                         sys.modules[library].__version__), weights=args.weights or "random"))
    print(f"{args.output}: {args.model}, {sum(s['blocks'] for s in arch['stages'])} blocks, "
          f"drop_path_rate {args.drop_path_rate} (linear-from-zero, inverted rule)")


if __name__ == "__main__":
    main()
