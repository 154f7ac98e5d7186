//! `status` counts from the status tallies unless task rows are asked for; both ways
//! must give the same counts.

use crate::util::Env;
use serde_json::{json, Value};

/// Nodes with replicas (`shared`), a disabled host and db, jobs at both levels, with
/// filters, disabled and invalid.
const CONFIG: &str = r#"{"bistro_settings": {"enabled": true,
  "nodes": {"levels": ["host", "db"], "node_sources": [{"source": "manual", "prefs": {
     "host1": ["a1", "a2", "shared"], "host2": ["b1", "shared"],
     "host3": {"children": ["c1"], "disabled": true}, "host4": ["d1", "d2"],
     "d2": {"disabled": true}}}]},
  "resources": {"instance": {"slots": {"limit": 4, "default": 1}}}, "backoff": [5, "fail"]},
 "bistro_job->jdb": {"owner": "o"},
 "bistro_job->jfilt": {"owner": "o", "filters": {"db": {"blacklist": ["a2", "shared"]}, "host": {"whitelist": ["host1", "host3"]}}},
 "bistro_job->joff": {"owner": "o", "enabled": false},
 "bistro_job->jhost": {"owner": "o", "level_for_tasks": "host"},
 "bistro_job->jbad": {"owner": "o", "filters": {"no_such_level": {}}}}"#;

const NOW: i64 = 1_000_000;

/// Stores a status of every kind (with backoffs ending before and after NOW) for
/// each job on the nodes, gone nodes and hosts, plus a job not in the config; and
/// running tasks, one of them finished but not recorded.
fn seed(env: &Env) {
    let db = rusqlite::Connection::open(env.state().join("statuses.sql3")).unwrap();
    let kinds: [(u32, i64); 8] = [
        (4, 0),
        (8, 0),
        (96, 50),
        (96, 5),
        (16, 0),
        (32, 0),
        (2, 0),
        (1056, 30),
    ];
    let nodes = [
        "a1", "a2", "shared", "b1", "c1", "d1", "d2", "gone", "host1", "host4",
    ];
    let mut i = 0;
    for job in ["jdb", "jfilt", "joff", "jhost", "jbad", "ghost"] {
        for node in nodes {
            i += 1;
            if i % 5 == 0 {
                continue;
            }
            let (bits, backoff) = kinds[i % kinds.len()];
            db.execute(
                "INSERT INTO task_statuses (job, node, bits, time, backoff, data, attempts)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                rusqlite::params![
                    job,
                    node,
                    bits,
                    NOW - 10,
                    backoff,
                    r#"{"exception": "x"}"#,
                    i % 3
                ],
            )
            .unwrap();
        }
    }
    let running = [
        ("jdb", "a1", None),
        ("jdb", "gone", None),
        ("ghost", "b1", None),
        ("jhost", "host2", None),
        (
            "jfilt",
            "a1",
            Some(json!({"bits": 4, "data": null, "time": NOW - 2, "backoff": 0})),
        ),
    ];
    for (rand, (job, node, result)) in running.into_iter().enumerate() {
        let invocation = format!("{}-{rand:016x}", NOW - 5);
        let task = json!({"job": job, "node": node, "invocation": {"start_time": NOW - 5, "rand": rand},
            "charges": [], "next_backoff": {"seconds": 5, "no_more": false}, "attempts": 1,
            "worker_shard": "local"});
        db.execute(
            "INSERT INTO running_tasks (job, node, invocation, task) VALUES (?1, ?2, ?3, ?4)",
            rusqlite::params![job, node, invocation, task.to_string()],
        )
        .unwrap();
        let dir = env.state().join("running").join(&invocation);
        std::fs::create_dir_all(&dir).unwrap();
        if let Some(status) = result {
            let result = json!({"status": status, "exit": "exited with status 0", "killed": false,
                "stop_signal": null, "end_time": NOW - 2});
            std::fs::write(dir.join("result.json"), result.to_string()).unwrap();
        }
    }
}

/// `status --json` with ARGS, and the same from the task rows (`--tasks`, rows dropped).
fn both(env: &Env, args: &[&str]) -> (Value, Value) {
    let status = |extra: &[&str]| -> Value {
        let mut all = vec!["status", "--json"];
        all.extend_from_slice(args);
        all.extend_from_slice(extra);
        let out = env
            .cmd(&all)
            .env("BISTRO_FAKE_NOW", NOW.to_string())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let mut rows = status(&["--tasks"]);
    rows.as_object_mut().unwrap().remove("tasks");
    (status(&[]), rows)
}

#[test]
fn status_counts_without_rows_what_the_rows_count() {
    let env = Env::new();
    env.config(CONFIG);
    env.ok(&["init"]);
    seed(&env);
    let (counted, from_rows) = both(&env, &[]);
    assert_eq!(counted, from_rows);
    // A run, and a stored status of a running task.
    let jdb = &counted["jobs"][1];
    assert_eq!(
        (&jdb["name"], &jdb["counts"]["running"]),
        (&json!("jdb"), &json!(2)),
        "{counted}"
    );
    assert_eq!(counted["orphans"].as_array().unwrap().len(), 2, "{counted}");
    for job in ["jdb", "jfilt", "jhost"] {
        let (counted, from_rows) = both(&env, &["--job", job]);
        assert_eq!(counted, from_rows, "--job {job}");
    }
    // A replace by a writer without recursive triggers leaves the tallies off: the
    // counts come from the rows then.
    rusqlite::Connection::open(env.state().join("statuses.sql3"))
        .unwrap()
        .execute(
            "INSERT OR REPLACE INTO task_statuses (job, node, bits, time) VALUES ('jdb', 'b1', 16, 1)",
            [],
        )
        .unwrap();
    let (counted, from_rows) = both(&env, &[]);
    assert_eq!(counted, from_rows);
}
