#!/usr/bin/env python3
"""Reference values for DepthLens' built-in metrics (Plugins/Metrics), from numpy/scipy.

Writes one JSON file per case to Tests/Fixtures/metrics/. Each holds M members' logits
for N examples and C classes, the labels, the full network's logits, and the expected
value of every metric result: `expected[spec][result]` for the M-member batch, and
`member_expected[m][spec][result]` for member-scope metrics applied to member m alone.

This script is an independent implementation: it reads no DepthLens code. It follows the
definitions in docs/stochastic-depth.md ("Ensemble metric definitions") and the
conventions stated in the Swift doc comments:
  - argmax ties: the first maximal class (np.argmax);
  - top-k: ties broken by class index, as argmax: the label counts when (classes with greater p) + (classes with equal p and a smaller index) < k;
  - equal-width calibration bins: bin b covers (b/B, (b+1)/B], confidence 0 in bin 0;
  - equal-mass bins: stable ascending sort by confidence, then np.array_split;
  - AURC: stable descending sort by confidence (ties keep data-set order).

Inputs are built so that both implementations must agree bit-for-bit on every discrete
decision: logits are multiples of 1/64 (exact in float32 and short in JSON); ties (within
a row, or between examples' confidences) occur only by construction (equal logits,
duplicated examples, confidences that saturate to exactly 1.0, or "edge" examples whose
confidence is exactly 1/2 or 1/4, on a bin edge for B = 4, to pin the edge convention);
every other near-tie, and every other confidence within 1e-9 of a bin edge, is rejected
and regenerated.

Run: python3 tools/make_metric_fixtures.py
"""
import itertools
import json
import os

import numpy as np
from scipy.special import log_softmax, logsumexp, rel_entr
from scipy.stats import entropy

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "Fixtures", "metrics")
QUANTUM = 64.0  # logits are multiples of 1/64
BIN_SETTINGS = [(4, "width"), (5, "width"), (15, "width"), (5, "mass"), (15, "mass")]
EDGE_MARGIN = 1e-9
TIE_MARGIN = 1e-9


def quantize(x):
    q = np.round(np.asarray(x, dtype=np.float64) * QUANTUM) / QUANTUM
    assert np.all(q.astype(np.float32).astype(np.float64) == q)
    return q


# ---------------------------------------------------------------------------------------
# Input generation
# ---------------------------------------------------------------------------------------

def make_example(rng, M, C):
    """One example: (M x C member logits, C reference logits, kind)."""
    kinds = ["uncertain", "confident", "confident", "tie", "saturated", "edge"]
    if C >= 10:
        kinds.append("uniform")
    kind = kinds[rng.integers(len(kinds))]
    target = rng.integers(C)
    base = rng.normal(size=C)
    if kind == "uncertain":
        base = base * rng.uniform(0.2, 1.0)
        members = base + rng.normal(scale=rng.uniform(0.2, 1.0), size=(M, C))
    elif kind == "confident":
        base[target] += rng.uniform(3.0, 9.0)
        members = base + rng.normal(scale=rng.uniform(0.1, 1.5), size=(M, C))
    elif kind == "tie":
        # Two classes tied in every member (and in the mean), sometimes at the top.
        a, b = rng.choice(C, size=2, replace=False)
        base[a] += rng.uniform(0.0, 4.0)
        members = base + rng.normal(scale=0.7, size=(M, C))
        if rng.uniform() < 0.7:
            top = members.max(axis=1) + rng.uniform(0.0, 1.0, size=M)
            members[:, a] = top
        members[:, b] = members[:, a]
    elif kind == "saturated":
        # Every member puts all its mass (exactly 1.0 in double) on one class.
        members = rng.normal(size=(M, C))
        members[:, target] = members.max(axis=1) + rng.uniform(45.0, 60.0, size=M)
    elif kind == "edge":
        # k classes at logit 0 and the rest 50 or more below, in every member: the
        # confidence is exactly 1/k in double (exp(-log k) rounds to 1/k), which is a
        # bin edge for B = 4. The only confidences allowed on an edge.
        tied = rng.choice(C, size=2 if C < 4 else [2, 4][rng.integers(2)], replace=False)
        members = -rng.uniform(50.0, 60.0, size=(M, C))
        members[:, tied] = 0.0
    else:  # uniform: all logits 0 (every uniform example has the same confidence 1/C)
        members = np.zeros((M, C))
    reference = base + rng.normal(scale=0.5, size=C)
    if kind in ("tie",) and rng.uniform() < 0.5:
        reference[np.argsort(-reference)[1]] = reference.max()
    return quantize(members), quantize(reference), kind


