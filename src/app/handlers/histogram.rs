//! `histogram` (bistro-runtime §4.3): for each valid job, how many nodes of each level
//! have each combination of status bits. A task node's bits are its status (running,
//! or the stored status with `uses_backoff` only while the backoff lasts; `unstarted`
//! when it never ran and may run), plus `avoided` when the job's filters reject its
//! path and `disabled` when a node on its path is disabled. Every ancestor gets the OR
//! of its descendants', and each node is counted once at its own level under the code
//! of its bits.

use super::{integer, strings, wanted, HandlerError, Params};
use crate::app::snapshot::Snapshot;
use crate::foundation::status::bits;
use crate::scheduler::{disabled_on_path, filtered_on_path};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Bistro's 64-character alphabet for histogram codes.
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// The code of a bit set: `ALPHABET[bits & 63]`, then `ALPHABET[bits >> 6]` when that
/// is not zero (12 bits at most).
pub fn code(bits: u32) -> String {
    let mut out = String::with_capacity(2);
    out.push(ALPHABET[(bits & 63) as usize] as char);
    let high = (bits >> 6) & 63;
    if high != 0 {
        out.push(ALPHABET[high as usize] as char);
    }
    out
}

type PerLevel<T> = BTreeMap<String, BTreeMap<String, T>>;

pub(super) fn histogram(params: &Params, snap: &Snapshot) -> Result<Value, HandlerError> {
    let filter = strings(params, "jobs")?;
    let num_samples = integer(params, "num_samples")?.unwrap_or(0);
    let num_samples =
        usize::try_from(num_samples).map_err(|_| HandlerError::NegativeSamples(num_samples))?;
    let nodes = snap.nodes()?;
    let (rows, running) = snap.statuses()?;
    let stored: HashMap<(&str, &str), u32> = rows
        .iter()
        .map(|r| {
            let mut b = r.status.bits;
            if !r.status.in_backoff(snap.now) {
                b &= !bits::USES_BACKOFF;
            }
            ((r.job.as_str(), r.node.as_str()), b)
        })
        .collect();
    let running: HashSet<(&str, &str)> = running
        .iter()
        .map(|t| (t.job.as_str(), t.node.as_str()))
        .collect();
    let levels = &snap.config.settings.levels;
    let mut histograms: BTreeMap<&str, PerLevel<usize>> = BTreeMap::new();
    let mut samples: BTreeMap<&str, PerLevel<Vec<&str>>> = BTreeMap::new();
    for job in &snap.config.jobs {
        if job.errors.is_some() || !wanted(&filter, &job.name) {
            continue;
        }
        let mut node_bits: Vec<Option<u32>> = vec![None; nodes.list.len()];
        for n in nodes.at_level(job.level_for_tasks) {
            let key = (job.name.as_str(), nodes.list[n].name.as_str());
            let mut b = if running.contains(&key) {
                bits::RUNNING
            } else {
                stored.get(&key).copied().unwrap_or(0)
            };
            if disabled_on_path(nodes, n).is_some() {
                b |= bits::DISABLED;
            }
            if filtered_on_path(job, nodes, n).is_some() {
                b |= bits::AVOIDED;
            }
            if b == 0 {
                b = bits::UNSTARTED;
            }
            for i in nodes.upward(n) {
                *node_bits[i].get_or_insert(0) |= b;
            }
        }
        let hist = histograms.entry(&job.name).or_default();
        let sample = samples.entry(&job.name).or_default();
        for (i, b) in node_bits.iter().enumerate() {
            let Some(b) = b else { continue };
            let node = &nodes.list[i];
            let level = levels.name(node.level).to_string();
            let c = code(*b & 0xfff);
            *hist
                .entry(level.clone())
                .or_default()
                .entry(c.clone())
                .or_default() += 1;
            let names = sample.entry(level).or_default().entry(c).or_default();
            if names.len() < num_samples {
                names.push(&node.name);
            }
        }
    }
    let mut out = json!({"histograms": histograms});
    if num_samples != 0 {
        out["samples"] = json!(samples);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_use_one_char_per_six_bits() {
        assert_eq!(code(0), "A");
        assert_eq!(code(bits::UNSTARTED), "B");
        assert_eq!(code(bits::DONE), "E");
        assert_eq!(code(bits::ERROR | bits::USES_BACKOFF), "gB");
        assert_eq!(code(63), "_");
        assert_eq!(code(bits::AVOIDED | bits::DONE), "EC");
        assert_eq!(code(bits::DISABLED | bits::UNSTARTED), "BE");
        assert_eq!(code(4095), "__");
    }
}
