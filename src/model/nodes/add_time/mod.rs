//! The `add_time` source (bistro-scheduling §2.4): periodic "time" nodes under every
//! node of a parent level, one per recent event of a cron schedule, so that jobs can
//! run once per period (every 15 minutes, daily at noon, ...).
//!
//! Prefs: `parent_level` (required), `format` (default `"{parent}:{time}"`, with
//! `{time}` in epoch seconds) and `schedule`, an array of items:
//!
//! - `cron`: a cron item ([`crate::model::cron`]), required;
//! - `lifetime`: seconds a node exists after its event, required and non-zero;
//! - `enabled_lifetime`: seconds it stays enabled (default: `lifetime`);
//! - `tags`: strings given to its nodes, for `tag_whitelist` filters.
//!
//! At time `now`, an item yields every event `t` with `now - lifetime < t <= now`,
//! enabled iff `now - t < enabled_lifetime`. When several items yield the same `t`,
//! the node gets the union of their tags and is enabled only if all of them say so.

use super::{parent_level, NodeFetcher, Nodes, SourceError};
use crate::foundation::config::{Levels, PrefsError};
use crate::foundation::sanitize::lenient;
use crate::model::cron::{self, CronError, CronItem};
use chrono::TimeZone;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// Adds the time nodes for the current time (`crate::foundation::time::now()`) in the system time zone.
pub(super) struct AddTimeFetcher;

impl NodeFetcher for AddTimeFetcher {
    fn fetch(
        &self,
        nodes: &mut Nodes,
        prefs: &Map<String, Value>,
        levels: &Levels,
    ) -> Result<(), SourceError> {
        add_time_nodes(
            nodes,
            prefs,
            levels,
            crate::foundation::time::now(),
            &chrono::Local,
        )
    }
}

/// The same error, found under schedule item `index`.
fn in_item(mut e: PrefsError, index: usize) -> PrefsError {
    e.path
        .splice(0..0, ["schedule".to_string(), index.to_string()]);
    e
}

/// A schedule item's cron error, with its path from inside the item.
fn from_cron(e: &CronError) -> PrefsError {
    let mut path = vec!["cron".to_string()];
    path.extend_from_slice(e.path());
    PrefsError {
        path,
        message: e.message(),
    }
}

