#!/usr/bin/env python3
"""Writes the timm ConvNeXt golden files the Swift tests compare against
(Tests/Fixtures/convnext/, issue 20).

Each model is timm's own `ConvNeXt` class (timm.models.convnext) built narrow, with
random weights (layer-norm weights and biases, and layer scale `gamma` of order 1, so
that every block matters), rounded to float32; the logits come from timm's OWN forward
pass run in float64 on those float32 weights, so the golden is exact and the tolerance
measures DepthLens's rounding alone. Gates stand in for drop path right before the
residual add (each block's `drop_path` module replaced by a multiplication): all blocks
on, random shared 0/1 and scaled gate vectors, per-example 0/1 gates and per-example
gates under the inverted rule (kept blocks times 1/p_l, p_l from timm's rates
linspace(0, rate, L)), each downsampling stage's first block dropped alone, and every
block dropped.

Variants: depths and widths, conv_mlp true and false (1x1-convolution MLP weights and
LayerNorm2d, or nn.Linear and channels-last LayerNorm), with and without layer scale,
patch sizes 1, 2 and 4, 1x28x28, 1x32x32 and 3x32x32 inputs, norm_eps, kernel size and conv_bias.
Every model is stored as a .safetensors file (float32, timm's keys); how it records its
architecture differs:
    format-v1   metadata `depthlens_architecture`: checkpoint format v1's timm_convnext JSON
    train-timm  metadata as tools/train_timm.py exports it (timm_class, timm_kwargs, and a
                `depthlens_training` record with drop_path rates)
    preset      no metadata: read with `--arch timm/convnext_*` (narrow versions of the
                presets, the presets' depths and conv_mlp)

Outputs per model NAME: NAME.safetensors, NAME.cases.h5 (images (N, C, H, W) float32,
cases/CASE/{logits, gates}; attribute `arch`: the preset name, or empty). And
layouts.json: every state_dict key and shape, and the parameter count, of the
full-size timm presets (timm.create_model, no weights downloaded). And refused-*.safetensors:
tiny files whose recorded architecture is refused (the malformed corpus runs them).

    python3 tools/make_convnext_golden.py                  # rewrites Tests/Fixtures/convnext
    python3 tools/make_convnext_golden.py --refused-only   # only the refused-*.safetensors
"""
from __future__ import annotations

import json
import os
import sys

import h5py
import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from depthlens_ref.interop import import_vision  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "Fixtures", "convnext")
PRESETS = ["convnext_atto", "convnext_femto", "convnext_pico", "convnext_nano", "convnext_tiny"]

# name: (metadata flavour, timm kwargs, drop_path_rate, input (C, H, W), preset)
MODELS = {
    # The bundled recipe's shape: patch 1 on 28x28, channels-last MLP, layer scale.
    "patch1_linear_ls": ("train-timm", dict(in_chans=1, num_classes=10, depths=(1, 1, 2, 1), dims=(8, 12, 16, 20),
                                            patch_size=1), 0.1, (1, 28, 28), ""),
    # ConvMlp (1x1 convolution weights, LayerNorm2d), no layer scale, patch 4 on 3x32x32.
    "patch4_convmlp_nols": ("format-v1", dict(in_chans=3, num_classes=7, depths=(2, 1, 1, 2), dims=(16, 16, 16, 24),
                                              patch_size=4, conv_mlp=True, ls_init_value=None), 0.2, (3, 32, 32), ""),
    # Patch 2: timm's first stage downsamples too; other eps and kernel; no biases.
    "patch2_odd": ("format-v1", dict(in_chans=1, num_classes=5, depths=(1, 2, 1, 1), dims=(12, 12, 20, 20), patch_size=2,
                                     norm_eps=1e-5, kernel_sizes=5, conv_bias=False), 0.3, (1, 32, 32), ""),
    # Narrow versions of presets, read with --arch (depths and conv_mlp as the preset's).
    "atto_narrow": ("preset", dict(in_chans=3, num_classes=10, depths=(2, 2, 6, 2), dims=(8, 8, 16, 16), conv_mlp=True),
                    0.1, (3, 32, 32), "timm/convnext_atto"),
    "tiny_narrow": ("preset", dict(in_chans=1, num_classes=10, depths=(3, 3, 9, 3), dims=(8, 8, 8, 16)),
                    0.2, (1, 32, 32), "timm/convnext_tiny"),
}


