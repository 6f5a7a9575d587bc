#!/usr/bin/env python3
"""Writes the vision-transformer golden files the Swift tests compare against
(Tests/Fixtures/vit/), issue 20 points 1, 2 and 5.

Each model is timm's own `VisionTransformer` class, narrow and shallow, with random
weights (every parameter drawn, so that layer norms, biases, the class token, position
embedding and layer scale all matter); its logits come from timm's OWN forward pass run
in float64 on the float32 weights, so that the tolerance measures DepthLens's rounding
alone. Gates stand in for drop path where timm applies it, the blocks' `drop_path1`
(attention branch) and `drop_path2` (MLP branch) slots, right before each residual add:
a gate vector has one entry per branch, 2 per block, in forward order
(block 1 attention, block 1 MLP, block 2 attention, ...).

Cases per model: all branches on; random 0/1 per branch (shared); scaled gates (kept
branches times 1/p under timm's inverted rule, p = 1 - rate of the block); per-example
0/1 gates under the inverted rule (one vector per image); each whole block dropped (both
branches), and each single branch dropped.

Outputs per model NAME:
    NAME.safetensors  float32 weights under timm's key names; with `depthlens_architecture`
                      and `depthlens_training` metadata as tools/train_timm.py exports them,
                      or (the models in DUMPS) none: a plain dump read with `--arch`
    NAME.cases.h5     images (N, C, H, W) float32, cases/CASE/{logits, gates}; attribute
                      `arch` (the --arch name for a dump, empty otherwise)
and layouts.json: every state_dict key and shape, and the parameter count, of the
full-size presets (timm.create_model, random weights, nothing downloaded).

    python3 tools/make_vit_golden.py       # rewrites Tests/Fixtures/vit
"""
from __future__ import annotations

import json
import os
import sys

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from depthlens_ref.interop import Gate, import_vision  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "Fixtures", "vit")
CLASSES = 10
IMAGES = 6

# name: VisionTransformer keyword arguments (every model 10 classes).
MODELS = {
    # Class token, token pooling, qkv bias: the DeiT/ViT layout, read as --arch timm/deit_tiny_patch16_224 (3 heads).
    "vit_token": dict(img_size=28, patch_size=4, in_chans=1, embed_dim=24, depth=2, num_heads=3, mlp_ratio=2.0,
                      qkv_bias=True, class_token=True, global_pool="token", drop_path_rate=0.1),
    # No class token, mean pooling with fc_norm (timm's default for avg), layer scale, no qkv bias.
    "vit_avg_ls": dict(img_size=32, patch_size=8, in_chans=3, embed_dim=32, depth=3, num_heads=4, mlp_ratio=3.0,
                       qkv_bias=False, class_token=False, global_pool="avg", init_values=0.1, drop_path_rate=0.2),
    # Class token left out of the mean, fc_norm, layer scale, 7x7 patches.
    "vit_cls_avg": dict(img_size=28, patch_size=7, in_chans=1, embed_dim=16, depth=2, num_heads=2, mlp_ratio=4.0,
                        qkv_bias=True, class_token=True, global_pool="avg", init_values=0.5, drop_path_rate=0.1),
    # Token pooling with fc_norm forced on; one block of 6 heads of width 4.
    "vit_token_fcnorm": dict(img_size=32, patch_size=8, in_chans=3, embed_dim=24, depth=1, num_heads=6, mlp_ratio=2.0,
                             qkv_bias=True, class_token=True, global_pool="token", fc_norm=True, drop_path_rate=0.0),
    # Mean pooling with the final norm before it (fc_norm off), no class token, 4 blocks.
    "vit_avg_norm": dict(img_size=28, patch_size=4, in_chans=1, embed_dim=16, depth=4, num_heads=4, mlp_ratio=1.5,
                         qkv_bias=True, class_token=False, global_pool="avg", fc_norm=False, drop_path_rate=0.3),
}
# Plain state_dict dumps (no metadata), read with this --arch name.
DUMPS = {"vit_token": "timm/deit_tiny_patch16_224"}
PRESETS = ["vit_tiny_patch16_224", "vit_small_patch16_224", "deit_tiny_patch16_224", "deit_small_patch16_224"]


