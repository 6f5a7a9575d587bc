#!/usr/bin/env python3
"""Writes the golden files the Swift tests compare against (Tests/Fixtures/golden/).

For each architecture variant: a checkpoint in format v1 with random weights and
non-trivial batch-norm statistics (`VARIANT.ckpt.h5`), and a cases file
(`VARIANT.cases.h5`) with fixed input images and PyTorch's logits under several gate
patterns: all blocks on; the expectation rule with the paper's linear schedule; five
random shared gate vectors; per-example gates (kept blocks scaled by 1/p, as when
sampling an inverted-trained net); and each downsampling block dropped alone.

    python3 tools/make_golden.py            # rewrites Tests/Fixtures/golden
    python3 tools/make_golden.py NAME ...   # only these variants
"""
from __future__ import annotations

import os
import sys

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from depthlens_ref.export import provenance, write_checkpoint  # noqa: E402
from depthlens_ref.model import CifarResNet, default_architecture, randomize_batchnorm  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "Fixtures", "golden")

VARIANTS = {
    # The official Stochastic Depth topology: conv bias, option A by 2x2 average pooling, zeros appended.
    "official": dict(block="basic", shortcut="A_avgpool", channel_padding="end", conv_bias=True,
                     in_channels=1, size=12, stem_width=4,
                     stages=[(2, 4, 1), (2, 8, 2), (2, 16, 2)]),
    # The common PyTorch port: option A by x[:, :, ::2, ::2], zeros split on both sides, no bias, odd sizes.
    "port-subsample": dict(block="basic", shortcut="A_subsample", channel_padding="both", conv_bias=False,
                           in_channels=3, size=13, stem_width=4,
                           stages=[(3, 4, 1), (2, 10, 2), (2, 16, 2)]),
    # Option B: 1x1 convolution with stride plus batch norm; four stages; a stage that only widens.
    "projection": dict(block="basic", shortcut="B", channel_padding="end", conv_bias=False,
                       in_channels=3, size=16, stem_width=6,
                       stages=[(2, 6, 1), (1, 12, 1), (2, 12, 2), (1, 20, 2)]),
    # Pre-activation blocks with projection shortcuts (taken from relu(bn1(x))) and a final BN-ReLU.
    "preact-projection": dict(block="preact", shortcut="B", channel_padding="end", conv_bias=True,
                              in_channels=2, size=10, stem_width=4,
                              stages=[(2, 4, 1), (2, 8, 2), (1, 12, 2)]),
    # Pre-activation blocks with option A (average pooling).
    "preact-avgpool": dict(block="preact", shortcut="A_avgpool", channel_padding="end", conv_bias=False,
                           in_channels=1, size=8, stem_width=4,
                           stages=[(3, 4, 1), (3, 8, 2)]),
    # Optional architecture fields (docs/checkpoint-format.md): a projection without bias
    # beside biased convolutions; a pre-activation projection reading the block input x.
    "projection-nobias": dict(block="basic", shortcut="B", channel_padding="end", conv_bias=True,
                              in_channels=1, size=8, stem_width=4,
                              stages=[(1, 4, 1), (2, 8, 2)], extra={"projection_bias": False}),
    "preact-input-shortcut": dict(block="preact", shortcut="B", channel_padding="end", conv_bias=False,
                                  in_channels=2, size=8, stem_width=4,
                                  stages=[(1, 4, 1), (2, 8, 2)], extra={"preact_shortcut_input": "input"}),
}


def build(name: str, spec: dict, seed: int):
    arch = default_architecture(
        block=spec["block"], shortcut=spec["shortcut"], channel_padding=spec["channel_padding"],
        conv_bias=spec["conv_bias"], in_channels=spec["in_channels"], num_classes=7,
        stem_width=spec["stem_width"],
        stages=[{"blocks": b, "width": w, "stride": s} for b, w, s in spec["stages"]], **spec.get("extra", {}))
    torch.manual_seed(seed)
    model = CifarResNet(arch)
    gen = torch.Generator().manual_seed(seed + 1)
    randomize_batchnorm(model, gen)
    with torch.no_grad():
        # Larger residual weights than the default init, so that every block matters.
        for blk in model.blocks_list:
            blk.conv2.weight.mul_(2.0)
    model.eval()
    return arch, model


