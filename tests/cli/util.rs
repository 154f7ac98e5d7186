//! A small DSL for driving the real `bistro` binary over a temporary state dir.

use assert_cmd::Command;
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

/// How long any awaited condition may take before a test fails.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// A scratch directory with a state dir inside.
pub struct Env {
    pub dir: tempfile::TempDir,
    /// Environment variables every command gets (e.g. `SLURM_CONF`).
    pub vars: Vec<(String, String)>,
}

impl Env {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            vars: Vec::new(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn state(&self) -> PathBuf {
        self.path("state")
    }

    /// Writes `STATE/config.json` (creating the state dir).
    pub fn config(&self, text: &str) -> &Self {
        std::fs::create_dir_all(self.state()).unwrap();
        std::fs::write(self.state().join("config.json"), text).unwrap();
        self
    }

    /// Writes an executable script and returns its path.
    pub fn script(&self, name: &str, body: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    /// `bistro --state-dir STATE ARGS...` with a clean environment, to spawn.
    pub fn spawn_cmd(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("bistro"));
        cmd.current_dir(self.dir.path())
            .env_remove("BISTRO_STATE_DIR")
            .env_remove("BISTRO_CONFIG")
            .env_remove("BISTRO_FAKE_NOW")
            .envs(self.vars.iter().map(|(k, v)| (k, v)))
            .arg("--state-dir")
            .arg(self.state())
            .args(args);
        cmd
    }

    /// `bistro --state-dir STATE ARGS...` with a clean environment and a deadline.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::from_std(self.spawn_cmd(args));
        cmd.timeout(DEADLINE);
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Runs a command that must succeed; returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "bistro {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn status_json(&self, extra: &[&str]) -> Value {
        let mut args = vec!["status", "--json"];
        args.extend_from_slice(extra);
        serde_json::from_str(&self.ok(&args)).unwrap()
    }

