#!/usr/bin/env bash
# Stops the cluster tools/slurm/start-local-cluster.sh started in DIR: SIGTERM to the pids it
# recorded (slurmd, slurmctld, then munged), SIGKILL to any still alive after 15 s. Jobs
# still running on the node die with slurmd's process tree.
set -uo pipefail
dir=${1:?usage: stop-local-cluster.sh DIR}
[ -f "$dir/pids" ] || { echo "stop-local-cluster: no $dir/pids: nothing to stop"; exit 0; }
mapfile -t entries < <(tac "$dir/pids")
for entry in "${entries[@]}"; do
  read -r name pid <<<"$entry"
  kill -0 "$pid" 2>/dev/null && kill -TERM "$pid" && echo "stop-local-cluster: stopping $name (pid $pid)"
done
for entry in "${entries[@]}"; do
  read -r name pid <<<"$entry"
  for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    echo "stop-local-cluster: $name (pid $pid) still alive after 15 s; SIGKILL"
    kill -KILL "$pid" 2>/dev/null
  fi
done
rm -f "$dir/pids"
