//! `bistro serve-http`: the REST API, the status page and metrics through the real
//! binary, over a raw TCP client so tests can also send what real clients would not
//! (a lying Content-Length, a foreign Host, idle connections).

use crate::util::*;
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;

/// The seed demo run to completion; each task prints `lines` stdout lines.
fn demo_done(env: &Env, lines: usize) {
    let task = env.script(
        "task.sh",
        &format!(
            "seq 1 {lines} | sed \"s/^/$1 line /\"\necho 'stderr is also logged' >&2\necho done > \"$2\""
        ),
    );
    env.ok(&["init"]);
    env.tick_until(&["--worker-command", task.to_str().unwrap()], |s| {
        all_done(s, "simple_job")
    });
}

/// Job `j` over the seed's nodes: node22 runs until the file `release` exists, the
/// others are done at once. Returns once three are done and node22 runs.
fn one_running(env: &Env) {
    let release = env.path("release");
    let task = env.script(
        "task.sh",
        &format!(
            "if [ \"$1\" = node22 ]; then while [ ! -e {} ] && [ -d {} ]; do sleep 0.05; done; fi\necho done > \"$2\"",
            release.display(),
            env.dir.path().display()
        ),
    );
    // A long backoff, so a killed node22 cannot start again while a test looks at it.
    env.config(&config_with_jobs(
        4,
        r#""bistro_job->j": {"owner": "me", "backoff": [3600, "fail"]}"#,
    ));
    env.tick_until(&["--worker-command", task.to_str().unwrap()], |s| {
        count(s, "j", "done") == 3 && count(s, "j", "running") == 1
    });
    // `status` shows finished runs as done before a tick records them; record them,
    // so only node22 is left in the running table.
    env.ok(&["tick", "--quiet"]);
}

/// Lets `one_running`'s task finish, so no process outlives the test.
fn release(env: &Env) {
    std::fs::write(env.path("release"), "").unwrap();
    env.tick_until(&[], |s| count(s, "j", "running") == 0);
}

fn token(env: &Env) -> String {
    std::fs::read_to_string(env.state().join("http.token")).unwrap()
}

/// Every sub-query of an envelope answer succeeded.
fn all_data(answer: &Value) -> bool {
    answer
        .as_object()
        .is_some_and(|o| o.values().all(|v| v.get("data").is_some()))
}

#[test]
fn the_readme_curl_examples_work_as_written() {
    let env = Env::new();
    demo_done(&env, 3);
    let served = Served::start(&env);
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let bodies: Vec<&str> = readme
        .lines()
        .filter_map(|l| l.trim().strip_prefix("curl -s -d '"))
        .filter_map(|l| {
            l.split_once("' http://127.0.0.1:6790/")
                .map(|(body, _)| body)
        })
        .collect();
    assert!(
        bodies.len() >= 2,
        "the README lost its curl examples: {bodies:?}"
    );
    for body in &bodies {
        let (status, answer) = served.post(body);
        assert_eq!(status, 200, "{body}");
        assert!(all_data(&answer), "{body} -> {answer}");
    }
    let (_, answer) = served.post(bodies[0]);
    assert_eq!(answer["a"]["data"]["simple_job"]["owner"], "test");
    assert_eq!(answer["b"]["data"], json!({}));
}

