#!/usr/bin/env bash
# Trains (or resumes) the three bundled models one after another; logs to train-MODEL.log.
set -e
cd "$(dirname "$0")/.."
for m in timm27 sd54 baseline54; do
  [ -f "data/fmnist-$m.h5" ] && continue
  nice -n 10 python3 tools/train.py --model "$m" "$@" >> "$HOME/.cache/depthlens-train-$m.log" 2>&1
done
