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
    # linear with pL = 0.5 over 2 blocks gives [0.75, 0.5], not the recorded [1.0, 0.5].
    write("training-schedule-disagrees.h5", arch, state, {"schedule": {"name": "linear", "params": {"pL": 0.5}},
                                                           "survival_probabilities": [1.0, 0.5]})
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
    more_checkpoints(arch, state)
    more_data_files()
    schedule_files()
    nonfinite_files(arch, state)
    filter_files()
    safetensors_files()
    transformer_safetensors_files()
    print("wrote", len(os.listdir(OUT)), "files to", os.path.normpath(OUT))


def more_checkpoints(arch, state) -> None:
    """Checkpoints broken in ways the first set does not cover."""
    def replace(key, make):
        def m(f):
            del f["tensors"][key]
            make(f["tensors"], key)
        return m
    write("tensor-scalar.h5", arch, state, mutate=replace("fc.bias", lambda g, k: g.create_dataset(k, data=np.float32(1))))
    write("tensor-string.h5", arch, state, mutate=replace("fc.bias", lambda g, k: g.create_dataset(k, data=np.array([b"a", b"b", b"c"]))))
    write("tensor-is-group.h5", arch, state, mutate=replace("fc.bias", lambda g, k: g.create_group(k)))
    write("tensor-rank-32.h5", arch, state,
          mutate=replace("fc.bias", lambda g, k: g.create_dataset(k, shape=(1,) * 32, dtype=np.float32)))

    def set_attr(name, value):
        return lambda f: f.attrs.__setitem__(name, value)
    write("arch-not-a-string.h5", arch, state, mutate=set_attr("architecture", np.arange(4, dtype=np.int32)))
    empty = json.loads(json.dumps(arch)); empty["stages"] = []
    write("arch-no-stages.h5", arch, state, mutate=set_attr("architecture", json.dumps(empty)))
    zero = json.loads(json.dumps(arch)); zero["num_classes"] = 0
    write("arch-zero-classes.h5", arch, state, mutate=set_attr("architecture", json.dumps(zero)))
    huge = json.loads(json.dumps(arch)); huge["stages"][0]["blocks"] = 1 << 40
    write("arch-absurd-blocks.h5", arch, state, mutate=set_attr("architecture", json.dumps(huge)))
    write("format-version-string.h5", arch, state, mutate=set_attr("format_version", "one"))
    write("training-malformed-json.h5", arch, state, mutate=set_attr("training", "{\"survival_probabilities\": [1.0,"))
    write("training-nan-probability.h5", arch, state, {"survival_probabilities": [1.0, float("nan")]})
    # An 8x8 network, for the data-file cases below (valid).
    write("valid-tiny-8x8.h5", arch, state, {"survival_probabilities": [1.0, 0.5], "test_time_rule": "expectation",
                                             "input_size": [8, 8]})

    # The same network with version-2 object headers and a version-3 superblock (h5py's
    # libver="latest"), which DepthLens' pre-checks do not parse: a valid file, and a seed
    # that lets the fuzzer reach libhdf5's other code paths.
    with h5py.File(os.path.join(OUT, "valid-tiny.h5"), "r") as src, \
            h5py.File(os.path.join(OUT, "valid-tiny-latest-format.h5"), "w", libver="latest") as dst:
        for key, value in src.attrs.items():
            dst.attrs[key] = value
        src.copy(src["tensors"], dst, "tensors")

    # Crafted superblocks: libhdf5 trusts these fields, so DepthLens checks them first.
    blob = bytearray(open(os.path.join(OUT, "valid-tiny.h5"), "rb").read())
    assert blob[:8] == b"\x89HDF\r\n\x1a\n"
    version = blob[8]
    # End-of-file address (8-byte addresses): byte 40 in a v0 superblock, 44 in v1, 28 in
    # v2/v3 (whose checksum is then wrong too).
    eof_at = {0: 40, 1: 44, 2: 28, 3: 28}[version]
    eof = bytearray(blob)
    eof[eof_at:eof_at + 8] = (len(blob) * 1000).to_bytes(8, "little")
    open(os.path.join(OUT, "superblock-eof-beyond-file.h5"), "wb").write(eof)
    garbage = bytearray(blob[:8]) + bytearray((i * 37 + 11) % 256 for i in range(4096))
    open(os.path.join(OUT, "signature-then-garbage.h5"), "wb").write(garbage)


