#!/usr/bin/env python3
"""Writes malformed checkpoints and data files for the error-message tests
(Tests/Fixtures/malformed/). Each file breaks exactly one rule of format v1; the Swift
tests assert that loading it fails with a message naming the problem and its place.

    python3 tools/make_malformed.py
"""
from __future__ import annotations

import json
import os
import sys

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from depthlens_ref.export import write_checkpoint  # noqa: E402
from depthlens_ref.model import CifarResNet, default_architecture, randomize_batchnorm  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "Fixtures", "malformed")


def tiny():
    arch = default_architecture(stem_width=2, num_classes=3,
                                stages=[{"blocks": 1, "width": 2, "stride": 1}, {"blocks": 1, "width": 4, "stride": 2}])
    torch.manual_seed(0)
    model = CifarResNet(arch)
    randomize_batchnorm(model, torch.Generator().manual_seed(1))
    return arch, {k: v for k, v in model.state_dict().items()}


def write(name, arch, state, training=None, mutate=None):
    path = os.path.join(OUT, name)
    write_checkpoint(path, arch, state, training)
    if mutate:
        with h5py.File(path, "r+") as f:
            mutate(f)
    return path


def main() -> None:
    os.makedirs(OUT, exist_ok=True)
    arch, state = tiny()
    write("valid-tiny.h5", arch, state, {"survival_probabilities": [1.0, 0.5], "test_time_rule": "expectation"})

    def replace(key, data):
        def m(f):
            del f["tensors"][key]
            f["tensors"].create_dataset(key, data=data)
        return m

    w = state["layer2.0.conv1.weight"].numpy()
    write("tensor-int.h5", arch, state, mutate=replace("fc.weight", state["fc.weight"].numpy().astype(np.int32)))
    write("tensor-float16.h5", arch, state, mutate=replace("fc.bias", state["fc.bias"].numpy().astype(np.float16)))
    write("tensor-wrong-shape.h5", arch, state, mutate=replace("layer2.0.conv1.weight", w[:, :, :2, :]))
    write("tensor-wrong-rank.h5", arch, state, mutate=replace("fc.bias", state["fc.bias"].numpy()[None, :]))
    nan = w.copy(); nan[1, 0, 2, 1] = np.nan
    write("tensor-nan.h5", arch, state, mutate=replace("layer2.0.conv1.weight", nan))
    inf = state["fc.weight"].numpy().copy(); inf[0, 1] = np.inf
    write("tensor-inf.h5", arch, state, mutate=replace("fc.weight", inf))
    write("tensor-missing.h5", arch, state, mutate=lambda f: f["tensors"].__delitem__("layer1.0.bn2.running_var"))
    write("tensor-unused.h5", arch, state,
          mutate=lambda f: f["tensors"].create_dataset("layer3.0.conv1.weight", data=np.zeros((2, 2, 3, 3), np.float32)))
    write("tensor-negative-variance.h5", arch, state,
          mutate=replace("bn1.running_var", -np.abs(state["bn1.running_var"].numpy())))

    def huge(f):
        # A chunked dataset may declare an extent far beyond the file without storing it.
        del f["tensors"]["fc.weight"]
        f["tensors"].create_dataset("fc.weight", shape=(3, 1 << 40), dtype=np.float32, chunks=(1, 16))
    write("tensor-huge-declared.h5", arch, state, mutate=huge)

    def set_attr(name, value):
        return lambda f: f.attrs.__setitem__(name, value)
    write("arch-malformed-json.h5", arch, state, mutate=set_attr("architecture", '{"family": "cifar_resnet", "stages": ['))
    missing = dict(arch); del missing["stages"]
    write("arch-missing-field.h5", arch, state, mutate=set_attr("architecture", json.dumps(missing)))
    negative = json.loads(json.dumps(arch)); negative["stages"][1]["blocks"] = -2
    write("arch-negative-blocks.h5", arch, state, mutate=set_attr("architecture", json.dumps(negative)))
    zero = json.loads(json.dumps(arch)); zero["stem_width"] = 0
    write("arch-zero-width.h5", arch, state, mutate=set_attr("architecture", json.dumps(zero)))
    typo = dict(arch); typo["shortcuts"] = "B"
    write("arch-unknown-field.h5", arch, state, mutate=set_attr("architecture", json.dumps(typo)))
    badkind = dict(arch); badkind["shortcut"] = "C"
    write("arch-unknown-shortcut.h5", arch, state, mutate=set_attr("architecture", json.dumps(badkind)))
    write("arch-missing.h5", arch, state, mutate=lambda f: f.attrs.__delitem__("architecture"))
    write("format-version-2.h5", arch, state, mutate=set_attr("format_version", np.int64(2)))
    write("training-bad-probability.h5", arch, state, {"survival_probabilities": [1.0, 1.5]})
    write("training-wrong-length.h5", arch, state, {"survival_probabilities": [1.0, 0.9, 0.8]})
    write("tensors-group-missing.h5", arch, state, mutate=lambda f: f.__delitem__("tensors"))

    with open(os.path.join(OUT, "not-hdf5.h5"), "w") as f:
        f.write("this is a text file, not HDF5\n")
    open(os.path.join(OUT, "empty.h5"), "wb").close()
    blob = open(os.path.join(OUT, "valid-tiny.h5"), "rb").read()
    for cut in (64, 1024, len(blob) // 2, len(blob) - 100):
        with open(os.path.join(OUT, f"truncated-{cut}.h5"), "wb") as f:
            f.write(blob[:cut])

    with h5py.File(os.path.join(OUT, "images-labels-mismatch.h5"), "w") as f:
        f.create_dataset("images", data=np.zeros((5, 1, 8, 8), np.float32))
        f.create_dataset("labels", data=np.zeros((4,), np.int64))
    with h5py.File(os.path.join(OUT, "images-rank2.h5"), "w") as f:
        f.create_dataset("images", data=np.zeros((5, 64), np.float32))
    print("wrote", len(os.listdir(OUT)), "files to", os.path.normpath(OUT))


if __name__ == "__main__":
    main()