def cases_for(model: CifarResNet, gen: torch.Generator, n: int):
    L = model.num_blocks
    p = torch.tensor([1 - (l / L) * 0.5 for l in range(1, L + 1)])
    cases = {"all-on": None, "expectation-linear": p.clone()}
    for i in range(5):
        keep = (torch.rand(L, generator=gen) < 0.6).float()
        if i == 4:
            keep = keep * (0.5 + torch.rand(L, generator=gen))  # scaled gates, not just 0/1
        cases[f"shared-random-{i + 1}"] = keep
    keep = (torch.rand(n, L, generator=gen) < p).float()
    cases["per-example-inverted"] = keep / p
    cases["per-example-binary"] = (torch.rand(n, L, generator=gen) < 0.5).float()
    for l, blk in enumerate(model.blocks_list):
        if not blk.identity_shortcut:
            g = torch.ones(L)
            g[l] = 0
            cases[f"downsampling-block-{l + 1}-off"] = g
    return cases


def reorder_case(model: CifarResNet, gen: torch.Generator):
    """A permutation of the identity-shortcut blocks within each stage (1-based order)."""
    order = list(range(1, model.num_blocks + 1))
    start = 0
    for stage in model.arch["stages"]:
        ids = [i for i in range(start, start + stage["blocks"]) if model.blocks_list[i].identity_shortcut]
        perm = torch.randperm(len(ids), generator=gen).tolist()
        for i, j in zip(ids, perm):
            order[i] = ids[j] + 1
        start += stage["blocks"]
    return order


def main(only: list[str]) -> None:
    """Writes every variant, or only those named on the command line (the others' files stay as they are)."""
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(1)
    for index, (name, spec) in enumerate(VARIANTS.items()):
        if only and name not in only:
            continue
        arch, model = build(name, spec, seed=1000 + index)
        gen = torch.Generator().manual_seed(2000 + index)
        n = 6
        images = torch.randn(n, spec["in_channels"], spec["size"], spec["size"], generator=gen)
        write_checkpoint(os.path.join(OUT, f"{name}.ckpt.h5"), arch, model.state_dict(),
                         training={"survival_probabilities": [1 - (l / model.num_blocks) * 0.5
                                                              for l in range(1, model.num_blocks + 1)],
                                   "schedule": {"name": "linear", "params": {"pL": 0.5}},
                                   "gate_granularity": "batch", "test_time_rule": "expectation"},
                         provenance_info=provenance("tools/make_golden.py", variant=name))
        with h5py.File(os.path.join(OUT, f"{name}.cases.h5"), "w") as f:
            f.create_dataset("images", data=images.numpy().astype(np.float32))
            group = f.create_group("cases")
            with torch.no_grad():
                for case, gates in cases_for(model, gen, n).items():
                    logits = model(images, gates)
                    g = group.create_group(case)
                    g.create_dataset("logits", data=logits.numpy().astype(np.float32))
                    if gates is not None:
                        g.create_dataset("gates", data=gates.numpy().astype(np.float32))
                # Blocks run in another order (Veit et al.): gates follow positions.
                order = reorder_case(model, gen)
                original = model.blocks_list
                model.blocks_list = [original[i - 1] for i in order]
                p = torch.tensor([0.9 if i % 2 else 0.6 for i in range(model.num_blocks)])
                g = group.create_group("reordered")
                g.create_dataset("logits", data=model(images, p).numpy().astype(np.float32))
                g.create_dataset("gates", data=p.numpy().astype(np.float32))
                g.create_dataset("order", data=np.array(order, dtype=np.int64))
                model.blocks_list = original
        print(f"{name}: {model.num_blocks} blocks, {len(cases_for(model, gen, n))} cases")


if __name__ == "__main__":
    main(sys.argv[1:])