def tiny_resnet18_state() -> dict:
    """A state_dict with timm's resnet18 names, narrowed (1 input channel, stem width 2,
    stage widths 2, 2, 4, 4, 3 classes), random but valid: what `--arch timm/resnet18` reads."""
    rng = np.random.default_rng(20)
    state = {}

    def conv(key, out, cin, k):
        state[key] = (0.3 * rng.standard_normal((out, cin, k, k))).astype(np.float32)

    def bn(key, c):
        state[f"{key}.weight"] = (1 + 0.1 * rng.standard_normal(c)).astype(np.float32)
        state[f"{key}.bias"] = (0.1 * rng.standard_normal(c)).astype(np.float32)
        state[f"{key}.running_mean"] = (0.1 * rng.standard_normal(c)).astype(np.float32)
        state[f"{key}.running_var"] = (0.5 + rng.random(c)).astype(np.float32)
        state[f"{key}.num_batches_tracked"] = np.array(7, np.int64)

    conv("conv1.weight", 2, 1, 7)
    bn("bn1", 2)
    cin = 2
    for s, width in enumerate([2, 2, 4, 4]):
        for b in range(2):
            p = f"layer{s + 1}.{b}"
            conv(f"{p}.conv1.weight", width, cin if b == 0 else width, 3)
            bn(f"{p}.bn1", width)
            conv(f"{p}.conv2.weight", width, width, 3)
            bn(f"{p}.bn2", width)
            if b == 0 and (s > 0 or cin != width):
                conv(f"{p}.downsample.0.weight", width, cin, 1)
                bn(f"{p}.downsample.1", width)
        cin = width
    state["fc.weight"] = (0.3 * rng.standard_normal((3, 4))).astype(np.float32)
    state["fc.bias"] = np.zeros(3, np.float32)
    return state


