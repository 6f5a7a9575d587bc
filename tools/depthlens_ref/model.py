"""PyTorch reference definitions of every network DepthLens format v1 describes.

One class, `CifarResNet`, built from the same architecture dictionary that the
checkpoint stores as JSON, so that a checkpoint written from it loads in DepthLens
with identical tensor names and shapes, and its forward pass is the reference the
Swift evaluator is tested against.

Gate convention (docs/checkpoint-format.md, shared/docs/stochastic-depth.md):
block l computes out = post(shortcut(x) + g_l * residual(x)); g_l = 0 skips the
residual branch entirely, g_l = 1 is the plain block, any other value scales it.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

SHORTCUTS = ("A_avgpool", "A_subsample", "B")
BLOCKS = ("basic", "preact")


def default_architecture(**overrides) -> dict:
    arch = {
        "family": "cifar_resnet",
        "block": "basic",
        "in_channels": 1,
        "num_classes": 10,
        "stem_width": 16,
        "stages": [
            {"blocks": 3, "width": 16, "stride": 1},
            {"blocks": 3, "width": 32, "stride": 2},
            {"blocks": 3, "width": 64, "stride": 2},
        ],
        "shortcut": "A_avgpool",
        "channel_padding": "end",
        "conv_bias": True,
        "bn_eps": 1e-5,
    }
    arch.update(overrides)
    return arch


class Block(nn.Module):
    """One residual block; the gate is applied by the caller-visible `forward`."""

    def __init__(self, arch: dict, cin: int, cout: int, stride: int):
        super().__init__()
        bias = arch["conv_bias"]
        eps = arch["bn_eps"]
        self.preact = arch["block"] == "preact"
        self.stride, self.cin, self.cout = stride, cin, cout
        self.kind = arch["shortcut"]
        self.padding_mode = arch["channel_padding"]
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=bias)
        self.bn1 = nn.BatchNorm2d(cin if self.preact else cout, eps=eps)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=bias)
        self.bn2 = nn.BatchNorm2d(cout, eps=eps)
        self.projects = self.kind == "B" and (stride != 1 or cin != cout)
        # Optional fields: a projection without bias beside biased convolutions, and a
        # pre-activation projection reading the block input x (fb.resnet.torch).
        self.shortcut_reads_input = arch.get("preact_shortcut_input", "preactivated") == "input"
        if self.projects:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, 0, bias=arch.get("projection_bias", bias)),
                nn.BatchNorm2d(cout, eps=eps),
            )

    @property
    def identity_shortcut(self) -> bool:
        return self.stride == 1 and self.cin == self.cout

    def option_a(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride != 1:
            if self.kind == "A_avgpool":
                x = F.avg_pool2d(x, self.stride, self.stride)
            else:
                x = x[:, :, :: self.stride, :: self.stride]
        extra = self.cout - self.cin
        if extra > 0:
            before = extra // 2 if self.padding_mode == "both" else 0
            x = F.pad(x, (0, 0, 0, 0, before, extra - before))
        return x

    def branches(self, x: torch.Tensor):
        """Returns (shortcut, residual) for input x."""
        if self.preact:
            a = F.relu(self.bn1(x))
            shortcut = self.shortcut(x if self.shortcut_reads_input else a) if self.projects else self.option_a(x)
            r = self.conv2(F.relu(self.bn2(self.conv1(a))))
            return shortcut, r
        if self.projects:
            shortcut = self.shortcut(x)
        else:
            shortcut = self.option_a(x)
        r = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return shortcut, r

    def post(self, y: torch.Tensor) -> torch.Tensor:
        return y if self.preact else F.relu(y)

    def forward(self, x: torch.Tensor, gate=None) -> torch.Tensor:
        """gate: None (on), a float, or a tensor of shape (N,) for per-example gates."""
        shortcut, r = self.branches(x)
        if gate is None:
            return self.post(shortcut + r)
        if isinstance(gate, torch.Tensor) and gate.dim() == 1:
            gate = gate.view(-1, 1, 1, 1).to(r.dtype)
        return self.post(shortcut + gate * r)


class CifarResNet(nn.Module):
    def __init__(self, arch: dict):
        super().__init__()
        assert arch["block"] in BLOCKS and arch["shortcut"] in SHORTCUTS
        self.arch = arch
        self.preact = arch["block"] == "preact"
        w0 = arch["stem_width"]
        self.conv1 = nn.Conv2d(arch["in_channels"], w0, 3, 1, 1, bias=arch["conv_bias"])
        if not self.preact:
            self.bn1 = nn.BatchNorm2d(w0, eps=arch["bn_eps"])
        cin = w0
        self.blocks_list = []
        for s, stage in enumerate(arch["stages"]):
            layer = nn.ModuleList()
            for b in range(stage["blocks"]):
                stride = stage["stride"] if b == 0 else 1
                blk = Block(arch, cin, stage["width"], stride)
                layer.append(blk)
                self.blocks_list.append(blk)
                cin = stage["width"]
            setattr(self, f"layer{s + 1}", layer)
        if self.preact:
            self.bn_final = nn.BatchNorm2d(cin, eps=arch["bn_eps"])
        self.fc = nn.Linear(cin, arch["num_classes"])

    @property
    def num_blocks(self) -> int:
        return len(self.blocks_list)

    def forward(self, x: torch.Tensor, gates=None) -> torch.Tensor:
        """gates: None (all on), shape (L,) shared by the batch, or (N, L) per example."""
        x = self.conv1(x)
        if not self.preact:
            x = F.relu(self.bn1(x))
        for l, blk in enumerate(self.blocks_list):
            g = None
            if gates is not None:
                g = gates[l] if gates.dim() == 1 else gates[:, l]
                if gates.dim() == 1:
                    g = float(g)
                    if g == 0.0:
                        # A dropped block costs nothing: only its shortcut runs.
                        shortcut = blk.shortcut(x if blk.shortcut_reads_input else F.relu(blk.bn1(x))) if (blk.preact and blk.projects) else (
                            blk.shortcut(x) if blk.projects else blk.option_a(x))
                        x = blk.post(shortcut)
                        continue
                    if g == 1.0:
                        g = None  # the same values and gradients as 1.0 * r, without the multiply (3% of a step)
            x = blk(x, g)
        if self.preact:
            x = F.relu(self.bn_final(x))
        x = x.mean(dim=(2, 3))
        return self.fc(x)


def randomize_batchnorm(model: nn.Module, generator: torch.Generator) -> None:
    """Gives every batch norm non-trivial affine parameters and running statistics."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(0.5 + torch.rand(n, generator=generator))
                m.bias.copy_(0.2 * torch.randn(n, generator=generator))
                m.running_mean.copy_(0.2 * torch.randn(n, generator=generator))
                m.running_var.copy_(0.5 + torch.rand(n, generator=generator))