def row_confidence_problems(logits, probs, kinds):
    """Indices of rows (N x C probs from the given M x N x C logits) with an unsafe
    within-row near-tie or a confidence too close to a calibration edge, or whose
    confidence nearly ties another example's without being the same by construction."""
    def on_edge(i):  # exactly 1/k by construction (see make_example)
        return kinds[i].startswith("edge") or (kinds[i].startswith("dup") and on_edge(int(kinds[i][3:])))
    bad = set()
    N, C = probs.shape
    for i in range(N):
        p = probs[i]
        for a, b in itertools.combinations(range(C), 2):
            close = abs(p[a] - p[b]) <= TIE_MARGIN * max(p[a], p[b])
            structural = np.all(logits[:, i, a] == logits[:, i, b])
            if close and not structural:
                bad.add(i)
        conf = p.max()
        if conf != 1.0 and conf > 1.0 - EDGE_MARGIN:
            bad.add(i)
        for B, _ in BIN_SETTINGS:
            for e in range(1, B):
                if abs(conf - e / B) <= EDGE_MARGIN and not (conf == e / B and on_edge(i)):
                    bad.add(i)
    # Near-ties of confidence between examples: exact and structural, or well apart.
    conf = probs.max(axis=1)
    order = np.argsort(conf, kind="stable")
    for x, y in zip(order[:-1], order[1:]):
        gap = conf[y] - conf[x]
        if gap > TIE_MARGIN * conf[y]:
            continue
        identical = np.array_equal(logits[:, x, :], logits[:, y, :])
        if gap == 0 and (identical or conf[x] == 1.0 or (on_edge(x) and on_edge(y))):
            continue
        bad.add(int(y))
    return bad


def make_case(rng, name, M, N, C, labels_rule="mixed"):
    members = np.zeros((M, N, C))
    reference = np.zeros((N, C))
    kinds = [None] * N
    todo = set(range(N))
    for _ in range(200):
        for i in sorted(todo):
            if i > 0 and rng.uniform() < 0.08:  # duplicate an earlier example exactly
                j = int(rng.integers(i))
                members[:, i], reference[i], kinds[i] = members[:, j], reference[j], "dup%d" % j
            else:
                members[:, i], reference[i], kinds[i] = make_example(rng, M, C)
        logp_members = log_softmax(members, axis=-1)
        p_members = np.exp(logp_members)
        todo = row_confidence_problems(members, p_members.mean(axis=0), kinds)
        for m in range(M):
            todo |= row_confidence_problems(members[m:m + 1], p_members[m], kinds)
        # A duplicate of a regenerated row must be regenerated too.
        todo |= {i for i in range(N) if kinds[i].startswith("dup") and int(kinds[i][3:]) in todo}
        if not todo:
            break
    else:
        raise RuntimeError("could not build case %s" % name)

    mean_pred = np.argmax(np.exp(log_softmax(members, axis=-1)).mean(axis=0), axis=1)
    if labels_rule == "correct":
        labels = mean_pred.copy()
    elif labels_rule == "wrong":
        labels = (mean_pred + 1 + rng.integers(C - 1, size=N)) % C
    else:
        # Mostly the intended class; some duplicates get a different label (so tied
        # confidences carry different correctness and the tie rule matters).
        labels = np.where(rng.uniform(size=N) < 0.7, mean_pred, rng.integers(C, size=N))
        for i in range(N):
            if kinds[i].startswith("dup") and rng.uniform() < 0.5:
                labels[i] = rng.integers(C)
    return members, reference, labels.astype(int), kinds


