//! The HTTP server against hostile local clients (issue 15), through the real binary
//! on loopback, bounded in count and time: slow connections, clients that never read
//! a large answer, costly regex filters, and ambiguous headers. Each asserts the
//! server stays up, answers `GET /api/status` within its 1 s deadline, and stays
//! under its memory bound.

use crate::util::*;
use serde_json::{json, Value};
use std::io::Write;
use std::time::{Duration, Instant};

/// How fast `GET /api/status` must be answered whatever other clients do.
const STATUS_DEADLINE: Duration = Duration::from_secs(1);

/// A state whose nodes are stored, so `/api/status` answers 200, served.
fn served(env: &Env) -> Served {
    env.ok(&["init"]);
    env.ok(&["tick", "--quiet", "--worker-command", "/bin/true"]);
    let served = Served::start(env);
    assert_eq!(get_within(&served.addr, "/api/status", DEADLINE), 200);
    served
}

/// `lines` stdout lines of `bytes` bytes each (random `a`s and `b`s after the line's
/// number) for job `simple_job` on node `n`, written straight into the state's log
/// database.
fn big_log(env: &Env, lines: usize, bytes: usize) {
    use bistro::storage::store::{LogKind, LogLine, LogStore};
    let state = bistro::storage::state::StateDir::new(env.state());
    let mut store = LogStore::open(&state.logs_db()).unwrap();
    for batch in (0..lines).collect::<Vec<_>>().chunks(100) {
        let rows: Vec<LogLine> = batch
            .iter()
            .map(|i| LogLine {
                kind: LogKind::Stdout,
                job: "simple_job".into(),
                node: "n".into(),
                time: 1_700_000_000,
                line: format!("{i:06} {}", letters(*i as u64, bytes - 7)),
            })
            .collect();
        store.append(&rows).unwrap();
    }
}

/// `len` pseudo-random `a`s and `b`s (xorshift, seeded by `seed`).
fn letters(seed: u64, len: usize) -> String {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if x & 1 == 0 {
                'a'
            } else {
                'b'
            }
        })
        .collect()
}

