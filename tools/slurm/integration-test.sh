#!/usr/bin/env bash
# DepthLens on a real Slurm cluster (issue 21): runs against the cluster SLURM_CONF names
# (tools/slurm/start-local-cluster.sh starts one; .ci/run does) and fails loudly when there
# is none.
#
#   tools/slurm/integration-test.sh [DEPTHLENS_BINARY]    (default .build/release/depthlens)
#
# 1. A 4-task sharded `report` through the real sbatch (`depthlens slurm`): waits for the
#    merge job, then compares every merged file byte for byte with a local unsharded run,
#    and prints each shard's run time, the slowest over the mean.
# 2. The same with one array task requeued (`scontrol requeue`) while it runs: the task is
#    stopped by SIGTERM, starts again, continues from its journal (its log says so, and
#    Slurm counts a restart), and the merged files are still byte-identical.
set -euo pipefail
cd "$(dirname "$0")/../.."
binary=$(realpath "${1:-.build/release/depthlens}")
[ -x "$binary" ] || { echo "slurm integration: FAILED: no depthlens binary at $binary (swift build -c release first)"; exit 1; }
if [ -z "${SLURM_CONF:-}" ] || ! sinfo -h >/dev/null 2>&1; then
  echo "slurm integration: FAILED: no Slurm cluster answers (SLURM_CONF='${SLURM_CONF:-}'); start one with tools/slurm/start-local-cluster.sh DIR and export SLURM_CONF=DIR/slurm.conf"
  exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fixtures=Tests/Fixtures/fashion-mnist-subset
# A small report: 200 of the bundled Fashion-MNIST test images, few trials; about 90
# sub-networks and 8 ensemble batches, so that 4 shards each get many units.
args=(report data/fmnist-timm27.h5 --data "$fixtures/t10k-images-idx3-ubyte.gz" --labels "$fixtures/t10k-labels-idx1-ubyte.gz"
      --limit 200 --trials 2 --members 4 --max-k 6 --batch-size 25 --quiet)
failures=0
fail() { echo "slurm integration: FAILED: $*"; failures=$((failures + 1)); }

job_state() { scontrol show job "$1" 2>/dev/null | grep -oE 'JobState=[A-Z_]+' | head -n 1 | cut -d= -f2; }
# wait_for_job ID SECONDS: until the job has completed; fails on any other end state.
wait_for_job() {
  local id=$1 limit=$2 state=""
  for _ in $(seq "$limit"); do
    state=$(job_state "$id")
    case "$state" in
      COMPLETED) return 0 ;;
      FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL|DEADLINE) echo "job $id ended $state"; return 1 ;;
    esac
    # A merge whose dependency can never be met (an array task failed) would wait forever.
    if squeue -h -j "$id" -o %r 2>/dev/null | grep -q DependencyNeverSatisfied; then echo "job $id: DependencyNeverSatisfied"; return 1; fi
    sleep 1
  done
  echo "job $id still $state after $limit s"
  return 1
}
# compare_folders LOCAL MERGED: the same result files, byte for byte.
compare_folders() {
  local local_dir=$1 merged=$2 file ok=0
  local expected actual
  expected=$(cd "$local_dir" && find . -maxdepth 1 -type f ! -name '.*' | sort)
  actual=$(cd "$merged" && find . -maxdepth 1 -type f ! -name '.*' | sort)
  if [ "$expected" != "$actual" ]; then
    echo "files differ: local has [$(echo $expected)], merged has [$(echo $actual)]"; ok=1
  fi
  for file in $expected; do
    cmp "$local_dir/$file" "$merged/$file" || ok=1
  done
  [ $ok -eq 0 ] && echo "identical: $(echo "$expected" | wc -l) files ($(echo $expected | tr '\n' ' '))"
  return $ok
}
# balance FOLDER: each shard's run time (shard-finished.tsv), and the slowest over the mean.
balance() {
  awk -F'\t' '$1 == "shard" { shard = $2 } $1 == "seconds" { printf "%s %s\n", shard, $2 }' "$1"/shard-*-of-4/shard-finished.tsv |
    sort | awk '{ t[NR] = $2; s += $2; if ($2 > m) m = $2; printf "  shard %s: %.2f s\n", $1, $2 } END { printf "  slowest / mean = %.3f (mean %.2f s)\n", m / (s / NR), s / NR }'
}
# submit FOLDER [env...]: depthlens slurm; prints the array and merge job ids.
submit() {
  local folder=$1; shift
  local out
  out=$(env "$@" "$binary" slurm "${args[@]}" -o "$folder" --tasks 4 --cpus-per-task 1 --time 15:00)
  echo "$out" >&2
  array=$(sed -nE 's/^array job ([0-9]+):.*/\1/p' <<<"$out")
  merge=$(sed -nE 's/^merge job ([0-9]+):.*/\1/p' <<<"$out")
  [ -n "$array" ] && [ -n "$merge" ]
}