#[test]
fn every_read_handler_answers_on_the_seed_demo() {
    let env = Env::new();
    demo_done(&env, 1200);
    let served = Served::start(&env);
    let (status, a) = served.post(
        r#"{"prefs": {"ignored": true},
            "jobs": {"handler": "jobs", "jobs": ["simple_job", "no_such_job"]},
            "running": {"handler": "running_tasks"},
            "runtime": {"handler": "job_node_runtime"},
            "hist": {"handler": "histogram", "num_samples": 1},
            "nodes": {"handler": "nodes"},
            "one_node": {"handler": "nodes", "nodes": ["node11"], "fields": ["disabled"]},
            "bad_field": {"handler": "nodes", "fields": ["resources", "bogus"]},
            "names": {"handler": "sorted_node_names"},
            "errors": {"handler": "errors"},
            "refresh": {"handler": "refresh_time"}}"#,
    );
    assert_eq!(status, 200);
    assert!(a.get("prefs").is_none());
    let job = &a["jobs"]["data"]["simple_job"];
    assert_eq!(a["jobs"]["data"].as_object().unwrap().len(), 1);
    assert_eq!(job["owner"], "test");
    assert_eq!(job["level_for_tasks"], "level2");
    assert_eq!(job["enabled"], true);
    assert_eq!(job["kill_orphan_tasks_after_sec"], false);
    assert_eq!(job["kill_subprocess"]["method"], "term_wait_kill");
    assert_eq!(job["task_subprocess"]["process_group_leader"], true);
    assert_eq!(job["resources"], json!({"concurrency": 1}));
    assert_eq!(a["running"]["data"], json!({}));
    assert_eq!(a["runtime"]["data"], json!({}));
    assert_eq!(
        a["hist"]["data"]["histograms"],
        json!({"simple_job": {"instance": {"E": 1}, "level1": {"E": 2}, "level2": {"E": 4}}}),
        "every node is done (bit 4 = E), ancestors included"
    );
    assert_eq!(
        a["hist"]["data"]["samples"]["simple_job"]["level2"]["E"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let results = &a["nodes"]["data"]["results"];
    assert_eq!(
        results["level2"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        vec!["node11", "node12", "node21", "node22"]
    );
    assert_eq!(results["level2"]["node11"], json!({"resources": {}}));
    let instance = results["instance"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap();
    assert_eq!(
        instance["resources"]["concurrency"],
        json!({"default": 1, "limit": 3})
    );
    assert_eq!(
        a["one_node"]["data"]["results"],
        json!({"level2": {"node11": {}}}),
        "an enabled node has no disabled field"
    );
    assert_eq!(a["bad_field"]["error"], "Unknown field name: bogus");
    assert_eq!(
        a["names"]["data"]["level2"],
        json!(["node11", "node12", "node21", "node22"])
    );
    assert_eq!(a["names"]["data"]["level1"], json!(["node1", "node2"]));
    assert_eq!(a["errors"]["data"], json!({}));
    let last_tick = a["refresh"]["data"].as_i64().unwrap();
    assert!(last_tick > 1_600_000_000, "{last_tick}");

    // task_logs pages of at most 1000 lines until "-1", in both orders.
    for sort in ["asc", "desc"] {
        let mut ids: Vec<i64> = Vec::new();
        let mut line_id: Option<String> = None;
        let mut pages = 0;
        loop {
            let mut query = json!({"handler": "task_logs", "log_type": "stdout", "sort": sort,
                                   "jobs": ["simple_job"]});
            if let Some(id) = &line_id {
                query["line_id"] = json!(id);
            }
            let (_, answer) = served.post(&json!({ "logs": query }).to_string());
            let page = &answer["logs"]["data"];
            let lines = page["lines"]
                .as_array()
                .unwrap_or_else(|| panic!("{answer}"));
            assert!(lines.len() <= 1000);
            for line in lines {
                assert_eq!(line[0], "simple_job");
                assert!(line[2].as_i64().unwrap() >= last_tick - 3600);
                ids.push(line[4].as_str().unwrap().parse().unwrap());
            }
            pages += 1;
            let next = page["next_line_id"].as_str().unwrap().to_string();
            if next == "-1" {
                break;
            }
            line_id = Some(next);
        }
        assert_eq!(ids.len(), 4 * 1200, "{sort}: every line once");
        assert!(pages >= 5, "{sort}: {pages} pages");
        let ordered = ids.windows(2).all(|w| {
            if sort == "asc" {
                w[0] < w[1]
            } else {
                w[0] > w[1]
            }
        });
        assert!(ordered, "{sort}: ids in order");
    }
    let (_, answer) = served.post(
        r#"{"l": {"handler": "task_logs", "log_type": "stdout", "nodes": ["node11"],
                  "sort": "asc", "regex_filter": "line 7$"}}"#,
    );
    let lines = answer["l"]["data"]["lines"].as_array().unwrap().clone();
    assert_eq!(lines.len(), 1, "{answer}");
    assert_eq!(lines[0][1], "node11");
    assert_eq!(
        lines[0][3], "node11 line 7\n",
        "exact, as Bistro returns lines"
    );
    let (_, answer) =
        served.post(r#"{"l": {"handler": "task_logs", "log_type": "stderr", "sort": "asc"}}"#);
    assert_eq!(answer["l"]["data"]["lines"].as_array().unwrap().len(), 4);
    assert_eq!(
        answer["l"]["data"]["lines"][0][3],
        "stderr is also logged\n"
    );
}

#[test]
fn status_api_and_metrics_agree_with_the_cli() {
    let env = Env::new();
    demo_done(&env, 1);
    let served = Served::start(&env);
    let reply = served.request("GET", "/api/status", &[], b"");
    assert_eq!(reply.status, 200);
    let mut api = reply.json();
    let mut cli = env.status_json(&[]);
    api["now"] = json!(0);
    cli["now"] = json!(0);
    assert_eq!(api, cli);
    let with_tasks = served
        .request("GET", "/api/status?tasks=1", &[], b"")
        .json();
    assert_eq!(with_tasks["tasks"].as_array().unwrap().len(), 4);

    let metrics = served.request("GET", "/metrics", &[], b"");
    assert_eq!(metrics.status, 200);
    assert!(metrics
        .header("content-type")
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    for expected in [
        "# TYPE bistro_tasks gauge\n",
        "bistro_tasks{job=\"simple_job\",status=\"done\"} 4\n",
        "bistro_tasks{job=\"simple_job\",status=\"failed\"} 0\n",
        "\nbistro_running_tasks 0\n",
        "\nbistro_config_errors 0\n",
        "\nbistro_job_errors 0\n",
        "\nbistro_last_tick_timestamp_seconds ",
        "\nbistro_last_tick_duration_seconds ",
    ] {
        assert!(
            metrics.body.contains(expected),
            "no {expected:?} in\n{}",
            metrics.body
        );
    }
}

#[test]
fn a_running_task_is_listed_and_killed_only_with_the_token() {
    let env = Env::new();
    one_running(&env);
    let served = Served::start(&env);
    let (_, a) = served.post(
        r#"{"r": {"handler": "running_tasks", "jobs": ["j"]},
            "t": {"handler": "job_node_runtime"},
            "h": {"handler": "histogram"}}"#,
    );
    let task = &a["r"]["data"]["j"]["node22"];
    assert_eq!(task["worker_shard"], "local");
    assert!(task["start_time"].as_i64().unwrap() > 1_600_000_000);
    assert!(a["t"]["data"]["j"]["node22"].as_i64().unwrap() >= 0);
    assert_eq!(
        a["h"]["data"]["histograms"]["j"]["level2"],
        json!({"C": 1, "E": 3}),
        "running is bit 2 (C), done is bit 4 (E)"
    );
    assert_eq!(
        a["h"]["data"]["histograms"]["j"]["level1"],
        json!({"G": 1, "E": 1}),
        "node2 has a running and a done child: 2|4 = G"
    );

    let kill = r#"{"k": {"handler": "kill_task", "job_id": "j", "node_id": "node22"}}"#;
    let (_, refused) = served.post(kill);
    let message = refused["k"]["error"].as_str().unwrap();
    assert!(
        message.contains("Authorization: Bearer") && message.contains("none was sent"),
        "{message}"
    );
    let wrong = served.post_with_token("0123", kill);
    let message = wrong["k"]["error"].as_str().unwrap();
    assert!(
        message.contains("wrong") && !message.contains(&token(&env)),
        "{message}"
    );
    let unknown = served.post_with_token(
        &token(&env),
        r#"{"k": {"handler": "kill_task", "job_id": "j", "node_id": "node11"}}"#,
    );
    assert_eq!(
        unknown["k"]["error"], "Unknown running task j, node11",
        "{unknown}"
    );
    assert_eq!(
        served.post_with_token(&token(&env), kill)["k"]["data"],
        "signaled"
    );
    let status = env.tick_until(&[], |s| count(s, "j", "running") == 0);
    assert_eq!(count(&status, "j", "incomplete"), 1, "{status}");
}

#[test]
fn forgive_jobs_releases_failed_tasks_with_the_token() {
    let env = Env::new();
    let failed = run_single(&env, "echo failed > \"$2\"");
    assert_eq!(failed["status"], "failed");
    // `status` shows a finished run before a tick records it; record it.
    env.ok(&["tick", "--quiet"]);
    let served = Served::start(&env);
    let forgive = r#"{"f": {"handler": "forgive_jobs", "jobs": ["j"]}}"#;
    assert!(served.post(forgive).1["f"]["error"]
        .as_str()
        .unwrap()
        .contains("Authorization"));
    assert_eq!(env.task("j", "node11")["status"], "failed");
    assert_eq!(
        served.post_with_token(&token(&env), forgive)["f"]["data"],
        "forgiven"
    );
    assert_eq!(env.task("j", "node11")["status"], "error_backoff");
    let unknown = served.post_with_token(
        &token(&env),
        r#"{"f": {"handler": "forgive_jobs", "jobs": ["nope"]}}"#,
    );
    assert_eq!(unknown["f"]["error"], "Unknown job nope");
}

#[test]
fn replacing_the_token_file_rotates_the_token_without_a_restart() {
    let env = Env::new();
    env.config(&config_with_jobs(1, r#""bistro_job->j": {"owner": "me"}"#));
    env.ok(&["init"]);
    let served = Served::start(&env);
    let old = token(&env);
    let forgive = r#"{"f": {"handler": "forgive_jobs", "jobs": ["j"]}}"#;
    assert_eq!(
        served.post_with_token(&old, forgive)["f"]["data"],
        "forgiven"
    );
    let new = "ab".repeat(32);
    std::fs::write(env.state().join("http.token"), &new).unwrap();
    let refused = served.post_with_token(&old, forgive);
    assert!(
        refused["f"]["error"].as_str().unwrap().contains("wrong"),
        "{refused}"
    );
    assert_eq!(
        served.post_with_token(&new, forgive)["f"]["data"],
        "forgiven"
    );
}

#[test]
fn bad_input_is_refused_clearly_and_the_server_keeps_serving() {
    let env = Env::new();
    env.ok(&["init"]);
    let served = Served::start(&env);

    let (status, answer) = served.post("{not json");
    assert_eq!(status, 400);
    assert!(
        answer.as_str().unwrap().contains("not valid JSON"),
        "{answer}"
    );
    let (status, answer) = served.post("[1, 2]");
    assert_eq!(status, 400);
    assert!(
        answer.as_str().unwrap().contains("must be a JSON object"),
        "{answer}"
    );

    let (status, answer) = served.post(
        r#"{"bad": {"handler": "no_such_handler"}, "good": {"handler": "jobs"},
            "typed": {"handler": "jobs", "jobs": "simple_job"},
            "nohandler": {"jobs": []},
            "both": {"handler": "task_logs", "log_type": "stdout", "time": 1, "line_id": "1"},
            "numeric_id": {"handler": "task_logs", "log_type": "stdout", "line_id": 7},
            "columns": {"handler": "task_logs", "log_type": "stdout", "columns": ["line"]},
            "sort": {"handler": "task_logs", "log_type": "stdout", "sort": "sideways"},
            "table": {"handler": "task_logs", "log_type": "passwords"}}"#,
    );
    assert_eq!(status, 200);
    assert_eq!(answer["bad"]["error"], "Unknown handler: no_such_handler");
    assert!(answer["good"]["data"]["simple_job"].is_object(), "{answer}");
    assert!(answer["typed"]["error"]
        .as_str()
        .unwrap()
        .contains("jobs must be an array of strings"));
    assert!(answer["nohandler"]["error"]
        .as_str()
        .unwrap()
        .contains("handler"));
    assert_eq!(
        answer["both"]["error"],
        "Cannot specify both time and line_id"
    );
    assert!(answer["numeric_id"]["error"]
        .as_str()
        .unwrap()
        .contains("line_id must be"));
    assert_eq!(
        answer["columns"]["error"],
        "Custom columns are currently not supported."
    );
    assert_eq!(answer["sort"]["error"], "Unknown sort order: sideways");
    assert_eq!(
        answer["table"]["error"],
        "Unknown table for logs: passwords"
    );

    let huge = format!(
        "POST / HTTP/1.1\r\nHost: {}\r\nContent-Length: 1000000000000\r\n\r\n{{}}",
        served.addr
    );
    let reply = served.raw(huge.as_bytes());
    assert_eq!(reply.status, 413);
    assert!(reply.json()["error"]
        .as_str()
        .unwrap()
        .contains("larger than 1048576 bytes"));
    let big_body = vec![b' '; 2 << 20];
    assert_eq!(served.request("POST", "/", &[], &big_body).status, 413);
    assert_eq!(
        served.post(r#"{"a": {"handler": "jobs"}}"#).0,
        200,
        "still serving"
    );

    let foreign = served.request(
        "POST",
        "/",
        &[
            ("Host", "evil.example"),
            ("Authorization", &format!("Bearer {}", token(&env))),
        ],
        br#"{"a": {"handler": "jobs"}}"#,
    );
    assert_eq!(foreign.status, 403);
    assert!(foreign.json()["error"]
        .as_str()
        .unwrap()
        .contains("DNS rebinding"));
    for host in ["localhost", "[::1]", "127.0.0.1"] {
        let port = served.addr.rsplit(':').next().unwrap();
        let host = format!("{host}:{port}");
        let reply = served.request("GET", "/", &[("Host", &host)], b"");
        assert_eq!(reply.status, 200, "Host {host}");
    }

    let missing = served.request("GET", "/no/such/route", &[], b"");
    assert_eq!(missing.status, 404);
    assert!(missing.json()["error"]
        .as_str()
        .unwrap()
        .contains("/no/such/route"));
    let wrong_method = served.request("DELETE", "/api", &[], b"");
    assert_eq!(wrong_method.status, 405);
    assert_eq!(wrong_method.header("allow"), Some("POST"));
    assert!(wrong_method.json()["error"]
        .as_str()
        .unwrap()
        .contains("DELETE"));
    assert_eq!(served.request("POST", "/metrics", &[], b"").status, 405);
    assert_eq!(served.raw(b"garbage\r\n\r\n").status, 400);

    let page = served.request("GET", "/", &[], b"");
    assert_eq!(page.status, 200);
    assert!(page.header("content-security-policy").is_some());
    for reply in [&page, &foreign, &missing] {
        assert!(
            reply.header("access-control-allow-origin").is_none(),
            "no CORS"
        );
    }
    assert_eq!(
        served.post(r#"{"a": {"handler": "jobs"}}"#).0,
        200,
        "still serving"
    );
}

#[test]
fn cross_origin_pages_and_oversized_envelopes_are_refused() {
    let env = Env::new();
    env.ok(&["init"]);
    let served = Served::start(&env);
    let body = br#"{"a": {"handler": "jobs"}}"#;
    let port = served.addr.rsplit(':').next().unwrap();
    for origin in [
        "http://evil.example",
        "null",
        &format!("http://evil.example:{port}"),
    ] {
        let reply = served.request(
            "POST",
            "/",
            &[("Origin", origin), ("Content-Type", "text/plain")],
            body,
        );
        assert_eq!(reply.status, 403, "Origin {origin}");
        let error = reply.json()["error"].as_str().unwrap().to_string();
        assert!(
            error.contains("Origin") && error.contains(origin),
            "{error}"
        );
    }
    for origin in [
        format!("http://{}", served.addr),
        format!("http://localhost:{port}"),
    ] {
        let reply = served.request("POST", "/", &[("Origin", &origin)], body);
        assert_eq!(reply.status, 200, "same-origin {origin}");
    }

    let queries: serde_json::Map<String, Value> = (0..65)
        .map(|i| {
            (
                format!("q{i}"),
                json!({"handler": "task_logs", "log_type": "stdout"}),
            )
        })
        .collect();
    let (status, answer) = served.post(&Value::Object(queries).to_string());
    assert_eq!(status, 400);
    let message = answer.as_str().unwrap();
    assert!(
        message.contains("65 queries") && message.contains("at most 64"),
        "{message}"
    );
}

#[test]
fn requests_answer_from_stored_nodes_and_never_run_node_sources() {
    let env = Env::new();
    let ledger = env.path("node_runs");
    let script = env.script(
        "nodes.sh",
        &format!("echo run >> {}\necho db1\necho db2", ledger.display()),
    );
    let config = |timeout: u32| {
        format!(
            r#"{{"bistro_settings": {{"enabled": true, "resources": {{}}, "nodes": {{"levels": ["db"],
                 "node_sources": [{{"source": "script", "prefs": {{"parent_level": "instance",
                   "script": "{}", "timeout_sec": {timeout}}}}}]}}}},
                "bistro_job->j": {{"owner": "me"}}}}"#,
            script.display()
        )
    };
    let runs = || std::fs::read_to_string(&ledger).map_or(0, |t| t.lines().count());
    env.config(&config(10));
    env.ok(&["init"]);
    let served = Served::start(&env);
    let ask = || {
        served
            .post(
                r#"{"n": {"handler": "nodes"}, "s": {"handler": "sorted_node_names"},
                    "h": {"handler": "histogram"}, "e": {"handler": "errors"},
                    "j": {"handler": "jobs"}}"#,
            )
            .1
    };
    let not_fetched = |when: &str| {
        let a = ask();
        for key in ["n", "s", "h"] {
            let error = a[key]["error"]
                .as_str()
                .unwrap_or_else(|| panic!("{when}: {a}"));
            assert!(
                error.contains("has not fetched nodes for this config"),
                "{when}: {error}"
            );
        }
        assert!(a["e"]["data"]["bistro_settings.nodes"]
            .as_str()
            .unwrap()
            .contains("has not fetched nodes"));
        assert_eq!(a["j"]["data"]["j"]["owner"], "me", "{when}: {a}");
        for path in ["/api/status", "/metrics"] {
            let reply = served.request("GET", path, &[], b"");
            assert_eq!(reply.status, 503, "{when}: {path}");
            assert!(
                reply.body.contains("has not fetched nodes"),
                "{}",
                reply.body
            );
        }
    };
    not_fetched("before any tick");
    assert_eq!(runs(), 0, "a request ran the node source");

    let task = env.script("task.sh", "echo done > \"$2\"");
    env.ok(&["tick", "--worker-command", task.to_str().unwrap()]);
    assert_eq!(runs(), 1);
    let a = ask();
    assert_eq!(a["s"]["data"]["db"], json!(["db1", "db2"]), "{a}");
    assert_eq!(
        a["n"]["data"]["results"]["db"].as_object().unwrap().len(),
        2
    );
    assert!(a["e"]["data"].get("bistro_settings.nodes").is_none(), "{a}");
    for path in ["/api/status", "/metrics"] {
        assert_eq!(served.request("GET", path, &[], b"").status, 200, "{path}");
    }
    assert_eq!(runs(), 1);

    env.config(&config(20));
    not_fetched("after the node sources changed");
    assert_eq!(runs(), 1, "a request ran the node source");
}

