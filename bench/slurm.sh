#!/usr/bin/env bash
# The Slurm runner side by side with Slurm alone, on a throwaway single-node cluster
# with 100 job slots: 1,000 of the seed's tasks (examples/demo_bistro_task.sh) run by
# `bistro daemon --runner slurm --exit-when-done`, against one hand-written
# `sbatch --array=0-999` of the same script, submit to all done. Target: bistro within
# 1.3x. Skipped with a notice when Slurm is not installed (outside CI).
# Usage: bench/slurm.sh [--smoke] [--runs N]
source "$(dirname "$0")/common.sh"

if [ ! -x /usr/sbin/slurmctld ] || ! command -v sbatch >/dev/null; then
    if [ -n "${CI:-}" ]; then
        echo "bench/slurm.sh: CI is set but Slurm is not installed (.ci/run installs it)" >&2
        exit 1
    fi
    echo "slurm: skipped (Slurm is not installed: apt-get install slurmctld slurmd slurm-client munge)"
    exit 0
fi

HOSTS=10
DBS=100
SLOTS=100
if [ "$SMOKE" = 1 ]; then HOSTS=2; DBS=5; SLOTS=10; fi
TASKS=$((HOSTS * DBS))
TASK="$ROOT/examples/demo_bistro_task.sh"

CLUSTER="$WORK/cluster"
eval "$(SLURM_CPUS=$SLOTS bash "$ROOT/examples/slurm/start.sh" "$CLUSTER")"
trap 'bash "$ROOT/examples/slurm/stop.sh" "$CLUSTER"; rm -rf "$WORK"' EXIT

# Waits until Slurm lists no job of ours that is not finished.
wait_idle() {
    while [ -n "$(squeue -h -t pending,running,completing,configuring -o %i)" ]; do
        sleep 0.05
    done
}

# The hand-written array: the same script and argument shape, status files on disk.
plain() {
    local dir="$WORK/plain-$1"
    mkdir -p "$dir"
    cat >"$dir/job.sh" <<SH
#!/bin/sh
i=\$SLURM_ARRAY_TASK_ID
exec "$TASK" "n\$i" "$dir/status-\$i" '{"id":"plain"}' > "$dir/out-\$i" 2> "$dir/err-\$i"
SH
    sbatch --parsable --array=0-$((TASKS - 1)) --output=/dev/null --chdir="$dir" "$dir/job.sh" >/dev/null
    wait_idle
}

# bistro's daemon over a fresh state dir of TASKS tasks, until it exits once all are done.
with_bistro() {
    local dir="$WORK/bistro-$1"
    bench_config "$HOSTS" "$DBS" 1 "$TASKS" "$DBS" '"working_wait": 0.2,' >"$WORK/config-$1.json"
    "$BISTRO" --state-dir "$dir" init --config "$WORK/config-$1.json" >/dev/null 2>&1
    "$BISTRO" --state-dir "$dir" daemon --runner slurm --worker-command "$TASK" --exit-when-done 2>/dev/null
    local done
    done="$("$BISTRO" --state-dir "$dir" status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["jobs"][0]["counts"]["done"])')"
    if [ "$done" != "$TASKS" ]; then
        echo "bench/slurm.sh: bistro finished with $done of $TASKS tasks done" >&2
        exit 1
    fi
}

: >"$WORK/plain"
: >"$WORK/bistro"
# timed OUT FUNCTION ARGS...: appends the wall seconds of a shell function to OUT.
timed() {
    local out="$1" start
    shift
    start="$(date +%s.%N)"
    "$@"
    python3 -c "import sys; print(round($(date +%s.%N) - $start, 2))" >>"$out"
}
for run in $(seq "$RUNS"); do
    timed "$WORK/plain" plain "$run"
    timed "$WORK/bistro" with_bistro "$run"
done
plain_s="$(median "$WORK/plain" 1)"
bistro_s="$(median "$WORK/bistro" 1)"
echo "slurm, $TASKS seed tasks, $SLOTS slots: sbatch --array wall s $(stats "$WORK/plain" 1); bistro daemon --runner slurm wall s $(stats "$WORK/bistro" 1); ratio $(python3 -c "print(round($bistro_s / $plain_s, 2))")"
