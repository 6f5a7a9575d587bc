#!/usr/bin/env python3
"""Trains the bundled Fashion-MNIST timm models (a small ViT and a small ConvNeXt) on the
CPU and exports them to data/fmnist-RECIPE.safetensors (issue 20, point 6).

The networks are instances of timm's own classes (`VisionTransformer`, `ConvNeXt`), so
their state_dict keys are timm's and a reader that builds the same class with the
recorded constructor arguments computes the same function. Both use timm's drop path:
per-example gates, kept residuals scaled by 1/(1 - rate) in training (inverted), identity
at test time, rates linspace(0, drop_path_rate, blocks) (a ViT block has two residual
branches, attention and MLP, gated independently at the block's rate).

Recipes (RECIPES below; every hyperparameter is recorded in the exported file):
  vit       VisionTransformer: 28x28 input, patch 4 (7x7 = 49 tokens + class token),
            width 160, depth 9, 5 heads, MLP ratio 2, drop path 0.1; 40 epochs.
  convnext  ConvNeXt: 1x1 patch stem (28x28; timm's stage 0 does not downsample then),
            depths 2/2/6/2, widths 32/64/128/256 (28, 14, 7, 3 pixels), drop path 0.1;
            30 epochs.
Both: AdamW (lr 1e-3, weight decay 0.05 on weights only, not on biases, norms,
position embedding or class token), batch 128, linear warmup then cosine decay to 1e-5,
stepped per mini-batch; label smoothing 0.1; random 28x28 crops of the image zero-padded
by 2 and horizontal flips; seed 31415.

Training saves ONE state file per recipe, tools/train-state/RECIPE.pt, overwritten in
place (atomically) after every epoch, and resumes from it, so it can be stopped and
restarted at will. At the end it writes the final weights (float32, timm key names) with
the architecture and training record as JSON in the safetensors metadata
(`depthlens_architecture`, `depthlens_training`, `depthlens_provenance`), and PyTorch's
test-set predictions to tools/train-state/RECIPE-test-predictions.npy (not committed).
`--exported` trains nothing and answers whether the recipe is done (exit 0 if so):

    nohup python3 tools/train_timm.py --recipe convnext --threads 1 > train-convnext.log 2>&1 &
    python3 tools/train_timm.py --recipe vit --exported
    python3 tools/train_timm.py --recipe vit --time-steps 100   # time steps, save nothing

`--extend N --extend-lr LR` continues a recipe past its epochs with a warm restart (N
epochs of cosine decay from LR to min_lr, per mini-batch), from the state it ended in,
exported or not; the export records the restarts (`warm_restarts`) and the whole
schedule, and `--exported` with the same flags asks whether the extended run is done.
"""
from __future__ import annotations

import argparse
import copy
import fcntl
import hashlib
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

TOOLS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, TOOLS)
from depthlens_ref.data import FASHION_CLASSES, fashion_mnist  # noqa: E402
from depthlens_ref.export import provenance  # noqa: E402
from depthlens_ref.interop import import_vision  # noqa: E402
from train import MEAN, STD, cpu_has_bf16, to_tensor  # noqa: E402

_COMMON = {"batch_size": 128, "optimizer": "adamw", "lr": 1e-3, "min_lr": 1e-5, "betas": [0.9, 0.999],
           "eps": 1e-8, "weight_decay": 0.05, "label_smoothing": 0.1, "seed": 31415}
RECIPES = {
    "vit": dict(_COMMON, **{
        "timm_class": "timm.models.vision_transformer.VisionTransformer",
        "kwargs": {"img_size": 28, "patch_size": 4, "in_chans": 1, "num_classes": 10, "embed_dim": 160,
                   "depth": 9, "num_heads": 5, "mlp_ratio": 2.0, "qkv_bias": True, "class_token": True,
                   "global_pool": "token", "drop_path_rate": 0.1},
        "epochs": 40, "warmup_epochs": 5}),
    "convnext": dict(_COMMON, **{
        "timm_class": "timm.models.convnext.ConvNeXt",
        "kwargs": {"in_chans": 1, "num_classes": 10, "depths": [2, 2, 6, 2], "dims": [32, 64, 128, 256],
                   "patch_size": 1, "drop_path_rate": 0.1},
        "epochs": 30, "warmup_epochs": 3}),
}
AUGMENTATION = "random crop 28 with zero padding 2, horizontal flip (per example)"


