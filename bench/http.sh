#!/usr/bin/env bash
# The HTTP server under load: GET /api/status and a Bistro `jobs` query (POST /), each
# at 50 concurrent clients (wrk), beside 1,000 idle connections held open and reopened
# whenever the server cuts them. Prints requests per second, p99 latency and how many
# answers were not 200 (the median run of each).
# Usage: bench/http.sh [--smoke] [--runs N]
#   BISTRO_UNDER_TEST=path/to/bistro measures another build (e.g. an older commit's).
source "$(dirname "$0")/common.sh"
need_commands wrk:wrk

SECONDS_PER_RUN=10
IDLE=1000
if [ "$SMOKE" = 1 ]; then
    SECONDS_PER_RUN=1
    IDLE=50
fi
state="$WORK/state"
bench_config 10 10 5 16 2 >"$WORK/config.json"
"$BISTRO" --state-dir "$state" init --config "$WORK/config.json" >/dev/null 2>&1
"$BISTRO" --state-dir "$state" tick --quiet --worker-command /bin/true >/dev/null 2>&1 || true

"$BISTRO" --state-dir "$state" serve-http --listen 127.0.0.1:0 2>"$WORK/server.log" &
server=$!
trap 'kill $server $idle 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 100); do
    addr=$(sed -n 's|^listening on http://||p' "$WORK/server.log")
    [ -n "$addr" ] && break
    sleep 0.1
done
[ -n "$addr" ] || { echo "http: the server did not start: $(cat "$WORK/server.log")" >&2; exit 1; }

# The idle connections: opened, never written to, reopened once the server cuts them.
python3 - "$addr" "$IDLE" <<'PY' &
import socket, sys, time
host, port = sys.argv[1].rsplit(":", 1)
count = int(sys.argv[2])
def connect():
    try:
        return socket.create_connection((host, int(port)), timeout=1)
    except OSError:
        return None
conns = [connect() for _ in range(count)]
while True:
    time.sleep(0.5)
    for i, c in enumerate(conns):
        if c is None:
            conns[i] = connect()
            continue
        c.setblocking(False)
        try:
            closed = c.recv(1) == b""
        except BlockingIOError:
            closed = False
        except OSError:
            closed = True
        if closed:
            c.close()
            conns[i] = connect()
PY
idle=$!
sleep 1

cat >"$WORK/jobs.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"a": {"handler": "jobs"}}'
wrk.headers["Content-Type"] = "application/json"
LUA

# bench_route NAME ARGS...: RUNS runs of wrk; appends "rps p99_ms non_200" per run.
bench_route() {
    local name="$1"
    shift
    : >"$WORK/$name"
    for _ in $(seq "$RUNS"); do
        wrk -t2 -c50 -d"${SECONDS_PER_RUN}s" --latency "$@" >"$WORK/wrk.out" 2>&1 || true
        python3 - "$WORK/wrk.out" >>"$WORK/$name" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
m = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", text)
p99 = float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)] if m else float("nan")
total = int(re.search(r"(\d+) requests in", text).group(1))
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
failed = (int(bad.group(1)) if bad else 0) + (sum(map(int, errors.groups())) if errors else 0)
print(rps, p99, f"{failed}/{total}")
PY
    done
}

bench_route status "http://$addr/api/status"
bench_route jobs -s "$WORK/jobs.lua" "http://$addr/"
alive=$(python3 -c "
import os; print(sum(1 for fd in os.listdir('/proc/$idle/fd')))")
echo "http, 50 clients beside $IDLE idle connections ($alive fds held), ${SECONDS_PER_RUN}s per run:"
echo "  GET /api/status: req/s $(stats "$WORK/status" 1); p99 ms $(stats "$WORK/status" 2); not 200 (median run) $(sort -t' ' -k1 -n "$WORK/status" | awk '{print $3}' | sed -n "$(( (RUNS + 1) / 2 ))p")"
echo "  POST / jobs:     req/s $(stats "$WORK/jobs" 1); p99 ms $(stats "$WORK/jobs" 2); not 200 (median run) $(sort -t' ' -k1 -n "$WORK/jobs" | awk '{print $3}' | sed -n "$(( (RUNS + 1) / 2 ))p")"
echo "  server peak RSS MiB: $(awk '/^VmHWM/ {print int($2 / 1024)}' "/proc/$server/status")"
