# Shared by the chaos/ scenarios: flags, the build, a scratch dir, the probe task and
# the invariants every scenario checks. Source it; it sets ROOT, BISTRO, SMOKE, WORK.
#
# The probe task keeps a per-node flock ledger: a run takes NODE.lock without waiting
# (a second copy alive at once fails to and says so in `overlaps`), appends its start
# to `starts` and, under one lock, how many runs are alive with it to `running` (so
# the peak concurrency is known, killed runs included); it writes `done` only after
# its work, so a run killed midway reports nothing, and counts itself `finished` only
# once its `done` is written.

set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SMOKE=0
while [ $# -gt 0 ]; do
    case "$1" in
        --smoke) SMOKE=1 ;;
        *) echo "usage: $0 [--smoke]" >&2; exit 2 ;;
    esac
    shift
done

need_commands() {
    local missing=() pair
    for pair in "$@"; do
        command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "chaos: installing ${missing[*]}" >&2
        apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}
need_commands sqlite3:sqlite3 python3:python3 flock:util-linux pgrep:procps

if [ "$SMOKE" = 1 ]; then
    (cd "$ROOT" && cargo build --quiet)
    BISTRO="${CARGO_TARGET_DIR:-$ROOT/target}/debug/bistro"
else
    (cd "$ROOT" && cargo build --release --quiet)
    BISTRO="${CARGO_TARGET_DIR:-$ROOT/target}/release/bistro"
fi
WORK="$(mktemp -d "${TMPDIR:-/tmp}/bistro-chaos.XXXXXX")"
cleanup() {
    # Whatever a failed scenario left behind dies with it.
    pkill -KILL -f -- "$WORK" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

fail() {
    echo "chaos: $SCENARIO: FAILED: $*" >&2
    exit 1
}

# probe_task DIR SECONDS: writes DIR/task.sh, a task that sleeps SECONDS and reports
# done, keeping the ledger in DIR.
probe_task() {
    local dir="$1" secs="$2"
    mkdir -p "$dir/locks"
    cat >"$dir/task.sh" <<SH
#!/bin/bash
node="\$1"
exec 8>"$dir/locks/\$node.lock"
if ! flock -n 8; then echo "\$node" >>"$dir/overlaps"; exit 0; fi
echo "\$node" >>"$dir/starts"
# Under one lock: count the runs still alive (a killed run never says it ended; a
# zombie is not alive).
(
    flock 9
    alive=1
    while read -r pid; do
        state=\$(cut -d' ' -f3 "/proc/\$pid/stat" 2>/dev/null || true)
        if [ -n "\$state" ] && [ "\$state" != Z ]; then echo "\$pid"; alive=\$((alive + 1)); fi
    done <"$dir/alive" >"$dir/alive.new"
    echo \$\$ >>"$dir/alive.new"
    mv "$dir/alive.new" "$dir/alive"
    echo "\$alive" >>"$dir/running"
) 9>"$dir/running.lock"
sleep $secs
# Finished only if its status could be written (a full disk may refuse it).
if echo done >"\$2"; then echo "\$node" >>"$dir/finished"; fi
SH
    chmod +x "$dir/task.sh"
    : >"$dir/starts"
    : >"$dir/finished"
    : >"$dir/running"
    : >"$dir/alive"
    : >"$dir/overlaps"
}

# config NODES LIMIT [BACKOFF]: one job `j` over NODES leaves under one host, at most
# LIMIT at once.
config() {
    python3 - "$1" "$2" "${3:-[1, \"repeat\"]}" <<'PY'
import json, sys
n, limit, backoff = int(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3])
print(json.dumps({
    "bistro_settings": {
        "enabled": True, "working_wait": 0.05, "idle_wait": 0.2, "backoff": backoff,
        "nodes": {"levels": ["host", "db"], "node_sources": [
            {"source": "manual", "prefs": {"h1": [f"n{i}" for i in range(n)]}}]},
        "resources": {"instance": {"slots": {"limit": limit, "default": 1}}}},
    "bistro_job->j": {"owner": "chaos"}}))
PY
}

# peak DIR: the most runs alive at once, from the ledger.
peak() {
    sort -n "$1/running" | tail -1
}

# all_done STATE: true once every task of job j is done.
all_done() {
    "$BISTRO" --state-dir "$1" status --json | python3 -c '
import json, sys
c = json.load(sys.stdin)["jobs"][0]["counts"]
sys.exit(0 if c["done"] == c["total"] else 1)'
}

# check_invariants STATE DIR LIMIT NODES: every task done with its status recorded
# exactly once, no two copies alive at once, no limit exceeded, both databases
# intact, no process left behind. Prints "overlaps=0 peak=P twice=0".
check_invariants() {
    local state="$1" dir="$2" limit="$3" nodes="$4"
    all_done "$state" || fail "not every task is done: $("$BISTRO" --state-dir "$state" status --json)"
    [ ! -s "$dir/overlaps" ] || fail "two copies of a task at once: $(sort "$dir/overlaps" | uniq -c | head -3)"
    local p
    p="$(peak "$dir")"
    [ "$p" -le "$limit" ] || fail "$p tasks at once, limit $limit"
    local finished
    finished="$(sort -u "$dir/finished" | wc -l)"
    [ "$finished" -eq "$nodes" ] || fail "$finished of $nodes nodes finished"
    # A run that finished is never started again: its `done` was recorded once.
    local twice
    twice="$(sort "$dir/finished" | uniq -d | wc -l)"
    [ "$twice" -eq 0 ] || fail "$twice tasks finished twice"
    "$BISTRO" --state-dir "$state" logs --stream statuses --json --limit 1000000 | python3 -c '
import collections, json, sys
got = collections.Counter()
for line in sys.stdin:
    e = json.loads(line)
    ev = json.loads(e["line"])
    if ev.get("event") == "got_status" and ev.get("status", {}).get("result_bits") == 4:
        got[e["node"]] += 1
bad = {n: c for n, c in got.items() if c > 1}
if bad:
    sys.exit(f"done recorded more than once: {bad}")
' || fail "a status was recorded twice"
    local db
    for db in statuses task_logs; do
        local ok
        ok="$(sqlite3 "$state/$db.sql3" 'PRAGMA integrity_check')"
        [ "$ok" = ok ] || fail "$db.sql3 integrity_check: $ok"
    done
    no_process_left "$dir"
    echo "overlaps=0 peak=$p twice=0"
}

# no_process_left DIR: no task of DIR and no supervisor of WORK outlives the scenario
# (tasks that were told to die get a few seconds).
no_process_left() {
    local deadline=$((SECONDS + 10))
    while pgrep -f -- "$1/task.sh" >/dev/null; do
        [ $SECONDS -lt $deadline ] || fail "tasks left running: $(pgrep -af -- "$1/task.sh" | head -3)"
        sleep 0.2
    done
}