started=$(date +%s)
echo "== local unsharded run"
"$binary" "${args[@]}" -o "$work/local" >/dev/null

echo "== test 1: 4-task sharded report through sbatch"
t0=$(date +%s)
if submit "$work/sharded"; then
  if wait_for_job "$merge" 600; then
    echo "merge job $merge completed after $(( $(date +%s) - t0 )) s"
    compare_folders "$work/local" "$work/sharded" || fail "test 1: merged files differ from the unsharded run's"
    echo "shard run times:"; balance "$work/sharded"
  else
    fail "test 1: the jobs did not complete"; tail -n 20 "$work/sharded/slurm/"*.out || true
  fi
else
  fail "test 1: depthlens slurm did not submit"
fi

echo "== test 2: one array task requeued while it runs"
# DEPTHLENS_TEST_UNIT_PAUSE_MS (exported to the jobs: sbatch passes the environment) makes
# each saved unit take a while, so the task is surely mid-run when it is requeued.
t0=$(date +%s)
if submit "$work/requeued" DEPTHLENS_TEST_UNIT_PAUSE_MS=400; then
  task="${array}_1"
  journal="$work/requeued/shard-2-of-4/report-progress.journal"
  requeued=0
  for _ in $(seq 300); do
    if [ "$(job_state "$task")" = RUNNING ] && [ -f "$journal" ] && grep -q '^done' "$journal"; then
      echo "requeueing task $task with $(grep -c '^done' "$journal") unit(s) saved"
      # Slurm starts a requeued job again no sooner than about two minutes later (its
      # BeginTime; not changeable for a requeued array task), so this test takes that long.
      scontrol requeue "$task" && requeued=1
      break
    fi
    sleep 0.2
  done
  if [ $requeued -eq 0 ]; then
    fail "test 2: task $task was never seen running with saved units"
  elif wait_for_job "$merge" 600; then
    echo "merge job $merge completed after $(( $(date +%s) - t0 )) s"
    log="$work/requeued/slurm/shard-1.out"
    grep -q "interrupted by SIGTERM" "$log" || fail "test 2: the requeued task's log does not show it was stopped by SIGTERM"
    resumed=$(awk -F'\t' '$1 == "units resumed" { print $2 }' "$work/requeued/shard-2-of-4/shard-finished.tsv")
    [ "${resumed:-0}" -ge 1 ] || fail "test 2: the requeued task did not continue from its journal (units resumed: '${resumed:-}')"
    echo "task $task continued from its journal: $resumed unit(s) resumed"
    restarts=$(scontrol show job "$task" | grep -oE 'Restarts=[0-9]+' | cut -d= -f2)
    [ "${restarts:-0}" -ge 1 ] || fail "test 2: Slurm counts no restart of $task"
    echo "task $task: restarts=$restarts; its log:"; sed 's/^/  /' "$log"
    compare_folders "$work/local" "$work/requeued" || fail "test 2: merged files differ from the unsharded run's"
  else
    fail "test 2: the jobs did not complete"; tail -n 20 "$work/requeued/slurm/"*.out || true
  fi
else
  fail "test 2: depthlens slurm did not submit"
fi

echo "slurm integration: $(( $(date +%s) - started )) s in all"
if [ $failures -eq 0 ]; then echo "slurm integration: both tests passed"; else echo "slurm integration: $failures failure(s)"; exit 1; fi