def build(recipe: dict) -> torch.nn.Module:
    _, timm = import_vision()  # timm imports torchvision, whose PyPI wheel needs this on a CPU torch
    from timm.models.convnext import ConvNeXt
    from timm.models.vision_transformer import VisionTransformer
    cls = {"timm.models.vision_transformer.VisionTransformer": VisionTransformer,
           "timm.models.convnext.ConvNeXt": ConvNeXt}[recipe["timm_class"]]
    kwargs = dict(recipe["kwargs"])
    for key in ("depths", "dims"):
        if key in kwargs:
            kwargs[key] = tuple(kwargs[key])
    return cls(**kwargs)


def architecture_record(name: str, recipe: dict, model: torch.nn.Module) -> dict:
    """The `depthlens_architecture` metadata of `model`, built from `recipe` (RECIPES[name]):
    timm's class and constructor arguments, from which DepthLens builds the network."""
    _, timm = import_vision()
    return {
        "family": name,
        "timm_class": recipe["timm_class"],
        "timm_kwargs": recipe["kwargs"],
        "timm_version": timm.__version__,
        "parameters": sum(p.numel() for p in model.parameters()),
        "input_size": [1, 28, 28],
        "drop_path_rate": recipe["kwargs"]["drop_path_rate"],
        "drop_path_rates": drop_path_rates(model),
    }


def export(model: torch.nn.Module, out: str, architecture: dict, training: dict | None = None,
           provenance_record: dict | None = None) -> None:
    """Writes `model`'s weights (float32, timm key names) to `out` (atomically), with the
    architecture, and the training and provenance records when given, as JSON metadata.
    tools/bench/run_bench.py exports its random-weight recipe networks through this too."""
    from safetensors.torch import save_file
    tensors = {k: v.detach().to(torch.float32).contiguous().clone() for k, v in model.state_dict().items()}
    metadata = {"format": "pt", "depthlens_architecture": json.dumps(architecture, sort_keys=True)}
    if training is not None:
        metadata["depthlens_training"] = json.dumps(training, sort_keys=True)
    if provenance_record is not None:
        metadata["depthlens_provenance"] = json.dumps(provenance_record, sort_keys=True)
    save_file(tensors, out + ".tmp", metadata=metadata)
    os.replace(out + ".tmp", out)


def drop_path_rates(model: torch.nn.Module) -> list[float]:
    """The drop rate of each residual block in forward order, as built (timm puts an
    Identity where the rate is 0, the first block's)."""
    def rate(m):
        return float(getattr(m, "drop_prob", 0.0))
    if hasattr(model, "blocks"):  # VisionTransformer: drop_path1 (attention) = drop_path2 (MLP)
        return [rate(b.drop_path1) for b in model.blocks]
    return [rate(b.drop_path) for s in model.stages for b in s.blocks]


def augment(x: torch.Tensor, gen: torch.Generator, pad: int = 2) -> torch.Tensor:
    """train.py's augmentation (random crop with zero padding, random horizontal flip,
    per example), vectorised with one gather instead of a Python loop over the batch."""
    n, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad)).permute(0, 2, 3, 1)  # n, h + 2 pad, w + 2 pad, c
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    flip = torch.rand(n, generator=gen) < 0.5
    rows = dy[:, None] + torch.arange(h)
    cols = dx[:, None] + torch.arange(w)
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    out = padded[torch.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2).contiguous()


