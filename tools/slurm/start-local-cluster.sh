#!/usr/bin/env bash
# Starts a one-node Slurm cluster on this machine, from Debian's packages (slurm-wlm, munge),
# for DepthLens's integration tests: a fresh munge key and munged (run as the munge user),
# slurm.conf with proctrack/linuxproc, task/none and select/cons_tres, one node with this
# machine's CPUs and memory (`slurmd -C`), all state under DIR; then slurmctld and slurmd.
# Needs root (slurmd runs jobs as their users).
#
#   tools/slurm/start-local-cluster.sh DIR     # starts it; waits until the node is idle
#   source DIR/env                             # SLURM_CONF for sbatch, squeue, scontrol, ...
#   tools/slurm/stop-local-cluster.sh DIR      # stops the processes this script started
#
# The daemons run in the foreground of background jobs, so the pids in DIR/pids are the
# daemons' own; the stop script ends exactly those. Ports: SLURMCTLD_PORT (default 6817)
# and SLURMD_PORT (default 6818).
set -euo pipefail
dir=${1:?usage: start-local-cluster.sh DIR}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
# munged and slurmd run as other users and must pass through DIR (mktemp -d makes it 0700).
chmod 0711 "$dir"
if [ -s "$dir/pids" ]; then
  echo "start-local-cluster: $dir/pids exists: a cluster may be running there; stop it first" >&2
  exit 1
fi
for tool in munged slurmctld slurmd sinfo setpriv; do
  command -v "$tool" >/dev/null || { echo "start-local-cluster: $tool not found (apt-get install -y slurm-wlm munge)" >&2; exit 1; }
done
host=$(hostname -s)

# munge: its own key, socket and state, owned by the munge user, under DIR/munge.
install -d -m 0711 -o munge -g munge "$dir/munge"
dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
chown munge:munge "$dir/munge/munge.key"
chmod 0400 "$dir/munge/munge.key"
socket="$dir/munge/munge.socket"

mkdir -p "$dir/state" "$dir/spool" "$dir/log"
node=$(slurmd -C | head -n 1 | sed -E 's/ UpTime=.*//')
cat > "$dir/slurm.conf" <<CONF
# One-node cluster for DepthLens's tests (tools/slurm/start-local-cluster.sh).
ClusterName=depthlens-test
# Loopback addresses: a container's hostname need not resolve.
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=${SLURMCTLD_PORT:-6817}
SlurmdPort=${SLURMD_PORT:-6818}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$socket
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
ReturnToService=2
JobRequeue=1
KillWait=30
# Generous timeouts: a loaded test machine must not mark its only node down.
SlurmdTimeout=1200
MessageTimeout=60
MinJobAge=600
$node NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
printf 'export SLURM_CONF=%s\n' "$dir/slurm.conf" > "$dir/env"
export SLURM_CONF="$dir/slurm.conf"

# Each daemon in the foreground (-F / -D) of a background job: $! is the daemon itself.
setpriv --reuid=munge --regid=munge --clear-groups \
  munged -F --force --key-file="$dir/munge/munge.key" --socket="$socket" \
  --pid-file="$dir/munge/munged.pid" --log-file="$dir/munge/munged.log" --seed-file="$dir/munge/munged.seed" \
  </dev/null >>"$dir/log/munged.out" 2>&1 &
echo "munged $!" >> "$dir/pids"
for _ in $(seq 100); do [ -S "$socket" ] && break; sleep 0.1; done
[ -S "$socket" ] || { echo "start-local-cluster: munged did not start (see $dir/munge/munged.log)" >&2; exit 1; }
slurmctld -D -f "$dir/slurm.conf" </dev/null >>"$dir/log/slurmctld.out" 2>&1 &
echo "slurmctld $!" >> "$dir/pids"
slurmd -D -f "$dir/slurm.conf" </dev/null >>"$dir/log/slurmd.out" 2>&1 &
echo "slurmd $!" >> "$dir/pids"

for _ in $(seq 120); do
  state=$(sinfo -h -n "$host" -o %T 2>/dev/null || true)
  if [ "$state" = idle ]; then
    echo "start-local-cluster: node $host idle ($node); source $dir/env"
    exit 0
  fi
  sleep 0.5
done
echo "start-local-cluster: the node did not become idle within 60 s (state '${state:-none}'); logs in $dir/log" >&2
tail -n 20 "$dir/log/"*.log >&2 || true
exit 1
