//! What goes to `sbatch`: its arguments (one function, [`sbatch_args`], so a new
//! option is one line), the batch script of one run (plain sh: the compute node needs
//! no bistro), and the array script that picks a run by `SLURM_ARRAY_TASK_ID`.

use crate::execution::supervisor::Launch;
use crate::foundation::config::SlurmOptions;
use crate::storage::state::run_dir;
use std::path::{Path, PathBuf};

/// The prefix of every job name bistro gives Slurm; the rest is an invocation id.
pub const JOB_NAME_PREFIX: &str = "bistro-";

/// The arguments of `sbatch` for an array of `count` runs named `name` that share
/// `options`, started in `chdir` (a directory every node sees). The script comes on
/// stdin.
pub fn sbatch_args(options: &SlurmOptions, name: &str, count: usize, chdir: &Path) -> Vec<String> {
    let mut args = vec![
        "--parsable".to_string(),
        // A requeued job (node failure, preemption) would run the task again while
        // bistro counts one run: at most once means Slurm must not requeue.
        "--no-requeue".to_string(),
        format!("--job-name={name}"),
        format!("--array=0-{}", count.saturating_sub(1)),
        "--output=/dev/null".to_string(),
        "--error=/dev/null".to_string(),
        format!("--chdir={}", chdir.display()),
    ];
    let flags: [(&str, &Option<String>); 8] = [
        ("--partition", &options.partition),
        ("--account", &options.account),
        ("--qos", &options.qos),
        ("--time", &options.time_limit),
        ("--mem", &options.memory),
        ("--gres", &options.gres),
        ("--constraint", &options.constraint),
        ("--nodelist", &options.nodelist),
    ];
    args.extend(
        flags
            .iter()
            .filter_map(|(flag, value)| value.as_ref().map(|v| format!("{flag}={v}"))),
    );
    if let Some(cpus) = options.cpus_per_task {
        args.push(format!("--cpus-per-task={cpus}"));
    }
    args.extend(options.extra_args.iter().cloned());
    args
}

/// Quotes `text` for sh: one single-quoted word.
pub fn sh_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The script of one run in `dir`: ends at once if the run was started before, else
/// marks it started, enters the task's working
/// directory as the local runner does, runs `CMD NODE STATUS_FILE JSON` with its
/// output in the run directory, and records its exit code last.
pub fn run_script(launch: &Launch, dir: &Path) -> String {
    let file = |name: &str| sh_quote(&dir.join(name).display().to_string());
    let argv: Vec<String> = launch.argv.iter().map(|a| sh_quote(a)).collect();
    let cwd = sh_quote(&launch.cwd.display().to_string());
    format!(
        "#!/bin/sh\n\
         # bistro run {inv} of {job}/{node}\n\
         # At most once: a run that began before (a requeue bistro did not ask for) never runs again.\n\
         [ -e {started} ] && exit 0\n\
         hostname > {started} 2>/dev/null || : > {started}\n\
         mkdir -p {cwd} && cd {cwd} || {{ echo \"bistro: cannot enter \"{cwd} >> {stderr}; echo 1 > {exit}.tmp; mv {exit}.tmp {exit}; exit 1; }}\n\
         {argv} < /dev/null > {stdout} 2> {stderr}\n\
         code=$?\n\
         echo \"$code\" > {exit}.tmp && mv {exit}.tmp {exit}\n\
         exit \"$code\"\n",
        inv = launch.invocation,
        job = launch.job.replace('\n', " "),
        node = launch.node.replace('\n', " "),
        started = file(run_dir::STARTED),
        stdout = file(run_dir::STDOUT),
        stderr = file(run_dir::STDERR),
        exit = file(run_dir::EXIT),
        argv = argv.join(" "),
    )
}

/// The script of an array: index I runs the script of the I-th run directory.
pub fn array_script(dirs: &[PathBuf]) -> String {
    let mut out = String::from("#!/bin/sh\ncase \"$SLURM_ARRAY_TASK_ID\" in\n");
    for (i, dir) in dirs.iter().enumerate() {
        let script = sh_quote(&dir.join(run_dir::SCRIPT).display().to_string());
        out.push_str(&format!("{i}) exec /bin/sh {script} ;;\n"));
    }
    out.push_str(
        "esac\necho \"bistro: no run for array index $SLURM_ARRAY_TASK_ID\" >&2\nexit 1\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_become_sbatch_arguments_and_extra_ones_come_last() {
        let options = SlurmOptions {
            partition: Some("batch".into()),
            time_limit: Some("1:00".into()),
            cpus_per_task: Some(2),
            nodelist: Some("db1".into()),
            extra_args: vec!["--nice=5".into()],
            ..Default::default()
        };
        let args = sbatch_args(&options, "bistro-x", 3, Path::new("/shared"));
        // At most once: Slurm never requeues a run bistro counts once.
        assert_eq!(
            args,
            [
                "--parsable",
                "--no-requeue",
                "--job-name=bistro-x",
                "--array=0-2",
                "--output=/dev/null",
                "--error=/dev/null",
                "--chdir=/shared",
                "--partition=batch",
                "--time=1:00",
                "--nodelist=db1",
                "--cpus-per-task=2",
                "--nice=5"
            ]
        );
    }

    #[test]
    fn quoting_survives_any_text_through_sh() {
        let nasty = "a'b \"c\" $HOME `x` \\ \n end";
        let out = std::process::Command::new("sh")
            .args(["-c", &format!("printf %s {}", sh_quote(nasty))])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8(out.stdout).unwrap(), nasty);
    }

    #[test]
    fn a_run_script_run_again_never_runs_the_task_twice() {
        let dir = tempfile::tempdir().unwrap();
        let ran = dir.path().join("ran");
        let launch: Launch = serde_json::from_value(serde_json::json!({
            "job": "j", "node": "n",
            "invocation": {"start_time": 1, "rand": 2},
            "argv": ["sh", "-c", format!("echo once >> {}", ran.display())],
            "cwd": dir.path().join("cwd"),
            "status_file": dir.path().join("status"),
            "log_db": dir.path().join("logs"),
            "worker_host": "h",
            "task_subprocess": crate::foundation::config::TaskSubprocess::default(),
            "kill_subprocess": crate::foundation::config::KillRequest::default(),
        }))
        .unwrap();
        let script = dir.path().join("run.sh");
        std::fs::write(&script, run_script(&launch, dir.path())).unwrap();
        for _ in 0..2 {
            let status = std::process::Command::new("sh")
                .arg(&script)
                .status()
                .unwrap();
            assert!(status.success());
        }
        assert_eq!(std::fs::read_to_string(&ran).unwrap(), "once\n");
    }
}
