#!/usr/bin/env python3
"""Writes survival probabilities computed independently with numpy, the way each
reference codebase computes them, for the schedule tests
(Tests/Fixtures/schedules/schedules.json).

    python3 tools/make_schedule_fixtures.py

- linear (paper, official Lua code): deathRate_i = i / L * (1 - pL), i = 1..L
- linear-from-zero (timm): dpr = np.linspace(0, r, L)
- linear-efficientnet (timm/torchvision EfficientNet): drop = r * idx / L, idx = 0..L-1
- constant: p
Each also per stage (numbering restarts in each stage) and with only=identity
(p = 1 where the shortcut is not the identity), on a 3-stage layout.
"""
import json
import os

import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "Fixtures", "schedules")


def linear(L, pL):
    return [1 - i / L * (1 - pL) for i in range(1, L + 1)]


def from_zero(L, r):
    return list(1 - np.linspace(0, r, L))


def efficientnet(L, r):
    return [1 - r * idx / L for idx in range(L)]


def constant(L, p):
    return [p] * L


def main():
    os.makedirs(OUT, exist_ok=True)
    formulas = {"linear": (linear, "pL"), "linear-from-zero": (from_zero, "r"),
                "linear-efficientnet": (efficientnet, "r"), "constant": (constant, "p")}
    # Stages of the 3-stage layout used in the tests: blocks per stage, and which blocks
    # downsample (the first of stages 2 and 3).
    stages = [5, 4, 3]
    downsampling = {5, 9}  # 0-based global indices
    cases = []
    for name, (f, key) in formulas.items():
        for value in (0.5, 0.2, 0.0, 1.0):
            for L in (1, 2, 12, 54):
                cases.append({"spec": f"{name}:{key}={value}", "blocks": L, "stages": [L],
                              "p": [float(x) for x in f(L, value)]})
            per_stage = sum((f(n, value) for n in stages), [])
            cases.append({"spec": f"{name}:{key}={value},per_stage=true", "blocks": 12, "stages": stages,
                          "p": [float(x) for x in per_stage]})
            identity = [1.0 if i in downsampling else float(x) for i, x in enumerate(f(12, value))]
            cases.append({"spec": f"{name}:{key}={value},only=identity", "blocks": 12, "stages": stages,
                          "p": identity})
    with open(os.path.join(OUT, "schedules.json"), "w") as fh:
        json.dump(cases, fh, indent=1)
    print(len(cases), "cases")


if __name__ == "__main__":
    main()
