#!/usr/bin/env bash
# Trains (or resumes) the bundled models one at a time, saving state in tools/train-state/
# after every epoch and exporting to data/fmnist-MODEL.h5 when done; a finished and
# exported recipe is skipped. Logs: ~/.cache/depthlens-train-MODEL.log.
#   nohup tools/train_all.sh > /dev/null 2>&1 &
# Jobs are "MODEL EPOCHS EXTEND": EPOCHS of the paper's step schedule, then the cosine warm
# restarts EXTEND lists (each from lr 0.05; 0: none). timm27's 20 step-schedule epochs
# ended at 91.74%, under the 92% target, so it continued with a 10-epoch warm restart
# (92.78%, shipped). sd54 was at 89% after 17 of its 20 epochs with a training loss of
# 0.29 (timm27: 0.22), much further from the target: it gets a 20-epoch warm restart and
# then a second one, since the first ended at 91.42% (session 5) with the training loss
# still as high as the test NLL. baseline54 gets the same recipe as sd54, by definition.
# One recipe at a time, in the order below, with every core: two at once with one thread
# each is no faster in all (sd54 alone with 2 threads: 5.5-6 min an epoch in session 5,
# against 13 min with one beside baseline54; 3.9-4.5 min in session 6 under bf16), and
# sd54's result, which decides whether both need another restart, comes first.
# --precision auto: bf16 autocast where the CPU has native bf16 (2.1x faster there), fp32
# elsewhere (emulated bf16 is 10x slower than fp32 on an AVX2-only CPU).
# A recipe is done when data/fmnist-MODEL.h5 records it with all its epochs (train.py
# --exported reads the file's training record; the state files go once a model ships).
# Then the timm models of issue 20 (tools/train_timm.py, data/fmnist-RECIPE.safetensors):
# convnext first (30 epochs, about 4.5 min each), then vit (40 epochs, about 6 min each;
# both twice that while builds run), with ONE thread each, so that the machine's other
# core stays free for Swift builds.
set -e
cd "$(dirname "$0")/.."
mkdir -p "$HOME/.cache"
jobs=("timm27 20 10" "sd54 20 20,20" "baseline54 20 20,20")
pending=()
for job in "${jobs[@]}"; do
  read -r model epochs extend <<<"$job"
  # Any failure of the check (torch missing, say) counts as still to train: the training
  # run then fails with the full error in the model's log, where a user looks.
  python3 tools/train.py --model "$model" --widths 16,32,64 --epochs "$epochs" --extend "$extend" \
    --exported > /dev/null 2>&1 || pending+=("$job")
done
# timm jobs are "RECIPE EXTEND": the recipe's epochs, then the warm restarts EXTEND lists
# (each from lr 5e-4 down to the recipe's 1e-5; 0: none). convnext's 30 cosine epochs
# ended at 91.43% (test NLL 0.308; session of 2026-12-03), under the 92.5% target, so it continues with a
# 20-epoch warm restart before vit starts.
timm_jobs=("convnext 20" "vit 0")
timm_pending=()
for job in "${timm_jobs[@]}"; do
  read -r recipe extend <<<"$job"
  python3 tools/train_timm.py --recipe "$recipe" --extend "$extend" --exported > /dev/null 2>&1 || timm_pending+=("$job")
done
[ $((${#pending[@]} + ${#timm_pending[@]})) -gt 0 ] || { echo "every recipe is trained and exported"; exit 0; }
for job in "${pending[@]}"; do
  read -r model epochs extend <<<"$job"
  nice -n 5 python3 tools/train.py --model "$model" --widths 16,32,64 --epochs "$epochs" --extend "$extend" \
    --extend-lr 0.05 --threads "$(nproc)" --precision auto >> "$HOME/.cache/depthlens-train-$model.log" 2>&1 \
    || echo "$model: training failed; see $HOME/.cache/depthlens-train-$model.log" >&2
done
for job in "${timm_pending[@]}"; do
  read -r recipe extend <<<"$job"
  nice -n 5 python3 tools/train_timm.py --recipe "$recipe" --extend "$extend" --extend-lr 5e-4 --threads 1 --precision auto \
    >> "$HOME/.cache/depthlens-train-$recipe.log" 2>&1 \
    || echo "$recipe: training failed; see $HOME/.cache/depthlens-train-$recipe.log" >&2
done
