#!/usr/bin/env bash
# The scheduler's own overhead, no processes: `bistro daemon --benchmark-run` over 300
# hosts x 1,000 dbs x 5 jobs (1.5M tasks, half done), 64 instance slots, simulated
# runs of 0..2 s, for 20 s; reports iterations, their mean period and tasks finished.
# Usage: bench/simulated.sh [--smoke] [--runs N]
source "$(dirname "$0")/common.sh"

HOSTS=300
DBS=1000
SECONDS_RUN=20
[ "$SMOKE" = 1 ] && HOSTS=3 SECONDS_RUN=3
: >"$WORK/runs"
for run in $(seq "$RUNS"); do
    state="$WORK/state-$run"
    bench_config "$HOSTS" "$DBS" 5 64 2 '"working_wait": 0.01,' >"$WORK/config.json"
    "$BISTRO" --state-dir "$state" init --config "$WORK/config.json" >/dev/null 2>&1
    seed_done "$state" "$HOSTS" "$DBS" 5 2
    timeout -s TERM "$SECONDS_RUN" "$BISTRO" --state-dir "$state" daemon -vv --benchmark-run \
        --test-task-duration 1000 --worker-command /bin/true 2>"$WORK/log" || true
    python3 - "$WORK/log" "$SECONDS_RUN" >>"$WORK/runs" <<'PY'
import re, sys
from datetime import datetime
times, finished = [], 0
for line in open(sys.argv[1]):
    m = re.match(r"(\S+)Z DEBUG iteration: (\d+) started, (\d+) finished", line)
    if m:
        times.append(datetime.fromisoformat(m.group(1)))
        finished += int(m.group(3))
period = (times[-1] - times[0]).total_seconds() / max(len(times) - 1, 1)
print(f"{len(times)} {period * 1000:.1f} {finished / float(sys.argv[2]):.1f}")
PY
    rm -rf "$state"
done
echo "benchmark-run daemon, $((HOSTS * DBS * 5)) tasks half done, 64 slots, ${SECONDS_RUN} s: iterations $(stats "$WORK/runs" 1); ms per iteration $(stats "$WORK/runs" 2); tasks finished per s $(stats "$WORK/runs" 3)"