# ---------------------------------------------------------------------------------------
# Reference metric implementations
# ---------------------------------------------------------------------------------------

def topk_accuracy(p, y, k):
    # Rank of the label with ties broken by class index, as argmax breaks them.
    label_p = p[np.arange(len(y)), y][:, None]
    index = np.arange(p.shape[1])[None, :]
    rank = (p > label_p).sum(axis=1) + ((p == label_p) & (index < y[:, None])).sum(axis=1)
    return float(np.mean(rank < k))


def brier(p, y):
    onehot = np.eye(p.shape[1])[y]
    return float(np.mean(np.sum((p - onehot) ** 2, axis=1)))


def calibration(p, y, bins, binning):
    conf = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    N = len(y)
    if binning == "width":
        edges = np.arange(bins + 1) / bins
        groups = []
        for b in range(bins):
            mask = (conf > edges[b]) & (conf <= edges[b + 1])
            if b == 0:
                mask |= conf == 0.0
            groups.append(np.nonzero(mask)[0])
        assert sum(len(g) for g in groups) == N
    else:
        order = np.argsort(conf, kind="stable")
        groups = np.array_split(order, bins)
    ece, mce, sq = 0.0, 0.0, 0.0
    for g in groups:
        if len(g) == 0:
            continue
        gap = abs(correct[g].mean() - conf[g].mean())
        ece += len(g) / N * gap
        sq += len(g) / N * gap ** 2
        mce = max(mce, gap)
    return {"ece": ece, "mce": mce, "rmsce": float(np.sqrt(sq))}


def aurc(p, y):
    conf = p.max(axis=1)
    errors = (p.argmax(axis=1) != y).astype(np.float64)
    order = np.argsort(-conf, kind="stable")
    risks = np.cumsum(errors[order]) / np.arange(1, len(y) + 1)
    area = float(risks.mean())
    r = errors.mean()
    optimal = 1.0 if r == 1.0 else r + (1 - r) * np.log(1 - r)
    return {"aurc": area, "eaurc": float(area - optimal)}


def reference_kl(logp, reference_logits):
    """Mean over examples of KL(p_ref || p) = sum_c p_ref,c (log p_ref,c - log p_c); classes with p_ref,c = 0 add nothing."""
    logr = log_softmax(reference_logits, axis=-1)
    r = np.exp(logr)
    terms = np.where(r > 0, r * (logr - logp), 0.0)
    return float(np.mean(terms.sum(axis=1)))


def discordance(p, y, reference_logits):
    """McNemar's counts: examples only the reference (lost) or only p (gained) classifies correctly."""
    correct = p.argmax(axis=1) == y
    reference = reference_logits.argmax(axis=1) == y
    return {"discordant_lost": float(np.sum(reference & ~correct)), "discordant_gained": float(np.sum(correct & ~reference))}


def member_scope(p, logp, y, reference_logits):
    """Every member-scope metric of one predictive distribution p (N x C)."""
    out = {
        "accuracy": {"accuracy": topk_accuracy(p, y, 1)},
        "accuracy:k=3": {"top3_accuracy": topk_accuracy(p, y, 3)},
        "nll": {"nll": float(-np.mean(logp[np.arange(len(y)), y]))},
        "brier": {"brier": brier(p, y)},
        "entropy": {"predictive_entropy": float(np.mean(entropy(p, axis=1)))},
        "agreement": {"agreement": float(np.mean(p.argmax(axis=1) == reference_logits.argmax(axis=1)))},
        "reference_kl": {"reference_kl": reference_kl(logp, reference_logits)},
        "discordance": discordance(p, y, reference_logits),
        "aurc": aurc(p, y),
    }
    for bins, binning in BIN_SETTINGS:
        spec = "calibration:bins=%d,binning=%s" % (bins, binning)
        out[spec] = calibration(p, y, bins, binning)
    out["calibration"] = calibration(p, y, 15, "width")  # the defaults
    return out