#[test]
fn allow_host_adds_names_for_host_and_origin() {
    let env = Env::new();
    env.ok(&["init"]);
    let bad = env.run(&[
        "serve-http",
        "--listen",
        "127.0.0.1:0",
        "--allow-host",
        "a b",
    ]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--allow-host \"a b\""));
    let served = Served::start_with(
        &env,
        &[
            "serve-http",
            "--listen",
            "127.0.0.1:0",
            "--allow-host",
            "bistro.example",
            "--allow-host",
            "Proxy.Example:8443",
        ],
    );
    let port = served.addr.rsplit(':').next().unwrap();
    let get = |headers: &[(&str, &str)]| served.request("GET", "/", headers, b"").status;
    for host in [
        format!("bistro.example:{port}"),
        "bistro.example".to_string(),
        "proxy.example:8443".to_string(),
    ] {
        assert_eq!(get(&[("Host", &host)]), 200, "Host {host}");
        let origin = format!("http://{host}");
        assert_eq!(get(&[("Origin", &origin)]), 200, "Origin {origin}");
    }
    for host in [
        format!("proxy.example:{port}"),
        format!("evil.example:{port}"),
    ] {
        assert_eq!(get(&[("Host", &host)]), 403, "Host {host}");
        let origin = format!("http://{host}");
        assert_eq!(get(&[("Origin", &origin)]), 403, "Origin {origin}");
    }
}