/// Checks `add_time` prefs when the config is parsed, so that `bistro check` and
/// `tick` report a bad schedule as a config error naming the key, instead of every
/// node refresh failing later. Each cron item is also searched once from now, which
/// catches dates that never exist (Feb 30). Returns every problem found.
pub fn validate_prefs(prefs: &Map<String, Value>) -> Result<(), Vec<PrefsError>> {
    let mut errors: Vec<PrefsError> = parse_format(prefs).err().into_iter().collect();
    match schedule_items(prefs) {
        Err(e) => errors.push(e),
        Ok(items) => {
            let now = crate::foundation::time::now();
            for (i, item) in items.into_iter().enumerate() {
                match item {
                    Err(e) => errors.push(e),
                    Ok(item) => {
                        if let Err(e) = item.cron.find_first_match(now) {
                            errors.push(in_item(from_cron(&e), i));
                        }
                    }
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Adds the time nodes for time `now`, reading cron items in `tz`.
fn add_time_nodes<Tz: TimeZone>(
    nodes: &mut Nodes,
    prefs: &Map<String, Value>,
    levels: &Levels,
    now: i64,
    tz: &Tz,
) -> Result<(), SourceError> {
    let format = parse_format(prefs)?;
    let schedule = parse_schedule(prefs)?;
    let (parent, level) = parent_level(prefs, levels)?;
    let stamps = timestamps(&schedule, now, tz)?;
    let parents: Vec<usize> = nodes.at_level(parent).collect();
    for p in parents {
        for (time, stamp) in &stamps {
            let time = time.to_string();
            let name = format
                .split("{parent}")
                .map(|piece| piece.replace("{time}", &time))
                .collect::<Vec<_>>()
                .join(&nodes.list[p].name);
            let node = nodes.push(name, level, p, stamp.enabled);
            nodes.list[node].tags = stamp.tags.iter().cloned().collect();
        }
    }
    Ok(())
}

/// One `schedule` entry.
#[derive(Debug)]
struct ScheduleItem {
    lifetime: i64,
    enabled_lifetime: i64,
    tags: BTreeSet<String>,
    cron: CronItem,
}

impl ScheduleItem {
    /// Parses one item; error paths start inside the item. Unknown keys are ignored.
    fn parse(v: &Value) -> Result<Self, PrefsError> {
        let Some(obj) = v.as_object() else {
            return Err(PrefsError::new(
                &[],
                "each schedule item must be an object with cron and lifetime",
            ));
        };
        let int = |key: &str| -> Result<Option<i64>, PrefsError> {
            obj.get(key)
                .map(|v| {
                    lenient::as_i64(v).ok_or_else(|| {
                        PrefsError::new(&[key], "must be an integer number of seconds")
                    })
                })
                .transpose()
        };
        let lifetime = match int("lifetime")? {
            None | Some(0) => {
                return Err(PrefsError::new(
                    &["lifetime"],
                    "add_time: each item needs a lifetime (non-zero seconds)",
                ))
            }
            Some(lifetime) => lifetime,
        };
        let enabled_lifetime = int("enabled_lifetime")?.unwrap_or(lifetime);
        let tags = match obj.get("tags") {
            None => BTreeSet::new(),
            Some(Value::Array(tags)) => tags
                .iter()
                .enumerate()
                .map(|(j, tag)| {
                    lenient::as_string(tag).ok_or_else(|| {
                        PrefsError::new(&["tags", &j.to_string()], "a tag must be a string")
                    })
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(PrefsError::new(&["tags"], "must be an array of strings")),
        };
        let cron = match obj.get("cron") {
            None => {
                return Err(PrefsError::new(
                    &["cron"],
                    "required: a cron item saying when nodes appear",
                ))
            }
            Some(v) => cron::parse_item(v).map_err(|e| from_cron(&e))?,
        };
        Ok(ScheduleItem {
            lifetime,
            enabled_lifetime,
            tags,
            cron,
        })
    }
}

fn parse_format(prefs: &Map<String, Value>) -> Result<String, PrefsError> {
    match prefs.get("format") {
        None => Ok("{parent}:{time}".to_string()),
        Some(f) => {
            lenient::as_string(f).ok_or_else(|| PrefsError::new(&["format"], "must be a string"))
        }
    }
}

/// Each `schedule` item, parsed or with its error; an error if `schedule` is not an
/// array. A missing `schedule` is empty.
fn schedule_items(
    prefs: &Map<String, Value>,
) -> Result<Vec<Result<ScheduleItem, PrefsError>>, PrefsError> {
    match prefs.get("schedule") {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => Ok(items
            .iter()
            .enumerate()
            .map(|(i, item)| ScheduleItem::parse(item).map_err(|e| in_item(e, i)))
            .collect()),
        Some(_) => Err(PrefsError::new(
            &["schedule"],
            "must be an array of {cron, lifetime, ...} items",
        )),
    }
}

/// The `schedule` items, or the first problem with them.
fn parse_schedule(prefs: &Map<String, Value>) -> Result<Vec<ScheduleItem>, PrefsError> {
    schedule_items(prefs)?.into_iter().collect()
}

/// What the items say about one event time.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    tags: BTreeSet<String>,
    enabled: bool,
}

/// Every live event time at `now`, ascending, with its merged tags and enabled flag.
fn timestamps<Tz: TimeZone>(
    schedule: &[ScheduleItem],
    now: i64,
    tz: &Tz,
) -> Result<BTreeMap<i64, Stamp>, PrefsError> {
    let mut stamps: BTreeMap<i64, Stamp> = BTreeMap::new();
    for (i, item) in schedule.iter().enumerate() {
        let mut from = now.saturating_sub(item.lifetime).saturating_add(1);
        while let Some(t) = item
            .cron
            .find_first_match_in(from, tz)
            .map_err(|e| in_item(from_cron(&e), i))?
            .filter(|&t| t <= now)
        {
            let enabled = now - t < item.enabled_lifetime;
            stamps
                .entry(t)
                .and_modify(|stamp| {
                    stamp.tags.extend(item.tags.iter().cloned());
                    stamp.enabled &= enabled;
                })
                .or_insert_with(|| Stamp {
                    tags: item.tags.clone(),
                    enabled,
                });
            let Some(next) = t.checked_add(1) else { break };
            from = next;
        }
    }
    Ok(stamps)
}

#[cfg(test)]
mod tests;
