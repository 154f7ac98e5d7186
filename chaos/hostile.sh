#!/usr/bin/env bash
# Hostile inputs: configs (broken, huge, deeply nested, negative resources, binary)
# must be refused by `check` and `tick` with exit 2 and leave the last good config in
# force (a bad job only fails `check`: ticks go on without it); status files (binary, huge, many lines, control characters)
# must end their task in error_backoff with the cause, once. Nothing panics.
# Usage: chaos/hostile.sh [--smoke]
SCENARIO=hostile
source "$(dirname "$0")/common.sh" "$@"
dir="$WORK/hostile"
state="$dir/state"
mkdir -p "$dir"
probe_task "$dir" 0
config 4 4 '[1, 2, "fail"]' >"$dir/good.json"
"$BISTRO" --state-dir "$state" init --config "$dir/good.json" 2>/dev/null
"$BISTRO" --state-dir "$state" tick --quiet --worker-command "$dir/task.sh"

python3 - "$dir" <<'PY'
import json, os, sys
d = sys.argv[1]
good = json.load(open(f"{d}/good.json"))
def write(name, text):
    open(f"{d}/bad-{name}.json", "wb").write(text if isinstance(text, bytes) else text.encode())
write("truncated", json.dumps(good)[:40])
write("binary", os.urandom(4096))
write("nested", "[" * 100000 + "]" * 100000)
write("not-object", "[1, 2, 3]")
neg = json.loads(json.dumps(good)); neg["bistro_settings"]["resources"]["instance"]["slots"]["default"] = -5
write("negative", json.dumps(neg))
frac = json.loads(json.dumps(good)); frac["bistro_settings"]["resources"]["instance"]["slots"]["limit"] = 2.5
write("fractional", json.dumps(frac))
big = json.loads(json.dumps(good)); big["bistro_job->j"]["config"] = {"blob": "x" * (1 << 20)}
write("job-big-config", json.dumps(big))
long = json.loads(json.dumps(good)); long["bistro_job->" + "j" * 300] = {"owner": "me"}
write("job-long-name", json.dumps(long))
write("huge", json.dumps(good) + " " * (65 << 20))
PY
configs=0
for bad in "$dir"/bad-*.json; do
    name="$(basename "$bad" .json)"
    for cmd in check tick; do
        code=0
        "$BISTRO" --state-dir "$state" --config "$bad" $cmd >/dev/null 2>"$dir/err" || code=$?
        # A bad job is a job error: `check` fails, a tick goes on without that job.
        want=2
        [ $cmd = tick ] && [[ $name = bad-job-* ]] && want=0
        [ $code -eq $want ] || fail "$name: $cmd exited $code: $(head -c 500 "$dir/err")"
        ! grep -q panicked "$dir/err" || fail "$name: $cmd panicked"
        [ "$(wc -c <"$dir/err")" -lt 100000 ] || fail "$name: $cmd printed $(wc -c <"$dir/err") bytes of errors"
    done
    configs=$((configs + 1))
done

# Status files: each node's task writes one kind of garbage.
cat >"$dir/garbage.sh" <<'SH'
#!/bin/bash
case "$1" in
    n0) head -c 4096 /dev/urandom >"$2" ;;
    n1) head -c 1000000 /dev/zero | tr '\0' 'x' >"$2" ;;
    n2) seq 1 100000 >"$2" ;;
    n3) printf 'done\033[2J\033]0;owned\007\n' >"$2" ;;
esac
SH
chmod +x "$dir/garbage.sh"
python3 - "$dir" <<'PY'
import json, sys
d = sys.argv[1]
c = json.load(open(f"{d}/good.json"))
c["bistro_job->g"] = {"owner": "chaos", "backoff": [3600, "fail"]}
json.dump(c, open(f"{d}/with-garbage.json", "w"))
PY
deadline=$((SECONDS + 60))
until "$BISTRO" --state-dir "$state" --config "$dir/with-garbage.json" status --json --tasks --job g | python3 -c '
import json, sys
ts = json.load(sys.stdin)["tasks"]
sys.exit(0 if ts and all(t["status"] in ("error_backoff", "done") for t in ts) else 1)'; do
    [ $SECONDS -lt $deadline ] || fail "garbage statuses never recorded"
    "$BISTRO" --state-dir "$state" --config "$dir/with-garbage.json" tick --quiet --worker-command "$dir/garbage.sh" 2>"$dir/err" || true
    ! grep -q panicked "$dir/err" || fail "tick panicked on a status file"
    sleep 0.1
done
report="$("$BISTRO" --state-dir "$state" --config "$dir/with-garbage.json" status --tasks --job g 2>&1)"
! grep -q $'\033' <<<"$report" || fail "a status message reached the terminal unescaped"
backoffs="$(grep -c error_backoff <<<"$report" || true)"
for db in statuses task_logs; do
    [ "$(sqlite3 "$state/$db.sql3" 'PRAGMA integrity_check')" = ok ] || fail "$db integrity"
done
no_process_left "$dir"
echo "chaos hostile: $configs hostile configs refused by check and tick (exit 2, last good kept), 4 hostile status files -> $backoffs error_backoff with the cause, nothing printed raw; integrity ok; no process left"
