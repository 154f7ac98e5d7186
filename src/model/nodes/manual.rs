//! The `manual` source: nodes listed in the config, `{NAME: children}`.

use super::{NodeFetcher, Nodes, SourceError};
use crate::foundation::config::Levels;
use crate::foundation::sanitize::lenient;
use serde_json::{Map, Value};
use std::collections::HashSet;

/// Nodes spelled out in the prefs; names never listed as a child are roots under the
/// instance node.
pub(super) struct ManualFetcher;

/// What is wrong with a `manual` source's node list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManualError {
    /// A child is not a name.
    #[error("{node}: child {child} is not a name")]
    BadChild {
        /// The parent node.
        node: String,
        /// The child as given.
        child: Value,
    },
    /// `children` is not an array.
    #[error("{node}: children must be an array, got {value}")]
    ChildrenNotArray {
        /// The node.
        node: String,
        /// Its `children`.
        value: Value,
    },
    /// `disabled` is not a boolean.
    #[error("{node}: disabled must be a boolean, got {value}")]
    DisabledNotBool {
        /// The node.
        node: String,
        /// Its `disabled`.
        value: Value,
    },
    /// A node's entry has the wrong type.
    #[error("{node}: expected a child name, an array of names or an object, got {value}")]
    BadEntry {
        /// The node.
        node: String,
        /// Its entry.
        value: Value,
    },
    /// Every node is somebody's child.
    #[error("No top level nodes are defined")]
    NoRoots,
    /// The tree is deeper than the configured levels.
    #[error("node {node:?} needs level {level}, but only {configured} levels are defined")]
    TooDeep {
        /// The first node too deep.
        node: String,
        /// The level it needs.
        level: usize,
        /// The configured levels.
        configured: usize,
    },
}

struct Spec {
    children: Vec<String>,
    enabled: bool,
}

fn parse_spec(name: &str, v: &Value) -> Result<Spec, ManualError> {
    let names = |items: &Vec<Value>| -> Result<Vec<String>, ManualError> {
        items
            .iter()
            .map(|c| {
                lenient::as_string(c).ok_or_else(|| ManualError::BadChild {
                    node: name.to_string(),
                    child: c.clone(),
                })
            })
            .collect()
    };
    Ok(match v {
        Value::String(child) => Spec {
            children: vec![child.clone()],
            enabled: true,
        },
        Value::Array(items) => Spec {
            children: names(items)?,
            enabled: true,
        },
        Value::Object(obj) => Spec {
            children: match obj.get("children") {
                None => Vec::new(),
                Some(Value::Array(items)) => names(items)?,
                Some(other) => {
                    return Err(ManualError::ChildrenNotArray {
                        node: name.to_string(),
                        value: other.clone(),
                    })
                }
            },
            // Bistro disables on the key's mere presence; we honour the boolean.
            enabled: match obj.get("disabled") {
                None => true,
                Some(d) => !lenient::as_bool(d).ok_or_else(|| ManualError::DisabledNotBool {
                    node: name.to_string(),
                    value: d.clone(),
                })?,
            },
        },
        other => {
            return Err(ManualError::BadEntry {
                node: name.to_string(),
                value: other.clone(),
            })
        }
    })
}

