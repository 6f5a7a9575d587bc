#!/usr/bin/env bash
# Trains (or resumes) the three bundled models one after another, saving state in
# tools/train-state/ after every epoch; logs to ~/.cache/depthlens-train-MODEL.log.
#   nohup tools/train_all.sh > /dev/null 2>&1 &
set -e
cd "$(dirname "$0")/.."
for m in timm27 sd54 baseline54; do
  [ -f "data/fmnist-$m.h5" ] && continue
  nice -n 10 python3 tools/train.py --model "$m" "$@" >> "$HOME/.cache/depthlens-train-$m.log" 2>&1
done
