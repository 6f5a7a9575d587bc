#!/usr/bin/env python3
"""Trains the bundled Fashion-MNIST ResNets on the CPU and exports them to data/.

Three recipes (issue 3, shared/docs/stochastic-depth.md):
  sd54        stochastic depth as in Huang et al. 2016: 54 blocks (3 stages of 18),
              linear decay to p_L = 0.5, one gate per block per mini-batch, expectation
              rule at test time; official topology (conv bias, option A average pooling).
  baseline54  the same topology and recipe with every block always on.
  timm27      27 blocks, drop path the timm way: per-example gates, inverted scaling,
              drop rates linspace(0, 0.2, L); identity at test time.

Training saves its full state after every epoch in ONE file per model,
--state-dir/MODEL.pt, overwritten in place, and resumes from it, so it can be stopped and
restarted at will. `--extend N --extend-lr LR` continues a finished recipe with a warm
restart (Loshchilov & Hutter's SGDR): N more epochs of cosine annealing from LR, started
from the base recipe's final state. `--extend 20,20` runs a second restart after the
first, from the state the first ended in (`--extend-lr` takes one value for all or one
per restart). `--exported` trains nothing and answers whether the recipe is done (exit 0
if so), from the exported file's recorded recipe and epochs, without the state file:

    nohup python3 tools/train.py --model sd54 > train-sd54.log 2>&1 &
    python3 tools/train.py --model sd54 --widths 16,32,64 --epochs 20 --extend 20,20 --exported
"""
from __future__ import annotations

import argparse
import fcntl
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from depthlens_ref.data import FASHION_CLASSES, fashion_mnist  # noqa: E402
from depthlens_ref.export import provenance, write_checkpoint  # noqa: E402
from depthlens_ref.model import CifarResNet, default_architecture  # noqa: E402

MEAN, STD = 0.2860, 0.3530  # Fashion-MNIST training-set pixel statistics (x / 255)


def recipe(name: str, widths) -> tuple[dict, dict]:
    stages = lambda n: [{"blocks": n, "width": w, "stride": s} for w, s in zip(widths, (1, 2, 2))]
    if name in ("sd54", "baseline54"):
        arch = default_architecture(stem_width=widths[0], stages=stages(18),
                                    shortcut="A_avgpool", channel_padding="end", conv_bias=True)
        L = 54
        if name == "sd54":
            p = [1 - (l / L) * 0.5 for l in range(1, L + 1)]
            training = {"schedule": {"name": "linear", "params": {"pL": 0.5}},
                        "gate_granularity": "batch", "test_time_rule": "expectation"}
        else:
            p = [1.0] * L
            training = {"schedule": {"name": "constant", "params": {"p": 1.0}},
                        "gate_granularity": "batch", "test_time_rule": "expectation"}
    elif name == "timm27":
        arch = default_architecture(stem_width=widths[0], stages=stages(9),
                                    shortcut="A_subsample", channel_padding="both", conv_bias=False)
        L = 27
        r = 0.2
        p = [1 - r * (l - 1) / (L - 1) for l in range(1, L + 1)]
        training = {"schedule": {"name": "linear-from-zero", "params": {"r": r}},
                    "gate_granularity": "sample", "test_time_rule": "inverted"}
    else:
        raise SystemExit(f"unknown model {name!r}")
    training["survival_probabilities"] = p
    return arch, training


def augment(x: torch.Tensor, gen: torch.Generator, pad: int = 2) -> torch.Tensor:
    """Random crop with zero padding and random horizontal flip, per example."""
    n, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    flip = torch.rand(n, generator=gen) < 0.5
    out = torch.empty_like(x)
    for i in range(n):
        crop = padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w]
        out[i] = crop.flip(-1) if flip[i] else crop
    return out


def train_forward(model: CifarResNet, x: torch.Tensor, p, granularity: str, gen: torch.Generator):
    """Forward pass with training-time stochastic depth."""
    if granularity == "batch":
        # Paper: one Bernoulli gate per block for the whole mini-batch, no rescaling.
        keep = (torch.rand(len(p), generator=gen) < torch.tensor(p)).float()
        return model(x, keep)
    # timm drop_path: per-example gates, kept residuals scaled by 1/p (inverted).
    n = x.shape[0]
    pt = torch.tensor(p)
    keep = (torch.rand(n, len(p), generator=gen) < pt).float() / pt
    return model(x, keep)


def evaluate(model: CifarResNet, images, labels, gates, batch=500):
    model.eval()
    correct, nll = 0, 0.0
    with torch.no_grad():
        for i in range(0, len(images), batch):
            x = images[i:i + batch]
            y = labels[i:i + batch]
            logits = model(x, gates)
            correct += int((logits.argmax(1) == y).sum())
            nll += float(F.cross_entropy(logits, y, reduction="sum"))
    return correct, nll / len(images)


