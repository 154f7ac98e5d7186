//! The resource settings (bistro-scheduling §3): the logical resources each level
//! defines (`resources`), per-worker overrides of their limits
//! (`worker_resources_override`), and the physical resources of remote workers that
//! feed them (`physical_resources`).

use super::{ErrorRecord, Levels};
use crate::foundation::sanitize::lenient;
use serde_json::Value;
use std::collections::BTreeMap;

/// A resource limit on one level.
#[derive(Debug, Clone, PartialEq)]
pub struct LevelResource {
    /// Index into [`ResourceDefs::names`].
    pub resource: usize,
    /// Slots on each node of the level.
    pub limit: i64,
    /// Weight for the `busiest` worker selector.
    pub weight: i64,
}

/// The validated `resources` settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResourceDefs {
    /// Resource names; a name is global across levels.
    pub names: Vec<String>,
    /// What every job needs of each resource unless it overrides it.
    pub defaults: Vec<i64>,
    /// For each level (by index), the resources it defines.
    pub by_level: Vec<Vec<LevelResource>>,
}

impl ResourceDefs {
    /// The id of a resource name.
    pub fn id(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    /// Parses `{LEVEL: {NAME: {default, limit, weight?}}}`, recording problems in `errors`.
    pub fn parse(value: &Value, levels: &Levels, errors: &mut ErrorRecord) -> Self {
        let mut defs = ResourceDefs {
            by_level: vec![Vec::new(); levels.len()],
            ..Default::default()
        };
        let Some(obj) = value.as_object() else {
            errors.set_error(value, "resources must be an object of levels");
            return defs;
        };
        for (level_name, resources) in obj {
            let Some(level) = levels.id(level_name) else {
                errors.nested_error(
                    level_name.as_str(),
                    resources,
                    "Unknown identifier: no such level",
                );
                continue;
            };
            let Some(resources) = resources.as_object() else {
                errors.nested_error(
                    level_name.as_str(),
                    resources,
                    "must be an object of resources",
                );
                continue;
            };
            for (name, spec) in resources {
                let rec = errors.nested(level_name.as_str()).nested(name.as_str());
                let field = |key: &str, rec: &mut ErrorRecord, required: bool| -> Option<i64> {
                    match spec.get(key) {
                        None if required => {
                            rec.missing_key(spec, key);
                            None
                        }
                        None => Some(0),
                        Some(v) => lenient::as_i64(v).or_else(|| {
                            rec.nested_error(key, v, "must be an integer");
                            None
                        }),
                    }
                };
                if !spec.is_object() {
                    rec.set_error(spec, "must be an object with default and limit");
                    continue;
                }
                let (Some(default), Some(limit), Some(weight)) = (
                    field("default", rec, true),
                    field("limit", rec, true),
                    field("weight", rec, false),
                ) else {
                    continue;
                };
                let negative: Vec<&str> =
                    [("default", default), ("limit", limit), ("weight", weight)]
                        .into_iter()
                        .filter(|(_, amount)| *amount < 0)
                        .map(|(key, _)| key)
                        .collect();
                for key in &negative {
                    rec.nested_error(*key, &spec[*key], "must not be negative");
                }
                if !negative.is_empty() {
                    continue;
                }
                let id = defs.id(name).unwrap_or_else(|| {
                    defs.names.push(name.clone());
                    defs.defaults.push(0);
                    defs.names.len() - 1
                });
                defs.defaults[id] = default;
                defs.by_level[level].retain(|r| r.resource != id);
                defs.by_level[level].push(LevelResource {
                    resource: id,
                    limit,
                    weight,
                });
            }
        }
        defs
    }
}

/// Parses `worker_resources_override` (`x`): per worker, amounts of worker-level
/// resources. Problems are recorded under the key in `rec`, the settings' record.
pub(super) fn parse_worker_overrides(
    x: &Value,
    resources: &ResourceDefs,
    levels: &Levels,
    rec: &mut ErrorRecord,
) -> BTreeMap<String, BTreeMap<String, i64>> {
    let mut worker_resources_override = BTreeMap::new();
    match x.as_object() {
        None => rec.nested_error(
            "worker_resources_override",
            x,
            "must be an object of workers",
        ),
        Some(workers) => {
            for (worker, amounts) in workers {
                if !amounts.is_object() {
                    rec.nested("worker_resources_override").nested_error(
                        worker.as_str(),
                        amounts,
                        "must be an object of {RESOURCE: amount}",
                    );
                    continue;
                }
                let mut parsed = BTreeMap::new();
                for (name, amount) in amounts.as_object().into_iter().flatten() {
                    let at = rec
                        .nested("worker_resources_override")
                        .nested(worker.as_str());
                    match resources.id(name) {
                        None => {
                            at.nested_error(name.as_str(), amount, "Overriding unknown resource")
                        }
                        Some(id)
                            if !resources.by_level[levels.worker()]
                                .iter()
                                .any(|r| r.resource == id) =>
                        {
                            at.nested_error(
                                name.as_str(),
                                amount,
                                "Overriding resource for wrong level",
                            )
                        }
                        Some(_) => match lenient::as_i64(amount) {
                            Some(a) if a < 0 => {
                                at.nested_error(name.as_str(), amount, "must not be negative")
                            }
                            Some(a) => {
                                parsed.insert(name.clone(), a);
                            }
                            None => at.nested_error(name.as_str(), amount, "must be an integer"),
                        },
                    }
                }
                worker_resources_override.insert(worker.clone(), parsed);
            }
        }
    }
    worker_resources_override
}

/// Validates `physical_resources` (bistro-scheduling §3.5): which physical resource
/// feeds which worker-level logical resource, and how.
pub(super) fn check_physical_resources(
    v: &Value,
    resources: &ResourceDefs,
    levels: &Levels,
    rec: &mut ErrorRecord,
) {
    let Some(obj) = v.as_object() else {
        rec.set_error(
            v,
            "must be an object of ram_mb, cpu_core and gpu_card entries",
        );
        return;
    };
    let mut logical_seen = Vec::new();
    for (kind, spec) in obj {
        let at = rec.nested(kind.as_str());
        let enforcements: &[&str] = match kind.as_str() {
            "ram_mb" => &["none", "hard"],
            "cpu_core" => &["none", "soft"],
            "gpu_card" => &["none"],
            _ => {
                at.set_error(
                    spec,
                    "unknown physical resource (known: ram_mb, cpu_core, gpu_card)",
                );
                continue;
            }
        };
        if !spec.is_object() {
            at.set_error(spec, "must be an object with logical_resource");
            continue;
        }
        match spec.get("logical_resource").and_then(Value::as_str) {
            None => at.missing_key(spec, "logical_resource"),
            Some(name) => {
                let on_worker = resources.id(name).is_some_and(|id| {
                    resources.by_level[levels.worker()]
                        .iter()
                        .any(|r| r.resource == id)
                });
                if !on_worker {
                    at.nested_error(
                        "logical_resource",
                        &spec["logical_resource"],
                        "must name a worker-level resource",
                    );
                } else if logical_seen.contains(&name) {
                    at.nested_error(
                        "logical_resource",
                        &spec["logical_resource"],
                        "each logical resource may be fed only once",
                    );
                }
                logical_seen.push(name);
            }
        }
        if let Some(m) = spec.get("multiply_logical_by") {
            if lenient::as_f64(m).is_none_or(|m| m < 1e-9) {
                at.nested_error("multiply_logical_by", m, "must be a positive number");
            }
        }
        if let Some(r) = spec.get("physical_reserve_amount") {
            if lenient::as_f64(r).is_none_or(|r| r < 0.0) {
                at.nested_error(
                    "physical_reserve_amount",
                    r,
                    "must be a non-negative number",
                );
            }
        }
        if let Some(e) = spec.get("enforcement") {
            if !e.as_str().is_some_and(|e| enforcements.contains(&e)) {
                at.nested_error(
                    "enforcement",
                    e,
                    format!("must be one of: {}", enforcements.join(", ")),
                );
            }
        }
    }
}
