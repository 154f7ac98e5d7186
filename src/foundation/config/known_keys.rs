//! Every key the config file may hold, in one table per object, so that a key no
//! table knows gets a warning naming the closest known one ("did you mean
//! kill_subprocess?"). A key added to the parser gets one line here.
//!
//! Bistro's own documentation spells some keys differently from its code
//! (bistro-scheduling §9): those spellings get a hint to the key we read.

use super::JOB_PREFIX;
use serde_json::Value;

/// The keys of `bistro_settings`.
pub const SETTINGS_KEYS: &[&str] = &[
    "enabled",
    "working_wait",
    "idle_wait",
    "scheduler",
    "remote_worker_selector",
    "backoff",
    "nodes",
    "level_for_tasks",
    "resources",
    "worker_resources_override",
    "physical_resources",
    "kill_orphan_tasks_after_sec",
    "task_subprocess",
    "kill_subprocess",
    "task_timeout_sec",
    "slurm",
    "CAUTION_exit_initial_wait_before_timestamp",
];

/// The keys of a `bistro_job->NAME` entry.
pub const JOB_KEYS: &[&str] = &[
    "owner",
    "enabled",
    "level_for_tasks",
    "priority",
    "resources",
    "config",
    "filters",
    "depends_on",
    "backoff",
    "level_for_host_placement",
    "host_placement",
    "kill_orphan_tasks_after_sec",
    "task_subprocess",
    "kill_subprocess",
    "task_timeout_sec",
    "slurm",
    "command",
    "create_time",
    "modify_time",
    "version_id",
    "errors",
    "run_only_after_all_nodes_are_done_for",
];

/// The keys of `bistro_settings.nodes`.
pub const NODES_KEYS: &[&str] = &[
    "levels",
    "node_order",
    "node_sources",
    "node_source",
    "node_source_prefs",
];

/// The keys of `task_subprocess` (settings and jobs).
pub const TASK_SUBPROCESS_KEYS: &[&str] = &[
    "poll_ms",
    "max_log_lines_per_poll_interval",
    "parent_death_signal",
    "process_group_leader",
    "use_canary_pipe",
    "cgroups",
];

/// The keys of `kill_subprocess` (settings and jobs).
pub const KILL_SUBPROCESS_KEYS: &[&str] = &["method", "kill_wait_ms"];

/// Keys as Bistro's documentation spells them, and the key this bistro reads instead.
pub const RENAMED: &[(&str, &str)] = &[
    ("kill_request", "kill_subprocess"),
    ("worker_resources_overrides", "worker_resources_override"),
];

/// One warning per key of `config` (a whole config file) that no table above
/// knows, naming where it is and the closest known key, if one is close.
pub fn unknown_key_warnings(config: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let Some(top) = config.as_object() else {
        return out;
    };
    for (key, value) in top {
        if key == "bistro_settings" {
            check(value, "bistro_settings", SETTINGS_KEYS, &mut out);
            check(
                &value["nodes"],
                "bistro_settings.nodes",
                NODES_KEYS,
                &mut out,
            );
            subprocess_keys(value, "bistro_settings", &mut out);
        } else if let Some(job) = key.strip_prefix(JOB_PREFIX) {
            let at = format!("{JOB_PREFIX}{job}");
            check(value, &at, JOB_KEYS, &mut out);
            subprocess_keys(value, &at, &mut out);
        } else {
            let hint = closest(key, &["bistro_settings"])
                .map(|k| format!("; did you mean {k}?"))
                .unwrap_or_else(|| format!("; jobs are keys \"{JOB_PREFIX}NAME\""));
            out.push(format!("unknown key {key:?} is ignored{hint}"));
        }
    }
    out
}

fn subprocess_keys(owner: &Value, at: &str, out: &mut Vec<String>) {
    check(
        &owner["task_subprocess"],
        &format!("{at}.task_subprocess"),
        TASK_SUBPROCESS_KEYS,
        out,
    );
    check(
        &owner["kill_subprocess"],
        &format!("{at}.kill_subprocess"),
        KILL_SUBPROCESS_KEYS,
        out,
    );
}

/// Warns of each key of `object` (if it is one) not in `known`.
fn check(object: &Value, at: &str, known: &[&str], out: &mut Vec<String>) {
    for key in object.as_object().into_iter().flat_map(|o| o.keys()) {
        if known.contains(&key.as_str()) {
            continue;
        }
        let hint = match RENAMED.iter().find(|(theirs, _)| theirs == key) {
            Some((_, ours)) => format!("; Bistro's docs spell it so, but the key is {ours}"),
            None => closest(key, known)
                .map(|k| format!("; did you mean {k}?"))
                .unwrap_or_default(),
        };
        out.push(format!("{at}: unknown key {key:?} is ignored{hint}"));
    }
}

/// The known key closest to `key`, if it is close enough to be a misspelling.
fn closest<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(key, k), *k))
        .filter(|(distance, k)| *distance <= (k.len() / 3).max(2))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_misspelt_key_gets_the_closest_known_one() {
        let warnings = unknown_key_warnings(&json!({
            "bistro_settings": {"kill_subproces": {}, "nodes": {"level": []}},
            "bistro_job->j": {"ownr": "me", "zzzzzzzz": 1},
        }));
        assert_eq!(
            warnings,
            vec![
                "bistro_settings: unknown key \"kill_subproces\" is ignored; did you mean kill_subprocess?",
                "bistro_settings.nodes: unknown key \"level\" is ignored; did you mean levels?",
                "bistro_job->j: unknown key \"ownr\" is ignored; did you mean owner?",
                "bistro_job->j: unknown key \"zzzzzzzz\" is ignored",
            ]
        );
    }

    #[test]
    fn bistros_documented_spellings_point_at_ours() {
        let warnings = unknown_key_warnings(&json!({
            "bistro_settings": {"worker_resources_overrides": {}},
            "bistro_job->j": {"kill_request": {"method": "kill"}},
        }));
        assert!(
            warnings[0].ends_with("the key is worker_resources_override"),
            "{warnings:?}"
        );
        assert!(
            warnings[1].ends_with("the key is kill_subprocess"),
            "{warnings:?}"
        );
    }

    #[test]
    fn every_key_the_parser_reads_is_known() {
        let config = json!({
            "bistro_settings": {
                "enabled": true, "working_wait": 1, "idle_wait": 1, "scheduler": "roundrobin",
                "remote_worker_selector": "busiest", "backoff": [1, "fail"],
                "nodes": {"levels": ["l"], "node_order": "random", "node_sources": []},
                "level_for_tasks": "l", "resources": {},
                "task_subprocess": {"poll_ms": 10, "cgroups": {}},
                "kill_subprocess": {"method": "term", "kill_wait_ms": 1},
            },
            "bistro_job->j": {"owner": "me", "priority": 1, "depends_on": [], "command": ["x"]},
        });
        assert_eq!(unknown_key_warnings(&config), Vec::<String>::new());
    }
}