#[test]
fn idle_connections_do_not_stop_a_request_from_being_answered() {
    let env = Env::new();
    env.ok(&["init"]);
    let served = Served::start(&env);
    let mut idle: Vec<std::net::TcpStream> = (0..20)
        .map(|_| std::net::TcpStream::connect(&served.addr).unwrap())
        .collect();
    for stream in idle.iter_mut().take(5) {
        std::io::Write::write_all(stream, b"POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\n{")
            .unwrap();
    }
    let (status, answer) = served.post(r#"{"a": {"handler": "jobs"}}"#);
    assert_eq!(status, 200);
    assert!(all_data(&answer), "{answer}");
}

#[test]
fn save_job_and_delete_job_edit_the_config_atomically_with_a_backup() {
    let env = Env::new();
    env.ok(&["init"]);
    let served = Served::start(&env);
    let token_file = env.state().join("http.token");
    let mode = std::fs::metadata(&token_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the token file is private");
    assert_eq!(token(&env).trim().len(), 64);

    let config = env.state().join("config.json");
    let backup = env.state().join("config.json.bak");
    let original = std::fs::read_to_string(&config).unwrap();
    let save = r#"{"s": {"handler": "save_job", "job_id": "new_job",
                          "job": {"owner": "me", "enabled": false, "priority": 2}}}"#;
    assert!(served.post(save).1["s"]["error"]
        .as_str()
        .unwrap()
        .contains("Authorization"));
    assert_eq!(
        std::fs::read_to_string(&config).unwrap(),
        original,
        "refused: untouched"
    );

    assert_eq!(
        served.post_with_token(&token(&env), save)["s"]["data"],
        "saved"
    );
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    assert_eq!(saved["bistro_job->new_job"]["owner"], "me");
    assert_eq!(
        saved["bistro_job->simple_job"]["owner"], "test",
        "other jobs are kept"
    );
    assert_eq!(std::fs::read_to_string(&backup).unwrap(), original);
    let (_, jobs) = served.post(r#"{"j": {"handler": "jobs", "jobs": ["new_job"]}}"#);
    assert_eq!(jobs["j"]["data"]["new_job"]["priority"], 2.0);
    assert_eq!(jobs["j"]["data"]["new_job"]["enabled"], false);

    let after_save = std::fs::read_to_string(&config).unwrap();
    let bad = served.post_with_token(
        &token(&env),
        r#"{"s": {"handler": "save_job", "job_id": "broken",
                  "job": {"owner": "me", "priority": "high", "level_for_tasks": "nope"}}}"#,
    );
    let message = bad["s"]["error"].as_str().unwrap();
    assert!(
        message.contains("broken")
            && message.contains("priority")
            && message.contains("level_for_tasks"),
        "{message}"
    );
    assert_eq!(
        std::fs::read_to_string(&config).unwrap(),
        after_save,
        "a bad job leaves the file alone"
    );
    let not_object = served.post_with_token(
        &token(&env),
        r#"{"s": {"handler": "save_job", "job_id": "x", "job": [1]}}"#,
    );
    assert!(not_object["s"]["error"]
        .as_str()
        .unwrap()
        .contains("job must be a JSON object"));

    let delete = r#"{"d": {"handler": "delete_job", "job_id": "new_job"}}"#;
    assert_eq!(
        served.post_with_token(&token(&env), delete)["d"]["data"],
        "deleted"
    );
    let deleted: Value = serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    assert!(deleted.get("bistro_job->new_job").is_none());
    assert_eq!(std::fs::read_to_string(&backup).unwrap(), after_save);
    assert_eq!(
        served.post_with_token(&token(&env), delete)["d"]["error"],
        "Unknown job new_job"
    );
    let leftovers: Vec<String> = std::fs::read_dir(env.state())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    env.ok(&["check"]);
}