def ensemble_scope(logp_members, p, y):
    M, N, C = logp_members.shape
    p_members = np.exp(logp_members)
    rows = np.arange(N)
    member_nll = [-np.mean(logp_members[m][rows, y]) for m in range(M)]
    member_entropy = np.stack([entropy(p_members[m], axis=1) for m in range(M)])  # M x N
    expected_entropy = member_entropy.mean(axis=0)
    votes = p_members.argmax(axis=2)  # M x N
    if M >= 2:
        pairs = list(itertools.combinations(range(M), 2))
        disagreement = np.mean([votes[a] != votes[b] for a, b in pairs], axis=0)
        kl = [rel_entr(p_members[a], p_members[b]).sum(axis=1)
              for a in range(M) for b in range(M) if a != b]
        pairwise_kl = np.mean(kl, axis=0)
    else:
        disagreement = np.zeros(N)
        pairwise_kl = np.zeros(N)
    modal = np.array([np.bincount(votes[:, i], minlength=C).max() for i in range(N)])
    return {
        "gibbs_nll": {"gibbs_nll": float(np.mean(member_nll))},
        "member_brier": {"member_brier": float(np.mean([brier(p_members[m], y) for m in range(M)]))},
        "uncertainty": {
            "expected_entropy": float(expected_entropy.mean()),
            "mutual_information": float(np.mean(entropy(p, axis=1) - expected_entropy)),
        },
        "diversity": {
            "disagreement": float(disagreement.mean()),
            "variation_ratio": float(np.mean(1 - modal / M)),
            "pairwise_kl": float(pairwise_kl.mean()),
        },
    }


def write_case(rng, name, M, N, C, labels_rule="mixed"):
    members, reference, labels, kinds = make_case(rng, name, M, N, C, labels_rule)
    logp_members = log_softmax(members, axis=-1)
    p = np.exp(logp_members).mean(axis=0)
    logp = logsumexp(logp_members, axis=0) - np.log(M)
    expected = member_scope(p, logp, labels, reference)
    expected.update(ensemble_scope(logp_members, p, labels))
    member_expected = [member_scope(np.exp(logp_members[m]), logp_members[m], labels, reference)
                       for m in range(M)]

    def numbers(a):
        return [float(v) if v != int(v) else int(v) for v in np.asarray(a).ravel()]

    case = {
        "name": name,
        "members": M, "examples": N, "classes": C,
        "labels": [int(v) for v in labels],
        "member_logits": [numbers(members[m]) for m in range(M)],
        "reference_logits": numbers(reference),
        "expected": expected,
        "member_expected": member_expected,
        "kinds": kinds,
    }
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, name + ".json"), "w") as f:
        json.dump(case, f, separators=(",", ":"))
        f.write("\n")
    print("%-22s M=%d N=%3d C=%2d acc=%.3f ties/dups/saturated/on-edge=%d/%d/%d/%d" % (
        name, M, N, C, expected["accuracy"]["accuracy"], kinds.count("tie"),
        sum(k.startswith("dup") for k in kinds), kinds.count("saturated"), kinds.count("edge")))


def main():
    rng = np.random.default_rng(20240611)
    write_case(rng, "m1_n7_c3", 1, 7, 3)
    write_case(rng, "m2_n50_c10", 2, 50, 10)
    write_case(rng, "m5_n203_c10", 5, 203, 10)
    write_case(rng, "m5_n50_c3", 5, 50, 3)
    write_case(rng, "m2_n203_c3", 2, 203, 3)
    write_case(rng, "m2_n7_c3_all_correct", 2, 7, 3, labels_rule="correct")
    write_case(rng, "m1_n7_c10_all_wrong", 1, 7, 10, labels_rule="wrong")


if __name__ == "__main__":
    main()
