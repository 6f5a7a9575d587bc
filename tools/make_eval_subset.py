#!/usr/bin/env python3
"""Writes the Fashion-MNIST test subset and PyTorch's predictions on it for every
bundled checkpoint (Tests/Fixtures/fashion-mnist-subset/), so a Swift test can check
that `depthlens eval` predicts exactly what PyTorch predicts, image by image.

    python3 tools/make_eval_subset.py [--count 500]

The subset is the first COUNT images of the 10,000-image test set, as gzipped IDX files
with the original names. For each data/fmnist-*.h5 (format v1, the CIFAR-style ResNets)
and data/fmnist-*.safetensors (timm's ViT and ConvNeXt, as tools/train_timm.py exports
them), the model is rebuilt in PyTorch from the checkpoint itself (for the timm models:
the recorded timm class and constructor arguments) and run under its recorded test-time
rule;
`predictions-NAME.csv` lists image, label, predicted, and `summary.json` the counts.
"""
from __future__ import annotations

import argparse
import glob
import gzip
import json
import os
import sys

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from depthlens_ref.data import FASHION_DIR, read_idx  # noqa: E402
from depthlens_ref.model import CifarResNet  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "Tests", "Fixtures", "fashion-mnist-subset")


def write_idx(path: str, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.GzipFile(path, "wb", mtime=0) as f:
        f.write(header + array.astype(np.uint8).tobytes())


def load_checkpoint(path: str):
    with h5py.File(path, "r") as f:
        arch = json.loads(f.attrs["architecture"])
        training = json.loads(f.attrs["training"]) if "training" in f.attrs else {}
        state = {k: torch.from_numpy(f["tensors"][k][()]) for k in f["tensors"]}
    model = CifarResNet(arch)
    model.load_state_dict(state, strict=False)
    model.eval()
    return model, training


def load_timm_checkpoint(path: str):
    """A tools/train_timm.py export: timm's own class, built with the recorded constructor
    arguments, holding the file's tensors; drop path is the identity in eval mode."""
    from safetensors import safe_open
    from train_timm import build
    with safe_open(path, framework="pt") as f:
        metadata = f.metadata()
        state = {k: f.get_tensor(k) for k in f.keys()}
    arch = json.loads(metadata["depthlens_architecture"])
    training = json.loads(metadata["depthlens_training"])
    model = build({"timm_class": arch["timm_class"], "kwargs": arch["timm_kwargs"]})
    model.load_state_dict(state, strict=True)
    model.eval()
    return (lambda x, gates: model(x)), training


def predict(model, training, images: np.ndarray, labels: np.ndarray):
    norm = training["normalization"]
    x = (torch.from_numpy(images.astype(np.float32)) / 255.0 - norm["mean"][0]) / norm["std"][0]
    x = x.unsqueeze(1)
    gates = torch.tensor(training["survival_probabilities"]) if training.get("test_time_rule") == "expectation" else None
    with torch.no_grad():
        logits = torch.cat([model(x[i:i + 500], gates) for i in range(0, len(x), 500)])
    return logits.argmax(1).numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=500)
    args = ap.parse_args()
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    images = read_idx(os.path.join(FASHION_DIR, "t10k-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(FASHION_DIR, "t10k-labels-idx1-ubyte.gz"))
    write_idx(os.path.join(OUT, "t10k-images-idx3-ubyte.gz"), images[:args.count])
    write_idx(os.path.join(OUT, "t10k-labels-idx1-ubyte.gz"), labels[:args.count])
    summary = {}
    paths = glob.glob(os.path.join(ROOT, "data", "fmnist-*.h5")) + glob.glob(os.path.join(ROOT, "data", "fmnist-*.safetensors"))
    for path in sorted(paths):
        name, extension = os.path.splitext(os.path.basename(path))
        model, training = load_timm_checkpoint(path) if extension == ".safetensors" else load_checkpoint(path)
        subset = predict(model, training, images[:args.count], labels[:args.count])
        full = predict(model, training, images, labels)
        with open(os.path.join(OUT, f"predictions-{name}.csv"), "w") as f:
            f.write("image,label,predicted\n")
            for i, (y, p) in enumerate(zip(labels[:args.count], subset)):
                f.write(f"{i},{y},{p}\n")
        summary[name] = {"subset_images": args.count, "subset_correct": int((subset == labels[:args.count]).sum()),
                         "test_images": len(labels), "test_correct": int((full == labels).sum()),
                         "rule": training.get("test_time_rule"), "file": os.path.basename(path)}
        print(name, summary[name])
    with open(os.path.join(OUT, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2, sort_keys=True)


if __name__ == "__main__":
    main()
