#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, to try `vade-run -m hydra/launcher=slurm ...` (and to run
# tests/test_slurm.py) without a real cluster.
#
#   sudo scripts/local-slurm.sh        # then: sinfo; vade-run -m hydra/launcher=slurm hydra.launcher.partition=debug ...
#
# Installs Debian's slurm-wlm and munge when they are missing (apt-get), writes /etc/slurm/slurm.conf
# for one node on localhost (partition `debug`, this machine's CPUs and memory, no GPUs), starts munged,
# slurmctld and slurmd directly (no systemd: it works as root in a container), and waits until `sinfo`
# shows the node idle. Running it again is harmless: what runs is left running, a changed config
# restarts the daemons. On failure it prints one line starting with "local-slurm:" and exits 1.
# No accounting database (slurmdbd): `sacct` does not work, so submitit prints "Bypassing sacct error".
# Stop it with: scripts/local-slurm.sh stop
set -uo pipefail
export PATH="$PATH:/usr/sbin:/sbin"  # the daemons live there

CONF_DIR=/etc/slurm
CONF=$CONF_DIR/slurm.conf
MARK="# written by vade-cli scripts/local-slurm.sh"
LOG_DIR=/var/log/slurm
STATE_DIR=/var/lib/slurm
WAIT_S=${LOCAL_SLURM_WAIT_S:-60}

die() { echo "local-slurm: $*" >&2; exit 1; }
running() { [ -f "$1" ] && kill -0 "$(cat "$1" 2>/dev/null)" 2>/dev/null; }  # a live process behind a pid file

node_idle() { [ -n "$(sinfo -h -N -t idle -o %N 2>/dev/null)" ]; }

if [ "${1:-}" = stop ]; then
  for pid_file in /run/slurmd.pid /run/slurmctld.pid /run/munge/munged.pid; do
    running "$pid_file" && kill "$(cat "$pid_file")"
  done
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  if command -v sinfo >/dev/null && node_idle; then exit 0; fi  # someone already started it
  die "needs root (apt-get, /etc/slurm, the daemons); run it with sudo"
fi

# ---------------------------------------------------------------- packages
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null \
   || ! command -v munged >/dev/null; then
  command -v apt-get >/dev/null || die "slurm-wlm and munge are missing and there is no apt-get to install them"
  export DEBIAN_FRONTEND=noninteractive
  { apt-get update -qq && apt-get install -y -qq --no-install-recommends slurm-wlm munge; } >/tmp/local-slurm-apt.log 2>&1 \
    || die "apt-get install slurm-wlm munge failed; see /tmp/local-slurm-apt.log"
fi

# ---------------------------------------------------------------- munge
install -d -o munge -g munge -m 0755 /run/munge
install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
install -d -o munge -g munge -m 0700 /etc/munge
if [ ! -s /etc/munge/munge.key ]; then
  mungekey --create --keyfile=/etc/munge/munge.key >/dev/null 2>&1 \
    || dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none \
    || die "cannot create /etc/munge/munge.key"
  chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key
fi
if ! running /run/munge/munged.pid; then
  runuser -u munge -- munged >/dev/null 2>&1 || die "munged did not start; see /var/log/munge/munged.log"
fi
for _ in $(seq 20); do munge -n </dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.5; done
munge -n </dev/null | unmunge >/dev/null 2>&1 || die "munge does not answer; see /var/log/munge/munged.log"

# ---------------------------------------------------------------- slurm.conf
NODE=$(hostname -s)
CPUS=$(nproc)
MEM_MB=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
if [ -r /sys/fs/cgroup/memory.max ] && [ "$(cat /sys/fs/cgroup/memory.max)" != max ]; then
  CG_MB=$(( $(cat /sys/fs/cgroup/memory.max) / 1024 / 1024 ))
  [ "$CG_MB" -lt "$MEM_MB" ] && MEM_MB=$CG_MB
fi
MEM_MB=$(( MEM_MB * 95 / 100 ))  # below what the node reports, or slurmd drains it ("Low RealMemory")

new_conf=$(mktemp)
cat >"$new_conf" <<EOF
$MARK
# One node on localhost for trying SLURM sweeps; see that script. Not a production setup.
ClusterName=vade-local
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# a requeued job may start again after this many seconds (the default, 120, is long for a one-node trial)
AuthInfo=cred_expire=5
StateSaveLocation=$STATE_DIR/slurmctld
SlurmdSpoolDir=$STATE_DIR/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
# no cgroups, no accounting database: what a container without systemd allows
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SlurmdParameters=config_overrides
SchedulerType=sched/backfill
# look for startable jobs every second or two, not every 30-60 s
SchedulerParameters=bf_interval=1,sched_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
# refuse at submission what this node can never run (too many CPUs), instead of leaving it pending
EnforcePartLimits=ALL
# SIGTERM, then this many seconds to save a checkpoint, then SIGKILL (scancel, scontrol requeue, time limit)
KillWait=30
MinJobAge=300
SchedulerTimeSlice=30
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF

changed=0
if [ -f "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
  echo "local-slurm: $CONF was not written by this script; using it as it is" >&2
  rm -f "$new_conf"
elif [ -f "$CONF" ] && cmp -s "$new_conf" "$CONF"; then
  rm -f "$new_conf"
else
  if ! { install -d "$CONF_DIR" && mv "$new_conf" "$CONF" && chmod 0644 "$CONF"; }; then die "cannot write $CONF"; fi
  changed=1
fi
install -d "$LOG_DIR" "$STATE_DIR/slurmctld" "$STATE_DIR/slurmd"

# ---------------------------------------------------------------- daemons
if [ "$changed" = 1 ]; then  # a new config: restart whatever runs on the old one
  for pid_file in /run/slurmd.pid /run/slurmctld.pid; do
    if running "$pid_file"; then
      pid=$(cat "$pid_file"); kill "$pid"
      for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    fi
  done
fi
if ! running /run/slurmctld.pid; then
  slurmctld >>"$LOG_DIR/slurmctld.start.log" 2>&1 || die "slurmctld did not start; see $LOG_DIR/slurmctld.log"
fi
for _ in $(seq 20); do scontrol ping >/dev/null 2>&1 && break; sleep 0.5; done
scontrol ping 2>/dev/null | grep -q UP || die "slurmctld does not answer (scontrol ping); see $LOG_DIR/slurmctld.log"
if ! running /run/slurmd.pid; then
  slurmd >>"$LOG_DIR/slurmd.start.log" 2>&1 || die "slurmd did not start; see $LOG_DIR/slurmd.log"
fi

# ---------------------------------------------------------------- wait for the node
for _ in $(seq "$((WAIT_S * 2))"); do
  if node_idle; then
    echo "local-slurm: node $NODE idle in partition debug ($CPUS CPUs, $MEM_MB MB)"
    exit 0
  fi
  state=$(sinfo -h -N -o %T 2>/dev/null | head -1)
  case "$state" in  # a node left down or drained by an earlier config comes back
    down*|drain*) scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 ;;
  esac
  sleep 0.5
done
die "node $NODE not idle after ${WAIT_S}s (state: $(sinfo -h -N -o '%T %E' 2>/dev/null | head -1)); see $LOG_DIR/slurmd.log and $LOG_DIR/slurmctld.log"
