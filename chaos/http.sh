#!/usr/bin/env bash
# Hostile HTTP (the attacks of the HTTP issue, 15) against a daemon's `--http` port
# while it runs tasks: connections held open trickling a byte a second, clients that
# ask for a large `task_logs` answer and never read it, requests of costly regex
# filters, doubled `Host`/`Origin` headers and a signed `Content-Length`. Meanwhile
# `GET /api/status` is probed: every probe must answer 200 within 1 s, the doubled
# headers and the signed length must get 400, the daemon's peak RSS must stay under
# 300 MiB, and its tasks must finish with every invariant of the other scenarios.
# Loopback only; every loop is bounded in count and time.
# Usage: chaos/http.sh [--smoke]
SCENARIO=http
source "$(dirname "$0")/common.sh" "$@"

if [ "$SMOKE" = 1 ]; then
    NODES=8 SLOW=300 STALLED=5 LOG_LINES=80 ATTACK_SECS=6
else
    NODES=40 SLOW=2000 STALLED=25 LOG_LINES=1000 ATTACK_SECS=30
fi
LIMIT=4
dir="$WORK/http"
state="$dir/state"
mkdir -p "$dir"
probe_task "$dir" 0.3
# Node n0's task also prints LOG_LINES lines of 60 kB: the large log to stall on.
cat >"$dir/wrapper.sh" <<SH
#!/bin/bash
if [ "\$1" = n0 ]; then
    python3 -c 'import sys
line = "a" * 59993
for i in range($LOG_LINES):
    sys.stdout.write(f"{i:06d} {line}\n")'
fi
exec "$dir/task.sh" "\$@"
SH
chmod +x "$dir/wrapper.sh"
config "$NODES" "$LIMIT" >"$dir/config.json"
"$BISTRO" --state-dir "$state" init --config "$dir/config.json" 2>/dev/null

"$BISTRO" --state-dir "$state" daemon --worker-command "$dir/wrapper.sh" \
    --http 127.0.0.1:0 2>"$dir/daemon.err" &
daemon=$!
deadline=$((SECONDS + 30))
until addr="$(sed -n 's|^listening on http://||p' "$dir/daemon.err" | head -1)" && [ -n "$addr" ]; do
    kill -0 "$daemon" 2>/dev/null || fail "the daemon exited: $(head -c 500 "$dir/daemon.err")"
    [ $SECONDS -lt $deadline ] || fail "the daemon never said where it listens"
    sleep 0.05
done
# The large log is in before the attacks start.
deadline=$((SECONDS + 120))
until "$BISTRO" --state-dir "$state" status --json --job j --tasks | python3 -c '
import json, sys
t = [t for t in json.load(sys.stdin)["tasks"] if t["node"] == "n0"]
sys.exit(0 if t and t[0]["status"] == "done" else 1)'; do
    [ $SECONDS -lt $deadline ] || fail "node n0's task never finished"
    sleep 0.2
done

figures="$(python3 - "$addr" "$SLOW" "$STALLED" "$ATTACK_SECS" <<'PY'
import json, resource, socket, sys, threading, time

addr, slow, stalled, secs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
host, port = addr.rsplit(":", 1)
port = int(port)
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
end = time.monotonic() + secs
problems = []

def connect(timeout=5):
    return socket.create_connection((host, port), timeout=timeout)

def post(body, headers=""):
    return (f"POST / HTTP/1.1\r\nHost: {addr}\r\n{headers}Content-Length: {len(body)}\r\n"
            f"Connection: close\r\n\r\n{body}").encode()

def status_code(raw, timeout):
    with connect(timeout) as s:
        s.settimeout(timeout)
        s.sendall(raw)
        head = s.recv(64)
    return int(head.split(b" ")[1]) if head.startswith(b"HTTP/1.1 ") else None

