//! `examples/systemd/`: the daemon unit and the tick service + timer pass
//! `systemd-analyze verify` (where it exists; CI installs it), and the tick unit's
//! command line runs as written.

use crate::util::*;

const UNITS: [&str; 3] = [
    "bistro-daemon.service",
    "bistro-tick.service",
    "bistro-tick.timer",
];

fn unit(name: &str) -> String {
    read(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples/systemd")
            .join(name),
    )
}

#[test]
fn the_example_units_pass_systemd_analyze_verify() {
    if std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have systemd-analyze (.ci/run installs the systemd package)"
        );
        eprintln!("notice: no systemd-analyze here; the example units are not verified");
        return;
    }
    let env = Env::new();
    let bistro = assert_cmd::cargo::cargo_bin("bistro");
    // verify wants the ExecStart binary to exist: the one just built stands in.
    let paths: Vec<String> = UNITS
        .iter()
        .map(|name| {
            let path = env.path(name);
            let text = unit(name).replace("/usr/local/bin/bistro", &bistro.display().to_string());
            std::fs::write(&path, text).unwrap();
            path.display().to_string()
        })
        .collect();
    let out = std::process::Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(&paths)
        .current_dir(env.dir.path())
        .output()
        .unwrap();
    // It exits 0 on directives it ignores, but says so.
    assert!(
        out.status.success() && out.stderr.is_empty() && out.stdout.is_empty(),
        "{out:?}"
    );
}

#[test]
fn both_services_leave_tasks_to_their_supervisors_and_the_tick_command_runs() {
    for name in ["bistro-daemon.service", "bistro-tick.service"] {
        assert!(unit(name).contains("\nKillMode=process\n"), "{name}");
    }
    let service = unit("bistro-tick.service");
    let exec = service
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart=/usr/local/bin/bistro "))
        .unwrap();
    let env = Env::new();
    env.config(&config_with_jobs(4, r#""bistro_job->j": {"owner": "me"}"#));
    let task = env.script("task", "echo done > \"$2\"");
    let args: Vec<String> = exec
        .split_whitespace()
        .map(|w| w.replace("/etc/bistro/task", task.to_str().unwrap()))
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = env.run(&args);
    assert!(out.status.success(), "{out:?}");
    assert!(
        out.stdout.is_empty() && out.stderr.is_empty(),
        "quiet: {out:?}"
    );
    env.tick_until(&[], |s| all_done(s, "j"));
}
