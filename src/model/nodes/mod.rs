//! Nodes and levels (bistro-scheduling §2): the instance node, then the output of each
//! node source in order. Each source is a [`NodeFetcher`], Bistro's plugin point.

pub mod add_time;
mod manual;
mod range_label;
mod script;

pub use manual::ManualError;
pub use script::ScriptError;

use crate::foundation::config::{Levels, NodeSourceSpec, PrefsError, Settings};
use crate::foundation::sanitize::lenient;
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
    /// All nodes, parents before their children. Names and levels must not change once
    /// nodes are looked up by name ([`push`](Self::push) is fine).
    pub list: Vec<Node>,
    /// Nodes by level and name, built at the first lookup and kept while the list is
    /// reused (a daemon reuses it for many passes).
    #[serde(skip)]
    names: NameCache,
}

/// [`NameIndex`] of a node list, built on first use; it is derived data, so it never
/// makes two lists unequal.
#[derive(Clone, Default)]
struct NameCache(std::sync::OnceLock<std::sync::Arc<NameIndex>>);

impl PartialEq for NameCache {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for NameCache {}

impl std::fmt::Debug for NameCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NameCache")
    }
}

/// No node.
const NO_NODE: u32 = u32::MAX;

/// See [`Nodes::names_token`]. It keeps the name index it stands for alive, so no
/// other list's token can ever be taken for it.
#[derive(Clone)]
pub struct NamesToken(std::sync::Arc<NameIndex>);

impl NamesToken {
    /// Do both tokens stand for the same names and levels?
    pub fn same(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }
}

/// Nodes by level and name (replicas, one name twice on a level, are chained), and the
/// node list's shape in compact arrays.
struct NameIndex {
    /// Per level, the first node of each name.
    tables: Vec<hashbrown::HashTable<u32>>,
    /// For each node, the next one with its level and name, or `NO_NODE`.
    next: Vec<u32>,
    /// The compact arrays.
    shape: NodeTables,
}

/// A node list's shape in compact arrays (a few bytes per node instead of a
/// [`Node`]), so that a pass over a million nodes reads little memory.
#[derive(Debug, Clone, Default)]
pub struct NodeTables {
    /// Each node's level.
    pub levels: Vec<u32>,
    /// Each node's parent, or [`NodeTables::NONE`] for the instance node.
    pub parents: Vec<u32>,
    /// For each node, the first node with its level and name: itself unless it is a
    /// replica. Replicas share their resources and their tasks.
    pub replica_roots: Vec<u32>,
    /// The nodes that are replicas of an earlier node (their root is not
    /// themselves), in list order; usually none.
    pub replicas: Vec<u32>,
    /// How many nodes each level has.
    pub level_sizes: Vec<usize>,
    /// Whether some node is disabled.
    pub any_disabled: bool,
    /// Whether every node's parent is on the level just above its own, so that a node
    /// has exactly one ancestor on each level above it (node sources build such
    /// trees; a list built by hand may skip levels).
    pub levels_nest: bool,
}

impl NodeTables {
    /// No node (the instance node's parent).
    pub const NONE: u32 = u32::MAX;
}

fn name_hash(name: &str) -> u64 {
    use std::hash::BuildHasher;
    rustc_hash::FxBuildHasher.hash_one(name)
}

