//! The `script` source: children are the lines a script prints for each parent.

use super::{parent_level, NodeFetcher, Nodes};
use crate::config::{lenient, Levels};
use serde_json::{Map, Value};
use std::process::{Command, Stdio};

/// Runs `script PARENT` (no shell) for every parent; each stdout line is a child.
///
/// Unlike Bistro, a script that exits non-zero fails the refresh: a broken script must
/// not silently empty the node list and orphan every running task.
pub(super) struct ScriptFetcher;

impl NodeFetcher for ScriptFetcher {
    fn fetch(
        &self,
        nodes: &mut Nodes,
        prefs: &Map<String, Value>,
        levels: &Levels,
    ) -> Result<(), String> {
        let (parent, level) = parent_level(prefs, levels)?;
        let script = prefs.get("script").ok_or("script not found in prefs")?;
        let script = lenient::as_string(script)
            .ok_or_else(|| format!("script must be a path, got {script}"))?;
        let parents: Vec<usize> = nodes.at_level(parent).collect();
        for p in parents {
            let parent_name = nodes.list[p].name.clone();
            let output = Command::new(&script)
                .arg(&parent_name)
                .stdin(Stdio::null())
                .stderr(Stdio::inherit())
                .output()
                .map_err(|e| format!("cannot run script {script:?}: {e}"))?;
            if !output.status.success() {
                return Err(format!(
                    "script {script:?} {parent_name:?} failed: {}",
                    output.status
                ));
            }
            let stdout = String::from_utf8(output.stdout)
                .map_err(|_| format!("script {script:?} printed node names that are not UTF-8"))?;
            for line in stdout.lines().filter(|l| !l.is_empty()) {
                nodes.push(line.to_string(), level, p, true);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::levels;
    use super::super::NodeFetcher;
    use super::*;
    use serde_json::json;
    use std::os::unix::fs::PermissionsExt;

    fn script(dir: &tempfile::TempDir, body: &str) -> String {
        let path = dir.path().join("nodes.sh");
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path.display().to_string()
    }

    #[test]
    fn each_line_becomes_a_child_of_the_parent() {
        let dir = tempfile::tempdir().unwrap();
        let path = script(&dir, "echo \"$1:foo\"; echo \"$1:bar\"");
        let mut nodes = Nodes::with_instance("inst");
        nodes.push("node1".into(), 1, 0, true);
        nodes.push("node2".into(), 1, 0, true);
        ScriptFetcher
            .fetch(
                &mut nodes,
                json!({"parent_level": "l1", "script": path})
                    .as_object()
                    .unwrap(),
                &levels(&["l1", "l2"]),
            )
            .unwrap();
        let names: Vec<(&str, usize)> = nodes
            .list
            .iter()
            .map(|n| (n.name.as_str(), n.level))
            .collect();
        assert_eq!(
            names[3..],
            [
                ("node1:foo", 2),
                ("node1:bar", 2),
                ("node2:foo", 2),
                ("node2:bar", 2)
            ]
        );
        assert_eq!(nodes.list[3].parent, Some(1));
    }

    #[test]
    fn a_missing_or_failing_script_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let l = levels(&["l1"]);
        let mut nodes = Nodes::with_instance("inst");
        assert!(ScriptFetcher
            .fetch(
                &mut nodes,
                json!({"parent_level": "instance"}).as_object().unwrap(),
                &l
            )
            .is_err());
        let missing = json!({"parent_level": "instance", "script": "/nonexistent/x"});
        assert!(ScriptFetcher
            .fetch(&mut nodes, missing.as_object().unwrap(), &l)
            .unwrap_err()
            .contains("cannot run"));
        let failing = json!({"parent_level": "instance", "script": script(&dir, "echo a; exit 3")});
        assert!(ScriptFetcher
            .fetch(&mut nodes, failing.as_object().unwrap(), &l)
            .unwrap_err()
            .contains("failed"));
    }
}