impl NodeFetcher for ManualFetcher {
    fn fetch(
        &self,
        nodes: &mut Nodes,
        prefs: &Map<String, Value>,
        levels: &Levels,
    ) -> Result<(), SourceError> {
        let specs: Vec<(&String, Spec)> = prefs
            .iter()
            .map(|(name, v)| Ok((name, parse_spec(name, v)?)))
            .collect::<Result<_, ManualError>>()?;
        let children: HashSet<&str> = specs
            .iter()
            .flat_map(|(_, s)| s.children.iter().map(String::as_str))
            .collect();
        let roots: Vec<&String> = specs
            .iter()
            .map(|(n, _)| *n)
            .filter(|n| !children.contains(n.as_str()))
            .collect();
        if roots.is_empty() {
            return Err(ManualError::NoRoots.into());
        }
        let configured = levels.len() - 2;
        let by_name: std::collections::HashMap<&str, &Spec> =
            specs.iter().map(|(n, s)| (n.as_str(), s)).collect();
        let mut stack: Vec<(String, usize, usize)> =
            roots.iter().rev().map(|r| ((*r).clone(), 1, 0)).collect();
        while let Some((name, level, parent)) = stack.pop() {
            if level > configured {
                return Err(ManualError::TooDeep {
                    node: name,
                    level,
                    configured,
                }
                .into());
            }
            let spec = by_name.get(name.as_str()).copied();
            let idx = nodes.push(name, level, parent, spec.is_none_or(|s| s.enabled));
            if let Some(spec) = spec {
                stack.extend(
                    spec.children
                        .iter()
                        .rev()
                        .map(|c| (c.clone(), level + 1, idx)),
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::levels;
    use super::*;
    use serde_json::json;

    fn fetch(prefs: Value, l: &[&str]) -> Result<Nodes, SourceError> {
        let mut nodes = Nodes::with_instance("inst");
        ManualFetcher
            .fetch(&mut nodes, prefs.as_object().unwrap(), &levels(l))
            .map(|()| nodes)
    }

    fn summary(nodes: &Nodes) -> Vec<(String, usize, Option<String>, bool)> {
        nodes
            .list
            .iter()
            .map(|n| {
                (
                    n.name.clone(),
                    n.level,
                    n.parent.map(|p| nodes.list[p].name.clone()),
                    n.enabled,
                )
            })
            .collect()
    }

    #[test]
    fn a_pure_cycle_has_no_roots() {
        assert!(
            fetch(json!({"node1": "node2", "node2": "node1"}), &["a", "b"])
                .unwrap_err()
                .to_string()
                .contains("No top level")
        );
        assert!(fetch(json!({}), &["a"]).is_err());
    }

    #[test]
    fn too_deep_a_tree_is_an_error() {
        assert!(fetch(json!({"node1": "node2", "node2": "node3"}), &["a", "b"]).is_err());
    }

    #[test]
    fn children_go_below_their_parents() {
        let nodes = fetch(
            json!({"node11": ["node111", "node112"], "node1": ["node11", "node12"], "node2": ["node21"]}),
            &["l1", "l2", "l3"],
        )
        .unwrap();
        let s = summary(&nodes);
        assert!(s.contains(&("node1".into(), 1, Some("inst".into()), true)));
        assert!(s.contains(&("node2".into(), 1, Some("inst".into()), true)));
        assert!(s.contains(&("node11".into(), 2, Some("node1".into()), true)));
        assert!(s.contains(&("node112".into(), 3, Some("node11".into()), true)));
        assert_eq!(s.len(), 8);
    }

    #[test]
    fn one_level_with_no_children() {
        assert_eq!(
            summary(&fetch(json!({"node1": []}), &["l1"]).unwrap()).len(),
            2
        );
    }

    #[test]
    fn disabled_honours_the_boolean() {
        let nodes = fetch(
            json!({"node1": {"children": ["node11", "node12"], "disabled": true}, "node12": {"disabled": true}, "node2": {"disabled": false}}),
            &["l1", "l2"],
        )
        .unwrap();
        let s = summary(&nodes);
        assert!(s.contains(&("node1".into(), 1, Some("inst".into()), false)));
        assert!(s.contains(&("node11".into(), 2, Some("node1".into()), true)));
        assert!(s.contains(&("node12".into(), 2, Some("node1".into()), false)));
        assert!(s.contains(&("node2".into(), 1, Some("inst".into()), true)));
    }

    #[test]
    fn the_seed_config_gives_two_hosts_and_four_leaves() {
        let nodes = fetch(
            json!({"node1": ["node11", "node12"], "node2": ["node21", "node22"]}),
            &["level1", "level2"],
        )
        .unwrap();
        let leaves: Vec<&str> = nodes
            .at_level(2)
            .map(|i| nodes.list[i].name.as_str())
            .collect();
        assert_eq!(leaves, vec!["node11", "node12", "node21", "node22"]);
    }
}
