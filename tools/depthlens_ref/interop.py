"""timm and torchvision ResNets for DepthLens: import, architecture, drop path, gates.

The `imagenet_resnet` family of checkpoint format v1 (docs/checkpoint-format.md) is the
ResNet of timm and torchvision: 7x7/2 stem + BN + ReLU + 3x3/2 max pool, basic or
bottleneck blocks (stride on the 3x3 convolution), 1x1 conv + BN downsampling, global
average pooling, `fc`. Both libraries use the same state_dict names for it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .model import randomize_batchnorm as randomize_common

# timm's and torchvision's ImageNet ResNets by name: block kind and blocks per stage.
PRESETS = {
    "resnet18": ("basic", [2, 2, 2, 2]),
    "resnet26": ("bottleneck", [2, 2, 2, 2]),
    "resnet34": ("basic", [3, 4, 6, 3]),
    "resnet50": ("bottleneck", [3, 4, 6, 3]),
    "resnet101": ("bottleneck", [3, 4, 23, 3]),
    "resnet152": ("bottleneck", [3, 8, 36, 3]),
}
TORCHVISION_MODELS = ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]


def import_vision():
    """Imports torchvision and timm, returning (torchvision, timm).

    The PyPI torchvision wheel links its C++ operators against CUDA libraries that a
    CPU-only torch does not have; its import then fails while registering fake kernels
    for those operators (detection ops that ResNets never use). Registration of
    `torchvision::` fakes is skipped for the duration of the import.
    """
    import torch.library
    original = torch.library.register_fake

    def register_fake(op, *args, **kwargs):
        if isinstance(op, str) and op.startswith("torchvision::"):
            return lambda fn=None: fn if fn is not None else (lambda f: f)
        return original(op, *args, **kwargs)

    torch.library.register_fake = register_fake
    try:
        import torchvision
        import timm
    finally:
        torch.library.register_fake = original
    return torchvision, timm


def blocks_of(model: nn.Module) -> list[nn.Module]:
    """Residual blocks in forward order (global numbering l = 1...L)."""
    return [blk for s in range(1, 5) for blk in getattr(model, f"layer{s}")]


def architecture_of(model: nn.Module) -> dict:
    """The format-v1 architecture of a timm or torchvision ResNet: 7x7 or timm's deep stem,
    strided-convolution or average-pool (`avg_down`) downsampling. Refuses variants
    DepthLens does not compute (tiered deep stems, grouped or wide bottlenecks,
    squeeze-excitation, anti-aliasing, dilation)."""
    extra = {}
    if isinstance(model.conv1, nn.Sequential):
        convs = [m for m in model.conv1 if isinstance(m, nn.Conv2d)]
        kinds = [type(m).__name__ for m in model.conv1]
        if kinds != ["Conv2d", "BatchNorm2d", "ReLU", "Conv2d", "BatchNorm2d", "ReLU", "Conv2d"] \
                or [c.kernel_size for c in convs] != [(3, 3)] * 3 or [c.stride for c in convs] != [(2, 2), (1, 1), (1, 1)] \
                or convs[1].out_channels != convs[0].out_channels or convs[2].out_channels != 2 * convs[0].out_channels:
            raise ValueError(f"only timm's 'deep' stem (3x3 convolutions of w, w, 2w channels) is supported, found {model.conv1}")
        extra["stem"] = "deep"
        stem_width, in_channels = convs[0].out_channels, convs[0].in_channels
    elif isinstance(model.conv1, nn.Conv2d) and model.conv1.kernel_size == (7, 7) and model.conv1.stride == (2, 2):
        stem_width, in_channels = model.conv1.out_channels, model.conv1.in_channels
    else:
        raise ValueError(f"unsupported stem {model.conv1}")
    pool = model.maxpool
    if not isinstance(pool, nn.MaxPool2d) or pool.kernel_size not in (3, (3, 3)) or pool.stride not in (2, (2, 2)) \
            or pool.padding not in (1, (1, 1)):
        raise ValueError(f"the stem must end with 3x3/2 max pooling, found {pool}")
    blocks = blocks_of(model)
    kind = "bottleneck" if hasattr(blocks[0], "conv3") else "basic"
    expansion = 4 if kind == "bottleneck" else 1
    stages = []
    for s in range(1, 5):
        layer = getattr(model, f"layer{s}")
        first = layer[0]
        width = first.conv1.out_channels
        # The stride sits on a basic block's first 3x3 convolution, on a bottleneck's 3x3 (its conv2).
        stride = (first.conv2 if kind == "bottleneck" else first.conv1).stride[0]
        stages.append({"blocks": len(layer), "width": width, "stride": stride})
        for blk in layer:
            for name in ("se", "aa", "drop_block"):
                m = getattr(blk, name, None)
                if m is not None and not isinstance(m, nn.Identity):
                    raise ValueError(f"layer{s}: blocks with {name} are not supported")
            if blk.conv1.out_channels * expansion != (blk.conv3 if kind == "bottleneck" else blk.conv2).out_channels:
                raise ValueError(f"layer{s}: grouped or wide blocks are not supported")
            if getattr(blk.conv2, "groups", 1) != 1 or blk.conv2.dilation != (1, 1):
                raise ValueError(f"layer{s}: grouped or dilated convolutions are not supported")
            ds = blk.downsample
            if ds is None:
                continue
            if len(ds) == 3:
                pool = ds[0]
                ok_pool = isinstance(pool, nn.Identity) or (
                    isinstance(pool, nn.AvgPool2d) and pool.kernel_size in (2, (2, 2)) and pool.stride in (2, (2, 2))
                    and pool.ceil_mode and not pool.count_include_pad)
                if not ok_pool or not isinstance(ds[1], nn.Conv2d) or ds[1].kernel_size != (1, 1) or ds[1].stride != (1, 1):
                    raise ValueError(f"layer{s}: unsupported average-pool downsampling {ds}")
                extra["downsample"] = "avg"
            elif len(ds) != 2 or not isinstance(ds[0], nn.Conv2d) or ds[0].kernel_size != (1, 1):
                raise ValueError(f"layer{s}: unsupported downsampling {ds}")
    if extra.get("downsample") == "avg" and any(st["stride"] not in (1, 2) for st in stages):
        raise ValueError("average-pool downsampling with strides other than 1 and 2 is not supported")
    return {
        "family": "imagenet_resnet", "block": kind, "in_channels": in_channels,
        "num_classes": model.fc.out_features, "stem_width": stem_width, "stages": stages,
        "shortcut": "B", "conv_bias": False, "bn_eps": model.bn1.eps, **extra,
    }


def drop_rates(model: nn.Module) -> list[float]:
    """Each block's drop-path probability (0 where it has none: torchvision, or timm's first block)."""
    rates = []
    for blk in blocks_of(model):
        dp = getattr(blk, "drop_path", None)
        rates.append(float(getattr(dp, "drop_prob", 0.0)) if dp is not None else 0.0)
    return rates


def timm_drop_rates(rate: float, num_blocks: int) -> list[float]:
    """timm's rule (timm/models/resnet.py, make_blocks):
    block_dpr = drop_path_rate * net_block_idx / (net_num_blocks - 1)."""
    return [rate * i / (num_blocks - 1) for i in range(num_blocks)]


def training_metadata(model: nn.Module, drop_path_rate: float, normalization: dict | None = None,
                      input_size: list[int] | None = None, **extra) -> dict:
    """The `training` record: linear-from-zero schedule with r = drop_path_rate, per-example
    gates, the inverted test-time rule (timm's DropPath with scale_by_keep)."""
    L = len(blocks_of(model))
    rates = timm_drop_rates(drop_path_rate, L)
    found = drop_rates(model)
    if any(f > 0 for f in found) and any(abs(a - b) > 1e-9 for a, b in zip(found, rates)):
        raise ValueError(f"the model's drop-path rates {found} are not timm's linear rule for r={drop_path_rate}")
    training = {
        "schedule": {"name": "linear-from-zero", "params": {"r": drop_path_rate}},
        "survival_probabilities": [1.0 - r for r in rates],
        "gate_granularity": "sample",
        "test_time_rule": "inverted",
    }
    if normalization is not None:
        training["normalization"] = normalization
    if input_size is not None:
        training["input_size"] = input_size
    training.update(extra)
    return training


class Gate(nn.Module):
    """Stands in for a block's DropPath: multiplies the residual by a fixed gate, shared
    by the batch (a scalar) or one per example (a vector of N)."""

    def __init__(self):
        super().__init__()
        self.value: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.value is None:
            return x
        return x * self.value.reshape(-1, *([1] * (x.ndim - 1))).to(x.dtype)


def install_gates(model: nn.Module, library: str) -> list[Gate]:
    """Puts a ``Gate`` where drop path acts, right before the residual add, so that the
    library's own forward computes out = act(shortcut + g * residual). timm: the block's
    `drop_path` slot. torchvision (no drop path): after the branch's last batch norm."""
    gates = []
    for blk in blocks_of(model):
        g = Gate()
        if library == "timm":
            blk.drop_path = g
        else:
            last = "bn3" if hasattr(blk, "bn3") else "bn2"
            setattr(blk, last, nn.Sequential(getattr(blk, last), g))
        gates.append(g)
    return gates


def set_gates(gates: list[Gate], values: torch.Tensor | None) -> None:
    """values: None (all on), shape (L,) shared, or (N, L) per example."""
    for l, g in enumerate(gates):
        if values is None:
            g.value = None
        elif values.ndim == 1:
            g.value = values[l].reshape(1)
        else:
            g.value = values[:, l].contiguous()


def randomize_batchnorm(model: nn.Module, gen: torch.Generator) -> None:
    """Non-trivial batch-norm parameters and running statistics, so that folding matters
    (the same draws as model.randomize_batchnorm), and a non-zero batch counter, which a
    plain state_dict dump carries and DepthLens must ignore."""
    randomize_common(model, gen)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.num_batches_tracked.fill_(7)


def reference_forward(arch: dict, state: dict, x: torch.Tensor) -> torch.Tensor:
    """The network that `arch` describes, written out in torch.nn.functional from the
    format-v1 description alone (docs/checkpoint-format.md), all blocks on. Exporters
    compare it with the library's forward pass, so that an architecture misread from a
    model (a stride, a stem) fails at export time rather than in DepthLens."""
    eps = arch["bn_eps"]

    def bn(t, name):
        return F.batch_norm(t, state[name + ".running_mean"], state[name + ".running_var"],
                            state[name + ".weight"], state[name + ".bias"], False, 0.0, eps)

    if arch.get("stem") == "deep":
        x = F.relu(bn(F.conv2d(x, state["conv1.0.weight"], stride=2, padding=1), "conv1.1"))
        x = F.relu(bn(F.conv2d(x, state["conv1.3.weight"], padding=1), "conv1.4"))
        x = F.relu(bn(F.conv2d(x, state["conv1.6.weight"], padding=1), "bn1"))
    else:
        x = F.relu(bn(F.conv2d(x, state["conv1.weight"], stride=2, padding=3), "bn1"))
    x = F.max_pool2d(x, 3, 2, 1)
    for s, stage in enumerate(arch["stages"], start=1):
        for b in range(stage["blocks"]):
            p = f"layer{s}.{b}."
            stride = stage["stride"] if b == 0 else 1
            if arch["block"] == "bottleneck":
                h = F.relu(bn(F.conv2d(x, state[p + "conv1.weight"]), p + "bn1"))
                h = F.relu(bn(F.conv2d(h, state[p + "conv2.weight"], stride=stride, padding=1), p + "bn2"))
                h = bn(F.conv2d(h, state[p + "conv3.weight"]), p + "bn3")
            else:
                h = F.relu(bn(F.conv2d(x, state[p + "conv1.weight"], stride=stride, padding=1), p + "bn1"))
                h = bn(F.conv2d(h, state[p + "conv2.weight"], padding=1), p + "bn2")
            if p + "downsample.0.weight" in state:
                x = bn(F.conv2d(x, state[p + "downsample.0.weight"], stride=stride), p + "downsample.1")
            elif p + "downsample.1.weight" in state:  # avg_down
                if stride == 2:
                    x = F.avg_pool2d(x, 2, 2, ceil_mode=True, count_include_pad=False)
                x = bn(F.conv2d(x, state[p + "downsample.1.weight"]), p + "downsample.2")
            x = F.relu(x + h)
    return F.linear(x.mean((2, 3)), state["fc.weight"], state["fc.bias"])


def check_architecture(model: nn.Module, arch: dict, size: tuple[int, int] = (64, 64)) -> float:
    """Max |logit difference| between the model's own forward and ``reference_forward``
    on random images; raises when they disagree."""
    state = model.state_dict()
    x = torch.randn(2, arch["in_channels"], *size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        was_training = model.training
        model.eval()
        expected = model(x)
        diff = (expected - reference_forward(arch, state, x)).abs().max().item()
        model.train(was_training)
    if not diff <= 1e-4 * max(1.0, expected.abs().max().item()):
        raise ValueError(f"the architecture read from the model does not compute its function (max |diff| {diff}): {arch}")
    return diff
