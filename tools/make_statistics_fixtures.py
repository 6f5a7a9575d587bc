#!/usr/bin/env python3
"""Writes expected intervals and tests (Tests/Fixtures/statistics/statistics.json),
recomputed independently with numpy and scipy, for Tests/DepthLensAnalysisTests/StatisticsTests.swift.

    python3 tools/make_statistics_fixtures.py

- Wilson score intervals: scipy.stats.binomtest(k, n).proportion_ci(0.95, method="wilson").
- McNemar: below 25 discordant examples the exact test, scipy.stats.binomtest(min(b, c),
  b + c, 0.5) (two-sided; what statsmodels' mcnemar(exact=True) computes), otherwise
  chi-square with Edwards' continuity correction, scipy.stats.chi2.sf((|b-c|-1)^2/(b+c), 1)
  (statsmodels' mcnemar(exact=False, correction=True)).
- Percentile bootstrap: B = 2000 resamples drawn with DepthLens' seeded generator (the
  Python re-implementation in make_analysis_fixtures.py: index next() % n), statistics and
  percentiles with numpy (np.mean, np.median, np.percentile's default linear method).
"""
from __future__ import annotations

import json
import os
import sys

import numpy as np
from scipy.stats import binomtest, chi2

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_analysis_fixtures import Generator  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "Tests", "Fixtures", "statistics")
B = 2000


def mcnemar(b: int, c: int):
    n = b + c
    if n == 0:
        return 1.0, "mcnemar-exact"
    if n < 25:
        return float(binomtest(min(b, c), n, 0.5).pvalue), "mcnemar-exact"
    return float(chi2.sf((abs(b - c) - 1) ** 2 / n, 1)), "mcnemar-chi2-corrected"


def bootstrap(values, seed: int, stream: int):
    g = Generator.stream(seed, stream)
    v = np.array(values, dtype=np.float64)
    n = len(v)
    means, medians = [], []
    for _ in range(B):
        idx = [g.next() % n for _ in range(n)]
        r = v[idx]
        means.append(np.mean(r))
        medians.append(np.median(r))
    lo, hi = np.percentile(means, [2.5, 97.5])
    mlo, mhi = np.percentile(medians, [2.5, 97.5])
    return {"mean": [float(np.mean(v)), float(lo), float(hi)], "median": [float(np.median(v)), float(mlo), float(mhi)]}


def main():
    wilson = []
    for k, n in [(0, 10), (10, 10), (3, 48), (14, 48), (186, 2000), (1, 1), (500, 1000), (7, 2000)]:
        ci = binomtest(k, n).proportion_ci(0.95, method="wilson")
        wilson.append({"successes": k, "n": n, "low": float(ci.low), "high": float(ci.high)})
    tests = []
    for b, c in [(0, 0), (0, 1), (3, 9), (12, 12), (2, 22), (13, 12), (30, 10), (40, 41), (187, 2), (5, 60)]:
        p, method = mcnemar(b, c)
        tests.append({"lost": b, "gained": c, "p": p, "method": method})
    rng = np.random.default_rng(22)
    boots = []
    # Error rates of trials: a bimodal case (a critical block hit or not), a plain one, ties, two values.
    cases = [
        ([0.07, 0.075, 0.068, 0.9, 0.071, 0.88, 0.069, 0.072, 0.07, 0.91], 0, 5_000_003),
        (list(np.round(rng.uniform(0.05, 0.3, size=23), 4)), 7, 6_000_012),
        ([0.2] * 5 + [0.3] * 4, 1, 5_000_001),
        ([0.1, 0.5], 0, 6_000_000),
    ]
    for values, seed, stream in cases:
        values = [float(x) for x in values]
        boots.append({"values": values, "seed": seed, "stream": stream, **bootstrap(values, seed, stream)})
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "statistics.json"), "w") as f:
        json.dump({"resamples": B, "wilson": wilson, "mcnemar": tests, "bootstrap": boots}, f, indent=1)
    print(len(wilson), "Wilson,", len(tests), "McNemar,", len(boots), "bootstrap cases")


if __name__ == "__main__":
    main()