    /// The status of one task from `status --json --tasks`.
    pub fn task(&self, job: &str, node: &str) -> Value {
        let status = self.status_json(&["--tasks"]);
        status["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["job"] == job && t["node"] == node)
            .cloned()
            .unwrap_or_else(|| panic!("no task {job}/{node} in {status}"))
    }

    /// Ticks until `done(status)` holds, failing after [`DEADLINE`].
    pub fn tick_until(&self, tick_args: &[&str], done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + DEADLINE;
        let mut args = vec!["tick", "--quiet"];
        args.extend_from_slice(tick_args);
        loop {
            self.ok(&args);
            let status = self.status_json(&["--tasks"]);
            if done(&status) {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "condition not reached; last status: {status}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for `cond` with a deadline.
    pub fn wait_for(&self, what: &str, cond: impl Fn() -> bool) {
        let deadline = Instant::now() + DEADLINE;
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Lines of the task-log DB as JSON objects.
    pub fn logs(&self, args: &[&str]) -> Vec<Value> {
        let mut all = vec!["logs", "--json"];
        all.extend_from_slice(args);
        self.ok(&all)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

/// The count of one status for one job.
pub fn count(status: &Value, job: &str, which: &str) -> u64 {
    status["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["name"] == job)
        .unwrap()["counts"][which]
        .as_u64()
        .unwrap()
}

/// All tasks of a job are done.
pub fn all_done(status: &Value, job: &str) -> bool {
    count(status, job, "done") == count(status, job, "total")
}

/// A config over the seed's nodes with the given job entries.
pub fn config_with_jobs(concurrency: u32, jobs: &str) -> String {
    format!(
        r#"{{
  "bistro_settings": {{
    "enabled": true,
    "nodes": {{"levels": ["level1", "level2"], "node_sources": [{{"source": "manual",
      "prefs": {{"node1": ["node11", "node12"], "node2": ["node21", "node22"]}}}}]}},
    "resources": {{"instance": {{"concurrency": {{"limit": {concurrency}, "default": 1}}}}}},
    "backoff": [1, 2, "fail"]
  }},
  {jobs}
}}"#
    )
}

/// The invocation directories under `STATE/running/` (spares for reuse excluded).
pub fn run_dirs(env: &Env) -> Vec<String> {
    std::fs::read_dir(env.state().join("running"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != ".spare")
        .collect()
}

/// The parent of a process.
pub fn parent_of(pid: i32) -> i32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    stat[stat.rfind(')').unwrap() + 2..]
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap()
}

/// Is the process alive (not a zombie)?
pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !matches!(
            s[s.rfind(')').unwrap() + 2..].split(' ').next(),
            Some("Z" | "X")
        )
    })
}

/// Reads a file, or "" if it does not exist.
pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// What a ledger of `start NODE` / `end NODE` / `overlap NODE` lines (appended by
/// probe tasks) shows.
#[derive(Debug)]
pub struct Ledger {
    /// Most tasks running at once (counting a run that never wrote `end` as running).
    pub peak: i32,
    /// Runs per node.
    pub starts: std::collections::BTreeMap<String, u32>,
    /// Nodes whose run started while another live run of the same node held its lock.
    pub overlaps: Vec<String>,
}

impl Ledger {
    pub fn read(path: &Path) -> Self {
        let mut ledger = Ledger {
            peak: 0,
            starts: Default::default(),
            overlaps: Vec::new(),
        };
        let mut open = std::collections::BTreeSet::new();
        for line in read(path).lines() {
            let (what, node) = line.split_once(' ').unwrap();
            match what {
                "start" => {
                    *ledger.starts.entry(node.to_string()).or_default() += 1;
                    open.insert(node.to_string());
                }
                "overlap" => ledger.overlaps.push(node.to_string()),
                _ => {
                    open.remove(node);
                }
            }
            ledger.peak = ledger.peak.max(open.len() as i32);
        }
        ledger
    }

    /// Every node ran exactly once.
    pub fn each_ran_once(&self) -> bool {
        self.starts.values().all(|&n| n == 1)
    }
}

/// A probe task: holds a per-node lock while it runs (recording `overlap NODE` if a
/// live run of the same node already holds it, which only a double start can cause),
/// records its start and end in `ledger`, sleeps, and reports done.
pub fn probe_task(env: &Env, ledger: &Path, sleep: &str) -> PathBuf {
    let locks = env.path("node-locks");
    std::fs::create_dir_all(&locks).unwrap();
    env.script(
        "task.sh",
        &format!(
            "exec 9>>{locks}/$1\nflock -n 9 || echo \"overlap $1\" >> {l}\necho \"start $1\" >> {l}\nsleep {sleep}\necho \"end $1\" >> {l}\necho done > \"$2\"",
            locks = locks.display(),
            l = ledger.display()
        ),
    )
}

/// Runs a one-task job (node11 only) whose task body is `body`, ticking until its run
/// is recorded; returns the task from `status --json --tasks`. The job backs off for an
/// hour after a failure, so a slow machine cannot restart it while the test looks.
pub fn run_single(env: &Env, body: &str) -> Value {
    let task = env.script("task.sh", body);
    env.config(&config_with_jobs(
        1,
        r#""bistro_job->j": {"owner": "me", "backoff": [3600, "fail"],
                             "filters": {"level2": {"whitelist": ["node11"]}}}"#,
    ));
    env.tick_until(&["--worker-command", task.to_str().unwrap()], |s| {
        let t = s["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["node"] == "node11")
            .unwrap();
        t["status"] != "running" && t["status"] != "not_started"
    });
    env.task("j", "node11")
}

/// The `event` names of the lifecycle log, oldest first.
pub fn event_names(env: &Env) -> Vec<String> {
    env.logs(&["--stream", "statuses"])
        .iter()
        .map(|e| {
            serde_json::from_str::<Value>(e["line"].as_str().unwrap()).unwrap()["event"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

/// Another process holding the state lock (as `flock(1)` would) until dropped.
pub struct LockHolder(std::process::Child);

impl LockHolder {
    /// Takes the state lock and returns once it is held.
    pub fn take(env: &Env) -> Self {
        let mut child = std::process::Command::new("flock")
            .arg(env.state().join("lock"))
            .args(["sh", "-c", "echo locked; read x"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
            &mut line,
        )
        .unwrap();
        assert_eq!(line, "locked\n");
        Self(child)
    }
}

impl Drop for LockHolder {
    fn drop(&mut self) {
        drop(self.0.stdin.take());
        let _ = self.0.wait();
    }
}

/// A two-level config with `n` leaf nodes under one host, an instance-wide `slots`
/// limit, extra settings (e.g. `"backoff": [1, "repeat"],`) and one job `j`.
pub fn config_with_leaves(n: usize, limit: u32, extra_settings: &str) -> String {
    let nodes: Vec<String> = (0..n).map(|i| format!("\"n{i}\"")).collect();
    format!(
        r#"{{"bistro_settings": {{"enabled": true, {extra_settings}
              "nodes": {{"levels": ["host", "db"], "node_sources": [{{"source": "manual", "prefs": {{"h1": [{}]}}}}]}},
              "resources": {{"instance": {{"slots": {{"limit": {limit}, "default": 1}}}}}}}},
            "bistro_job->j": {{"owner": "me"}}}}"#,
        nodes.join(",")
    )
}

/// Kills a process if it is still around after [`DEADLINE`], so a test blocked
/// reading its output fails instead of hanging; disarmed when dropped.
pub struct Watchdog(Option<std::sync::mpsc::Sender<()>>);

impl Watchdog {
    pub fn arm(pid: u32) -> Self {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(DEADLINE) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        });
        Self(Some(tx))
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        drop(self.0.take());
    }
}

/// A running `bistro serve-http --listen 127.0.0.1:0` (or another command that serves
/// HTTP, such as `daemon --http 127.0.0.1:0`), stopped with SIGTERM on drop.
pub struct Served {
    child: std::process::Child,
    /// `127.0.0.1:PORT`, read from the server's `listening on http://ADDR` line.
    pub addr: String,
    _watchdog: Watchdog,
}

impl Served {
    /// Starts `serve-http` and waits for its `listening on` line.
    pub fn start(env: &Env) -> Self {
        Self::start_with(env, &["serve-http", "--listen", "127.0.0.1:0"])
    }

    /// Starts `bistro ARGS...`, which must print `listening on http://ADDR` first on
    /// stderr, and waits for that line.
    pub fn start_with(env: &Env, args: &[&str]) -> Self {
        Self::start_logging(env, args, None)
    }

    /// [`Served::start_with`], with the rest of its stderr copied to the file `log`
    /// (else to the test's stderr).
    pub fn start_logging(env: &Env, args: &[&str], log: Option<&Path>) -> Self {
        let mut child = env
            .spawn_cmd(args)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let watchdog = Watchdog::arm(child.id());
        let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        std::io::BufRead::read_line(&mut stderr, &mut line).unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line from serve-http: {line:?}"))
            .to_string();
        let mut sink: Box<dyn std::io::Write + Send> = match log {
            Some(path) => Box::new(std::fs::File::create(path).unwrap()),
            None => Box::new(std::io::stderr()),
        };
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut sink));
        Self {
            child,
            addr,
            _watchdog: watchdog,
        }
    }