impl NameIndex {
    /// Indexes `list` in one pass, in list order.
    fn new(list: &[Node]) -> Self {
        let levels = list.iter().map(|n| n.level + 1).max().unwrap_or(0);
        let mut per_level = vec![0usize; levels];
        for n in list {
            per_level[n.level] += 1;
        }
        let mut index = Self {
            tables: per_level
                .iter()
                .map(|&n| hashbrown::HashTable::with_capacity(n))
                .collect(),
            next: vec![NO_NODE; list.len()],
            shape: NodeTables {
                levels: list.iter().map(|n| n.level as u32).collect(),
                parents: list
                    .iter()
                    .map(|n| n.parent.map_or(NO_NODE, |p| p as u32))
                    .collect(),
                replica_roots: Vec::with_capacity(list.len()),
                replicas: Vec::new(),
                level_sizes: per_level,
                any_disabled: list.iter().any(|n| !n.enabled),
                levels_nest: false,
            },
        };
        let shape = &mut index.shape;
        shape.levels_nest = shape.levels.iter().zip(&shape.parents).all(|(&level, &p)| {
            if p == NO_NODE {
                level == 0
            } else {
                shape.levels[p as usize] + 1 == level
            }
        });
        for (i, node) in list.iter().enumerate() {
            let hash = name_hash(&node.name);
            let table = &mut index.tables[node.level];
            match table.find(hash, |&j| list[j as usize].name == node.name) {
                Some(&first) => {
                    index.shape.replica_roots.push(first);
                    index.shape.replicas.push(i as u32);
                    let mut last = first as usize;
                    while index.next[last] != NO_NODE {
                        last = index.next[last] as usize;
                    }
                    index.next[last] = i as u32;
                }
                None => {
                    table.insert_unique(hash, i as u32, |&j| name_hash(&list[j as usize].name));
                    index.shape.replica_roots.push(i as u32);
                }
            }
        }
        index
    }
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
            names: NameCache::default(),
        }
    }

    /// Adds a node and returns its index.
    pub fn push(&mut self, name: String, level: usize, parent: usize, enabled: bool) -> usize {
        self.names = NameCache::default();
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

    /// A token of this list's names and levels: lists with the same token have the
    /// same nodes by level and name (one is a clone of the other), so what a caller
    /// derived from looking names up still holds.
    pub fn names_token(&self) -> NamesToken {
        NamesToken(self.names())
    }

    fn names(&self) -> std::sync::Arc<NameIndex> {
        let index = self
            .names
            .0
            .get_or_init(|| std::sync::Arc::new(NameIndex::new(&self.list)));
        if index.shape.levels.len() == self.list.len() {
            std::sync::Arc::clone(index)
        } else {
            // The list grew behind `push`'s back: index it again, uncached.
            std::sync::Arc::new(NameIndex::new(&self.list))
        }
    }

    /// The list's shape in compact arrays, built with the name index.
    pub fn tables(&self) -> impl std::ops::Deref<Target = NodeTables> {
        struct Shape(std::sync::Arc<NameIndex>);
        impl std::ops::Deref for Shape {
            type Target = NodeTables;
            fn deref(&self) -> &NodeTables {
                &self.0.shape
            }
        }
        Shape(self.names())
    }

    /// The nodes named `name` at `level`, in list order.
    pub fn named<'a>(&'a self, level: usize, name: &str) -> impl Iterator<Item = usize> + 'a {
        let index = self.names();
        let first = index.tables.get(level).and_then(|table| {
            table
                .find(name_hash(name), |&j| self.list[j as usize].name == name)
                .copied()
        });
        let next = std::sync::Arc::clone(&index);
        std::iter::successors(first, move |&i| {
            Some(next.next[i as usize]).filter(|&n| n != NO_NODE)
        })
        .map(|i| i as usize)
    }

    /// For each of `names`, the first node with that name at `level`, or
    /// [`NodeTables::NONE`]: many lookups through one borrow of the index.
    pub fn first_named<'n>(
        &self,
        level: usize,
        names: impl IntoIterator<Item = &'n str>,
    ) -> Vec<u32> {
        let index = self.names();
        let Some(table) = index.tables.get(level) else {
            return names.into_iter().map(|_| NO_NODE).collect();
        };
        names
            .into_iter()
            .map(|name| {
                table
                    .find(name_hash(name), |&j| self.list[j as usize].name == name)
                    .map_or(NO_NODE, |&j| j)
            })
            .collect()
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
#[error("bistro_settings.nodes source #{index} ({source_name}): {error}")]
pub struct NodeError {
    /// Position in the node source list (the legacy `node_source` is 0).
    pub index: usize,
    /// The fetcher name.
    pub source_name: String,
    /// What went wrong.
    pub error: Box<SourceError>,
}

/// Why a node source could not add its nodes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// No fetcher has this name.
    #[error("Invalid node source: {0}")]
    UnknownSource(String),
    /// A required pref is missing.
    #[error("{0} not found in prefs")]
    MissingPref(&'static str),
    /// A pref has the wrong type or range.
    #[error("{key} must be {want}, got {value}")]
    BadPref {
        /// The pref.
        key: &'static str,
        /// What it must be.
        want: &'static str,
        /// What it is.
        value: Value,
    },
    /// `parent_level` names no level (or the worker level).
    #[error("parent_level {0}: Unknown identifier: no such level")]
    UnknownParentLevel(Value),
    /// The new nodes' level is not configured.
    #[error("You must define at least {0} levels below instance")]
    TooFewLevels(usize),
    /// A `manual` source's node list is wrong.
    #[error(transparent)]
    Manual(#[from] ManualError),
    /// A `script` source's script failed.
    #[error(transparent)]
    Script(#[from] ScriptError),
    /// `add_time` prefs are wrong.
    #[error(transparent)]
    AddTime(#[from] PrefsError),
    /// The sources gave more nodes than a scheduler holds.
    #[error("more than {MAX_NODES} nodes: split the work over several schedulers, or shorten the node lists")]
    TooManyNodes,
    /// A node's name is longer than a file name may be.
    #[error("node name {name:?}... is {bytes} bytes long; at most {MAX_NODE_NAME_BYTES} are allowed (a file name's limit)")]
    NameTooLong {
        /// The start of the name.
        name: String,
        /// Its length.
        bytes: usize,
    },
}

/// The most nodes all sources together may give: past it a source is an error, not
/// a scheduler out of memory.
pub const MAX_NODES: usize = 5_000_000;

/// The longest node name, in bytes: what a file system holds as one file name.
pub const MAX_NODE_NAME_BYTES: usize = 255;

/// Checks a node name a source is about to add, and that there is room for it.
fn check_new_node(nodes: &Nodes, name: &str) -> Result<(), SourceError> {
    if nodes.list.len() >= MAX_NODES {
        return Err(SourceError::TooManyNodes);
    }
    name_too_long(name).map_or(Ok(()), Err)
}

/// The error of a node name longer than [`MAX_NODE_NAME_BYTES`], if it is.
fn name_too_long(name: &str) -> Option<SourceError> {
    (name.len() > MAX_NODE_NAME_BYTES).then(|| SourceError::NameTooLong {
        name: name.chars().take(40).collect(),
        bytes: name.len(),
    })
}

impl SourceError {
    /// The pref `key` is not `want`.
    fn bad_pref(key: &'static str, want: &'static str, value: &Value) -> Self {
        SourceError::BadPref {
            key,
            want,
            value: value.clone(),
        }
    }
}

/// A node source: adds nodes below those already fetched.
pub trait NodeFetcher {
    /// Adds this source's nodes to `nodes`.
    fn fetch(
        &self,
        nodes: &mut Nodes,
        prefs: &Map<String, Value>,
        levels: &Levels,
    ) -> Result<(), SourceError>;
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
    fn fetch(&self, _: &mut Nodes, _: &Map<String, Value>, _: &Levels) -> Result<(), SourceError> {
        Ok(())
    }
}

/// Checks a node source's prefs when the config is parsed (a [`PrefsCheck`](crate::foundation::config::PrefsCheck)): only
/// `add_time` prefs are checked then ([`add_time::validate_prefs`]); the other sources
/// report bad prefs when they fetch.
pub fn check_prefs(source: &str, prefs: &Map<String, Value>) -> Result<(), Vec<PrefsError>> {
    match source {
        "add_time" => add_time::validate_prefs(prefs),
        _ => Ok(()),
    }
}

/// Runs every node source of the settings, in order, below the instance node.
pub fn fetch_nodes(settings: &Settings, instance_name: &str) -> Result<Nodes, NodeError> {
    let mut nodes = Nodes::with_instance(instance_name);
    for (index, NodeSourceSpec { source, prefs }) in settings.node_sources.iter().enumerate() {
        let error = |error: SourceError| NodeError {
            index,
            source_name: source.clone(),
            error: Box::new(error),
        };
        let fetcher =
            fetcher(source).ok_or_else(|| error(SourceError::UnknownSource(source.clone())))?;
        let before = nodes.list.len();
        fetcher
            .fetch(&mut nodes, prefs, &settings.levels)
            .map_err(error)?;
        if let Some(too_long) = nodes.list[before..]
            .iter()
            .find_map(|node| name_too_long(&node.name))
        {
            return Err(error(too_long));
        }
        if nodes.list.len() > MAX_NODES {
            return Err(error(SourceError::TooManyNodes));
        }
    }
    Ok(nodes)
}

/// Reads the `parent_level` pref: returns (parent level, level of the new nodes).
fn parent_level(
    prefs: &Map<String, Value>,
    levels: &Levels,
) -> Result<(usize, usize), SourceError> {
    let name = prefs
        .get("parent_level")
        .ok_or(SourceError::MissingPref("parent_level"))?;
    let parent = lenient::as_string(name)
        .and_then(|n| levels.id(&n))
        .filter(|&l| l != levels.worker())
        .ok_or_else(|| SourceError::UnknownParentLevel(name.clone()))?;
    let configured = levels.len() - 2;
    if parent + 1 > configured {
        return Err(SourceError::TooFewLevels(parent + 1));
    }
    Ok((parent, parent + 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nodes_are_found_by_level_and_name_with_their_replicas() {
        let mut nodes = Nodes::with_instance("i");
        let h1 = nodes.push("h1".into(), 1, 0, true);
        let h2 = nodes.push("h2".into(), 1, 0, true);
        let a1 = nodes.push("a".into(), 2, h1, true);
        let b = nodes.push("b".into(), 2, h1, true);
        let a2 = nodes.push("a".into(), 2, h2, false);
        assert_eq!(nodes.named(2, "a").collect::<Vec<_>>(), [a1, a2]);
        assert_eq!(nodes.named(1, "a").count(), 0);
        assert_eq!(nodes.named(7, "a").count(), 0);
        let tables = nodes.tables();
        let roots = &tables.replica_roots;
        assert_eq!(tables.parents[a2], h2 as u32);
        assert_eq!(tables.levels[a2], 2);
        assert_eq!(tables.level_sizes, [1, 2, 3]);
        assert!(tables.any_disabled);
        assert!(tables.levels_nest);
        assert_eq!(
            [roots[a1], roots[a2], roots[b]],
            [a1 as u32, a1 as u32, b as u32]
        );
        assert_eq!(tables.replicas, [a2 as u32]);
        assert_eq!(
            nodes.first_named(2, ["b", "a", "h1"]),
            [b as u32, a1 as u32, NodeTables::NONE]
        );
        assert_eq!(nodes.first_named(9, ["a"]), [NodeTables::NONE]);
        drop(tables);
        let a3 = nodes.push("a".into(), 2, h2, true);
        assert_eq!(nodes.named(2, "a").collect::<Vec<_>>(), [a1, a2, a3]);
        nodes.list.push(nodes.list[b].clone());
        assert_eq!(
            nodes.named(2, "b").count(),
            2,
            "a list grown by hand is indexed anew"
        );
        nodes.push("c".into(), 2, 0, true);
        assert!(
            !nodes.tables().levels_nest,
            "a db right below the instance skips the host level"
        );
    }

    #[test]
    fn the_name_index_is_not_part_of_a_node_list() {
        let nodes = Nodes::with_instance("i");
        let copy = nodes.clone();
        assert_eq!(nodes.named(0, "i").count(), 1);
        assert_eq!(nodes, copy);
        let text = serde_json::to_string(&nodes).unwrap();
        assert_eq!(text, serde_json::to_string(&copy).unwrap());
        assert_eq!(serde_json::from_str::<Nodes>(&text).unwrap(), nodes);
    }

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

    /// Bistro's test_nodes CheckIterateOverLevel.
    #[test]
    fn each_level_iterates_only_its_own_nodes() {
        let mut nodes = Nodes::with_instance("my_host");
        let host1 = nodes.push("host1".into(), 1, 0, true);
        let host2 = nodes.push("host2".into(), 1, 0, true);
        let db1 = nodes.push("db1".into(), 2, host1, true);
        let db2 = nodes.push("db2".into(), 2, host2, true);
        assert_eq!(nodes.at_level(0).collect::<Vec<_>>(), vec![0]);
        assert_eq!(nodes.list[0].name, "my_host");
        assert_eq!(nodes.at_level(1).collect::<Vec<_>>(), vec![host1, host2]);
        assert_eq!(nodes.at_level(2).collect::<Vec<_>>(), vec![db1, db2]);
        assert_eq!(nodes.at_level(7).count(), 0, "an unknown level is empty");
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
                .to_string()
                .contains("at least 2")
        );
        assert!(parent_level(json!({}).as_object().unwrap(), &l)
            .unwrap_err()
            .to_string()
            .contains("not found"));
        assert!(parent_level(json!({"parent_level": "zz"}).as_object().unwrap(), &l).is_err());
    }
}
