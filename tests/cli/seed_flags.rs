//! A user following Bistro's getting-started text: its flag names are answered with
//! ours, and a worker started in its scheduler's state dir is told to give itself
//! its own.

use crate::util::*;

#[test]
fn the_seed_s_scheduler_and_worker_flags_are_refused_with_the_names_bistro_uses() {
    let env = Env::new();
    let out = env.run(&[
        "daemon",
        "--server_port=6789",
        "--http_server_port=6790",
        "--config_file=scripts/test_configs/simple",
        "--clean_statuses",
        "--CAUTION_startup_wait_for_workers=1",
        "--instance_node_name=scheduler",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for said in [
        "bistro uses `daemon --http HOST:PORT` for Bistro's --server_port",
        "bistro uses `daemon --http HOST:PORT` for Bistro's --http_server_port",
        "bistro uses --config FILE for Bistro's --config_file",
        "bistro uses --clean-statuses for Bistro's --clean_statuses",
        "bistro uses --caution-startup-wait-for-workers for Bistro's --CAUTION_startup_wait_for_workers",
        "bistro uses --instance-node-name for Bistro's --instance_node_name",
    ] {
        assert!(stderr.contains(said), "{said:?} not in {stderr}");
    }
    let out = env.run(&[
        "worker",
        "--scheduler_host=::",
        "--scheduler_port=6789",
        "--worker_command=task.sh",
        "--data_dir=/tmp/bistro_worker",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for said in [
        "bistro uses `worker --scheduler http://HOST:PORT` for Bistro's --scheduler_host",
        "bistro uses `worker --scheduler http://HOST:PORT` for Bistro's --scheduler_port",
        "bistro uses --worker-command for Bistro's --worker_command",
        "bistro uses --state-dir DIR for Bistro's --data_dir",
    ] {
        assert!(stderr.contains(said), "{said:?} not in {stderr}");
    }
}

#[test]
fn a_worker_in_its_scheduler_s_state_dir_is_told_to_use_its_own() {
    let env = Env::new();
    env.config(&config_with_jobs(1, r#""bistro_job->j": {"owner": "me"}"#));
    let _scheduler = Served::start_with(
        &env,
        &[
            "daemon",
            "--http",
            "127.0.0.1:0",
            "--instance-node-name",
            "scheduler",
        ],
    );
    let token = env.state().join("worker.token");
    let out = env.run(&[
        "worker",
        "--scheduler",
        "127.0.0.1:1",
        "--token-file",
        token.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "not 75: trying again would not help"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "a worker needs a state dir of its own (Bistro's --data_dir): pass --state-dir DIR"
        ),
        "{stderr}"
    );
}