def to_tensor(images: np.ndarray) -> torch.Tensor:
    return ((torch.from_numpy(images.astype(np.float32)) / 255.0 - MEAN) / STD).unsqueeze(1)


def cpu_has_bf16() -> bool:
    """True where the CPU computes bf16 natively (AVX-512 BF16 or AMX); elsewhere PyTorch
    emulates it, which made a step 10x slower than fp32 on an AVX2-only EPYC."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def restarts(args) -> list[tuple[int, float]]:
    """The warm restarts after the step schedule, as (epochs, starting lr) in order."""
    return list(zip(args.extend, args.extend_lr))


def learning_rate(args, epoch: int) -> float:
    """The paper's step schedule (lr, lr/10 at 50%, lr/100 at 75% of --epochs), then each
    warm restart's cosine annealing: lr = LR (1 + cos(pi e / N)) / 2 in its epoch e."""
    if epoch < args.epochs:
        return args.lr * (1.0 if epoch < 0.5 * args.epochs else 0.1 if epoch < 0.75 * args.epochs else 0.01)
    e = epoch - args.epochs
    for n, lr in restarts(args):
        if e < n:
            return lr * 0.5 * (1 + math.cos(math.pi * e / n))
        e -= n
    raise ValueError(f"epoch {epoch + 1} is past the recipe's {args.epochs + sum(args.extend)} epochs")


def schedule_summary(args) -> str:
    step = f"step x0.1 at 50% and 75% of {args.epochs} epochs"
    if not args.extend:
        return step
    if len(args.extend) == 1:
        # The wording recorded in the checkpoints already shipped (timm27): kept as it was.
        n, lr = args.extend[0], args.extend_lr[0]
        return (f"{step}, then a warm restart: {n} epochs of cosine annealing from "
                f"{lr:g} (per epoch: lr = {lr:g} * (1 + cos(pi e / {n})) / 2)")
    parts = ", ".join(f"{n} epochs from {lr:g}" for n, lr in restarts(args))
    return (f"{step}, then {len(args.extend)} warm restarts of cosine annealing, each from the state the "
            f"previous one ended in: {parts} (per epoch e of a restart of N epochs from LR: "
            f"lr = LR * (1 + cos(pi e / N)) / 2)")


def recipe_names(args, widths) -> list[str]:
    """Names of the recipe's phases: the step schedule, then the recipe up to the end of
    each warm restart (the last is the recipe's name, recorded as training.recipe). A
    longer recipe resumes from a state saved by a shorter one."""
    names = [f"{args.model}-w{'-'.join(map(str, widths))}-e{args.epochs}"]
    for n, lr in restarts(args):
        names.append(names[-1] + f"+cos{n}-lr{lr:g}")
    return names


def parse_list(text: str, kind, flag: str) -> list:
    try:
        return [kind(v) for v in text.split(",")]
    except ValueError:
        raise SystemExit(f"{flag}: expected a comma-separated list, got {text!r}")


# Invocations made before train.py recorded them (session 3): reconstructed from each
# epoch's recorded precision and tools/train_all.sh as committed at the time. Resumes
# with an unchanged command are merged into one entry.
_CMD = "python3 tools/train.py --model {} --widths 16,32,64 --epochs 20 "
UNRECORDED_RUNS = {
    "timm27": [
        {"first_epoch": 1, "command": _CMD.format("timm27") + "--threads 1", "precision": "fp32"},
        {"first_epoch": 9, "command": _CMD.format("timm27") + "--threads 1 --precision bf16", "precision": "bf16"},
        {"first_epoch": 21, "command": _CMD.format("timm27") + "--extend 10 --extend-lr 0.05 --threads 1 --precision auto",
         "precision": "fp32"},
    ],
    "sd54": [
        {"first_epoch": 1, "command": _CMD.format("sd54") + "--threads 1", "precision": "fp32"},
        {"first_epoch": 6, "command": _CMD.format("sd54") + "--threads 1 --precision bf16", "precision": "bf16"},
        {"first_epoch": 14, "command": _CMD.format("sd54") + "--extend 0 --extend-lr 0.05 --threads 1 --precision auto",
         "precision": "fp32"},
    ],
}


def complete_runs(model: str, runs: list) -> list:
    """`runs` with the unrecorded invocations that trained the epochs before its first
    recorded one put in front, each marked as reconstructed."""
    first = runs[0]["first_epoch"] if runs else float("inf")
    earlier = [dict(r, reconstructed=True) for r in UNRECORDED_RUNS.get(model, []) if r["first_epoch"] < first]
    return earlier + runs


