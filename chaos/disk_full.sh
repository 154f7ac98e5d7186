#!/usr/bin/env bash
# A state dir on a small tmpfs that fills up, by inodes and by bytes, while a job
# waits to run: ticks fail naming the cause (exit 1), `status` still answers, no run
# is recorded lost, and once space returns every task runs with one attempt.
# Usage: chaos/disk_full.sh [--smoke]
SCENARIO=disk_full
source "$(dirname "$0")/common.sh" "$@"
if [ "$SMOKE" = 1 ]; then NODES=6 ROUNDS=1; else NODES=40 ROUNDS=5; fi
mnt="$WORK/mnt"
mkdir -p "$mnt"
if ! mount -t tmpfs -o size=64m,nr_inodes=64 tmpfs "$mnt" 2>/dev/null; then
    echo "chaos disk_full: skipped: cannot mount a tmpfs here (needs root)"
    exit 0
fi
umount "$mnt"
trap 'umount -l "$mnt" 2>/dev/null || true; cleanup' EXIT
for kind in inodes bytes; do
    if [ $kind = inodes ]; then opts="size=64m,nr_inodes=$((NODES * 8 + 200))"; else opts="size=8m"; fi
    mount -t tmpfs -o "$opts" tmpfs "$mnt"
    dir="$WORK/$kind"
    mkdir -p "$dir"
    probe_task "$dir" 0.1
    state="$mnt/state"
    config "$NODES" 4 >"$dir/config.json"
    "$BISTRO" --state-dir "$state" init --config "$dir/config.json" 2>/dev/null
    refused=0 named=0
    for round in $(seq "$ROUNDS"); do
        # Fill, tick, read, free: the ticks between are refused with the cause.
        if [ $kind = inodes ]; then
            i=0; while touch "$mnt/fill$round.$i" 2>/dev/null; do i=$((i + 1)); done
        else
            dd if=/dev/zero of="$mnt/fill$round" bs=64k 2>/dev/null || true
        fi
        for _ in 1 2 3; do
            code=0
            "$BISTRO" --state-dir "$state" tick --quiet --worker-command "$dir/task.sh" 2>"$dir/err" || code=$?
            if [ $code -ne 0 ]; then
                refused=$((refused + 1))
                grep -q "No space left on device" "$dir/err" && named=$((named + 1))
                [ $code -eq 1 ] || fail "$kind: a tick on a full disk exited $code: $(cat "$dir/err")"
            fi
            ! grep -q "supervisor was lost" "$dir/err" || fail "$kind: $(cat "$dir/err")"
        done
        "$BISTRO" --state-dir "$state" status >/dev/null 2>"$dir/err" \
            || fail "$kind: status on a full disk: $(cat "$dir/err")"
        rm -rf "$mnt"/fill*
        "$BISTRO" --state-dir "$state" tick --quiet --worker-command "$dir/task.sh" 2>/dev/null || true
    done
    deadline=$((SECONDS + 120))
    until all_done "$state"; do
        [ $SECONDS -lt $deadline ] || fail "$kind: tasks never finished"
        "$BISTRO" --state-dir "$state" tick --quiet --worker-command "$dir/task.sh" 2>/dev/null || true
        sleep 0.1
    done
    [ $refused -eq $named ] || fail "$kind: $((refused - named)) of $refused refused ticks did not name the cause"
    retried="$("$BISTRO" --state-dir "$state" status --json --tasks | python3 -c '
import json, sys
print(sum(1 for t in json.load(sys.stdin)["tasks"] if t["attempts"] != 1))')"
    lost="$("$BISTRO" --state-dir "$state" logs --stream statuses --limit 1000000 | grep -c supervisor_lost || true)"
    [ "$lost" -eq 0 ] || fail "$kind: $lost runs recorded supervisor_lost"
    nostatus="$("$BISTRO" --state-dir "$state" logs --stream statuses --limit 1000000 | grep -c 'no status line' || true)"
    figures="$(check_invariants "$state" "$dir" 4 "$NODES")"
    echo "chaos disk_full $kind: $ROUNDS fills, $refused ticks refused naming ENOSPC, $retried retries used ($nostatus runs could not write their own status), 0 supervisor_lost, status answered; $figures; integrity ok; no process left"
    umount "$mnt"
done