def safetensors_files() -> None:
    """Malformed .safetensors files (read with --arch timm/resnet18), each breaking one rule
    of the format's header or of the verification every dump gets; valid-resnet18.safetensors
    is the valid file they are made from (written by the safetensors package)."""
    from safetensors.numpy import save

    state = tiny_resnet18_state()
    blob = save(state, metadata={"format": "pt"})
    open(os.path.join(OUT, "valid-resnet18.safetensors"), "wb").write(blob)
    n = int.from_bytes(blob[:8], "little")
    header, data = json.loads(blob[8:8 + n]), blob[8 + n:]

    def raw(name, content):
        open(os.path.join(OUT, f"st-{name}.safetensors"), "wb").write(content)

    def text(name, header_text, payload=data):
        encoded = header_text.encode()
        raw(name, len(encoded).to_bytes(8, "little") + encoded + payload)

    def craft(name, change, payload=data):
        h = json.loads(json.dumps(header))
        change(h)
        text(name, json.dumps(h, separators=(",", ":")), payload)

    def set_field(key, field, value):
        return lambda h: h[key].__setitem__(field, value)

    def drop_field(key, field):
        return lambda h: h[key].__delitem__(field)

    raw("too-short", blob[:5])
    raw("header-past-eof", (4096).to_bytes(8, "little") + blob[8:200])
    raw("header-absurd-length", (1 << 40).to_bytes(8, "little") + blob[8:])
    text("header-not-json", json.dumps(header)[:300])
    text("header-not-object", "[1, 2, 3]")
    craft("missing-dtype", drop_field("fc.weight", "dtype"))
    craft("missing-shape", drop_field("layer1.0.bn1.bias", "shape"))
    craft("missing-offsets", drop_field("fc.bias", "data_offsets"))
    craft("unknown-dtype", set_field("fc.weight", "dtype", "F17"))
    craft("int-dtype", set_field("fc.bias", "dtype", "I32"))
    craft("negative-shape", set_field("fc.bias", "shape", [-3]))
    craft("fractional-shape", set_field("fc.bias", "shape", [1.5, 2]))
    craft("shape-overflow", set_field("fc.weight", "shape", [1 << 40, 1 << 40]))
    begin = header["fc.bias"]["data_offsets"][0]
    craft("offsets-out-of-bounds", set_field("fc.bias", "data_offsets", [len(data) - 4, len(data) + 8]))
    craft("offsets-reversed", set_field("fc.bias", "data_offsets", [begin + 12, begin]))
    craft("offsets-mismatch", set_field("fc.bias", "data_offsets", [begin, begin + 8]))
    craft("offsets-not-a-pair", set_field("fc.bias", "data_offsets", [begin]))
    craft("entry-not-object", lambda h: h.__setitem__("fc.bias", [3]))
    craft("metadata-not-strings", lambda h: h.__setitem__("__metadata__", {"format": "pt", "epochs": 30}))
    entry = json.dumps(header["fc.bias"], separators=(",", ":"))
    compact = json.dumps(header, separators=(",", ":"))
    text("duplicate-key", compact[:-1] + f',"fc.bias":{entry}}}')
    raw("truncated-data", blob[:-100])

    def with_state(name, change):
        changed = dict(state)
        change(changed)
        raw(name, save(changed, metadata={"format": "pt"}))
    with_state("wrong-shape", lambda s: s.__setitem__("layer2.0.conv1.weight", s["layer2.0.conv1.weight"][:, :, :2, :].copy()))
    with_state("missing-tensor", lambda s: s.__delitem__("layer4.1.bn2.running_var"))
    with_state("unused-tensor", lambda s: s.__setitem__("layer2.0.se.fc1.weight", np.zeros((2, 2), np.float32)))
    nan = state["layer3.0.conv2.weight"].astype(np.float16)
    nan.flat[5] = np.nan
    with_state("nan-weight", lambda s: s.__setitem__("layer3.0.conv2.weight", nan))


def idx_bytes(shape, data, dtype=0x08):
    head = bytes([0, 0, dtype, len(shape)]) + b"".join(int(d).to_bytes(4, "big") for d in shape)
    return head + bytes(data)


