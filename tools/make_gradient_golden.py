#!/usr/bin/env python3
"""Writes the input-gradient golden files the Swift tests compare against
(Tests/Fixtures/gradients/): PyTorch autograd, in float64, of the cross-entropy of the
true label with respect to the input image, on the golden networks of both ResNet
families, with the backward pass routed block by block as Veit et al. 2016 (section 5)
route it: through the residual branch only, the shortcut only, or both.

The forward pass is always the whole network under the checkpoint's test-time rule (the
expectation rule's p_l scales each branch, so its gradient too; the inverted rule's
gates are 1). A route is imposed without changing the forward values: the part whose
gradient is cut is detached (`t.detach()` has t's value and no gradient).

- cifar_resnet: the networks of tools/make_golden.py (Tests/Fixtures/golden/*.ckpt.h5),
  rebuilt with depthlens_ref.model and its `Block.branches` (the same code that wrote
  their logits).
- imagenet_resnet: timm's own `ResNet` (Tests/Fixtures/interop/*.ckpt.h5, narrowed as
  tools/make_interop_golden.py builds them) running its own forward code; the route sits
  in the block's `drop_path` slot (right before the add) and, for a projection shortcut,
  after `downsample`. The block input an identity shortcut adds is taken by a forward
  pre-hook, and a branch-only route adds (x.detach() - x) to the residual, which cancels
  the shortcut's gradient and changes no value.

Each NAME.gradients.h5 holds: attribute `checkpoint` (the checkpoint, relative to
Tests/Fixtures), `images` (N, C, H, W) float32, `labels` (N,) int64, `gates` (L,) float32
(the forward pass's), attribute `cases` (the case names, comma-separated), `routes`
(cases, L) int8 (0 both, 1 branch, 2 shortcut) and `gradients` (cases, N, C, H, W)
float32, rounded from float64.

    python3 tools/make_gradient_golden.py      # rewrites Tests/Fixtures/gradients
"""
from __future__ import annotations

import json
import os
import sys

import h5py
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from depthlens_ref.model import CifarResNet  # noqa: E402
from depthlens_ref import interop  # noqa: E402

FIXTURES = os.path.join(HERE, "..", "Tests", "Fixtures")
OUT = os.path.join(FIXTURES, "gradients")
ROUTES = {"both": 0, "branch": 1, "shortcut": 2}

# name: (checkpoint relative to Tests/Fixtures, images, input side)
CIFAR = {
    "official": ("golden/official.ckpt.h5", 2, 12),               # option A by average pooling, conv bias
    "port-subsample": ("golden/port-subsample.ckpt.h5", 2, 9),   # option A by subsampling, zeros on both sides
    "projection": ("golden/projection.ckpt.h5", 2, 8),           # option B
    "preact-projection": ("golden/preact-projection.ckpt.h5", 2, 10),  # pre-activation, projection on relu(bn1(x))
    "preact-input-shortcut": ("golden/preact-input-shortcut.ckpt.h5", 2, 8),  # projection reading x
}
TIMM = {
    # Deep stem, max pool, bottlenecks, average-pool downsampling (ceil mode: 1x1 maps in stage 4).
    "timm_resnet26d": ("interop/timm_resnet26d.ckpt.h5", 2, 14),
    # 7x7 stem, basic blocks, strided 1x1 projection.
    "timm_resnet18": ("interop/timm_resnet18.ckpt.h5", 2, 14),
}


def read_checkpoint(path: str):
    with h5py.File(path, "r") as f:
        arch = json.loads(f.attrs["architecture"])
        training = json.loads(f.attrs["training"])
        state = {}

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                state[name] = torch.from_numpy(np.array(obj))
        f["tensors"].visititems(visit)
    return arch, training, state


def forward_gates(training: dict, blocks: int) -> torch.Tensor:
    """The deterministic network of the recorded rule: p_l (expectation) or 1 (inverted)."""
    if training["test_time_rule"] == "expectation":
        return torch.tensor(training["survival_probabilities"], dtype=torch.float64)
    return torch.ones(blocks, dtype=torch.float64)


