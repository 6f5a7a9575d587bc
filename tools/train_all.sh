#!/usr/bin/env bash
# Trains (or resumes) the three bundled models, two at a time (one core each), saving
# state in tools/train-state/ after every epoch and exporting to data/fmnist-MODEL.h5 when
# done; a finished recipe is skipped. Logs: ~/.cache/depthlens-train-MODEL.log.
#   nohup tools/train_all.sh > /dev/null 2>&1 &
set -e
cd "$(dirname "$0")/.."
mkdir -p "$HOME/.cache"
printf '%s\n' sd54 timm27 baseline54 | xargs -P 2 -I{} sh -c \
  'nice -n 5 python3 tools/train.py --model {} --widths 16,32,64 --epochs 20 --threads 1 --precision bf16 >> "$HOME/.cache/depthlens-train-{}.log" 2>&1'
