#!/usr/bin/env bash
# Stops the cluster start.sh DIR started: cancels every job (job steps outlive slurmd),
# then stops slurmd, slurmctld and munged by their pid files, waiting (with a deadline)
# until each process has exited. DIR itself is left for the caller to remove.
set -uo pipefail
if [ $# -ne 1 ]; then
    echo "usage: $0 DIR" >&2
    exit 2
fi
DIR="$(cd "$1" && pwd)" || exit 1
export PATH="$PATH:/usr/sbin"
export SLURM_CONF="$DIR/slurm.conf"

# A process counts as gone once it no longer exists or is a zombie (PID 1 may reap late).
alive() {
    local state
    state="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" || return 1
    [ -n "$state" ] && [ "$state" != "Z" ]
}
stop_pid_file() {
    local file="$1" pid
    [ -f "$file" ] || return 0
    pid="$(cat "$file" 2>/dev/null)"
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    local deadline=$((SECONDS + 20))
    while alive "$pid"; do
        if [ $SECONDS -ge $deadline ]; then
            kill -KILL "$pid" 2>/dev/null
            break
        fi
        sleep 0.05
    done
}

ctld_alive() { [ -f "$DIR/slurmctld.pid" ] && alive "$(cat "$DIR/slurmctld.pid")"; }
# Jobs are cancelled through the controller: one that was stopped (a test of a
# controller outage) is started again for that.
if ! ctld_alive && [ -f "$DIR/slurmd.pid" ] && alive "$(cat "$DIR/slurmd.pid")"; then
    slurmctld -f "$SLURM_CONF" 2>/dev/null
    deadline=$((SECONDS + 15))
    until scontrol ping >/dev/null 2>&1 || [ $SECONDS -ge $deadline ]; do sleep 0.1; done
fi
if ctld_alive; then
    scancel --full --user="$(id -un)" 2>/dev/null
    deadline=$((SECONDS + 15))
    while [ -n "$(squeue -h -t running,completing -o %i 2>/dev/null)" ] && [ $SECONDS -lt $deadline ]; do
        sleep 0.1
    done
fi
stop_pid_file "$DIR/slurmd.pid"
stop_pid_file "$DIR/slurmctld.pid"
stop_pid_file "$DIR/munge/munged.pid"
# Last resort: job steps of this cluster that survived (their environment names it).
for stat in /proc/[0-9]*/stat; do
    pid="${stat#/proc/}"
    pid="${pid%/stat}"
    case "$({ tr -d '\0' <"/proc/$pid/cmdline"; } 2>/dev/null)" in slurmstepd*) ;; *) continue ;; esac
    if { tr '\0' '\n' <"/proc/$pid/environ"; } 2>/dev/null | grep -qx "SLURM_CONF=$SLURM_CONF"; then
        kill -KILL "$pid" 2>/dev/null
    fi
done
exit 0