def precision_summary(history) -> str:
    """'fp32 epochs 1-7, bf16 autocast epochs 8-20': the compute precision of each run of epochs."""
    runs = []
    for h in history:
        kind = h.get("precision", "fp32")
        if runs and runs[-1][0] == kind:
            runs[-1][2] = h["epoch"]
        else:
            runs.append([kind, h["epoch"], h["epoch"]])
    names = {"fp32": "fp32", "bf16": "bf16 autocast (fp32 weights, optimizer and batch-norm statistics)"}
    return ", ".join(f"{names[k]} epochs {a}-{b}" if a != b else f"{names[k]} epoch {a}" for k, a, b in runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, choices=["sd54", "baseline54", "timm27"])
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--widths", default="8,16,32")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=31415)
    ap.add_argument("--threads", type=int, default=2)
    # bf16 autocast halves the time of a step on this CPU (AVX-512 BF16: 0.82 s against
    # 1.72 s for a timm27 step of 128 images); weights, optimizer state, batch-norm
    # statistics and the loss stay float32, and evaluation is float32. Recorded per epoch.
    ap.add_argument("--precision", choices=["fp32", "bf16", "auto"], default="fp32",
                    help="compute precision of the training steps (bf16: torch.autocast on the CPU; "
                         "auto: bf16 where the CPU has native bf16, else fp32)")
    ap.add_argument("--extend", default="0", metavar="N[,N...]",
                    help="after --epochs, N more epochs of cosine annealing from --extend-lr (a warm "
                         "restart); a list runs one restart after another (0: none)")
    ap.add_argument("--extend-lr", default="0.05", metavar="LR[,LR...]",
                    help="each restart's starting lr: one value for all, or one per restart")
    ap.add_argument("--exported", action="store_true",
                    help="train nothing: exit 0 if the recipe is trained and exported, 1 if not")
    # Kept in the repository (tools/train-state/) so that a later session on a fresh
    # machine resumes where this one stopped.
    ap.add_argument("--state-dir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "train-state"))
    ap.add_argument("--out", default=None, help="checkpoint path (default data/fmnist-MODEL.h5)")
    args = ap.parse_args()

    args.extend = parse_list(args.extend, int, "--extend")
    if args.extend == [0]:
        args.extend = []
    args.extend_lr = parse_list(args.extend_lr, float, "--extend-lr")
    if len(args.extend_lr) == 1:
        args.extend_lr = args.extend_lr * len(args.extend)
    if args.extend and len(args.extend_lr) != len(args.extend):
        raise SystemExit(f"--extend-lr: {len(args.extend_lr)} values for {len(args.extend)} restarts")
    if any(n <= 0 for n in args.extend):
        raise SystemExit("--extend: a restart's length must be positive")
    torch.set_num_threads(args.threads)
    if args.precision == "auto":
        args.precision = "bf16" if cpu_has_bf16() else "fp32"
    widths = [int(w) for w in args.widths.split(",")]
    arch, training = recipe(args.model, widths)
    p = training["survival_probabilities"]
    os.makedirs(args.state_dir, exist_ok=True)
    # One state file per model, overwritten in place after every epoch; it records the
    # phase (recipe name) it was saved in, so that a different recipe never resumes from it
    # and a longer one (more restarts) starts where a shorter one ended.
    names = recipe_names(args, widths)
    recipe_name = names[-1]
    state_path = os.path.join(args.state_dir, f"{args.model}.pt")
    total_epochs = args.epochs + sum(args.extend)
    out = args.out or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", f"fmnist-{args.model}.h5")

    def is_exported() -> bool:
        # Done when the checkpoint records this recipe trained for all its epochs: the
        # state file is deleted once a model ships.
        if not os.path.exists(out):
            return False
        try:
            import h5py
            with h5py.File(out, "r") as f:
                rec = json.loads(f.attrs["training"])
        except (OSError, KeyError, ValueError):
            return False
        return rec.get("recipe") == recipe_name and rec.get("epochs") == total_epochs

    done = is_exported()
    if args.exported:
        print(f"{recipe_name}: {'exported' if done else 'still to train'}", flush=True)
        sys.exit(0 if done else 1)
    if done:
        print(f"{recipe_name}: already trained and exported to {out}", flush=True)
        return
    # Two processes training one recipe would overwrite each other's state: one at a time.
    lock = open(os.path.join(args.state_dir, f"{args.model}.lock"), "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise SystemExit(f"{args.model}: another process is training it (lock {lock.name})")

    torch.manual_seed(args.seed)
    # channels_last: 1.2x faster steps in fp32 on the CPU (oneDNN's NHWC convolutions).
    model = CifarResNet(arch).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, nesterov=True, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(args.seed)
    start_epoch, elapsed, history, runs = 0, 0.0, [], []
    resume_path = state_path if os.path.exists(state_path) else None
    if resume_path is None:
        # States saved before one file per model: one file per phase, named after it.
        saved = [p for p in (os.path.join(args.state_dir, f"{n}.pt") for n in names) if os.path.exists(p)]
        resume_path = saved[-1] if saved else None
    if resume_path:
        st = torch.load(resume_path, weights_only=False)
        saved_recipe = st.get("recipe", os.path.basename(resume_path)[:-3])
        if saved_recipe not in names:
            raise SystemExit(f"{resume_path} holds recipe {saved_recipe}, not a phase of {recipe_name}; "
                             "move it away to start this one afresh")
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["optimizer"])
        gen.set_state(st["generator"])
        start_epoch, elapsed, history = st["epoch"], st["elapsed"], st["history"]
        runs = st.get("runs", [])  # absent in states saved before session 3
        print(f"resuming {recipe_name} at epoch {start_epoch + 1} ({elapsed:.0f}s trained so far)", flush=True)

    train_x, train_y = fashion_mnist("train")
    test_x, test_y = fashion_mnist("test")
    train_x, train_y = to_tensor(train_x), torch.from_numpy(train_y.astype(np.int64))
    test_x, test_y = to_tensor(test_x), torch.from_numpy(test_y.astype(np.int64))
    test_gates = torch.tensor(p) if training["test_time_rule"] == "expectation" else None

    # Every invocation that trained epochs, with its flags (precision and threads may differ
    # from one session's machine to the next); exported as training.runs.
    command = "python3 tools/train.py " + " ".join(sys.argv[1:])
    if start_epoch < total_epochs:
        runs.append({"first_epoch": start_epoch + 1, "command": command, "precision": args.precision})
    for epoch in range(start_epoch, total_epochs):
        lr = learning_rate(args, epoch)
        for group in opt.param_groups:
            group["lr"] = lr
        model.train()
        t0 = time.time()
        order = torch.randperm(len(train_x), generator=gen)
        total_loss = 0.0
        for i in range(0, len(order), args.batch_size):
            idx = order[i:i + args.batch_size]
            x = augment(train_x[idx], gen).contiguous(memory_format=torch.channels_last)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision == "bf16"):
                logits = train_forward(model, x, p, training["gate_granularity"], gen)
            loss = F.cross_entropy(logits.float(), train_y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total_loss += float(loss.detach()) * len(idx)
        elapsed += time.time() - t0
        # The phase this epoch belongs to (0: the step schedule).
        phase = next(k for k in range(len(names)) if epoch < args.epochs + sum(args.extend[:k]))
        correct, nll = evaluate(model, test_x, test_y, test_gates)
        history.append({"epoch": epoch + 1, "lr": lr, "train_loss": total_loss / len(order),
                        "test_correct": correct, "test_nll": nll, "seconds": elapsed, "precision": args.precision})
        print(f"{args.model} epoch {epoch + 1}/{total_epochs} lr {lr:g} train_loss {total_loss / len(order):.4f} "
              f"test_acc {correct / len(test_x):.4f} test_nll {nll:.4f} time {elapsed:.0f}s", flush=True)
        torch.save({"recipe": names[phase], "model": model.state_dict(), "optimizer": opt.state_dict(),
                    "generator": gen.get_state(), "epoch": epoch + 1, "elapsed": elapsed, "history": history,
                    "runs": runs}, state_path + ".tmp")
        os.replace(state_path + ".tmp", state_path)

    correct, nll = evaluate(model, test_x, test_y, test_gates)
    training.update({
        "dataset": "fashion-mnist",
        "class_names": FASHION_CLASSES,
        "normalization": {"mean": [MEAN], "std": [STD]},
        "input_size": [28, 28],
        "epochs": total_epochs,
        "batch_size": args.batch_size,
        "optimizer": {"name": "sgd", "lr": args.lr, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-4,
                      "lr_schedule": schedule_summary(args)},
        "augmentation": "random crop 28 with zero padding 2, horizontal flip",
        "seed": args.seed,
        "test_correct": correct,
        "test_count": len(test_x),
        "test_accuracy": correct / len(test_x),
        "test_nll": nll,
        "train_seconds": round(elapsed, 1),
        "train_threads": args.threads,
        "train_precision": precision_summary(history),
        "recipe": recipe_name,
        "command": command,
        "runs": complete_runs(args.model, runs),
        "history": history,
    })
    model = model.to(memory_format=torch.contiguous_format)
    write_checkpoint(out, arch, model.state_dict(), training, provenance("tools/train.py"))
    if os.path.exists(state_path):
        st = torch.load(state_path, weights_only=False)
        st["exported"] = True
        torch.save(st, state_path + ".tmp")
        os.replace(state_path + ".tmp", state_path)
    print(f"exported {out}: test accuracy {correct / len(test_x):.4f} ({correct}/{len(test_x)}), nll {nll:.4f}",
          flush=True)


if __name__ == "__main__":
    main()
