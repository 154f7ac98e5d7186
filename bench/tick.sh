#!/usr/bin/env bash
# A cold `bistro tick --dry-run` (a new process, nothing cached) over 300 hosts x 1,000
# dbs x 5 jobs with half the tasks done in the DB: wall time and peak RSS; then peak
# RSS at 75, 150 and 300 hosts, to give the memory per task.
# Usage: bench/tick.sh [--smoke] [--runs N]
source "$(dirname "$0")/common.sh"

DBS=1000
HOSTS=300
SIZES="75 150 300"
if [ "$SMOKE" = 1 ]; then HOSTS=3; SIZES="2 3"; fi

# state HOSTS: a state dir over HOSTS x DBS x 5 jobs, half done.
state() {
    local dir="$WORK/state-$1"
    if [ ! -d "$dir" ]; then
        bench_config "$1" "$DBS" 5 16 2 >"$WORK/config-$1.json"
        "$BISTRO" --state-dir "$dir" init --config "$WORK/config-$1.json" >/dev/null 2>&1
        seed_done "$dir" "$1" "$DBS" 5 2
    fi
    echo "$dir"
}

dir="$(state "$HOSTS")"
tasks=$((HOSTS * DBS * 5))
: >"$WORK/tick"
for _ in $(seq "$RUNS"); do
    measure "$WORK/tick" "$BISTRO" --state-dir "$dir" tick --dry-run --worker-command /bin/true >/dev/null
done
echo "tick --dry-run, $tasks tasks, half done: wall s $(stats "$WORK/tick" 1); peak RSS MiB $(python3 -c "print(round($(median "$WORK/tick" 2) / 1024))")"

# Memory per task: the slope of peak RSS against tasks.
: >"$WORK/rss"
for hosts in $SIZES; do
    dir="$(state "$hosts")"
    : >"$WORK/one"
    measure "$WORK/one" "$BISTRO" --state-dir "$dir" tick --dry-run --worker-command /bin/true >/dev/null
    echo "$((hosts * DBS * 5)) $(cut -d' ' -f2 "$WORK/one")" >>"$WORK/rss"
done
python3 - "$WORK/rss" <<'PY'
import sys
pts = [tuple(map(float, l.split())) for l in open(sys.argv[1])]
(t0, k0), (t1, k1) = pts[0], pts[-1]
slope = (k1 - k0) * 1024 / (t1 - t0)
print("peak RSS by tasks: " + ", ".join(f"{int(t)}: {k / 1024:.0f} MiB" for t, k in pts)
      + f"; {slope:.0f} bytes per task (slope)")
PY
