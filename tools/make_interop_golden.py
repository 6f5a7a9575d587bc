#!/usr/bin/env python3
"""Writes the timm / torchvision golden files the Swift tests compare against
(Tests/Fixtures/interop/).

Each model is built by the library itself (timm's `ResNet` class, torchvision's
`resnet18`/`resnet50`) with random weights and randomised batch-norm statistics, and its
logits come from the library's OWN forward pass (run in float64 on the float32 weights,
so that the golden is exact and the tolerance measures DepthLens's rounding alone). Gates stand in for drop path right
before the residual add (depthlens_ref.interop.install_gates): all blocks on, random
shared gate vectors (0/1 and scaled), per-example gates under the inverted rule
(kept blocks times 1/p_l, p_l from timm's linear rule), per-example 0/1 gates, and each
downsampling block dropped alone.

To keep the files small the networks are narrow: the true layouts and tensor names
(stages, blocks, 7x7 stem, max pool, bottlenecks, downsample.0/1, fc) with fewer
channels and 10 classes. timm models are narrowed through timm's own `channels` and
`stem_width` arguments; torchvision's widths are fixed in its code, so its models are
built as published and every convolution, batch norm and the head are then replaced by
narrower ones of the same kind (torchvision's forward code runs unchanged).

Outputs per model NAME:
    NAME.ckpt.h5   DepthLens checkpoint (format v1), as tools/export_timm.py writes it
    NAME.dump.h5   plain state_dict dump, one dataset per key (the models in DUMPS)
    NAME.cases.h5  images (N, 3, H, W) float32, cases/CASE/{logits, gates}; attribute `arch`
                   (the --arch name for a dump, empty for a checkpoint)
and, for the models in RECALIBRATED, a group `recalibration` (train_images, gates, logits:
batch-norm recalibration by train-mode passes); data64.h5: 12 labelled uint8 images (12, 3, 64, 64) for the CLI tests; layouts.json:
every state_dict key and shape of the full-width timm and torchvision ResNets.

    python3 tools/make_interop_golden.py       # rewrites Tests/Fixtures/interop
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
from depthlens_ref.export import provenance, write_checkpoint  # noqa: E402
from depthlens_ref import interop  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "Fixtures", "interop")
CLASSES = 10
# Models with a batch-norm recalibration case (group `recalibration` in NAME.cases.h5).
RECALIBRATED = {"timm_resnet50", "torchvision_resnet18", "timm_resnet18d"}

# name: (library, model, channels or narrowing factor, drop_path_rate, input height, width)
MODELS = {
    # Widths that are multiples of 16: the fused engine's nChw16c path.
    "timm_resnet18": ("timm", "resnet18", (16, 32, 48, 64), 0.1, 64, 64),
    "timm_resnet34": ("timm", "resnet34", (4, 8, 16, 32), 0.05, 64, 64),
    "timm_resnet50": ("timm", "resnet50", (4, 8, 16, 32), 0.1, 64, 64),
    # Non-square input: global average pooling of a non-square map.
    "torchvision_resnet18": ("torchvision", "resnet18", 8, 0.0, 64, 48),
    "torchvision_resnet50": ("torchvision", "resnet50", 16, 0.0, 64, 64),
    # timm's resnet*d: deep stem and average-pool downsampling; 64x56 gives a 7-wide map
    # in layer2, so the ceil-mode pooling of layer3.0 has windows cut by the edge.
    "timm_resnet18d": ("timm", "resnet18", (4, 8, 16, 32), 0.1, 64, 56),
    "timm_resnet26d": ("timm", "resnet26", (4, 8, 16, 32), 0.1, 64, 64),
}
DEEP = {"timm_resnet18d", "timm_resnet26d"}
# Written as plain state_dict dumps (read with --arch); the others as exported checkpoints.
DUMPS = {"torchvision_resnet18", "torchvision_resnet50", "timm_resnet18d"}


def narrow(model: nn.Module, factor: int) -> None:
    """Replaces every Conv2d, BatchNorm2d and the head by one with channels / factor
    (the input's 3 channels stay)."""
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.Conv2d):
                cin = child.in_channels if child.in_channels == 3 else child.in_channels // factor
                new = nn.Conv2d(cin, child.out_channels // factor, child.kernel_size, child.stride, child.padding,
                                bias=child.bias is not None)
            elif isinstance(child, nn.BatchNorm2d):
                new = nn.BatchNorm2d(child.num_features // factor, eps=child.eps)
            elif isinstance(child, nn.Linear):
                new = nn.Linear(child.in_features // factor, child.out_features)
            else:
                continue
            setattr(module, child_name, new)


def build(name: str, seed: int):
    library, model_name, size, rate, _, _ = MODELS[name]
    torchvision, timm = interop.import_vision()
    torch.manual_seed(seed)
    kind, depths = interop.PRESETS[model_name]
    if library == "timm":
        from timm.models.resnet import BasicBlock, Bottleneck, ResNet
        deep = dict(stem_type="deep", stem_width=8, avg_down=True) if name in DEEP else {}
        model = ResNet(BasicBlock if kind == "basic" else Bottleneck, depths, num_classes=CLASSES,
                       channels=size, drop_path_rate=rate, **deep)
    else:
        model = getattr(torchvision.models, model_name)(num_classes=CLASSES)
        narrow(model, size)
    gen = torch.Generator().manual_seed(seed + 1)
    interop.randomize_batchnorm(model, gen)
    # Running statistics near the real ones (one train-mode pass on random images), then
    # perturbed: every batch norm matters, and activations stay of order one through
    # 16 blocks, so that logits are too and 1e-4 is a meaningful tolerance.
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    model.train()
    with torch.no_grad():
        model(torch.randn(16, 3, MODELS[name][4], MODELS[name][5], generator=gen))
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.add_(0.1 * torch.randn(c, generator=gen) * m.running_var.sqrt())
                m.running_var.mul_(0.7 + 0.6 * torch.rand(c, generator=gen))
                m.momentum = 0.1
        # As in trained ResNets (timm's zero_init_last starts them at zero), the last batch
        # norm of each branch is small, so the residual stream does not grow block after
        # block; otherwise 16 bottlenecks amplify float32 rounding to 1e-4 (PyTorch's own
        # float32 forward was 1.4e-4 off the float64 one). The head is scaled up so that
        # logits are a few units.
        for blk in interop.blocks_of(model):
            last = blk.bn3 if hasattr(blk, "bn3") else blk.bn2
            last.weight.mul_(0.5)
            last.bias.mul_(0.5)
        model.fc.weight.mul_(3.0)
        model.fc.bias.mul_(3.0)
    model.eval()
    return library, model


def cases_for(model: nn.Module, rate: float, gen: torch.Generator, n: int) -> dict:
    L = len(interop.blocks_of(model))
    p = torch.tensor([1.0 - r for r in interop.timm_drop_rates(rate if rate > 0 else 0.2, L)])
    cases = {"all-on": None}
    for i in range(3):
        keep = (torch.rand(L, generator=gen) < 0.6).float()
        if i == 2:
            keep = keep * (0.5 + torch.rand(L, generator=gen))  # scaled gates, not just 0/1
        cases[f"shared-random-{i + 1}"] = keep
    cases["per-example-inverted"] = (torch.rand(n, L, generator=gen) < p).float() / p
    cases["per-example-binary"] = (torch.rand(n, L, generator=gen) < 0.5).float()
    for l, blk in enumerate(interop.blocks_of(model)):
        if blk.downsample is not None:
            g = torch.ones(L)
            g[l] = 0
            cases[f"downsampling-block-{l + 1}-off"] = g
    return cases


def recalibration(group, model: nn.Module, gates: list, test_images: torch.Tensor, gen: torch.Generator) -> None:
    """Batch-norm recalibration under one gate vector, as DepthLens defines it: train-mode
    passes (running statistics reset, momentum=None, so each becomes the average of the
    batch statistics) over 8 images in batches of 4; batch norms of dropped branches
    keep their statistics. Then the library's logits on the test images."""
    blocks = interop.blocks_of(model)
    L = len(blocks)
    values = torch.ones(L, dtype=torch.float64)
    values[1] = 0
    values[L // 2] = 0
    values[L - 2] = 0.5
    kept = {}
    for l, blk in enumerate(blocks):
        if values[l] == 0:
            for n, m in blk.named_modules():
                if isinstance(m, nn.BatchNorm2d) and not n.startswith("downsample"):
                    kept[(l, n)] = (m.running_mean.clone(), m.running_var.clone())
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    # Full-size images: with fewer pixels per channel (2x2 maps in layer4 already), batch
    # statistics become so ill-conditioned that float32 itself drifts by 1e-3 from the truth.
    train = torch.randn(8, 3, test_images.shape[2], test_images.shape[3], generator=gen)
    interop.set_gates(gates, values)
    model.train()
    with torch.no_grad():
        for i in range(0, 8, 4):
            model(train[i:i + 4].double())
        for (l, n), (mean, var) in kept.items():
            m = dict(blocks[l].named_modules())[n]
            m.running_mean.copy_(mean)
            m.running_var.copy_(var)
        model.eval()
        logits = model(test_images)
    interop.set_gates(gates, None)
    group.create_dataset("train_images", data=train.numpy().astype(np.float32))
    group.create_dataset("gates", data=values.numpy().astype(np.float32))
    group.create_dataset("logits", data=logits.numpy().astype(np.float32))


def write_plain_dump(path: str, state_dict: dict) -> None:
    """One dataset per key at the root, as h5py writes a dict of arrays (num_batches_tracked included)."""
    with h5py.File(path, "w") as f:
        for key, value in state_dict.items():
            f.create_dataset(key, data=value.detach().cpu().numpy())


def write_layouts() -> None:
    """layouts.json: every state_dict key and shape of the real, full-width networks
    (1000 classes), so that the tests check each --arch preset's names without weights."""
    torchvision, timm = interop.import_vision()
    layouts = {}
    for model_name in ["resnet18", "resnet26", "resnet34", "resnet50", "resnet101", "resnet152"]:
        layouts[f"timm/{model_name}"] = timm.create_model(model_name, pretrained=False)
        layouts[f"timm/{model_name}d"] = timm.create_model(f"{model_name}d", pretrained=False)
        if model_name in interop.TORCHVISION_MODELS:
            layouts[f"torchvision/{model_name}"] = getattr(torchvision.models, model_name)()
    table = {name: [[k, list(v.shape)] for k, v in model.state_dict().items()] for name, model in layouts.items()}
    with open(os.path.join(OUT, "layouts.json"), "w") as f:
        json.dump(table, f, separators=(",", ":"))


def main() -> None:
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(1)
    for index, name in enumerate(MODELS):
        library, model_name, size, rate, height, width = MODELS[name]
        library, model = build(name, seed=3000 + index)
        arch = interop.architecture_of(model)
        interop.check_architecture(model, arch, (height, width))
        state = {k: v.clone() for k, v in model.state_dict().items()}
        gates = interop.install_gates(model, library)
        gen = torch.Generator().manual_seed(4000 + index)
        n = 4
        images = torch.randn(n, 3, height, width, generator=gen)
        if name not in DUMPS:
            training = interop.training_metadata(model, rate, input_size=[height, width])
            write_checkpoint(os.path.join(OUT, f"{name}.ckpt.h5"), arch, state, training,
                             provenance("tools/make_interop_golden.py", model=f"timm/{model_name}{'d' if name in DEEP else ''}",
                                        channels=list(size)))
            arch_name = ""
        else:
            write_plain_dump(os.path.join(OUT, f"{name}.dump.h5"), state)
            arch_name = f"{library}/{model_name}{'d' if name in DEEP else ''}"
        cases = cases_for(model, rate, gen, n)
        # The library's forward in float64: the golden is then the exact function of the
        # stored float32 weights, and the tolerance measures DepthLens's rounding alone.
        model.double()
        with h5py.File(os.path.join(OUT, f"{name}.cases.h5"), "w") as f:
            f.attrs["arch"] = arch_name
            f.create_dataset("images", data=images.numpy().astype(np.float32))
            group = f.create_group("cases")
            with torch.no_grad():
                for case, values in cases.items():
                    interop.set_gates(gates, values if values is None else values.double())
                    logits = model(images.double())
                    g = group.create_group(case)
                    g.create_dataset("logits", data=logits.numpy().astype(np.float32))
                    if values is not None:
                        g.create_dataset("gates", data=values.numpy().astype(np.float32))
            interop.set_gates(gates, None)
            if name in RECALIBRATED:
                recalibration(f.create_group("recalibration"), model, gates, images.double(), gen)
        print(f"{name}: {arch['block']} blocks {[s['blocks'] for s in arch['stages']]}, widths "
              f"{[s['width'] for s in arch['stages']]}, {len(cases)} cases")
    write_layouts()
    gen = torch.Generator().manual_seed(5000)
    with h5py.File(os.path.join(OUT, "data64.h5"), "w") as f:
        f.create_dataset("images", data=torch.randint(0, 256, (12, 3, 64, 64), generator=gen).numpy().astype(np.uint8))
        f.create_dataset("labels", data=(torch.arange(12) % CLASSES).numpy().astype(np.int64))


if __name__ == "__main__":
    main()
