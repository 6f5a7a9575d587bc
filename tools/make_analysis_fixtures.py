#!/usr/bin/env python3
"""Writes expected results of every analysis, computed independently in PyTorch and
numpy/scipy (Tests/Fixtures/analyses/), for the Swift analysis tests.

    python3 tools/make_analysis_fixtures.py

The gate masks are drawn with a Python re-implementation of DepthLens' seeded generator
(xoshiro256** seeded through SplitMix64, documented in Sources/DepthLens/Analysis/
SeededGenerator.swift), so the same seed gives the same sub-networks here; everything
else (forward passes, lesions, ensembles, metrics, Kendall's tau, path distributions)
is computed here from scratch.
"""
from __future__ import annotations

import json
import os
import sys

import h5py
import numpy as np
import torch
from scipy.special import log_softmax, logsumexp
from scipy.stats import binom, kendalltau

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from depthlens_ref.model import CifarResNet  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "Tests", "Fixtures", "analyses")
MASK = (1 << 64) - 1
SEED = 7


class Generator:
    def __init__(self, seed: int):
        s = seed & MASK

        def split_mix():
            nonlocal s
            s = (s + 0x9E3779B97F4A7C15) & MASK
            z = s
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
            return z ^ (z >> 31)

        self.s = [split_mix() for _ in range(4)]

    @staticmethod
    def stream(seed: int, index: int) -> "Generator":
        return Generator((seed * 0x2545F4914F6CDD1D + index * 0x9E3779B97F4A7C15 + 1) & MASK)

    def next(self) -> int:
        s = self.s
        rotl = lambda x, k: ((x << k) | (x >> (64 - k))) & MASK
        result = (rotl((s[1] * 5) & MASK, 7) * 9) & MASK
        t = (s[1] << 17) & MASK
        s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3]; s[2] ^= t
        s[3] = rotl(s[3], 45)
        return result

    def unit(self) -> float:
        return (self.next() >> 11) * 2.0 ** -53

    def bernoulli(self, p):
        return [self.unit() < q for q in p]

    def exactly(self, active: int, count: int):
        idx = list(range(count))
        for i in range(min(active, count)):
            j = i + self.next() % (count - i)
            idx[i], idx[j] = idx[j], idx[i]
        keep = [False] * count
        for i in idx[:active]:
            keep[i] = True
        return keep


def load(path):
    with h5py.File(path, "r") as f:
        arch = json.loads(f.attrs["architecture"])
        training = json.loads(f.attrs["training"])
        state = {k: torch.from_numpy(f["tensors"][k][()]) for k in f["tensors"]}
    model = CifarResNet(arch)
    model.load_state_dict(state, strict=False)
    return model.eval(), training


def logits(model, x, gates):
    with torch.no_grad():
        return model(x, torch.tensor(gates, dtype=torch.float32)).double().numpy()


def metrics(z, y):
    logp = log_softmax(z, axis=1)
    return {"accuracy": float(np.mean(z.argmax(1) == y)), "nll": float(-np.mean(logp[np.arange(len(y)), y]))}


def make_data(model, channels, size, n, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, channels, size, size)).astype(np.float32)
    full = logits(model, torch.from_numpy(x), [1.0] * model.num_blocks)
    y = full.argmax(1)
    noisy = rng.random(n) < 0.35  # some labels disagree with the full network, so lesions move accuracy
    y[noisy] = rng.integers(0, full.shape[1], noisy.sum())
    return x, y.astype(np.int64)