    /// The server process's pid.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// `POST /` with a JSON body; returns the status and the JSON answer.
    pub fn post(&self, body: &str) -> (u16, Value) {
        let reply = self.request("POST", "/", &[], body.as_bytes());
        (reply.status, reply.json())
    }

    /// `POST /` with `Authorization: Bearer TOKEN`.
    pub fn post_with_token(&self, token: &str, body: &str) -> Value {
        let auth = format!("Bearer {token}");
        self.request("POST", "/", &[("Authorization", &auth)], body.as_bytes())
            .json()
    }

    /// One request with `Host: ADDR` unless `headers` names another.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Reply {
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nContent-Length: {}\r\n",
            body.len()
        );
        if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
            head.push_str(&format!("Host: {}\r\n", self.addr));
        }
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        let mut raw = head.into_bytes();
        raw.extend_from_slice(body);
        self.raw(&raw)
    }

    /// Sends raw bytes and reads the response. The server may answer (413) and close
    /// before it has read everything, so a failed write or a reset after the answer
    /// is not an error.
    pub fn raw(&self, bytes: &[u8]) -> Reply {
        raw_request(&self.addr, bytes)
    }
}

/// Sends raw bytes to `addr` and reads the response (see [`Served::raw`]).
pub fn raw_request(addr: &str, bytes: &[u8]) -> Reply {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let _ = stream.write_all(bytes);
    let mut out = Vec::new();
    let mut buf = [0; 8192];
    while let Ok(n @ 1..) = stream.read(&mut buf) {
        out.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8(out).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .replace(' ', "")
            .starts_with("transfer-encoding:chunked")
    });
    let body = if chunked {
        unchunk(body)
    } else {
        body.to_string()
    };
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    Reply {
        status,
        head: head.to_string(),
        body,
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }
}