def learning_rate(recipe: dict, step: int, steps_per_epoch: int, extend=()) -> float:
    """Linear warmup from lr/W to lr over the first W steps, then cosine decay to min_lr
    at the recipe's last step; per mini-batch (step 0 is the first). Then each warm
    restart in `extend`, (epochs N, lr LR) in order: cosine decay from LR to min_lr over
    its N epochs, per mini-batch, from the state the previous phase ended in."""
    total = recipe["epochs"] * steps_per_epoch
    if step >= total:
        s = step - total
        for n, lr in extend:
            if s < n * steps_per_epoch:
                t = s / max(1, n * steps_per_epoch - 1)
                return recipe["min_lr"] + (lr - recipe["min_lr"]) * 0.5 * (1 + math.cos(math.pi * t))
            s -= n * steps_per_epoch
        raise ValueError(f"step {step} is past the recipe's {recipe['epochs'] + sum(n for n, _ in extend)} epochs")
    warm = recipe["warmup_epochs"] * steps_per_epoch
    if step < warm:
        return recipe["lr"] * (step + 1) / warm
    t = (step - warm) / max(1, total - warm)
    return recipe["min_lr"] + (recipe["lr"] - recipe["min_lr"]) * 0.5 * (1 + math.cos(math.pi * t))


def schedule_summary(recipe: dict, steps_per_epoch: int, extend=()) -> str:
    restarts = "".join(f", then a warm restart: {n} epochs of cosine decay from {lr:g} to {recipe['min_lr']:g} "
                       f"(per mini-batch, t from 0 at its first step to 1 at its last)" for n, lr in extend)
    return (f"per mini-batch ({steps_per_epoch} a epoch): linear warmup over {recipe['warmup_epochs']} epochs "
            f"(step s: lr = {recipe['lr']:g} (s + 1) / W, W = {recipe['warmup_epochs'] * steps_per_epoch}), then "
            f"cosine decay to {recipe['min_lr']:g} at the end of epoch {recipe['epochs']} "
            f"(lr = min + (max - min) (1 + cos(pi t)) / 2, t from 0 to 1)" + restarts)


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """timm's rule: no weight decay on 1-D parameters (biases, norms, layer scale) and on
    the model's no_weight_decay() set (position embedding, class token)."""
    skip = set(model.no_weight_decay()) if hasattr(model, "no_weight_decay") else set()
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim <= 1 or name in skip else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def evaluate(model, images, labels, batch=500):
    """float32, eval mode (drop path off): (correct, mean NLL, argmax predictions)."""
    model.eval()
    correct, nll, preds = 0, 0.0, []
    with torch.no_grad():
        for i in range(0, len(images), batch):
            logits = model(images[i:i + batch]).float()
            y = labels[i:i + batch]
            pred = logits.argmax(1)
            preds.append(pred)
            correct += int((pred == y).sum())
            nll += float(F.cross_entropy(logits, y, reduction="sum"))
    return correct, nll / len(images), torch.cat(preds)


def precision_summary(history) -> str:
    runs = []
    for h in history:
        if runs and runs[-1][0] == h["precision"]:
            runs[-1][2] = h["epoch"]
        else:
            runs.append([h["precision"], h["epoch"], h["epoch"]])
    names = {"fp32": "fp32", "bf16": "bf16 autocast (fp32 weights, optimizer state and loss)"}
    return ", ".join(f"{names[k]} epochs {a}-{b}" if a != b else f"{names[k]} epoch {a}" for k, a, b in runs)


def exported_record(path: str) -> dict | None:
    """The training record of an exported file, or None where there is none."""
    if not os.path.exists(path):
        return None
    try:
        from safetensors import safe_open
        with safe_open(path, framework="pt") as f:
            return json.loads((f.metadata() or {})["depthlens_training"])
    except Exception:
        return None


def is_exported(name: str, recipe: dict, out: str, extend=()) -> bool:
    """Done when the exported file holds this recipe trained for all its epochs, warm
    restarts included: the state file is not needed (it is deleted once the model ships)."""
    rec = exported_record(out)
    return rec is not None and rec.get("recipe") == name and rec.get("hyperparameters") == recipe \
        and rec.get("epochs") == recipe["epochs"] + sum(n for n, _ in extend) \
        and [tuple(r) for r in rec.get("warm_restarts", [])] == list(extend)


