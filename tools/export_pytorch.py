#!/usr/bin/env python3
"""Exports a PyTorch CIFAR-style ResNet to a DepthLens checkpoint (format v1).

From a saved state_dict (a .pt/.pth file holding the dict itself, or a training
checkpoint with the dict under "state_dict" or "model"), plus the architecture as JSON
(docs/checkpoint-format.md) and, optionally, what is known of the training:

    python3 tools/export_pytorch.py model.pt out.h5 --architecture arch.json \\
        --training '{"schedule": {"name": "linear", "params": {"pL": 0.5}},
                     "gate_granularity": "batch", "test_time_rule": "expectation"}'

The state_dict is loaded strictly into the reference model (tools/depthlens_ref/model.py)
first, so a name or shape that does not fit the architecture fails here, with PyTorch's
message, before any file is written. Keys must follow the reference names (conv1, bn1,
layer{s}.{b}.conv1/bn1/conv2/bn2/shortcut.{0,1}, bn_final, fc); use --rename OLD=NEW
(prefix replacement, repeatable) for checkpoints that name them differently.

From Python, `write_checkpoint(path, arch, model.state_dict(), training, provenance(...))`
in depthlens_ref.export does the same for a model in memory.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from depthlens_ref.export import provenance, write_checkpoint  # noqa: E402
from depthlens_ref.model import CifarResNet  # noqa: E402


def load_json(text_or_path: str) -> dict:
    if os.path.exists(text_or_path):
        with open(text_or_path) as f:
            return json.load(f)
    return json.loads(text_or_path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("state_dict", help="a .pt/.pth file")
    ap.add_argument("output", help="the .h5 checkpoint to write")
    ap.add_argument("--architecture", required=True, help="architecture JSON, inline or a file")
    ap.add_argument("--training", help="training metadata JSON, inline or a file")
    ap.add_argument("--rename", action="append", default=[], metavar="OLD=NEW", help="replace a key prefix")
    args = ap.parse_args()

    arch = load_json(args.architecture)
    training = load_json(args.training) if args.training else None
    blob = torch.load(args.state_dict, map_location="cpu", weights_only=False)
    if isinstance(blob, dict) and ("state_dict" in blob or "model" in blob):
        blob = blob.get("state_dict", blob.get("model"))
    if isinstance(blob, torch.nn.Module):
        blob = blob.state_dict()
    state = {}
    for key, value in blob.items():
        key = key.removeprefix("module.")  # DataParallel
        for rule in args.rename:
            old, new = rule.split("=", 1)
            if key.startswith(old):
                key = new + key[len(old):]
        state[key] = value
    model = CifarResNet(arch)
    model.load_state_dict(state, strict=True)
    write_checkpoint(args.output, arch, model.state_dict(), training,
                     provenance("tools/export_pytorch.py", source=os.path.basename(args.state_dict)))
    print(f"wrote {args.output}: {model.num_blocks} blocks, {len(state)} tensors")


if __name__ == "__main__":
    main()