def route_patterns(blocks: int, gen: torch.Generator) -> dict:
    """All both (the ordinary gradient), the two extremes of Veit's path lengths, three
    random paths of k = L/3, L/2 and 2L/3 branches, and a random mix of all three routes."""
    patterns = {"all-both": ["both"] * blocks, "all-shortcut": ["shortcut"] * blocks, "all-branch": ["branch"] * blocks}
    for k in sorted({max(1, blocks // 3), blocks // 2, (2 * blocks) // 3}):
        chosen = set(torch.randperm(blocks, generator=gen)[:k].tolist())
        patterns[f"path-{k}"] = ["branch" if l in chosen else "shortcut" for l in range(blocks)]
    mix = torch.randint(0, 3, (blocks,), generator=gen).tolist()
    patterns["mixed"] = [["both", "branch", "shortcut"][m] for m in mix]
    return patterns


def cifar_forward(model: CifarResNet, x, gates, routes):
    x = model.conv1(x)
    if not model.preact:
        x = F.relu(model.bn1(x))
    for blk, g, route in zip(model.blocks_list, gates, routes):
        shortcut, r = blk.branches(x)
        if route == "branch":
            shortcut = shortcut.detach()
        if route == "shortcut":
            r = r.detach()
        x = blk.post(shortcut + g * r)
    if model.preact:
        x = F.relu(model.bn_final(x))
    return model.fc(x.mean(dim=(2, 3)))


class Route(nn.Module):
    """Sits in a timm block's drop_path slot: sees the residual right before the add."""

    def __init__(self, identity: bool):
        super().__init__()
        self.identity, self.route, self.block_input = identity, "both", None

    def forward(self, r):
        if self.route == "shortcut":
            r = r.detach()
        if self.route == "branch" and self.identity:
            r = r + (self.block_input.detach() - self.block_input)
        return r


class CutShortcut(nn.Module):
    """After a projection shortcut: detaches it when the route is the branch only."""

    def __init__(self, downsample: nn.Module, route: Route):
        super().__init__()
        self.downsample, self.holder = downsample, [route]

    def forward(self, x):
        s = self.downsample(x)
        return s.detach() if self.holder[0].route == "branch" else s


def timm_model(name: str, state: dict):
    library, model_name, size, rate, height, width = MODELS[name]
    _, timm = interop.import_vision()
    from timm.models.resnet import BasicBlock, Bottleneck, ResNet
    kind, depths = interop.PRESETS[model_name]
    deep = dict(stem_type="deep", stem_width=8, avg_down=True) if name in DEEP else {}
    model = ResNet(BasicBlock if kind == "basic" else Bottleneck, depths, num_classes=CLASSES, channels=size,
                   drop_path_rate=rate, **deep)
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing), (missing, unexpected)
    model.eval().double()
    routes = []
    for blk in interop.blocks_of(model):
        route = Route(identity=blk.downsample is None)
        blk.drop_path = route
        blk.register_forward_pre_hook(lambda module, args, route=route: setattr(route, "block_input", args[0]))
        if blk.downsample is not None:
            blk.downsample = CutShortcut(blk.downsample, route)
        routes.append(route)
    return model, routes


def gradient(forward, images, labels):
    x = images.clone().requires_grad_(True)
    loss = F.cross_entropy(forward(x), labels, reduction="sum")  # per image: each image's own loss
    (g,) = torch.autograd.grad(loss, x)
    return g


def write(name, checkpoint, images, labels, gates, patterns, compute):
    with h5py.File(os.path.join(OUT, f"{name}.gradients.h5"), "w") as f:
        f.attrs["checkpoint"] = checkpoint
        f.create_dataset("images", data=images.numpy().astype(np.float32))
        f.create_dataset("labels", data=labels.numpy().astype(np.int64))
        f.create_dataset("gates", data=gates.numpy().astype(np.float32))
        # One dataset per kind, a row per case (groups per case would triple the file).
        f.attrs["cases"] = ",".join(patterns)
        f.create_dataset("routes", data=np.array([[ROUTES[r] for r in routes] for routes in patterns.values()], dtype=np.int8))
        f.create_dataset("gradients", data=np.stack([compute(routes).numpy().astype(np.float32) for routes in patterns.values()]))
    print(f"{name}: {len(gates)} blocks, {len(patterns)} route patterns, {images.shape[0]} images")


def main() -> None:
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(1)
    for index, (name, (checkpoint, n, side)) in enumerate(CIFAR.items()):
        arch, training, state = read_checkpoint(os.path.join(FIXTURES, checkpoint))
        model = CifarResNet(arch)
        missing, unexpected = model.load_state_dict(state, strict=False)
        assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing), (missing, unexpected)
        model.eval().double()
        gen = torch.Generator().manual_seed(5000 + index)
        images = torch.randn(n, arch["in_channels"], side, side, generator=gen).double()  # float32 values, as the fixture stores them
        labels = torch.randint(0, arch["num_classes"], (n,), generator=gen)
        gates = forward_gates(training, model.num_blocks)
        # The routed forward with every route "both" is the golden forward itself.
        with torch.no_grad():
            assert torch.allclose(cifar_forward(model, images, gates, ["both"] * model.num_blocks), model(images, gates))
        patterns = route_patterns(model.num_blocks, gen)
        write(name, checkpoint, images.float(), labels, gates, patterns,
              lambda routes: gradient(lambda x: cifar_forward(model, x, gates, routes), images, labels))
    for index, (name, (checkpoint, n, side)) in enumerate(TIMM.items()):
        arch, training, state = read_checkpoint(os.path.join(FIXTURES, checkpoint))
        model, holders = timm_model(name, {k: v.double() for k, v in state.items()})
        # The checkpoint's own golden logits, so that the model is the one the file describes.
        with h5py.File(os.path.join(FIXTURES, checkpoint.replace(".ckpt.h5", ".cases.h5")), "r") as f:
            golden_images = torch.from_numpy(np.array(f["images"])).double()
            golden_logits = torch.from_numpy(np.array(f["cases/all-on/logits"])).double()
        with torch.no_grad():
            assert (model(golden_images) - golden_logits).abs().max() < 1e-4
        gen = torch.Generator().manual_seed(6000 + index)
        images = torch.randn(n, arch["in_channels"], side, side, generator=gen).double()  # float32 values, as the fixture stores them
        labels = torch.randint(0, arch["num_classes"], (n,), generator=gen)
        gates = forward_gates(training, len(holders))
        assert bool((gates == 1).all()), "timm's inverted rule: the deterministic network has every gate 1"
        patterns = route_patterns(len(holders), gen)

        def compute(routes, model=model, holders=holders, images=images, labels=labels):
            for holder, route in zip(holders, routes):
                holder.route = route
            return gradient(model, images, labels)

        write(name, checkpoint, images.float(), labels, gates, patterns, compute)


sys.path.insert(0, HERE)
from make_interop_golden import CLASSES, DEEP, MODELS  # noqa: E402

if __name__ == "__main__":
    main()
