//! Refusals say their true cause and leave nothing behind: usage errors exit 2, an
//! unreadable state dir says "permission denied" with its path, a daemon refused its
//! address creates no state dir.

use crate::util::*;

#[test]
fn a_manpage_for_no_subcommand_is_a_usage_error() {
    let env = Env::new();
    let out = env.run(&["manpage", "nosuch"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no subcommand \"nosuch\""), "{stderr}");
}

#[test]
fn a_daemon_refused_its_http_address_creates_no_state_dir() {
    let env = Env::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = env.run(&["daemon", "--worker-command", "true", "--http", &addr]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&addr) && stderr.contains("in use"),
        "{stderr}"
    );
    assert!(
        !env.state().exists(),
        "the refused start created its state dir"
    );
}

#[test]
fn a_daemon_refused_its_http_address_leaves_an_existing_state_dir_as_it_was() {
    let env = Env::new();
    env.config(&config_with_jobs(1, r#""bistro_job->j": {"owner": "me"}"#));
    env.ok(&["init"]);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = env.run(&["daemon", "--worker-command", "true", "--http", &addr]);
    assert_eq!(out.status.code(), Some(1));
    env.ok(&["status"]);
}

/// `bistro ARGS` as a user who may not read the state dir: `nobody` when the tests
/// run as root (who may read anything), else this user after a `chmod 000`.
fn as_a_stranger(env: &Env, args: &[&str]) -> std::process::Output {
    let root = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata("/proc/self").unwrap().uid() == 0
    };
    if root {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(env.state(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let bistro = assert_cmd::cargo::cargo_bin("bistro");
        // nobody must reach the binary, not the state dir.
        std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(bistro)
            .arg("--state-dir")
            .arg(env.state())
            .args(args)
            .output()
            .expect("setpriv (util-linux) runs the command as nobody")
    } else {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(env.state(), std::fs::Permissions::from_mode(0o000)).unwrap();
        let out = env.run(args);
        std::fs::set_permissions(env.state(), std::fs::Permissions::from_mode(0o700)).unwrap();
        out
    }
}

#[test]
fn an_unreadable_state_dir_says_permission_denied_with_the_path() {
    let env = Env::new();
    env.config(&config_with_jobs(1, r#""bistro_job->j": {"owner": "me"}"#));
    env.ok(&["init"]);
    for args in [&["status"][..], &["logs"], &["why", "j", "node11"]] {
        let out = as_a_stranger(&env, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.starts_with("setpriv:") {
            eprintln!("skipped: nobody may not run the test binary here: {stderr}");
            return;
        }
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains("Permission denied") && stderr.contains(env.state().to_str().unwrap()),
            "{args:?}: {stderr}"
        );
        assert!(!stderr.contains("bistro init"), "{args:?}: {stderr}");
    }
}