def parse_extend(epochs: str, lrs: str) -> list[tuple[int, float]]:
    """--extend N[,N...] and --extend-lr LR[,LR...] (one value for all, or one each)."""
    ns = [int(v) for v in epochs.split(",") if v.strip()] if epochs not in ("", "0") else []
    rates = [float(v) for v in lrs.split(",") if v.strip()]
    if len(rates) == 1:
        rates = rates * len(ns)
    if ns and len(rates) != len(ns):
        raise SystemExit(f"--extend-lr: {len(rates)} values for {len(ns)} restarts")
    if any(n <= 0 for n in ns) or any(not 0 < r < 1 for r in rates):
        raise SystemExit("--extend: a restart's length must be positive and its lr in (0, 1)")
    return list(zip(ns, rates))


def compact(optimizer_state: dict) -> dict:
    """The optimizer state with AdamW's moments stored as bfloat16: the state file, which is
    committed to resume on another machine, then stays under 20 MB (convnext: 8.7 MB of
    float32 weights + 8.7 MB of moments, against 26 MB in float32). Loading widens them back
    (`Optimizer.load_state_dict` casts state to the parameters' dtype); a resumed run then
    differs from an uninterrupted one by the moments' rounding (3 significant digits)."""
    state = {k: {name: (v.to(torch.bfloat16) if name in ("exp_avg", "exp_avg_sq") else v) for name, v in entry.items()}
             for k, entry in optimizer_state["state"].items()}
    return {**optimizer_state, "state": state}


