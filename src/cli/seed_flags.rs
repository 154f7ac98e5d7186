//! Bistro's own flag names (`--data_dir`, `--worker_command`, ...), as its
//! getting-started text spells them, answered with ours when the command line is
//! refused: a user following Bistro's text learns the name to use instead of only
//! "unexpected argument".

use clap::CommandFactory;

/// Bistro's flags whose names are not ours in kebab case: what bistro uses, and a note.
const RENAMED: &[(&str, &str, &str)] = &[
    (
        "data_dir",
        "--state-dir DIR",
        " (a worker needs one of its own, apart from its scheduler's)",
    ),
    ("config_file", "--config FILE", ""),
    (
        "server_port",
        "`daemon --http HOST:PORT`",
        " (workers and the REST API share that one port)",
    ),
    (
        "http_server_port",
        "`daemon --http HOST:PORT`",
        " (or `serve-http --listen HOST:PORT` beside cron ticks)",
    ),
    (
        "scheduler_host",
        "`worker --scheduler http://HOST:PORT`",
        " (the daemon's --http address)",
    ),
    (
        "scheduler_port",
        "`worker --scheduler http://HOST:PORT`",
        " (the daemon's --http address)",
    ),
];

/// What to say for each of Bistro's flags in `args`: "bistro uses X for Bistro's
/// --Y", for a renamed flag or one whose kebab-case spelling is one of ours.
pub fn hints<S: AsRef<str>>(args: &[S]) -> Vec<String> {
    let ours = long_flags();
    let mut out: Vec<String> = Vec::new();
    for arg in args {
        let Some(name) = arg.as_ref().strip_prefix("--") else {
            continue;
        };
        let name = name.split('=').next().unwrap_or(name);
        if !name.contains('_') {
            continue;
        }
        let (instead, note) = match RENAMED.iter().find(|(bistro, ..)| *bistro == name) {
            Some((_, ours, note)) => (ours.to_string(), *note),
            None => {
                let kebab = name.replace('_', "-").to_lowercase();
                if !ours.contains(&kebab) {
                    continue;
                }
                (format!("--{kebab}"), "")
            }
        };
        let hint = format!("bistro uses {instead} for Bistro's --{name}{note}");
        if !out.contains(&hint) {
            out.push(hint);
        }
    }
    out
}

/// Every long flag of every subcommand, without its dashes.
fn long_flags() -> Vec<String> {
    fn walk(cmd: &clap::Command, out: &mut Vec<String>) {
        out.extend(
            cmd.get_arguments()
                .filter_map(|a| a.get_long().map(str::to_string)),
        );
        for sub in cmd.get_subcommands() {
            walk(sub, out);
        }
    }
    let mut out = Vec::new();
    walk(&super::Cli::command(), &mut out);
    out
}

/// Parses the command line; a refused one is reported as clap reports it, followed
/// by the names bistro uses for any of Bistro's flags in it, and exits 2.
pub fn parse() -> super::Cli {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    match <super::Cli as clap::Parser>::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            let _ = e.print();
            let words: Vec<String> = args
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            for hint in hints(&words) {
                super::warn(&hint);
            }
            std::process::exit(super::ExitCode::Usage as i32);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_flag_of_the_seed_is_answered_with_ours() {
        let scheduler = [
            "--server_port=6789",
            "--http_server_port=6790",
            "--config_file=scripts/test_configs/simple",
            "--clean_statuses",
            "--CAUTION_startup_wait_for_workers=1",
            "--instance_node_name=scheduler",
            "--config_update_ms=1000",
        ];
        let worker = [
            "--scheduler_host=::",
            "--scheduler_port=6789",
            "--worker_command=x",
            "--data_dir=/tmp/bistro_worker",
            "--shard_id=worker",
        ];
        for flag in scheduler.iter().chain(&worker) {
            let said = hints(&[flag]);
            let name = flag.split('=').next().unwrap();
            assert_eq!(said.len(), 1, "{flag}: {said:?}");
            assert!(
                said[0].contains(&format!(" for Bistro's {name}")),
                "{said:?}"
            );
        }
        assert_eq!(
            hints(&["--data_dir=/tmp/w"]),
            vec!["bistro uses --state-dir DIR for Bistro's --data_dir (a worker needs one of its own, apart from its scheduler's)"]
        );
        assert_eq!(
            hints(&["--CAUTION_startup_wait_for_workers=1"]),
            vec!["bistro uses --caution-startup-wait-for-workers for Bistro's --CAUTION_startup_wait_for_workers"]
        );
        assert!(hints(&["--no_such_flag", "--state-dir", "x"]).is_empty());
    }
}
