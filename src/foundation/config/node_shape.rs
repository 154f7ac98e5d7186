//! The shape of the node tree in `bistro_settings.nodes`: the levels, the order of
//! nodes within a level, and the node sources that fill the levels.

use super::ErrorRecord;
use crate::foundation::sanitize::lenient;
use serde_json::{Map, Value};

/// Level names: `instance` first, the configured levels, then `worker`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Levels {
    names: Vec<String>,
}

impl Levels {
    /// Builds the level list around the configured names.
    pub fn new(configured: impl IntoIterator<Item = String>) -> Self {
        let mut names = vec![INSTANCE_LEVEL.to_string()];
        for name in configured {
            if !names.contains(&name) {
                names.push(name);
            }
        }
        names.push(WORKER_LEVEL.to_string());
        Self { names }
    }

    /// Number of levels including `instance` and `worker`.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Never true: `instance` and `worker` always exist.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The index of a level name.
    pub fn id(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    /// The name of a level index.
    pub fn name(&self, id: usize) -> &str {
        &self.names[id]
    }

    /// The index of the `worker` level.
    pub fn worker(&self) -> usize {
        self.names.len() - 1
    }

    /// The bottom configured level (the one above `worker`), or `instance`.
    pub fn bottom(&self) -> usize {
        self.names.len() - 2
    }
}

/// The root level's name.
pub const INSTANCE_LEVEL: &str = "instance";
/// The remote workers' level name.
pub const WORKER_LEVEL: &str = "worker";

/// How nodes are ordered before each pass (`nodes.node_order`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeOrder {
    /// Reshuffled every pass (default).
    Random,
    /// As the node sources produced them.
    Original,
    /// Byte-wise by name.
    Lexicographic,
}

/// One `nodes.node_sources` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeSourceSpec {
    /// The fetcher name: `manual`, `range_label`, `script`, `empty` or `add_time`.
    pub source: String,
    /// The fetcher's preferences.
    pub prefs: Map<String, Value>,
}

/// The node source names we know.
pub const NODE_SOURCES: [&str; 5] = ["manual", "range_label", "script", "empty", "add_time"];

/// A problem in a node source's prefs: the keys (or array indices) from the prefs down
/// to the fault, and what is wrong there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", path.join("."))]
pub struct PrefsError {
    /// Keys from the prefs object down to the fault, e.g.
    /// `["schedule", "1", "cron", "day_of_week"]`.
    pub path: Vec<String>,
    /// What is wrong there.
    pub message: String,
}

impl PrefsError {
    /// A problem at `path` below the prefs.
    pub fn new(path: &[&str], message: impl Into<String>) -> Self {
        PrefsError {
            path: path.iter().map(|k| k.to_string()).collect(),
            message: message.into(),
        }
    }
}

/// Checks a node source's prefs while the settings are parsed, given the source name,
/// so that a bad source is a config error naming the key. The node sources are above
/// the config, so the caller supplies the check (`crate::model::nodes::check_prefs`).
pub type PrefsCheck = fn(&str, &Map<String, Value>) -> Result<(), Vec<PrefsError>>;

/// Accepts every source's prefs; each source then checks them when it fetches.
pub fn no_prefs_check(_: &str, _: &Map<String, Value>) -> Result<(), Vec<PrefsError>> {
    Ok(())
}

