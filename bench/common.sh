# Shared by the bench/ scripts: flags, peers, the release build, timing and stats.
# Source it; it sets ROOT, BISTRO, RUNS, SMOKE and WORK (a temp dir removed on exit).

set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SMOKE=0
RUNS=5
while [ $# -gt 0 ]; do
    case "$1" in
        --smoke) SMOKE=1; RUNS=1 ;;
        --runs) RUNS="$2"; shift ;;
        *) echo "usage: $0 [--smoke] [--runs N]" >&2; exit 2 ;;
    esac
    shift
done

# Installs the Debian packages that provide the given commands, if any is missing.
need_commands() {
    local missing=()
    local pair
    for pair in "$@"; do
        command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "bench: installing ${missing[*]}" >&2
        apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}
need_commands time:time sqlite3:sqlite3 python3:python3
[ -x /usr/bin/time ] || need_commands /usr/bin/time:time

# A smoke run only checks that the scenario still works: the debug build will do.
# BISTRO_UNDER_TEST names another build to measure instead (e.g. an older commit's).
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
if [ "$SMOKE" = 1 ]; then
    (cd "$ROOT" && cargo build --quiet)
    BISTRO="$TARGET_DIR/debug/bistro"
else
    (cd "$ROOT" && cargo build --release --quiet)
    BISTRO="$TARGET_DIR/release/bistro"
fi
BISTRO="${BISTRO_UNDER_TEST:-$BISTRO}"
# NO_DELETIONS: scenarios delete nothing until the script exits. On ext4 without a
# journal, a file created in the minutes after many deletions in the same block group
# costs up to a millisecond (the inode allocator skips each recently freed inode one
# by one), so one scenario's cleanup would slow whichever runs next. For the same
# reason, point TMPDIR at a directory with no recent mass deletions (BENCHMARKS.md).
WORK="$(mktemp -d "${TMPDIR:-/tmp}/bistro-bench.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# measure OUT CMD...: runs CMD once; appends "seconds peak_kib" to OUT.
measure() {
    local out="$1"
    shift
    /usr/bin/time -f "%e %M" -o "$WORK/.time" "$@"
    cat "$WORK/.time" >>"$out"
}

# stats FILE COLUMN: "median (min-max)" of a column of numbers.
stats() {
    python3 - "$1" "$2" <<'PY'
import statistics, sys
vals = sorted(float(l.split()[int(sys.argv[2]) - 1]) for l in open(sys.argv[1]) if l.strip())
print(f"{statistics.median(vals):.3f} ({vals[0]:.3f}-{vals[-1]:.3f})")
PY
}

# median FILE COLUMN: the median alone.
median() {
    python3 - "$1" "$2" <<'PY'
import statistics, sys
print(statistics.median(float(l.split()[int(sys.argv[2]) - 1]) for l in open(sys.argv[1]) if l.strip()))
PY
}

# ratio A B: A / B to two decimals.
ratio() {
    python3 -c "import sys; print(f'{float(sys.argv[1]) / float(sys.argv[2]):.2f}')" "$1" "$2"
}

# A config of HOSTS hosts x DBS dbs (range_label), JOBS jobs, instance and host limits,
# plus extra settings (e.g. '"working_wait": 0.01,').
bench_config() {
    local hosts="$1" dbs="$2" jobs="$3" instance_slots="$4" host_slots="$5" extra="${6:-}"
    python3 - "$hosts" "$dbs" "$jobs" "$instance_slots" "$host_slots" "$extra" <<'PY'
import json, sys
hosts, dbs, jobs, inst, host = map(int, sys.argv[1:6])
extra = json.loads("{" + sys.argv[6].rstrip(",") + "}")
settings = {
    "enabled": True,
    "nodes": {"levels": ["host", "db"], "node_sources": [
        {"source": "range_label", "prefs": {"parent_level": "instance", "start": 1, "end": hosts, "format": "h{i}"}},
        {"source": "range_label", "prefs": {"parent_level": "host", "start": 1, "end": dbs}}]},
    "resources": {"instance": {"slots": {"limit": inst, "default": 1}},
                  "host": {"host_slots": {"limit": host, "default": 1}}},
}
settings.update(extra)
config = {"bistro_settings": settings}
for j in range(jobs):
    config[f"bistro_job->job{j}"] = {"owner": "bench"}
print(json.dumps(config, indent=1))
PY
}

# seed_done STATE HOSTS DBS JOBS EVERY: records `done` for every EVERY-th db of each job.
seed_done() {
    python3 - "$@" <<'PY'
import sqlite3, sys, time
state, hosts, dbs, jobs, every = sys.argv[1], *map(int, sys.argv[2:])
db = sqlite3.connect(f"{state}/statuses.sql3")
db.execute("PRAGMA recursive_triggers = ON")  # a replaced row leaves the tallies too
now = int(time.time())
rows = ((f"job{j}", f"h{h}__{d}", 4, now, 0, None, 1)
        for j in range(jobs) for h in range(1, hosts + 1) for d in range(1, dbs + 1)
        if (h * dbs + d) % every == 0)
db.executemany("INSERT OR REPLACE INTO task_statuses VALUES (?,?,?,?,?,?,?)", rows)
db.commit()
PY
}

machine() {
    echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), kernel $(uname -r)"
}