def rows(out, analysis, configuration, values):
    for metric, value in values.items():
        out.append({"analysis": analysis, "configuration": configuration, "metric": metric, "value": value})


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(1)
    expected = []
    model, training = load(os.path.join(ROOT, "Tests/Fixtures/golden/official.ckpt.h5"))
    p = training["survival_probabilities"]
    L = model.num_blocks
    x, y = make_data(model, 1, 12, 48, 11)
    with h5py.File(os.path.join(OUT, "official-labelled.h5"), "w") as f:
        f["images"] = x
        f["labels"] = y
    xt = torch.from_numpy(x)

    # lesion: single blocks of the deterministic (expectation) network, then k random blocks.
    rows(expected, "lesion", "none", metrics(logits(model, xt, p), y))
    for l in range(L):
        g = list(p); g[l] = 0.0
        rows(expected, "lesion", f"drop-{l + 1}", metrics(logits(model, xt, g), y))
    for k in range(0, 4):
        for t in range(1 if k == 0 else 2):
            keep = Generator.stream(SEED, 1_000_000 + k * 10_000 + t).exactly(L - k, L)
            g = [q if kept else 0.0 for q, kept in zip(p, keep)]
            rows(expected, "lesion", f"k-{k}-trial-{t}", metrics(logits(model, xt, g), y))

    # greedy pruning (LayerDrop): choose on the first 24 images, evaluate on the other 24.
    held, rest = xt[:24], xt[24:]
    removable = [i + 1 for i, b in enumerate(model.blocks_list) if b.identity_shortcut]
    gates, dropped = list(p), []
    while L - len(dropped) > 3:
        scored = []
        for block in (b for b in removable if b not in dropped):
            g = list(gates); g[block - 1] = 0.0
            z = logits(model, held, g)
            correct = int((z.argmax(1) == y[:24]).sum())
            nll = float(-np.mean(log_softmax(z, axis=1)[np.arange(24), y[:24]]))
            scored.append((-correct, nll, block))
        best = min(scored)[2]
        dropped.append(best)
        gates[best - 1] = 0.0
    values = metrics(logits(model, rest, gates), y[24:])
    values["active_blocks"] = float(L - len(dropped))
    rows(expected, "greedy", "prune-greedy-3", values)
    expected.append({"analysis": "greedy-choice", "configuration": "prune-greedy-3", "metric": "dropped",
                     "value": 0.0, "dropped": dropped})

    # sample: sub-networks drawn from p, kept blocks at 1 (expectation-trained).
    for m in range(4):
        keep = Generator.stream(SEED, m).bernoulli(p)
        values = metrics(logits(model, xt, [1.0 if k else 0.0 for k in keep]), y)
        values["active_blocks"] = float(sum(keep))
        rows(expected, "sample", f"sample-{m}", values)

    # depth: exactly d blocks on; depth 0 and L have one configuration, evaluated once.
    for d in (0, 3, 6):
        for t in range(1 if d in (0, L) else 2):
            keep = Generator.stream(SEED, 2_000_000 + d * 10_000 + t).exactly(d, L)
            rows(expected, "depth", f"depth-{d}-trial-{t}", metrics(logits(model, xt, [1.0 if k else 0.0 for k in keep]), y))

    # ensemble (pass): members drawn as in sample; p averaged over members, NLL via logsumexp.
    member_logits = [logits(model, xt, [1.0 if k else 0.0 for k in Generator.stream(SEED, m).bernoulli(p)]) for m in range(4)]
    for size in (1, 2, 4):
        logp = np.stack([log_softmax(z, axis=1) for z in member_logits[:size]])
        log_mean = logsumexp(logp, axis=0) - np.log(size)
        mean = np.exp(log_mean)
        rows(expected, "ensemble", f"pass-M-{size}", {
            "accuracy": float(np.mean(mean.argmax(1) == y)),
            "nll": float(-np.mean(log_mean[np.arange(len(y)), y])),
        })
    rows(expected, "ensemble", "deterministic-expectation", metrics(logits(model, xt, p), y))

    # ensemble (batch): a fresh mask per member for every batch of 16 images, from stream
    # 10,000,000 + batch * M + m; (sample): a fresh mask per member per example n, from
    # stream 20,000,000 + n * M + m (timm's drop path at test time).
    M, batch = 4, 16
    batch_logits = [np.concatenate([
        logits(model, xt[start:start + batch],
               [1.0 if k else 0.0 for k in Generator.stream(SEED, 10_000_000 + (start // batch) * M + m).bernoulli(p)])
        for start in range(0, len(y), batch)]) for m in range(M)]
    example_logits = [logits(model, xt, [[1.0 if k else 0.0 for k in Generator.stream(SEED, 20_000_000 + n * M + m).bernoulli(p)]
                                         for n in range(len(y))]) for m in range(M)]
    for granularity, members in (("batch", batch_logits), ("sample", example_logits)):
        for size in (1, 2, 4):
            logp = np.stack([log_softmax(z, axis=1) for z in members[:size]])
            log_mean = logsumexp(logp, axis=0) - np.log(size)
            rows(expected, "ensemble", f"{granularity}-M-{size}", {
                "accuracy": float(np.mean(log_mean.argmax(1) == y)),
                "nll": float(-np.mean(log_mean[np.arange(len(y)), y])),
            })

    # pruning rules (LayerDrop, Fan et al. 2019), written from the paper: every other
    # deletes blocks l = 0 (mod floor(1/p)) for the rate p = 1 - d/L; evenly spaced keeps
    # the block nearest the middle of each of d equal spans; downsampling blocks stay.
    downsampling = {i + 1 for i, b in enumerate(model.blocks_list) if not b.identity_shortcut}
    for rule, depth in (("every-other", 3), ("every-other", 2), ("every-other", 4), ("evenly-spaced", 2), ("evenly-spaced", 4)):
        if rule == "every-other":
            rate = (L - depth) / L
            period = int(np.floor(1 / rate))
            keep = {l for l in range(1, L + 1) if l % period != 0}
        else:
            keep = {int(np.floor((i + 0.5) * L / depth)) + 1 for i in range(depth)}
        keep |= downsampling
        dropped = [l for l in range(1, L + 1) if l not in keep]
        g = [0.0 if l + 1 in dropped else q for l, q in enumerate(p)]
        values = metrics(logits(model, xt, g), y)
        values["active_blocks"] = float(len(keep))
        name = f"prune-{rule}-{len(keep)}"
        rows(expected, "prune", name, values)
        expected.append({"analysis": "prune-choice", "configuration": name, "metric": "dropped", "value": float(depth),
                         "dropped": dropped})

    # paths: exact Poisson-binomial by convolution, and Binomial(L, 1/2).
    pmf = np.array([1.0])
    for q in p:
        pmf = np.convolve(pmf, [1 - q, q])
    for k in range(L + 1):
        expected.append({"analysis": "paths", "configuration": "schedule", "k": k, "metric": "probability", "value": float(pmf[k])})
        expected.append({"analysis": "paths", "configuration": "unrolled-binomial", "k": k, "metric": "probability",
                         "value": float(binom.pmf(k, L, 0.5))})

    # reorder, on a variant whose first stage has three swappable blocks.
    model2, training2 = load(os.path.join(ROOT, "Tests/Fixtures/golden/port-subsample.ckpt.h5"))
    p2 = training2["survival_probabilities"]
    x2, y2 = make_data(model2, 3, 13, 40, 12)
    with h5py.File(os.path.join(OUT, "port-subsample-labelled.h5"), "w") as f:
        f["images"] = x2
        f["labels"] = y2
    groups = [[1, 2, 3]]  # identity-shortcut blocks with a partner in their stage
    original = model2.blocks_list
    for swaps in (0, 1, 3):
        for t in range(1 if swaps == 0 else 2):
            g = Generator.stream(SEED, 3_000_000 + swaps * 10_000 + t)
            order = list(range(1, len(original) + 1))
            for _ in range(swaps):
                group = groups[g.next() % len(groups)]
                a = g.next() % len(group)
                b = g.next() % (len(group) - 1)
                if b >= a:
                    b += 1
                i, j = group[a] - 1, group[b] - 1
                order[i], order[j] = order[j], order[i]
            model2.blocks_list = [original[i - 1] for i in order]
            gates = [p2[i - 1] for i in order]
            values = metrics(logits(model2, torch.from_numpy(x2), gates), y2)
            values["kendall_tau"] = float(kendalltau(order, list(range(1, len(order) + 1))).statistic)
            rows(expected, "reorder", f"swaps-{swaps}-trial-{t}", values)
            model2.blocks_list = original
    # batch-norm recalibration: train-mode passes over 30 images in batches of 8 with the
    # lesioned gates, running statistics reset and averaged (momentum=None), then logits.
    with h5py.File(os.path.join(OUT, "recalibration.h5"), "w") as f:
        for variant, channels, size in (("official", 1, 12), ("preact-projection", 2, 10)):
            net, tr = load(os.path.join(ROOT, f"Tests/Fixtures/golden/{variant}.ckpt.h5"))
            q = tr["survival_probabilities"]
            gates = [0.0 if i in (1, 4) else q[i] for i in range(net.num_blocks)]
            rng = np.random.default_rng(21)
            train_x = torch.from_numpy(rng.standard_normal((30, channels, size, size)).astype(np.float32))
            test_x = torch.from_numpy(rng.standard_normal((9, channels, size, size)).astype(np.float32))
            for m in net.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.reset_running_stats()
                    m.momentum = None
            net.train()
            with torch.no_grad():
                for i in range(0, 30, 8):
                    net(train_x[i:i + 8], torch.tensor(gates))
            net.eval()
            g = f.create_group(variant)
            g["train_images"] = train_x.numpy()
            g["test_images"] = test_x.numpy()
            g["gates"] = np.array(gates, dtype=np.float32)
            g["logits"] = logits(net, test_x, gates).astype(np.float32)

    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
    print(len(expected), "expected values")


if __name__ == "__main__":
    main()