# Slow connections: each sends half a request line, then a byte a second; one the
# server cut is opened again.
def trickle():
    socks = []
    while len(socks) < slow and time.monotonic() < end:
        try:
            s = connect()
            s.sendall(b"GET /api/status HTTP/1.1\r\nX-Slow: ")
            socks.append(s)
        except OSError:
            time.sleep(0.01)
    while time.monotonic() < end:
        for i, s in enumerate(socks):
            try:
                s.sendall(b"a")
            except OSError:
                s.close()
                try:
                    socks[i] = connect()
                    socks[i].sendall(b"GET /api/status HTTP/1.1\r\nX-Slow: ")
                except OSError:
                    pass
        time.sleep(1)
    for s in socks:
        s.close()

# Stalled readers: ask for the whole large log and never read.
stalled_socks = []
def stall():
    body = json.dumps({"a": {"handler": "task_logs", "log_type": "stdout"}})
    for _ in range(stalled):
        s = connect()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(post(body))
        stalled_socks.append(s)

# Costly regex filters: 64 sub-queries each; every request must get an answer.
regex_answers = []
def regexes():
    body = json.dumps({f"q{i}": {"handler": "task_logs", "log_type": "stdout",
                                 "regex_filter": r"\W{100}\w{100}"} for i in range(64)})
    while time.monotonic() < end:
        start = time.monotonic()
        try:
            code = status_code(post(body), 60)
        except OSError as e:
            problems.append(f"regex request: {e}")
            return
        regex_answers.append((code, time.monotonic() - start))
        time.sleep(0.1)

# Ambiguous headers: each must be refused with 400.
refused = 0
for raw in [
    f"GET /api/status HTTP/1.1\r\nHost: {addr}\r\nHost: evil.example\r\n\r\n".encode(),
    (f"POST / HTTP/1.1\r\nHost: {addr}\r\nOrigin: http://{addr}\r\nOrigin: http://evil.example\r\n"
     f"Content-Length: 2\r\n\r\n{{}}").encode(),
    f"POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Length: +2\r\n\r\n{{}}".encode(),
]:
    code = status_code(raw, 5)
    if code == 400:
        refused += 1
    else:
        problems.append(f"{raw[:60]!r}... answered {code}, not 400")

threads = [threading.Thread(target=f) for f in (trickle, regexes, regexes, regexes, regexes)]
stall()
for t in threads:
    t.start()
probes, late, worst = 0, 0, 0.0
while time.monotonic() < end:
    start = time.monotonic()
    try:
        code = status_code(f"GET /api/status HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n".encode(), 1)
    except OSError as e:
        code = f"no answer ({e})"
    took = time.monotonic() - start
    worst = max(worst, took)
    probes += 1
    if code != 200 or took > 1:
        late += 1
        problems.append(f"probe {probes}: {code} after {took:.2f} s")
    time.sleep(0.25)
for t in threads:
    t.join(90)
for s in stalled_socks:
    s.close()
unanswered = [c for c, _ in regex_answers if c is None]
if unanswered or not regex_answers:
    problems.append(f"{len(unanswered)} of {len(regex_answers)} regex requests unanswered")
if problems:
    sys.exit("; ".join(problems[:5]))
slowest = max(t for _, t in regex_answers)
print(f"{slow} slow connections, {stalled} stalled readers, {len(regex_answers)} regex requests "
      f"(slowest answered in {slowest:.1f} s), {refused} ambiguous requests refused; "
      f"{probes} status probes all 200 within 1 s (worst {worst:.3f} s)")
PY
)" || fail "under attack: $figures"

peak_kib="$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$daemon/status")"
[ "$peak_kib" -lt $((300 << 10)) ] || fail "the daemon peaked at $((peak_kib >> 10)) MiB (bound 300)"

deadline=$((SECONDS + 300))
until all_done "$state"; do
    kill -0 "$daemon" 2>/dev/null || fail "the daemon died under attack: $(tail -c 500 "$dir/daemon.err")"
    [ $SECONDS -lt $deadline ] || fail "tasks never finished"
    sleep 0.2
done
kill -TERM "$daemon"
wait "$daemon" || true
invariants="$(check_invariants "$state" "$dir" "$LIMIT" "$NODES")"
echo "chaos http: $figures; daemon peak RSS $((peak_kib >> 10)) MiB (bound 300); $NODES tasks: $invariants; integrity ok; no process left"
