"""Writes a PyTorch model or state_dict as a DepthLens checkpoint, format v1.

Layout (docs/checkpoint-format.md): root attributes `format`, `format_version`,
`architecture` (JSON), and optionally `training` and `provenance` (JSON); one float32
dataset per state_dict key under the group `/tensors`, in PyTorch layout.
"""
from __future__ import annotations

import datetime
import json
import platform

import h5py
import numpy as np
import torch

FORMAT = "depthlens.checkpoint"
FORMAT_VERSION = 1
TOOL_VERSION = "0.1.0"


def provenance(tool: str, **extra) -> dict:
    p = {
        "tool": tool,
        "tool_version": TOOL_VERSION,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat(),
    }
    p.update(extra)
    return p


def write_checkpoint(path: str, architecture: dict, state_dict: dict,
                     training: dict | None = None, provenance_info: dict | None = None) -> None:
    with h5py.File(path, "w") as f:
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = np.int64(FORMAT_VERSION)
        f.attrs["architecture"] = json.dumps(architecture, sort_keys=True)
        if training is not None:
            f.attrs["training"] = json.dumps(training, sort_keys=True)
        if provenance_info is not None:
            f.attrs["provenance"] = json.dumps(provenance_info, sort_keys=True)
        g = f.create_group("tensors")
        for key, value in state_dict.items():
            if key.endswith("num_batches_tracked"):
                continue  # a training counter, not a parameter of the function
            g.create_dataset(key, data=value.detach().cpu().numpy().astype(np.float32))
