#!/usr/bin/env bash
# Starts a throwaway single-node Slurm cluster with everything under DIR (config,
# munge key and socket, spool, state, logs, pid files); nothing in /etc is touched.
# Prints the line that points Slurm's clients at it:  export SLURM_CONF=DIR/slurm.conf
# Waits, with a deadline, until the node is idle. Stop it with stop.sh DIR.
#
# Environment: SLURM_CPUS (job slots, default 16), SLURM_PORT (slurmctld port; slurmd
# uses the next one; default: a free pair picked at random), SLURM_MIN_JOB_AGE
# (seconds a finished job stays visible, default 300), SLURM_MAX_ARRAY_SIZE (default 1001).
set -euo pipefail
if [ $# -ne 1 ]; then
    echo "usage: $0 DIR" >&2
    exit 2
fi
for tool in slurmctld slurmd sinfo munged mungekey; do
    if ! command -v "$tool" >/dev/null && [ ! -x "/usr/sbin/$tool" ]; then
        echo "start.sh: $tool not found: apt-get install -y --no-install-recommends slurmctld slurmd slurm-client munge" >&2
        exit 1
    fi
done
export PATH="$PATH:/usr/sbin"
mkdir -p "$1"
DIR="$(cd "$1" && pwd)"
# Slurm's clients and munge must reach the socket and config as any user.
chmod 755 "$DIR"
mkdir -p "$DIR/munge" "$DIR/spool" "$DIR/state" "$DIR/log"
chmod 755 "$DIR/munge"
USER_NAME="$(id -un)"
HOST="$(hostname -s)"
CPUS="${SLURM_CPUS:-16}"

port_free() { ! grep -qi ":$(printf '%04X' "$1") " /proc/net/tcp /proc/net/tcp6 2>/dev/null; }
PORT="${SLURM_PORT:-}"
if [ -z "$PORT" ]; then
    for _ in $(seq 1 50); do
        candidate=$((20000 + RANDOM % 20000))
        if port_free "$candidate" && port_free $((candidate + 1)); then
            PORT=$candidate
            break
        fi
    done
fi
if [ -z "$PORT" ]; then
    echo "start.sh: found no free port pair for slurmctld/slurmd; set SLURM_PORT" >&2
    exit 1
fi

[ -f "$DIR/munge/munge.key" ] || mungekey --create --keyfile="$DIR/munge/munge.key" 2>/dev/null
chmod 600 "$DIR/munge/munge.key"
munged --force --key-file="$DIR/munge/munge.key" --socket="$DIR/munge/munge.socket" \
    --pid-file="$DIR/munge/munged.pid" --log-file="$DIR/log/munged.log" \
    --seed-file="$DIR/munge/munge.seed"

cat > "$DIR/slurm.conf" <<CONF
ClusterName=bistro$PORT
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=$USER_NAME
SlurmdUser=$USER_NAME
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$DIR/munge/munge.socket
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/log/jobcomp.txt
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerParameters=batch_sched_delay=0
SlurmdParameters=config_overrides
MinJobAge=${SLURM_MIN_JOB_AGE:-300}
MaxArraySize=${SLURM_MAX_ARRAY_SIZE:-1001}
KillWait=5
ReturnToService=2
MpiDefault=none
MailProg=/bin/true
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=1024 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF

export SLURM_CONF="$DIR/slurm.conf"
slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF" -N "$HOST"

deadline=$((SECONDS + 60))
until [ "$(sinfo -h -N -o %t 2>/dev/null | head -n 1)" = "idle" ]; do
    if [ $SECONDS -ge $deadline ]; then
        echo "start.sh: the node of $SLURM_CONF is not idle after 60 s; see $DIR/log/" >&2
        exit 1
    fi
    sleep 0.1
done
echo "export SLURM_CONF=$SLURM_CONF"