def more_data_files() -> None:
    """Data files (HDF5, IDX, CIFAR) broken in one way each; used with valid-tiny-8x8.h5."""
    def h5(name, **datasets):
        with h5py.File(os.path.join(OUT, name), "w") as f:
            for key, value in datasets.items():
                f.create_dataset(key, data=value)
    images = np.zeros((4, 1, 8, 8), np.float32)
    h5("data-labels-out-of-range.h5", images=images, labels=np.array([0, 1, 2, 5], np.int64))
    h5("data-labels-negative.h5", images=images, labels=np.array([0, -1, 2, 1], np.int64))
    h5("data-labels-fractional.h5", images=images, labels=np.array([0, 1.5, 2, 1], np.float32))
    h5("data-labels-nan.h5", images=images, labels=np.array([0, np.nan, 2, 1], np.float32))
    h5("data-labels-string.h5", images=images, labels=np.array([b"a", b"b", b"c", b"d"]))
    h5("data-wrong-image-size.h5", images=np.zeros((4, 1, 12, 12), np.float32), labels=np.zeros(4, np.int64))
    h5("data-wrong-channels.h5", images=np.zeros((4, 3, 8, 8), np.float32), labels=np.zeros(4, np.int64))
    h5("data-images-missing.h5", pictures=images, labels=np.zeros(4, np.int64))
    h5("data-images-string.h5", images=np.array([b"x"] * 4), labels=np.zeros(4, np.int64))
    nan = images.copy(); nan[2, 0, 3, 3] = np.nan
    h5("data-images-nan.h5", images=nan, labels=np.zeros(4, np.int64))
    h5("data-no-images.h5", images=np.zeros((0, 1, 8, 8), np.float32), labels=np.zeros(0, np.int64))
    with h5py.File(os.path.join(OUT, "data-images-huge-declared.h5"), "w") as f:
        f.create_dataset("images", shape=(1 << 40, 1, 8, 8), dtype=np.float32, chunks=(1, 1, 8, 8))

    def raw(name, blob):
        open(os.path.join(OUT, name), "wb").write(blob)
    pixels = [i % 256 for i in range(4 * 64)]
    raw("idx-truncated-images-idx3-ubyte", idx_bytes([4, 8, 8], pixels)[:200])
    raw("idx-bad-magic-images-idx3-ubyte", b"\x01\x02" + idx_bytes([4, 8, 8], pixels)[2:])
    raw("idx-float-images-idx3-ubyte", idx_bytes([4, 8, 8], pixels, dtype=0x0D))
    raw("idx-absurd-extent-images-idx3-ubyte", idx_bytes([1, 1 << 27, 1 << 8], pixels))
    raw("idx-rank1-images-idx3-ubyte", idx_bytes([256], pixels))
    raw("idx-count-mismatch-images-idx3-ubyte", idx_bytes([4, 8, 8], pixels))
    raw("idx-count-mismatch-labels-idx1-ubyte", idx_bytes([3], [0, 1, 2]))
    raw("idx-label-out-of-range-images-idx3-ubyte", idx_bytes([4, 8, 8], pixels))
    raw("idx-label-out-of-range-labels-idx1-ubyte", idx_bytes([4], [0, 1, 2, 9]))
    import gzip
    raw("idx-gzip-truncated-images-idx3-ubyte.gz", gzip.compress(idx_bytes([4, 8, 8], pixels), mtime=0)[:60])
    raw("cifar-partial-record.bin", bytes(3073 * 2 + 100))
    raw("cifar-label-out-of-range.bin", bytes([200]) + bytes(3072))


def schedule_files() -> None:
    """Malformed custom-schedule files (custom:file=...) for a 2-block network."""
    def text(name, content):
        open(os.path.join(OUT, name), "w").write(content)
    text("schedule-not-a-number.csv", "p\n1.0\nhalf\n")
    text("schedule-wrong-length.csv", "1.0\n0.9\n0.8\n")
    text("schedule-out-of-range.csv", "1.0\n1.5\n")
    text("schedule-nan.csv", "1.0\nnan\n")
    text("schedule-empty.csv", "")
    text("schedule-not-a-list.json", '{"probabilities": [1.0, 0.5]}')
    text("schedule-malformed.json", "[1.0, 0.5")
    text("schedule-strings.json", '["1.0", "0.5"]')


def nonfinite_files(arch, state) -> None:
    """Finite inputs whose evaluation is not finite (issue 23): logits must be checked."""
    rng = np.random.default_rng(23)
    images = rng.random((6, 1, 8, 8), dtype=np.float32)
    labels = np.array([0, 1, 2, 0, 1, 2], np.int64)
    with h5py.File(os.path.join(OUT, "valid-data-8x8.h5"), "w") as f:
        f.create_dataset("images", data=images)
        f.create_dataset("labels", data=labels)
    # Float images of +-3e38 (a checkerboard): finite, but the stem's convolution
    # overflows. Only image 4.
    huge = images.copy(); huge[4, 0] = (np.indices((8, 8)).sum(0) % 2 * 2 - 1) * np.float32(3e38)
    with h5py.File(os.path.join(OUT, "data-images-3e38.h5"), "w") as f:
        f.create_dataset("images", data=huge)
        f.create_dataset("labels", data=labels)
    # Finite weights whose logits overflow: fc.weight and fc.bias of 3e38.
    fc = np.full_like(state["fc.weight"].numpy(), 3e38)
    bias = np.full_like(state["fc.bias"].numpy(), 3e38)

    def overflow(f):
        for key, value in (("fc.weight", fc), ("fc.bias", bias)):
            del f["tensors"][key]
            f["tensors"].create_dataset(key, data=value)
    # 16-bit integer images: dividing them by 255 would be silently wrong.
    with h5py.File(os.path.join(OUT, "data-images-uint16.h5"), "w") as f:
        f.create_dataset("images", data=(images * 65535).astype(np.uint16))
        f.create_dataset("labels", data=labels)
    # The same images as IDX bytes (for --mean/--std, which apply to integer images).
    pixels = (images * 255).astype(np.uint8).ravel().tolist()
    open(os.path.join(OUT, "valid-8x8-images-idx3-ubyte"), "wb").write(idx_bytes([6, 8, 8], pixels))
    open(os.path.join(OUT, "valid-8x8-labels-idx1-ubyte"), "wb").write(idx_bytes([6], labels.tolist()))
    write("logits-overflow-8x8.h5", arch, state, {"survival_probabilities": [1.0, 0.5], "test_time_rule": "expectation",
                                                   "input_size": [8, 8]}, mutate=overflow)