def randomize(model: torch.nn.Module, gen: torch.Generator) -> None:
    """Every parameter drawn: weights ~ N(0, 1/fan_in), biases, class token and position
    embedding visibly non-zero, norm scales around 1, layer scales around their init."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float32)
            if name.endswith("norm1.weight") or name.endswith("norm2.weight") or name.endswith("norm.weight"):
                p.copy_(1 + 0.2 * noise)
            elif name.endswith(".gamma"):
                p.copy_(0.5 + 0.2 * noise)
            elif p.ndim >= 2 and name.endswith("weight"):
                fan_in = int(np.prod(p.shape[1:]))
                p.copy_(noise / fan_in ** 0.5)
            elif name in ("cls_token", "pos_embed"):
                p.copy_(0.5 * noise)
            else:
                p.copy_(0.2 * noise)


def gate_slots(model) -> list[Gate]:
    """A Gate in every drop-path slot, in forward order (attention, MLP of each block)."""
    gates = []
    for blk in model.blocks:
        for slot in ("drop_path1", "drop_path2"):
            g = Gate()
            setattr(blk, slot, g)
            gates.append(g)
    return gates


def set_gates(gates: list[Gate], values: torch.Tensor | None) -> None:
    for u, g in enumerate(gates):
        if values is None:
            g.value = None
        elif values.ndim == 1:
            g.value = values[u].reshape(1).double()
        else:
            g.value = values[:, u].contiguous().double()


def metadata(name: str, kwargs: dict, model, timm) -> dict:
    """What tools/train_timm.py records in an exported file (the fields DepthLens reads)."""
    rates = [float(getattr(b.drop_path1, "drop_prob", 0.0)) for b in model.blocks]
    architecture = {"family": "vit", "timm_class": "timm.models.vision_transformer.VisionTransformer",
                    "timm_kwargs": dict(kwargs, num_classes=CLASSES), "timm_version": timm.__version__,
                    "parameters": sum(p.numel() for p in model.parameters()),
                    "input_size": [kwargs["in_chans"], kwargs["img_size"], kwargs["img_size"]],
                    "drop_path_rate": kwargs["drop_path_rate"], "drop_path_rates": rates}
    training = {"dataset": "random", "recipe": name, "input_size": [kwargs["img_size"], kwargs["img_size"]],
                "normalization": {"mean": [0.5] * kwargs["in_chans"], "std": [0.25] * kwargs["in_chans"]},
                "class_names": [f"class {k}" for k in range(CLASSES)],
                "drop_path": {"rate": kwargs["drop_path_rate"], "schedule": "linear-from-zero", "per_block_rates": rates,
                              "gate_granularity": "sample", "test_time_rule": "inverted"},
                "test_time_rule": "inverted"}
    return {"format": "pt", "depthlens_architecture": json.dumps(architecture, sort_keys=True),
            "depthlens_training": json.dumps(training, sort_keys=True)}


def main() -> None:
    _, timm = import_vision()
    from safetensors.torch import save_file
    from timm.models.vision_transformer import VisionTransformer
    os.makedirs(OUT, exist_ok=True)
    gen = torch.Generator().manual_seed(2020)
    for name, kwargs in MODELS.items():
        model = VisionTransformer(num_classes=CLASSES, **kwargs).eval()
        randomize(model, gen)
        tensors = {k: v.detach().float().contiguous().clone() for k, v in model.state_dict().items()}
        save_file(tensors, os.path.join(OUT, f"{name}.safetensors"),
                  metadata=None if name in DUMPS else metadata(name, kwargs, model, timm))
        model = model.double()
        gates = gate_slots(model)
        units = len(gates)
        side, chans = kwargs["img_size"], kwargs["in_chans"]
        x = torch.randn(IMAGES, chans, side, side, generator=gen, dtype=torch.float32)
        rates = np.repeat(np.linspace(0, kwargs["drop_path_rate"], kwargs["depth"]), 2)
        keep = 1 - rates
        cases: dict[str, torch.Tensor | None] = {"all_on": None}
        for r in range(3):
            cases[f"random_{r}"] = (torch.rand(units, generator=gen) < 0.6).double()
        mask = (torch.rand(units, generator=gen) < 0.7).double()
        cases["scaled_inverted"] = mask / torch.tensor(keep)
        cases["scaled_arbitrary"] = 0.25 + 1.5 * torch.rand(units, generator=gen, dtype=torch.float64)
        per = (torch.rand(IMAGES, units, generator=gen) < 0.6).double()
        cases["per_example_inverted"] = per / torch.tensor(keep)[None, :]
        cases["per_example_binary"] = (torch.rand(IMAGES, units, generator=gen) < 0.5).double()
        for b in range(kwargs["depth"]):
            g = torch.ones(units, dtype=torch.float64)
            g[2 * b] = g[2 * b + 1] = 0
            cases[f"block_{b + 1}_dropped"] = g
            for k, branch in enumerate(("attn", "mlp")):
                g = torch.ones(units, dtype=torch.float64)
                g[2 * b + k] = 0
                cases[f"block_{b + 1}_{branch}_dropped"] = g
        with h5py.File(os.path.join(OUT, f"{name}.cases.h5"), "w") as f:
            f.attrs["arch"] = DUMPS.get(name, "")
            f.attrs["timm_kwargs"] = json.dumps(kwargs, sort_keys=True)
            f.create_dataset("images", data=x.numpy())
            group = f.create_group("cases")
            for case, values in cases.items():
                set_gates(gates, values)
                with torch.no_grad():
                    logits = model(x.double())
                c = group.create_group(case)
                c.create_dataset("logits", data=logits.numpy().astype(np.float32))
                if values is not None:
                    c.create_dataset("gates", data=values.numpy().astype(np.float32))
        print(f"{name}: {units} branches, {len(cases)} cases, logits scale {float(logits.abs().max()):.3f}")

    layouts = {}
    for preset in PRESETS:
        model = timm.create_model(preset, pretrained=False)
        layouts[f"timm/{preset}"] = {
            "tensors": [[k, list(v.shape)] for k, v in model.state_dict().items()],
            "parameters": sum(p.numel() for p in model.parameters()),
        }
    with open(os.path.join(OUT, "layouts.json"), "w") as f:
        json.dump(layouts, f, indent=0, sort_keys=True)
        f.write("\n")
    print("layouts:", {k: v["parameters"] for k, v in layouts.items()})


if __name__ == "__main__":
    main()