def randomize(model: nn.Module, gen: torch.Generator) -> None:
    """Weights of order 1 everywhere, so that no block is negligible: layer-norm
    weights near 1 and biases near 0, layer scale around 0.5, the rest scaled by fan-in."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("gamma"):
                p.copy_(0.5 + 0.3 * torch.randn(p.shape, generator=gen))
            elif "norm" in name or ".downsample.0." in name or name.startswith("stem.1"):
                p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.3 * torch.randn(p.shape, generator=gen))
            elif name.endswith("bias"):
                p.copy_(0.2 * torch.randn(p.shape, generator=gen))
            else:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=gen) / fan_in ** 0.5)
            # The golden runs on exactly the float32 values the file holds.
            p.copy_(p.float().double())


class Gate(nn.Module):
    """Drop path's place: the residual branch times a per-example gate."""

    def __init__(self):
        super().__init__()
        self.values = None  # (N,) or None for all on

    def forward(self, x):
        return x if self.values is None else x * self.values.reshape(-1, 1, 1, 1).to(x.dtype)


def install_gates(model: nn.Module) -> list:
    gates = []
    for stage in model.stages:
        for block in stage.blocks:
            block.drop_path = Gate()
            gates.append(block.drop_path)
    return gates


def forward(model, gates, images, values):
    """Logits of `images` with gate matrix `values` (N x L), or all on for None."""
    for l, g in enumerate(gates):
        g.values = None if values is None else values[:, l]
    with torch.no_grad():
        return model(images)


def cases_for(model, gates, images, rate, gen):
    n, L = images.shape[0], len(gates)
    depths = [len(s.blocks) for s in model.stages]
    firsts = np.cumsum([0] + depths[:-1])
    survival = 1 - torch.linspace(0, rate, L, dtype=torch.float64)
    out = {"all_on": None}
    for i in range(3):
        out[f"random01_{i}"] = (torch.rand(L, generator=gen) < 0.5).double()
    for i in range(2):
        out[f"scaled_{i}"] = 1.5 * torch.rand(L, generator=gen, dtype=torch.float64)
    out["per_example01"] = (torch.rand(n, L, generator=gen) < 0.5).double()
    keep = (torch.rand(n, L, generator=gen, dtype=torch.float64) < survival).double()
    out["per_example_inverted"] = keep / survival
    for s in range(1, len(depths)):
        vector = torch.ones(L, dtype=torch.float64)
        vector[firsts[s]] = 0
        out[f"drop_first_of_stage{s + 1}"] = vector
    out["all_off"] = torch.zeros(L, dtype=torch.float64)
    result = {}
    for name, v in out.items():
        matrix = None if v is None else (v if v.dim() == 2 else v.expand(n, L))
        result[name] = (forward(model, gates, images, matrix), v)
    return result


def format_v1(kwargs, rate):
    """Checkpoint format v1's timm_convnext JSON for timm kwargs."""
    arch = {"family": "timm_convnext", "in_channels": kwargs["in_chans"], "num_classes": kwargs["num_classes"],
            "patch_size": kwargs.get("patch_size", 4), "depths": list(kwargs["depths"]), "dims": list(kwargs["dims"]),
            "conv_mlp": kwargs.get("conv_mlp", False), "layer_scale": kwargs.get("ls_init_value", 1e-6) is not None,
            "norm_eps": kwargs.get("norm_eps") or 1e-6,
            "kernel_size": kwargs.get("kernel_sizes", 7), "conv_bias": kwargs.get("conv_bias", True)}
    training = {"schedule": {"name": "linear-from-zero", "params": {"r": rate}}, "gate_granularity": "sample",
                "test_time_rule": "inverted",
                "survival_probabilities": [1 - r for r in torch.linspace(0, rate, sum(kwargs["depths"])).tolist()]}
    return arch, training


def train_timm_metadata(model, kwargs, rate, size):
    """What tools/train_timm.py writes (its architecture and training records' fields)."""
    _, timm = import_vision()
    rates = [float(getattr(b.drop_path, "drop_prob", 0.0)) for s in model.stages for b in s.blocks]
    serializable = {k: (list(v) if isinstance(v, tuple) else v) for k, v in kwargs.items()}
    serializable["drop_path_rate"] = rate
    arch = {"family": "convnext", "timm_class": "timm.models.convnext.ConvNeXt", "timm_kwargs": serializable,
            "timm_version": timm.__version__, "parameters": sum(p.numel() for p in model.parameters()),
            "input_size": list(size), "drop_path_rate": rate, "drop_path_rates": rates}
    training = {"dataset": "fashion-mnist", "recipe": "convnext", "class_names": [f"class {i}" for i in range(kwargs["num_classes"])],
                "normalization": {"mean": [0.2860], "std": [0.3530]}, "input_size": list(size[1:]),
                "drop_path": {"rate": rate, "schedule": "linear-from-zero", "per_block_rates": rates,
                              "gate_granularity": "sample", "test_time_rule": "inverted"},
                "test_time_rule": "inverted"}
    return arch, training