/// Probes `GET /api/status` every 100 ms for `how_long`: each must be 200 within
/// [`STATUS_DEADLINE`]. Returns how many were made.
fn status_keeps_answering(addr: &str, how_long: Duration) -> usize {
    let start = Instant::now();
    let mut probes = 0;
    while start.elapsed() < how_long {
        assert_eq!(
            get_within(addr, "/api/status", STATUS_DEADLINE),
            200,
            "probe {probes}"
        );
        probes += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    probes
}

#[test]
fn two_thousand_slow_connections_neither_delay_nor_refuse_the_status() {
    let env = Env::new();
    let served = served(&env);
    let slow = Tricklers::start(&served.addr, 2000, Duration::from_millis(500));
    // Past the 10 s head deadline, so the server also cuts and accepts them again.
    let probes = status_keeps_answering(&served.addr, Duration::from_secs(12));
    assert!(probes >= 10, "{probes}");
    let opened = slow.opened.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        opened > 2000,
        "the server cut slow connections at its head deadline and they came back: {opened}"
    );
    drop(slow);
    assert_eq!(served.post(r#"{"a": {"handler": "jobs"}}"#).0, 200);
}

#[test]
fn clients_that_never_read_a_60_mb_log_keep_the_server_under_300_mib() {
    let env = Env::new();
    let served = served(&env);
    big_log(&env, 1000, 60_000);
    let body = r#"{"a": {"handler": "task_logs", "log_type": "stdout"}}"#;
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n\r\n{body}",
        served.addr,
        body.len()
    );
    let stalled: Vec<std::net::TcpStream> = (0..25)
        .map(|_| {
            let mut stream = std::net::TcpStream::connect(&served.addr).unwrap();
            stream.write_all(request.as_bytes()).unwrap();
            stream
        })
        .collect();
    status_keeps_answering(&served.addr, Duration::from_secs(4));
    let peak = peak_rss(served.pid());
    eprintln!(
        "peak server RSS with 25 stalled 60 MB answers: {} MiB",
        peak >> 20
    );
    assert!(
        peak < 300 << 20,
        "peak RSS {} MiB with 25 clients not reading",
        peak >> 20
    );
    drop(stalled);
    // A reader gets every line, in pages that end at the page size or at the
    // request's time budget, each going on from where the last one ended.
    let mut seen = Vec::new();
    let mut next = "-1".to_string();
    loop {
        let query = json!({"a": {"handler": "task_logs", "log_type": "stdout",
                                 "sort": "asc", "line_id": next}});
        let (status, answer) = served.post(&query.to_string());
        assert_eq!(status, 200, "{answer}");
        let page = &answer["a"]["data"];
        for line in page["lines"].as_array().unwrap() {
            seen.push(line[3].as_str().unwrap()[..6].to_string());
        }
        next = page["next_line_id"].as_str().unwrap().to_string();
        if next == "-1" {
            break;
        }
    }
    let expected: Vec<String> = (0..1000).map(|i| format!("{i:06}")).collect();
    assert_eq!(seen, expected);
}

#[test]
fn costly_regex_filters_end_within_their_budget_and_never_hold_up_the_status() {
    let env = Env::new();
    let served = served(&env);
    big_log(&env, 1000, 20_000);
    let queries = |regex: &str| -> String {
        let all: serde_json::Map<String, Value> = (0..64)
            .map(|i| {
                (
                    format!("q{i}"),
                    json!({"handler": "task_logs", "log_type": "stdout", "regex_filter": regex}),
                )
            })
            .collect();
        Value::Object(all).to_string()
    };
    // Refused at compile time by the size limit.
    let (status, answer) = served.post(&queries(r"\W{100}\w{100}"));
    assert_eq!(status, 200);
    let error = answer["q0"]["error"].as_str().unwrap();
    assert!(error.contains("compiles to more than"), "{error}");
    // Within the size limit, but its DFA has too many states to cache, so matching
    // is slow over 20 MB of `a`s and `b`s: the request's time budget ends it.
    let costly = queries(r"(?-u)a[ab]{20}c");
    let runs: Vec<_> = (0..4)
        .map(|_| {
            let (served_addr, costly) = (served.addr.clone(), costly.clone());
            std::thread::spawn(move || {
                let start = Instant::now();
                let reply = post_raw(&served_addr, &costly);
                (reply, start.elapsed())
            })
        })
        .collect();
    status_keeps_answering(&served.addr, Duration::from_secs(3));
    for run in runs {
        let (answer, took) = run.join().unwrap();
        assert!(
            took < Duration::from_secs(20),
            "the 5 s budget (plus queueing) ended it: {took:?}"
        );
        let last = answer["q63"]["error"].as_str().unwrap_or_default();
        assert!(last.starts_with("out of time"), "{last}");
    }
}

/// `POST /` of `body` to `addr`, read whole.
fn post_raw(addr: &str, body: &str) -> Value {
    let raw = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    raw_request(addr, raw.as_bytes()).json()
}

#[test]
fn two_hosts_two_origins_and_a_signed_length_are_refused() {
    let env = Env::new();
    let served = served(&env);
    let body = br#"{"a": {"handler": "jobs"}}"#;
    for (header, evil) in [("Host", "evil.example"), ("Origin", "http://evil.example")] {
        let good = if header == "Host" {
            served.addr.clone()
        } else {
            format!("http://{}", served.addr)
        };
        let reply = served.request("POST", "/", &[(header, &good), (header, evil)], body);
        assert_eq!(reply.status, 400, "{header}");
        let error = reply.json()["error"].as_str().unwrap().to_string();
        assert!(error.contains("more than one"), "{error}");
    }
    let raw = format!(
        "POST / HTTP/1.1\r\nHost: {}\r\nContent-Length: +26\r\n\r\n{}",
        served.addr,
        String::from_utf8_lossy(body)
    );
    assert_eq!(served.raw(raw.as_bytes()).status, 400);
    assert_eq!(served.post(&String::from_utf8_lossy(body)).0, 200);
}

#[test]
fn many_clients_sending_large_bodies_slowly_wait_outside_the_server_s_memory() {
    let env = Env::new();
    let served = served(&env);
    raise_open_files_limit();
    // 300 bodies of 1 MiB declared, each sent up to half and then held: read whole,
    // they would take 150 MiB of the server's memory.
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n\r\n",
        served.addr,
        1 << 20
    );
    let mut senders: Vec<(std::net::TcpStream, usize)> = (0..300)
        .map(|_| {
            let mut stream = std::net::TcpStream::connect(&served.addr).unwrap();
            stream.write_all(head.as_bytes()).unwrap();
            stream.set_nonblocking(true).unwrap();
            (stream, 0)
        })
        .collect();
    let chunk = vec![b' '; 64 << 10];
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(4) {
        for (stream, sent) in &mut senders {
            if *sent < 512 << 10 {
                if let Ok(n) = stream.write(&chunk[..chunk.len().min((512 << 10) - *sent)]) {
                    *sent += n;
                }
            }
        }
        assert_eq!(
            get_within(&served.addr, "/api/status", STATUS_DEADLINE),
            200
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let sent: usize = senders.iter().map(|(_, n)| n).sum();
    let peak = peak_rss(served.pid());
    assert!(
        peak < 100 << 20,
        "peak RSS {} MiB with {} MiB of bodies sent",
        peak >> 20,
        sent >> 20
    );
    drop(senders);
    assert_eq!(served.post(r#"{"a": {"handler": "jobs"}}"#).0, 200);
}