#[test]
fn save_job_edits_a_symlinked_config_through_its_target() {
    let env = Env::new();
    let real_dir = env.path("configs");
    std::fs::create_dir(&real_dir).unwrap();
    let real = real_dir.join("bistro.json");
    std::fs::write(
        &real,
        config_with_jobs(1, r#""bistro_job->old": {"owner": "me"}"#),
    )
    .unwrap();
    std::fs::create_dir_all(env.state()).unwrap();
    let link = env.state().join("config.json");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    env.ok(&["init"]);
    let original = std::fs::read_to_string(&real).unwrap();
    let served = Served::start(&env);
    let saved = served.post_with_token(
        &token(&env),
        r#"{"s": {"handler": "save_job", "job_id": "new", "job": {"owner": "me"}}}"#,
    );
    assert_eq!(saved["s"]["data"], "saved", "{saved}");
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink(),
        "the symlink was replaced by a file"
    );
    let edited: Value = serde_json::from_str(&std::fs::read_to_string(&real).unwrap()).unwrap();
    assert_eq!(edited["bistro_job->new"]["owner"], "me");
    assert_eq!(edited["bistro_job->old"]["owner"], "me");
    assert_eq!(
        std::fs::read_to_string(real_dir.join("bistro.json.bak")).unwrap(),
        original,
        "the backup is beside the real file"
    );
    let mut beside_real: Vec<String> = std::fs::read_dir(&real_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    beside_real.sort();
    assert_eq!(
        beside_real,
        vec!["bistro.json", "bistro.json.bak", "bistro.json.lock"],
        "no temporary is left"
    );
    assert!(!env.state().join("config.json.bak").exists());
}

#[test]
fn serve_http_refuses_bad_addresses_remote_addresses_and_taken_ports() {
    let env = Env::new();
    let no_state = env.run(&["serve-http", "--listen", "127.0.0.1:0"]);
    assert_eq!(no_state.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&no_state.stderr).contains("bistro init"));
    env.ok(&["init"]);
    let bad = env.run(&["serve-http", "--listen", "not-an-address"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not-an-address"));
    let remote = env.run(&["serve-http", "--listen", "0.0.0.0:0"]);
    assert_eq!(remote.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&remote.stderr).contains("--allow-remote"));
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let busy = env.run(&["serve-http", "--listen", &addr]);
    assert_eq!(busy.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&busy.stderr).contains(&addr));
}

