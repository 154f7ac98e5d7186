#!/usr/bin/env bash
# kill -9 at random instants: of `bistro tick`, of a daemon, and of supervisors, N
# times each over one job's tasks; then every invariant of common.sh.
# Usage: chaos/kill9.sh [--smoke]
SCENARIO=kill9
source "$(dirname "$0")/common.sh" "$@"
if [ "$SMOKE" = 1 ]; then NODES=12 KILLS=6 TASK_SECS=0.3; else NODES=200 KILLS=70 TASK_SECS=0.5; fi
LIMIT=4
# rand_sleep MS: sleeps a random time under MS (< 1000) milliseconds.
rand_sleep() { sleep "$(printf '0.%03d' $((RANDOM % $1)))"; }

# Each victim on its own state dir, so each count says what it is.
for victim in tick daemon supervisor; do
    dir="$WORK/$victim"
    state="$dir/state"
    mkdir -p "$dir"
    probe_task "$dir" "$TASK_SECS"
    config "$NODES" "$LIMIT" >"$dir/config.json"
    "$BISTRO" --state-dir "$state" init --config "$dir/config.json" 2>/dev/null
    killed=0
    deadline=$((SECONDS + 600))
    until all_done "$state"; do
        [ $SECONDS -lt $deadline ] || fail "$victim: tasks never finished"
        case "$victim" in
            tick)
                "$BISTRO" --state-dir "$state" tick --quiet --worker-command "$dir/task.sh" 2>/dev/null &
                pid=$!
                if [ $killed -lt $KILLS ]; then
                    rand_sleep 30
                    kill -9 $pid 2>/dev/null && killed=$((killed + 1))
                fi
                wait $pid 2>/dev/null || true
                sleep 0.05
                ;;
            daemon)
                "$BISTRO" --state-dir "$state" daemon --exit-when-done --worker-command "$dir/task.sh" 2>/dev/null &
                pid=$!
                if [ $killed -lt $KILLS ]; then
                    rand_sleep 999
                    kill -9 $pid 2>/dev/null && killed=$((killed + 1))
                fi
                wait $pid 2>/dev/null || true
                ;;
            supervisor)
                "$BISTRO" --state-dir "$state" daemon --exit-when-done --worker-command "$dir/task.sh" 2>/dev/null &
                pid=$!
                while kill -0 $pid 2>/dev/null; do
                    rand_sleep 500
                    if [ $killed -lt $KILLS ]; then
                        sup="$(pgrep -f -- "$state supervise" | head -1 || true)"
                        [ -n "$sup" ] && kill -9 "$sup" 2>/dev/null && killed=$((killed + 1))
                    fi
                    all_done "$state" 2>/dev/null && break
                done
                wait $pid 2>/dev/null || true
                ;;
        esac
    done
    figures="$(check_invariants "$state" "$dir" "$LIMIT" "$NODES")"
    echo "chaos kill9 $victim: $killed kill -9 over $NODES tasks, $(wc -l <"$dir/starts") starts; $figures; integrity ok; no process left"
done