def save_atomic(obj, path: str) -> None:
    if "optimizer" in obj:
        obj = {**obj, "optimizer": compact(obj["optimizer"])}
    torch.save(obj, path + ".tmp")
    os.replace(path + ".tmp", path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", required=True, choices=sorted(RECIPES))
    # One thread by default: the machine's other core is kept for Swift builds.
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--precision", choices=["fp32", "bf16", "auto"], default="auto",
                    help="compute precision of the training steps (bf16: torch.autocast on the CPU; "
                         "auto: bf16 where the CPU has native bf16, else fp32); evaluation is fp32")
    ap.add_argument("--exported", action="store_true",
                    help="train nothing: exit 0 if the recipe is trained and exported, 1 if not")
    ap.add_argument("--time-steps", type=int, default=0, metavar="N",
                    help="train N steps of a fresh model, print the time per step and exit (saves nothing)")
    ap.add_argument("--state-dir", default=os.path.join(TOOLS, "train-state"))
    ap.add_argument("--out", default=None, help="default data/fmnist-RECIPE.safetensors")
    ap.add_argument("--extend", default="0", metavar="N[,N...]",
                    help="after the recipe's epochs, N more epochs of cosine decay from --extend-lr to the "
                         "recipe's min_lr (a warm restart), from the state the recipe ended in; a list runs "
                         "one restart after another (0: none)")
    ap.add_argument("--extend-lr", default="5e-4", metavar="LR[,LR...]",
                    help="each warm restart's starting learning rate (one value for all, or one each)")
    args = ap.parse_args()
    extend = parse_extend(args.extend, args.extend_lr)

    name = args.recipe
    recipe = copy.deepcopy(RECIPES[name])
    out = args.out or os.path.join(TOOLS, "..", "data", f"fmnist-{name}.safetensors")
    done = is_exported(name, recipe, out, extend)
    if args.exported:
        print(f"{name}: {'exported' if done else 'still to train'}", flush=True)
        sys.exit(0 if done else 1)
    if done and not args.time_steps:
        print(f"{name}: already trained and exported to {out}", flush=True)
        return

    torch.set_num_threads(args.threads)
    if args.precision == "auto":
        args.precision = "bf16" if cpu_has_bf16() else "fp32"
    torch.manual_seed(recipe["seed"])  # initialisation; drop path draws from this generator too
    model = build(recipe)
    opt = torch.optim.AdamW(param_groups(model, recipe["weight_decay"]), lr=recipe["lr"],
                            betas=tuple(recipe["betas"]), eps=recipe["eps"])
    gen = torch.Generator().manual_seed(recipe["seed"])  # order and augmentation
    bs = recipe["batch_size"]

    train_x, train_y = fashion_mnist("train")
    test_x, test_y = fashion_mnist("test")
    train_x, train_y = to_tensor(train_x), torch.from_numpy(train_y.astype(np.int64))
    test_x, test_y = to_tensor(test_x), torch.from_numpy(test_y.astype(np.int64))
    steps_per_epoch = math.ceil(len(train_x) / bs)

    def train_step(idx, step):
        lr = learning_rate(recipe, step, steps_per_epoch, extend)
        for group in opt.param_groups:
            group["lr"] = lr
        x = augment(train_x[idx], gen)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision == "bf16"):
            logits = model(x)
        loss = F.cross_entropy(logits.float(), train_y[idx], label_smoothing=recipe["label_smoothing"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return float(loss.detach())

    if args.time_steps:
        model.train()
        order = torch.randperm(len(train_x), generator=gen)
        times = []
        for s in range(args.time_steps):
            t0 = time.time()
            train_step(order[(s * bs) % len(order):][:bs], s)
            times.append(time.time() - t0)
        t = float(np.median(times[2:] if len(times) > 4 else times))
        n = sum(p.numel() for p in model.parameters())
        print(f"{name}: {n} parameters ({4 * n / 1e6:.2f} MB float32), {args.precision}, {args.threads} thread(s): "
              f"median {t:.3f} s a step of {bs}, about {t * steps_per_epoch / 60:.1f} min an epoch "
              f"({recipe['epochs']} epochs: {t * steps_per_epoch * recipe['epochs'] / 3600:.1f} h)", flush=True)
        return

    os.makedirs(args.state_dir, exist_ok=True)
    # Two processes training one recipe would overwrite each other's state: one at a time.
    lock = open(os.path.join(args.state_dir, f"{name}.lock"), "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise SystemExit(f"{name}: another process is training it (lock {lock.name})")

    state_path = os.path.join(args.state_dir, f"{name}.pt")
    start_epoch, elapsed, history, runs, exported = 0, 0.0, [], [], False
    if os.path.exists(state_path):
        st = torch.load(state_path, weights_only=False)
        if st["hyperparameters"] != recipe:
            raise SystemExit(f"{state_path} was saved by a different {name} recipe "
                             f"({st['hyperparameters']}); move it away to start this one afresh")
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["optimizer"])
        gen.set_state(st["generator"])
        torch.set_rng_state(st["torch_rng"])
        start_epoch, elapsed, history, runs = st["epoch"], st["elapsed"], st["history"], st["runs"]
        exported = st.get("exported", False)
        print(f"resuming {name} at epoch {start_epoch + 1} ({elapsed:.0f}s trained so far)", flush=True)

    command = "python3 tools/train_timm.py " + " ".join(sys.argv[1:])
    total = recipe["epochs"] + sum(n for n, _ in extend)
    if start_epoch < total:
        runs.append({"first_epoch": start_epoch + 1, "command": command, "precision": args.precision,
                     "threads": args.threads})
    n_params = sum(p.numel() for p in model.parameters())
    if start_epoch == 0:
        print(f"{name}: {recipe['timm_class']}({json.dumps(recipe['kwargs'])}), {n_params} parameters, "
              f"{steps_per_epoch} steps an epoch, {args.precision}, {args.threads} thread(s)", flush=True)
    for epoch in range(start_epoch, total):
        model.train()
        t0 = time.time()
        order = torch.randperm(len(train_x), generator=gen)
        total_loss = 0.0
        for k, i in enumerate(range(0, len(order), bs)):
            idx = order[i:i + bs]
            total_loss += train_step(idx, epoch * steps_per_epoch + k) * len(idx)
            if epoch == start_epoch and (k + 1) % 100 == 0:
                print(f"  {name} epoch {epoch + 1} step {k + 1}/{steps_per_epoch}: {time.time() - t0:.0f}s, "
                      f"mean train loss {total_loss / (i + len(idx)):.4f}", flush=True)
        seconds = time.time() - t0
        elapsed += seconds
        lr_last = learning_rate(recipe, (epoch + 1) * steps_per_epoch - 1, steps_per_epoch, extend)
        correct, nll, _ = evaluate(model, test_x, test_y)
        history.append({"epoch": epoch + 1, "lr": lr_last, "train_loss": total_loss / len(order),
                        "test_correct": correct, "test_nll": nll, "epoch_seconds": round(seconds, 1),
                        "seconds": round(elapsed, 1), "precision": args.precision})
        print(f"{name} epoch {epoch + 1}/{total} lr {lr_last:.3g} train_loss {total_loss / len(order):.4f} "
              f"test_acc {correct / len(test_x):.4f} test_nll {nll:.4f} epoch {seconds:.0f}s "
              f"time {elapsed:.0f}s", flush=True)
        save_atomic({"recipe": name, "hyperparameters": recipe, "model": model.state_dict(),
                     "optimizer": opt.state_dict(), "generator": gen.get_state(),
                     "torch_rng": torch.get_rng_state(), "epoch": epoch + 1,
                     "step": (epoch + 1) * steps_per_epoch, "elapsed": elapsed, "history": history,
                     "runs": runs, "exported": False}, state_path)

    correct, nll, preds = evaluate(model, test_x, test_y)
    preds_u8 = preds.numpy().astype(np.uint8)
    pred_path = os.path.join(args.state_dir, f"{name}-test-predictions.npy")
    np.save(pred_path, preds_u8)
    rates = drop_path_rates(model)
    _, timm = import_vision()
    architecture = architecture_record(name, recipe, model)
    training = {
        "dataset": "fashion-mnist",
        "recipe": name,
        "hyperparameters": recipe,
        "class_names": FASHION_CLASSES,
        "normalization": {"mean": [MEAN], "std": [STD]},
        "input_size": [28, 28],
        "epochs": total,
        "warm_restarts": [list(r) for r in extend],
        "batch_size": bs,
        "steps_per_epoch": steps_per_epoch,
        "optimizer": {"name": "adamw", "lr": recipe["lr"], "betas": recipe["betas"], "eps": recipe["eps"],
                      "weight_decay": recipe["weight_decay"],
                      "weight_decay_exempt": "1-D parameters (biases, norms, layer scale) and no_weight_decay()",
                      "lr_schedule": schedule_summary(recipe, steps_per_epoch, extend)},
        "label_smoothing": recipe["label_smoothing"],
        "augmentation": AUGMENTATION,
        "seed": recipe["seed"],
        "drop_path": {"rate": recipe["kwargs"]["drop_path_rate"], "schedule": "linear-from-zero",
                      "per_block_rates": rates, "gate_granularity": "sample",
                      "test_time_rule": "inverted",
                      "note": "timm DropPath: kept residual branches scaled by 1/(1 - rate) in training; "
                              "identity (every branch on, unscaled) in eval mode"},
        "test_time_rule": "inverted",
        "test_correct": correct,
        "test_count": len(test_x),
        "test_accuracy": correct / len(test_x),
        "test_nll": nll,
        "test_eval": "PyTorch float32, eval mode, batches of 500",
        "test_predictions_sha256": hashlib.sha256(preds_u8.tobytes()).hexdigest(),
        "train_seconds": round(elapsed, 1),
        "train_threads": sorted({r["threads"] for r in runs}),
        "train_precision": precision_summary(history),
        "command": command,
        "runs": runs,
        "history": history,
    }
    prov = provenance("tools/train_timm.py", timm=timm.__version__)
    training["provenance"] = prov
    export(model, out, architecture, training=training, provenance_record=prov)
    st = torch.load(state_path, weights_only=False)
    st["exported"] = True
    save_atomic(st, state_path)
    print(f"exported {out} ({os.path.getsize(out)} bytes): test accuracy {correct / len(test_x):.4f} "
          f"({correct}/{len(test_x)}), nll {nll:.4f}; predictions in {pred_path}", flush=True)


if __name__ == "__main__":
    main()