/// Parses one node source entry; `check` checks its prefs.
fn parse_node_source(
    v: &Value,
    check: PrefsCheck,
    rec: &mut ErrorRecord,
) -> Option<NodeSourceSpec> {
    let Some(obj) = v.as_object() else {
        rec.set_error(
            v,
            "each node source must be an object with \"source\" and \"prefs\"",
        );
        return None;
    };
    let source = match obj.get("source") {
        None => {
            rec.missing_key(v, "source");
            return None;
        }
        Some(s) => match lenient::as_string(s) {
            Some(name) => name,
            None => {
                rec.nested_error("source", s, "must be a node source name");
                return None;
            }
        },
    };
    if !NODE_SOURCES.contains(&source.as_str()) {
        rec.nested_error(
            "source",
            &obj["source"],
            format!(
                "Invalid node source: {source} (known: {})",
                NODE_SOURCES.join(", ")
            ),
        );
        return None;
    }
    let prefs = match obj.get("prefs") {
        None => Map::new(),
        Some(Value::Object(p)) => p.clone(),
        Some(other) => {
            rec.nested_error("prefs", other, "must be an object");
            return None;
        }
    };
    if let Err(errors) = check(&source, &prefs) {
        for e in errors {
            record_prefs_error(rec.nested("prefs"), &prefs, &e.path, e.message);
        }
        return None;
    }
    Some(NodeSourceSpec { source, prefs })
}

/// Records `message` at `path` below a node source's prefs, with the value found there.
fn record_prefs_error(
    rec: &mut ErrorRecord,
    prefs: &Map<String, Value>,
    path: &[String],
    message: String,
) {
    let value = path.split_first().and_then(|(first, rest)| {
        rest.iter().try_fold(prefs.get(first)?, |v, key| match v {
            Value::Object(obj) => obj.get(key),
            Value::Array(items) => items.get(key.parse::<usize>().ok()?),
            _ => None,
        })
    });
    let at = path.iter().fold(rec, |at, key| at.nested(key.as_str()));
    match value {
        Some(value) => at.set_error(value, message),
        None => at.error = Some(message),
    }
}

/// Parses the `nodes` block: levels, node order and node sources, whose prefs `check`
/// checks.
pub(super) fn parse_nodes(
    nodes: &Value,
    check: PrefsCheck,
    rec: &mut ErrorRecord,
) -> (Levels, NodeOrder, Vec<NodeSourceSpec>) {
    let mut levels = Vec::new();
    match nodes.get("levels") {
        None => rec.missing_key(nodes, "levels"),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                match item.as_str() {
                    Some(name) if name == INSTANCE_LEVEL || name == WORKER_LEVEL => {
                        rec.nested("levels").nested_error(
                            i.to_string(),
                            item,
                            format!("\"{name}\" is implicit and must not be listed"),
                        )
                    }
                    Some(name) => levels.push(name.to_string()),
                    None => rec.nested("levels").nested_error(
                        i.to_string(),
                        item,
                        "level names must be strings",
                    ),
                }
            }
        }
        Some(other) => rec.nested_error("levels", other, "must be an array of level names"),
    }
    let order = match nodes.get("node_order").map(|v| (v, v.as_str())) {
        None => NodeOrder::Random,
        Some((_, Some("random"))) => NodeOrder::Random,
        Some((_, Some("original"))) => NodeOrder::Original,
        Some((_, Some("lexicographic"))) => NodeOrder::Lexicographic,
        Some((v, _)) => {
            rec.nested_error(
                "node_order",
                v,
                "must be \"random\", \"original\" or \"lexicographic\"",
            );
            NodeOrder::Random
        }
    };
    let mut sources = Vec::new();
    if let Some(legacy) = nodes.get("node_source") {
        let entry = serde_json::json!({
            "source": legacy,
            "prefs": nodes.get("node_source_prefs").cloned().unwrap_or_else(|| serde_json::json!({})),
        });
        if let Some(spec) = parse_node_source(&entry, check, rec.nested("node_source")) {
            sources.push(spec);
        }
    }
    match nodes.get("node_sources") {
        None => {}
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                if let Some(spec) = parse_node_source(
                    item,
                    check,
                    rec.nested("node_sources").nested(i.to_string()),
                ) {
                    sources.push(spec);
                }
            }
        }
        Some(other) => {
            rec.nested_error("node_sources", other, "must be an array of {source, prefs}")
        }
    }
    (Levels::new(levels), order, sources)
}