/// An HTTP response.
pub struct Reply {
    pub status: u16,
    /// The status line and headers.
    pub head: String,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    /// A header's value (name matched case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// The status page at `http://ADDR/` as headless Chromium renders it (after its
/// scripts ran), or None when Chromium is missing outside CI (the test then skips).
pub fn render_page(addr: &str) -> Option<String> {
    let chromium = std::path::Path::new("/usr/bin/chromium");
    if !chromium.exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but /usr/bin/chromium is missing (.ci/run installs it)"
        );
        eprintln!("NOTICE: /usr/bin/chromium is missing; skipping the status page test (apt-get install chromium)");
        return None;
    }
    let profile = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(["--virtual-time-budget=5000", "--dump-dom"])
        .arg(format!("http://{addr}/"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _watchdog = Watchdog::arm(child.id());
    let mut dom = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut dom).unwrap();
    assert!(child.wait().unwrap().success());
    Some(dom)
}

/// Raises this test process's soft limit on open files to its hard limit, for tests
/// that hold thousands of connections.
pub fn raise_open_files_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).unwrap();
}

/// Hostile slow clients: `count` connections to `addr` that each send the start of
/// a request head, then one more byte every `period`, reconnecting whenever the
/// server closes them, until dropped. Loopback only.
pub struct Tricklers {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Connections opened so far (reconnections included).
    pub opened: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Tricklers {
    pub fn start(addr: &str, count: usize, period: Duration) -> Self {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let addr: std::net::SocketAddr = addr.parse().unwrap();
        assert!(addr.ip().is_loopback());
        raise_open_files_limit();
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let opened = std::sync::Arc::new(AtomicUsize::new(0));
        let connect = {
            let opened = std::sync::Arc::clone(&opened);
            move || -> Option<std::net::TcpStream> {
                let mut stream =
                    std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
                std::io::Write::write_all(&mut stream, b"GET /api/status HTTP/1.1\r\nX-Slow: ")
                    .ok()?;
                stream.set_nonblocking(true).ok()?;
                opened.fetch_add(1, Ordering::SeqCst);
                Some(stream)
            }
        };
        let mut streams: Vec<Option<std::net::TcpStream>> = (0..count).map(|_| connect()).collect();
        let thread = {
            let stop = std::sync::Arc::clone(&stop);
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let round = std::time::Instant::now();
                    for slot in &mut streams {
                        let alive = slot
                            .as_mut()
                            .is_some_and(|s| std::io::Write::write(s, b"a").is_ok());
                        if !alive {
                            *slot = connect();
                        }
                    }
                    std::thread::sleep(period.saturating_sub(round.elapsed()));
                }
            })
        };
        Self {
            stop,
            thread: Some(thread),
            opened,
        }
    }
}

impl Drop for Tricklers {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// `GET path` on its own connection, which must be answered whole within `within`:
/// the status, or a panic naming what was late.
pub fn get_within(addr: &str, path: &str, within: Duration) -> u16 {
    use std::io::{Read, Write};
    let start = std::time::Instant::now();
    let mut stream = std::net::TcpStream::connect_timeout(&addr.parse().unwrap(), within)
        .unwrap_or_else(|e| panic!("GET {path}: connecting: {e}"));
    stream.set_read_timeout(Some(within)).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut answer = Vec::new();
    let mut buf = [0; 8192];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => panic!("GET {path}: no whole answer within {within:?}: {e}"),
        }
        assert!(
            start.elapsed() < within,
            "GET {path}: no whole answer within {within:?}"
        );
    }
    let text = String::from_utf8_lossy(&answer);
    text.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("GET {path}: not an HTTP answer: {text:?}"))
}

/// The peak resident memory of process `pid` (`VmHWM` of /proc/PID/status), in bytes.
pub fn peak_rss(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmHWM in /proc/{pid}/status"));
    kib * 1024
}

/// The body of a `Transfer-Encoding: chunked` answer (streamed answers are sent so):
/// each chunk is its size in hex, CRLF, the data, CRLF; a size of 0 ends it.
fn unchunk(body: &str) -> String {
    let (mut rest, mut out) = (body.as_bytes(), Vec::new());
    while let Some(end) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&rest[..end]).unwrap().trim();
        let size = usize::from_str_radix(size, 16)
            .unwrap_or_else(|e| panic!("bad chunk size {size:?}: {e}"));
        if size == 0 {
            break;
        }
        out.extend_from_slice(&rest[end + 2..end + 2 + size]);
        rest = &rest[end + 4 + size..];
    }
    String::from_utf8(out).unwrap()
}