def transformer_safetensors_files() -> None:
    """Malformed .safetensors files of the two drop-path families (issue 20): a tiny timm
    VisionTransformer (`vit-*`) and ConvNeXt (`cnx-*`), recorded as tools/train_timm.py
    exports them (timm class and constructor arguments in `depthlens_architecture`), each
    breaking one rule: the recorded architecture (not JSON, wrong heads, an unknown or
    unsupported argument), or the tensors against it (missing, unused, wrong shape, NaN),
    or read with a preset that does not fit. valid-vit.safetensors and
    valid-convnext.safetensors are the valid files they are made from (a few KB each)."""
    from depthlens_ref.interop import import_vision
    from safetensors.numpy import save
    _, timm = import_vision()

    def export(name, model, kwargs, timm_class, family, size, state=None, architecture=None, training=None):
        tensors = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()} if state is None else state
        arch = {"family": family, "timm_class": timm_class, "timm_kwargs": kwargs, "timm_version": timm.__version__,
                "input_size": list(size)}
        record = {"dataset": "random", "input_size": list(size[1:]),
                  "normalization": {"mean": [0.5] * size[0], "std": [0.25] * size[0]},
                  "drop_path": {"rate": 0.1, "schedule": "linear-from-zero", "gate_granularity": "sample",
                                "test_time_rule": "inverted"}, "test_time_rule": "inverted"}
        metadata = {"format": "pt",
                    "depthlens_architecture": architecture if architecture is not None else json.dumps(arch, sort_keys=True),
                    "depthlens_training": training if training is not None else json.dumps(record, sort_keys=True)}
        open(os.path.join(OUT, name), "wb").write(save(tensors, metadata=metadata))
        return tensors

    torch.manual_seed(0)
    vit_kwargs = {"img_size": 8, "patch_size": 4, "in_chans": 1, "num_classes": 3, "embed_dim": 8, "depth": 2,
                  "num_heads": 2, "mlp_ratio": 2.0, "init_values": 0.1, "drop_path_rate": 0.1}
    vit_class = "timm.models.vision_transformer.VisionTransformer"
    vit = timm.models.vision_transformer.VisionTransformer(**vit_kwargs).eval()
    size = (1, 8, 8)
    vit_state = export("valid-vit.safetensors", vit, vit_kwargs, vit_class, "vit", size)

    def vit_file(name, kwargs=None, state=None, **extra):
        export(f"vit-{name}.safetensors", vit, dict(vit_kwargs, **(kwargs or {})), vit_class, "vit", size, state=state, **extra)

    def changed(state, change):
        state = dict(state)
        change(state)
        return state

    vit_file("heads-not-divisor", {"num_heads": 3})
    vit_file("arch-not-json", architecture='{"timm_class": "timm.models.vision_transformer.VisionTransformer", "timm_kwargs": {')
    vit_file("unknown-argument", {"mlp_layer": "SwiGLU"})
    vit_file("unsupported-qk-norm", {"qk_norm": True})
    vit_file("pooling-map", {"global_pool": "map"})
    vit_file("depth-beyond-tensors", {"depth": 3})
    vit_file("training-not-json", training="{'dataset': 'random'}")
    vit_file("missing-tensor", state=changed(vit_state, lambda s: s.pop("blocks.1.attn.proj.weight")))
    vit_file("unused-tensor", state=changed(vit_state, lambda s: s.__setitem__("blocks.0.attn.q_norm.weight", np.ones(4, np.float32))))
    vit_file("qkv-wrong-shape", state=changed(vit_state, lambda s: s.__setitem__("blocks.0.attn.qkv.weight", np.zeros((16, 8), np.float32))))
    vit_file("pos-embed-wrong-shape", state=changed(vit_state, lambda s: s.__setitem__("pos_embed", np.zeros((1, 4, 8), np.float32))))
    nan = vit_state["head.weight"].astype(np.float16)
    nan.flat[4] = np.nan
    vit_file("nan-weight", state=changed(vit_state, lambda s: s.__setitem__("head.weight", nan)))

    torch.manual_seed(0)
    cnx_kwargs = {"in_chans": 1, "num_classes": 3, "depths": [1, 1, 1, 1], "dims": [4, 4, 8, 8], "patch_size": 1,
                  "drop_path_rate": 0.1}
    cnx_class = "timm.models.convnext.ConvNeXt"
    cnx = timm.models.convnext.ConvNeXt(**cnx_kwargs).eval()
    cnx_state = export("valid-convnext.safetensors", cnx, cnx_kwargs, cnx_class, "convnext", size)

    def cnx_file(name, kwargs=None, state=None, **extra):
        export(f"cnx-{name}.safetensors", cnx, dict(cnx_kwargs, **(kwargs or {})), cnx_class, "convnext", size, state=state, **extra)

    cnx_file("depths-not-a-list", {"depths": "1,1,1,1"})
    cnx_file("three-stages", {"depths": [1, 1, 1], "dims": [4, 4, 8]})
    cnx_file("patch-size-8", {"patch_size": 8})
    cnx_file("dims-unlike-tensors", {"dims": [4, 4, 8, 16]})
    cnx_file("missing-downsample", state=changed(cnx_state, lambda s: s.pop("stages.2.downsample.1.weight")))
    cnx_file("grn-tensor", state=changed(cnx_state, lambda s: s.__setitem__("stages.0.blocks.0.mlp.grn.weight", np.ones((1, 1, 1, 16), np.float32))))
    cnx_file("dw-kernel-wrong-shape", state=changed(cnx_state, lambda s: s.__setitem__("stages.1.blocks.0.conv_dw.weight", np.zeros((4, 1, 5, 5), np.float32))))
    nan = cnx_state["stages.3.blocks.0.gamma"].copy()
    nan[2] = np.inf
    cnx_file("inf-gamma", state=changed(cnx_state, lambda s: s.__setitem__("stages.3.blocks.0.gamma", nan)))
    blob = open(os.path.join(OUT, "valid-convnext.safetensors"), "rb").read()
    open(os.path.join(OUT, "cnx-truncated.safetensors"), "wb").write(blob[:-64])


def filter_files() -> None:
    """A dataset compressed with h5py's lzf filter, which Debian's libhdf5 lacks: the
    message must name the missing filter, not call the file damaged; where a plugin provides
    the filter, the file reads (MalformedInputTests asks libhdf5 which case holds). Zero
    images, so that the chunk compresses (lzf is an optional filter: a chunk it cannot shrink
    is stored raw)."""
    with h5py.File(os.path.join(OUT, "data-images-lzf.h5"), "w") as f:
        f.create_dataset("images", data=np.zeros((64, 1, 8, 8), np.float32), compression="lzf", chunks=(64, 1, 8, 8))
        f.create_dataset("labels", data=np.zeros(64, np.int64))


if __name__ == "__main__":
    main()