#[test]
fn the_status_page_shows_jobs_and_running_tasks_in_headless_chromium() {
    let env = Env::new();
    one_running(&env);
    let served = Served::start(&env);
    let Some(dom) = render_page(&served.addr) else {
        return;
    };
    release(&env);
    let jobs = dom
        .split("<tbody id=\"jobs\">")
        .nth(1)
        .and_then(|rest| rest.split("</tbody>").next())
        .unwrap_or_else(|| panic!("no jobs table in\n{dom}"));
    for expected in [
        "<tr data-job=\"j\"><td>j</td><td>me</td><td>enabled</td>",
        "data-count=\"done\">3</td>",
        "data-count=\"running\">1</td>",
        "data-count=\"total\">4</td>",
        "75% done",
    ] {
        assert!(
            jobs.contains(expected),
            "no {expected:?} in the rendered jobs:\n{jobs}"
        );
    }
    let running = dom
        .split("<tbody id=\"running\">")
        .nth(1)
        .and_then(|rest| rest.split("</tbody>").next())
        .unwrap();
    assert!(
        running.contains("<td>j</td><td>node22</td>"),
        "no running task in:\n{running}"
    );
    assert!(
        dom.contains("<strong id=\"enabled\">enabled</strong>"),
        "{dom}"
    );
    assert!(dom.contains("No errors."));
}

#[test]
fn errors_shows_why_the_scheduler_could_not_fetch_nodes() {
    let env = Env::new();
    let script = env.script("nodes.sh", "echo 'inventory is down' >&2\nexit 3");
    env.config(&format!(
        r#"{{"bistro_settings": {{"enabled": true, "nodes": {{"levels": ["db"], "node_sources": [
              {{"source": "script", "prefs": {{"parent_level": "instance", "script": "{}"}}}}]}},
              "resources": {{}}}},
            "bistro_job->j": {{"owner": "me"}}}}"#,
        script.display()
    ));
    assert_eq!(
        env.run(&["tick", "--worker-command", "true"]).status.code(),
        Some(1)
    );
    let served = Served::start(&env);
    let (_, a) = served.post(r#"{"e": {"handler": "errors"}}"#);
    let message = a["e"]["data"]["bistro_settings.nodes"]
        .as_str()
        .unwrap_or_default();
    assert!(message.contains("inventory is down"), "{a}");
}
