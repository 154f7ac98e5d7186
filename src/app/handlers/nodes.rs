//! `nodes` and `sorted_node_names` (bistro-runtime §4.3, server/test
//! test_node_getter): the nodes of the last refresh, with their levels' resources and
//! whether they are disabled. Worker nodes are not included.

use super::{strings, wanted, HandlerError, Params};
use crate::app::snapshot::Snapshot;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// The fields a `nodes` query may ask for.
const FIELDS: [&str; 2] = ["resources", "disabled"];

pub(super) fn nodes(params: &Params, snap: &Snapshot) -> Result<Value, HandlerError> {
    let filter = strings(params, "nodes")?;
    let mut fields = strings(params, "fields")?;
    if let Some(unknown) = fields.iter().find(|f| !FIELDS.contains(&f.as_str())) {
        return Err(HandlerError::UnknownField(unknown.clone()));
    }
    if fields.is_empty() {
        fields = FIELDS.iter().map(|f| f.to_string()).collect();
    }
    let nodes = snap.nodes()?;
    let settings = &snap.config.settings;
    let defs = &settings.resources;
    let mut results: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
    for node in &nodes.list {
        if node.level == settings.levels.worker() || !wanted(&filter, &node.name) {
            continue;
        }
        let mut out = Map::new();
        if fields.iter().any(|f| f == "resources") {
            let resources: Map<String, Value> = defs
                .by_level
                .get(node.level)
                .into_iter()
                .flatten()
                .map(|r| {
                    let mut spec = json!({"default": defs.defaults[r.resource], "limit": r.limit});
                    if r.weight > 0 {
                        spec["weight"] = json!(r.weight);
                    }
                    (defs.names[r.resource].clone(), spec)
                })
                .collect();
            out.insert("resources".into(), Value::Object(resources));
        }
        if fields.iter().any(|f| f == "disabled") && !node.enabled {
            out.insert("disabled".into(), json!(true));
        }
        results
            .entry(settings.levels.name(node.level))
            .or_default()
            .insert(node.name.clone(), Value::Object(out));
    }
    Ok(json!({ "results": results }))
}

pub(super) fn sorted_node_names(snap: &Snapshot) -> Result<Value, HandlerError> {
    let nodes = snap.nodes()?;
    let levels = &snap.config.settings.levels;
    let mut out: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for node in nodes.list.iter().filter(|n| n.level != levels.worker()) {
        out.entry(levels.name(node.level))
            .or_default()
            .insert(&node.name);
    }
    Ok(json!(out))
}
