//! Nodes and levels (bistro-scheduling §2): the instance node, then the output of each
//! node source in order. Each source is a [`NodeFetcher`], Bistro's plugin point.

pub mod add_time;
mod manual;
mod range_label;
mod script;

use crate::config::{lenient, Levels, NodeSourceSpec, Settings};
use serde_json::{Map, Value};

/// One node: a shard of data that tasks run on and that holds resources.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Node {
    /// The name, unique per level except for replicas.
    pub name: String,
    /// Level index (0 = instance).
    pub level: usize,
    /// Index of the parent in [`Nodes::list`] (None for the instance node).
    pub parent: Option<usize>,
    /// Disabled nodes and their descendants get no tasks.
    pub enabled: bool,
    /// Tags, for `tag_whitelist` filters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

/// The node list of one refresh; the instance node comes first.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Nodes {
    /// All nodes, parents before their children.
    pub list: Vec<Node>,
}

impl Nodes {
    /// A list holding only the instance node.
    pub fn with_instance(instance_name: &str) -> Self {
        Self {
            list: vec![Node {
                name: instance_name.to_string(),
                level: 0,
                parent: None,
                enabled: true,
                tags: Vec::new(),
            }],
        }
    }

    /// Adds a node and returns its index.
    pub fn push(&mut self, name: String, level: usize, parent: usize, enabled: bool) -> usize {
        self.list.push(Node {
            name,
            level,
            parent: Some(parent),
            enabled,
            tags: Vec::new(),
        });
        self.list.len() - 1
    }

    /// Indices of the nodes at `level`, in list order.
    pub fn at_level(&self, level: usize) -> impl Iterator<Item = usize> + '_ {
        self.list
            .iter()
            .enumerate()
            .filter(move |(_, n)| n.level == level)
            .map(|(i, _)| i)
    }

    /// The node and its ancestors, node first.
    pub fn upward(&self, idx: usize) -> impl Iterator<Item = usize> + '_ {
        std::iter::successors(Some(idx), |&i| self.list[i].parent)
    }

    /// Fills `path` with (node, level) for the node and its ancestors, node first.
    pub fn path_levels(&self, idx: usize, path: &mut Vec<(usize, usize)>) {
        path.clear();
        path.extend(self.upward(idx).map(|i| (i, self.list[i].level)));
    }

    /// Names from the root down to the node (a task's `path_to_node`).
    pub fn path_to_node(&self, idx: usize) -> Vec<String> {
        let mut path: Vec<String> = self
            .upward(idx)
            .map(|i| self.list[i].name.clone())
            .collect();
        path.reverse();
        path
    }

    /// The first node with this name at `level`.
    pub fn find(&self, level: usize, name: &str) -> Option<usize> {
        self.list
            .iter()
            .position(|n| n.level == level && n.name == name)
    }
}

/// Why the nodes could not be fetched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bistro_settings.nodes source #{index} ({source_name}): {message}")]
pub struct NodeError {
    /// Position in the node source list (the legacy `node_source` is 0).
    pub index: usize,
    /// The fetcher name.
    pub source_name: String,
    /// What went wrong.
    pub message: String,
}

/// A node source: adds nodes below those already fetched.
pub trait NodeFetcher {
    /// Adds this source's nodes to `nodes`.
    fn fetch(
        &self,
        nodes: &mut Nodes,
        prefs: &Map<String, Value>,
        levels: &Levels,
    ) -> Result<(), String>;
}

fn fetcher(name: &str) -> Option<Box<dyn NodeFetcher>> {
    Some(match name {
        "manual" => Box::new(manual::ManualFetcher),
        "range_label" => Box::new(range_label::RangeLabelFetcher),
        "script" => Box::new(script::ScriptFetcher),
        "empty" => Box::new(EmptyFetcher),
        "add_time" => Box::new(add_time::AddTimeFetcher),
        _ => return None,
    })
}

/// Adds nothing.
struct EmptyFetcher;

impl NodeFetcher for EmptyFetcher {
    fn fetch(&self, _: &mut Nodes, _: &Map<String, Value>, _: &Levels) -> Result<(), String> {
        Ok(())
    }
}

/// Runs every node source of the settings, in order, below the instance node.
pub fn fetch_nodes(settings: &Settings, instance_name: &str) -> Result<Nodes, NodeError> {
    let mut nodes = Nodes::with_instance(instance_name);
    for (index, NodeSourceSpec { source, prefs }) in settings.node_sources.iter().enumerate() {
        let error = |message: String| NodeError {
            index,
            source_name: source.clone(),
            message,
        };
        let fetcher =
            fetcher(source).ok_or_else(|| error(format!("Invalid node source: {source}")))?;
        fetcher
            .fetch(&mut nodes, prefs, &settings.levels)
            .map_err(error)?;
    }
    Ok(nodes)
}

/// Reads the `parent_level` pref: returns (parent level, level of the new nodes).
fn parent_level(prefs: &Map<String, Value>, levels: &Levels) -> Result<(usize, usize), String> {
    let name = prefs
        .get("parent_level")
        .ok_or("parent_level not found in prefs")?;
    let parent = lenient::as_string(name)
        .and_then(|n| levels.id(&n))
        .filter(|&l| l != levels.worker())
        .ok_or_else(|| format!("parent_level {name}: Unknown identifier: no such level"))?;
    let configured = levels.len() - 2;
    if parent + 1 > configured {
        return Err(format!(
            "You must define at least {} levels below instance",
            parent + 1
        ));
    }
    Ok((parent, parent + 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    pub(super) fn levels(names: &[&str]) -> Levels {
        Levels::new(names.iter().map(|s| s.to_string()))
    }

    #[test]
    fn paths_run_from_the_instance_down() {
        let mut nodes = Nodes::with_instance("inst");
        let host = nodes.push("host1".into(), 1, 0, true);
        let db = nodes.push("db1".into(), 2, host, true);
        assert_eq!(nodes.path_to_node(db), vec!["inst", "host1", "db1"]);
        assert_eq!(nodes.upward(db).collect::<Vec<_>>(), vec![db, host, 0]);
        assert_eq!(nodes.path_to_node(0), vec!["inst"]);
        assert_eq!(nodes.at_level(2).collect::<Vec<_>>(), vec![db]);
    }

    #[test]
    fn parent_level_needs_enough_levels() {
        let l = levels(&["a"]);
        assert_eq!(
            parent_level(json!({"parent_level": "instance"}).as_object().unwrap(), &l),
            Ok((0, 1))
        );
        assert!(
            parent_level(json!({"parent_level": "a"}).as_object().unwrap(), &l)
                .unwrap_err()
                .contains("at least 2")
        );
        assert!(parent_level(json!({}).as_object().unwrap(), &l)
            .unwrap_err()
            .contains("not found"));
        assert!(parent_level(json!({"parent_level": "zz"}).as_object().unwrap(), &l).is_err());
    }
}
