#!/usr/bin/env python3
"""Writes safetensors versions of an interop dump and their PyTorch golden logits
(Tests/Fixtures/interop/), for the tests of DepthLens's safetensors reader.

From Tests/Fixtures/interop/timm_resnet18d.dump.h5 (written by tools/make_interop_golden.py):

    timm_resnet18d.safetensors        the same state_dict, F32 (num_batches_tracked as I64,
                                      as timm's save_file writes them)
    timm_resnet18d.f16.safetensors    every float tensor rounded to F16
    timm_resnet18d.bf16.safetensors   every float tensor rounded to BF16
    timm_resnet18d.rounded.h5         groups F16 and BF16: CASE/logits for every case of
                                      timm_resnet18d.cases.h5 (same images and gates), the
                                      logits of timm's own forward, in float64, of the model
                                      holding the rounded weights

The F32 file must give exactly the logits of the HDF5 dump; the rounded ones those of
PyTorch on the same rounded weights, within the golden tolerance.

    python3 tools/make_safetensors_fixtures.py
"""
from __future__ import annotations

import os
import sys

import h5py
import numpy as np
import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from depthlens_ref import interop  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "Fixtures", "interop")
NAME = "timm_resnet18d"
METADATA = {"format": "pt", "source": "tools/make_safetensors_fixtures.py"}


def model_with(state: dict):
    """timm's resnet18d, narrowed as tools/make_interop_golden.py builds it, holding `state`."""
    _, timm = interop.import_vision()
    from timm.models.resnet import BasicBlock, ResNet
    model = ResNet(BasicBlock, [2, 2, 2, 2], num_classes=10, channels=(4, 8, 16, 32),
                   stem_type="deep", stem_width=8, avg_down=True)
    model.load_state_dict(state)
    return model.eval()


def main() -> None:
    torch.set_num_threads(1)
    with h5py.File(os.path.join(OUT, f"{NAME}.dump.h5"), "r") as f:
        state = {key: torch.from_numpy(np.asarray(f[key][()])) for key in f}
    assert all(v.dtype in (torch.float32, torch.int64) for v in state.values())
    save_file(state, os.path.join(OUT, f"{NAME}.safetensors"), metadata=METADATA)
    with h5py.File(os.path.join(OUT, f"{NAME}.cases.h5"), "r") as f:
        images = torch.from_numpy(f["images"][()]).double()
        cases = {name: (torch.from_numpy(g["gates"][()]).double() if "gates" in g else None)
                 for name, g in f["cases"].items()}
    with h5py.File(os.path.join(OUT, f"{NAME}.rounded.h5"), "w") as out:
        out.attrs["note"] = "logits of timm's forward (float64) on the weights of NAME.DTYPE.safetensors"
        for dtype, suffix in [(torch.float16, "F16"), (torch.bfloat16, "BF16")]:
            rounded = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
            save_file(rounded, os.path.join(OUT, f"{NAME}.{suffix.lower()}.safetensors"), metadata=METADATA)
            model = model_with({k: v.float() for k, v in rounded.items()})
            gates = interop.install_gates(model, "timm")
            model.double()
            group = out.create_group(suffix)
            with torch.no_grad():
                for case, values in cases.items():
                    interop.set_gates(gates, values)
                    group.create_group(case).create_dataset("logits", data=model(images).numpy().astype(np.float32))
            # The rounding must matter, or the test could not tell the files apart.
            interop.set_gates(gates, None)
            full = model_with({k: v for k, v in state.items()}).double()
            with torch.no_grad():
                change = (full(images) - model(images)).abs().max().item()
            print(f"{suffix}: max |logit change| from rounding the weights {change:.3g}")
            assert change > 1e-4
    for name in sorted(os.listdir(OUT)):
        if name.startswith(NAME) and (name.endswith(".safetensors") or name.endswith(".rounded.h5")):
            size = os.path.getsize(os.path.join(OUT, name))
            print(f"{name}: {size} bytes")
            assert size < 200 * 1024, name  # 200 KiB


if __name__ == "__main__":
    main()