def write_layouts() -> None:
    _, timm = import_vision()
    layouts = {}
    for name in PRESETS:
        model = timm.create_model(name, pretrained=False)
        layouts[f"timm/{name}"] = {"tensors": {k: list(v.shape) for k, v in model.state_dict().items()},
                                   "parameters": sum(p.numel() for p in model.parameters())}
    with open(os.path.join(OUT, "layouts.json"), "w") as f:
        json.dump(layouts, f, indent=0, sort_keys=True)


def refused_files() -> None:
    """Tiny .safetensors files whose recorded architecture DepthLens refuses by name (the
    malformed corpus, Tests/Fixtures/malformed/cases.tsv, runs them)."""
    from safetensors.torch import save_file
    tensors = {"stem.0.weight": torch.zeros(8, 1, 1, 1)}
    kwargs = {"in_chans": 1, "num_classes": 10, "depths": [1, 1, 1, 1], "dims": [8, 8, 8, 8], "patch_size": 1}
    for name, arch in [
        ("refused-timm-class", {"timm_class": "timm.models.resnet.ResNet", "timm_kwargs": {"layers": [2, 2, 2, 2]}}),
        ("refused-head-hidden", {"timm_class": "timm.models.convnext.ConvNeXt", "timm_kwargs": dict(kwargs, head_hidden_size=64)}),
        ("refused-arch-json", None),
    ]:
        text = json.dumps(arch) if arch else '{"family": "timm_convnext", "depths": [1, 1, 1, 1],'
        save_file(tensors, os.path.join(OUT, f"{name}.safetensors"), metadata={"depthlens_architecture": text})


def main() -> None:
    if "--refused-only" in sys.argv:
        refused_files()
        return
    refused_files()
    _, timm = import_vision()
    from safetensors.torch import save_file
    from timm.models.convnext import ConvNeXt
    os.makedirs(OUT, exist_ok=True)
    gen = torch.Generator().manual_seed(2020)
    for name, (flavour, kwargs, rate, size, preset) in MODELS.items():
        model = ConvNeXt(**kwargs, drop_path_rate=rate).double().eval()
        randomize(model, gen)
        metadata = {"format": "pt"}
        if flavour == "format-v1":
            arch, training = format_v1(kwargs, rate)
            metadata["depthlens_architecture"] = json.dumps(arch, sort_keys=True)
            metadata["depthlens_training"] = json.dumps(training, sort_keys=True)
        elif flavour == "train-timm":
            arch, training = train_timm_metadata(model, kwargs, rate, size)
            metadata["depthlens_architecture"] = json.dumps(arch, sort_keys=True)
            metadata["depthlens_training"] = json.dumps(training, sort_keys=True)
        tensors = {k: v.detach().float().contiguous() for k, v in model.state_dict().items()}
        save_file(tensors, os.path.join(OUT, f"{name}.safetensors"), metadata=metadata)
        gates = install_gates(model)
        images = torch.randn((6,) + size, generator=gen, dtype=torch.float64).float().double()
        with h5py.File(os.path.join(OUT, f"{name}.cases.h5"), "w") as f:
            f.attrs["arch"] = preset
            f.attrs["timm"] = timm.__version__
            f.create_dataset("images", data=images.numpy().astype(np.float32))
            group = f.create_group("cases")
            for case, (logits, values) in cases_for(model, gates, images, rate, gen).items():
                g = group.create_group(case)
                g.create_dataset("logits", data=logits.numpy().astype(np.float32))
                if values is not None:
                    g.create_dataset("gates", data=values.numpy().astype(np.float32))
        print(f"{name}: {sum(t.numel() for t in tensors.values())} values, "
              f"{os.path.getsize(os.path.join(OUT, f'{name}.safetensors'))} bytes")
    write_layouts()


if __name__ == "__main__":
    main()
