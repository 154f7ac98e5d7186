//! Job filters (bistro-scheduling §5.7): which nodes of a level a job may use.

use crate::foundation::sanitize::lenient;
use regex::Regex;
use serde_json::Value;
use std::collections::HashSet;

/// A filter on the nodes of one level; all present parts must pass.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    /// Exact names allowed (empty: no constraint).
    pub whitelist: HashSet<String>,
    /// A regex that must match somewhere in the name.
    pub whitelist_regex: Option<Regex>,
    /// Exact names excluded.
    pub blacklist: HashSet<String>,
    /// Names with a match anywhere are excluded.
    pub blacklist_regex: Option<Regex>,
    /// The node must carry at least one of these tags (empty: no constraint).
    pub tag_whitelist: HashSet<String>,
    /// Deterministic share of nodes kept, per (node, job); 1.0 keeps all.
    pub fraction_of_nodes: f64,
}

/// A problem in a filter: the key at fault (empty when the filter itself is wrong),
/// and what is wrong there.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{1}")]
pub struct FilterError(pub String, pub FilterProblem);

/// What is wrong with a filter key.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FilterProblem {
    /// The filter is not an object.
    #[error("a filter must be an object")]
    NotAnObject,
    /// A name in a list is not a string.
    #[error("{0} is not a string")]
    NotAName(Value),
    /// A name list is not an array.
    #[error("must be an array of names, got {0}")]
    NotNames(Value),
    /// A regex does not compile.
    #[error("bad regex {pattern:?}: {error}")]
    BadRegex {
        /// The pattern as given.
        pattern: String,
        /// Why it does not compile.
        error: regex::Error,
    },
    /// A regex is not a string.
    #[error("must be a regex string, got {0}")]
    NotARegex(Value),
    /// `fraction_of_nodes` is not a number.
    #[error("must be a number, got {0}")]
    NotANumber(Value),
    /// `fraction_of_nodes` is outside 0..=1.
    #[error("must be between 0 and 1, got {0}")]
    NotAFraction(f64),
}

impl JobFilter {
    /// Parses a filter object; the error names the key at fault.
    pub fn parse(value: &Value) -> Result<Self, FilterError> {
        let obj = value
            .as_object()
            .ok_or_else(|| FilterError(String::new(), FilterProblem::NotAnObject))?;
        let error = |key: &str, problem| FilterError(key.to_string(), problem);
        let names = |key: &str| -> Result<HashSet<String>, FilterError> {
            match obj.get(key) {
                None => Ok(HashSet::new()),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|v| {
                        lenient::as_string(v)
                            .ok_or_else(|| error(key, FilterProblem::NotAName(v.clone())))
                    })
                    .collect(),
                Some(other) => Err(error(key, FilterProblem::NotNames(other.clone()))),
            }
        };
        let regex = |key: &str| -> Result<Option<Regex>, FilterError> {
            match obj.get(key) {
                None => Ok(None),
                Some(Value::String(s)) => Regex::new(s).map(Some).map_err(|e| {
                    error(
                        key,
                        FilterProblem::BadRegex {
                            pattern: s.clone(),
                            error: e,
                        },
                    )
                }),
                Some(other) => Err(error(key, FilterProblem::NotARegex(other.clone()))),
            }
        };
        let fraction_of_nodes = match obj.get("fraction_of_nodes") {
            None => 1.0,
            Some(v) => {
                let f = lenient::as_f64(v).ok_or_else(|| {
                    error("fraction_of_nodes", FilterProblem::NotANumber(v.clone()))
                })?;
                if !(0.0..=1.0).contains(&f) {
                    return Err(error("fraction_of_nodes", FilterProblem::NotAFraction(f)));
                }
                if f == 0.0 {
                    1.0
                } else {
                    f
                }
            }
        };
        Ok(Self {
            whitelist: names("whitelist")?,
            whitelist_regex: regex("whitelist_regex")?,
            blacklist: names("blacklist")?,
            blacklist_regex: regex("blacklist_regex")?,
            tag_whitelist: names("tag_whitelist")?,
            fraction_of_nodes,
        })
    }

    /// True when the filter lets every node through.
    pub fn is_empty(&self) -> bool {
        self.whitelist.is_empty()
            && self.whitelist_regex.is_none()
            && self.blacklist.is_empty()
            && self.blacklist_regex.is_none()
            && self.tag_whitelist.is_empty()
            && self.fraction_of_nodes >= 1.0
    }

    /// Does node `name` with `tags` pass this filter for job `job`?
    pub fn passes(&self, job: &str, name: &str, tags: &[String]) -> bool {
        self.rejection(job, name, tags).is_none()
    }

    /// Names the first part of the filter that rejects the node, if one does.
    pub fn rejection(&self, job: &str, name: &str, tags: &[String]) -> Option<&'static str> {
        if !self.whitelist.is_empty() && !self.whitelist.contains(name) {
            Some("whitelist")
        } else if self
            .whitelist_regex
            .as_ref()
            .is_some_and(|r| !r.is_match(name))
        {
            Some("whitelist_regex")
        } else if self.blacklist.contains(name) {
            Some("blacklist")
        } else if self
            .blacklist_regex
            .as_ref()
            .is_some_and(|r| r.is_match(name))
        {
            Some("blacklist_regex")
        } else if !self.tag_whitelist.is_empty()
            && !tags.iter().any(|t| self.tag_whitelist.contains(t))
        {
            Some("tag_whitelist")
        } else if !self.keeps_fraction(job, name) {
            Some("fraction_of_nodes")
        } else {
            None
        }
    }

    /// The filter of the `worker` level, applied to a worker's host name: as
    /// [`rejection`](Self::rejection), except that workers have no tags, so
    /// `tag_whitelist` does not apply (bistro-scheduling §3.3).
    pub fn host_rejection(&self, job: &str, host: &str) -> Option<&'static str> {
        match self.rejection(job, host, &[]) {
            Some("tag_whitelist") => {
                (!self.keeps_fraction(job, host)).then_some("fraction_of_nodes")
            }
            other => other,
        }
    }

    fn keeps_fraction(&self, job: &str, name: &str) -> bool {
        self.fraction_of_nodes >= 1.0
            || fraction_hash(name, job) < self.fraction_of_nodes * 2f64.powi(64)
    }
}

/// A stable 64-bit FNV-1a hash of (node, job), salted by the job name, so a job's 25%
/// set is a subset of its 50% set and stays the same across builds.
fn fraction_hash(name: &str, job: &str) -> f64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in job.bytes().chain([0u8]).chain(name.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    // Finalize (splitmix64) so that similar names spread over the whole range.
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    h as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn filter(v: Value) -> JobFilter {
        JobFilter::parse(&v).unwrap()
    }

    #[test]
    fn empty_and_trivial_filters_pass_everything() {
        assert!(filter(json!({})).is_empty());
        assert!(filter(json!({"fraction_of_nodes": 1.0})).is_empty());
        assert!(filter(json!({})).passes("j", "anything", &[]));
    }

    #[test]
    fn lists_and_regexes_select_names() {
        let w = filter(json!({"whitelist": ["abc"]}));
        assert!(w.passes("j", "abc", &[]) && !w.passes("j", "dbs.123", &[]));
        let r = filter(json!({"whitelist_regex": "dbs.*"}));
        assert!(
            !r.passes("j", "abc", &[])
                && r.passes("j", "dbs.123", &[])
                && r.passes("j", "xdbs.4", &[])
        );
        let b = filter(json!({"blacklist": ["abc"]}));
        assert!(!b.passes("j", "abc", &[]) && b.passes("j", "dbs.123", &[]));
        let br = filter(json!({"blacklist_regex": "dbs.*"}));
        assert!(br.passes("j", "abc", &[]) && !br.passes("j", "dbs.456", &[]));
        assert_eq!(br.rejection("j", "dbs.456", &[]), Some("blacklist_regex"));
    }

    #[test]
    fn tag_whitelist_needs_one_matching_tag() {
        let t = filter(json!({"tag_whitelist": ["abc", "car"]}));
        assert!(!t.passes("j", "n", &[]));
        assert!(t.passes("j", "n", &["abc".into()]));
        assert!(t.passes("j", "n", &["ah".into(), "car".into()]));
    }

    #[test]
    fn fraction_cuts_deterministically_and_monotonically() {
        let half = filter(json!({"fraction_of_nodes": 0.5}));
        let quarter = filter(json!({"fraction_of_nodes": 0.25}));
        let names: Vec<String> = (0..10000).map(|i| format!("node{i}")).collect();
        let passed = names.iter().filter(|n| half.passes("job", n, &[])).count();
        assert!((4900..=5100).contains(&passed), "{passed}");
        for n in &names {
            if quarter.passes("job", n, &[]) {
                assert!(half.passes("job", n, &[]));
            }
        }
        let other_salt = names
            .iter()
            .filter(|n| half.passes("job", n, &[]) != half.passes("other", n, &[]))
            .count();
        assert!(other_salt > 1000);
    }

    #[test]
    fn bad_filters_name_the_key() {
        assert_eq!(
            JobFilter::parse(&json!({"whitelist_regex": "("}))
                .unwrap_err()
                .0,
            "whitelist_regex"
        );
        assert_eq!(
            JobFilter::parse(&json!({"whitelist": "abc"}))
                .unwrap_err()
                .0,
            "whitelist"
        );
        assert_eq!(
            JobFilter::parse(&json!({"fraction_of_nodes": 1.5}))
                .unwrap_err()
                .0,
            "fraction_of_nodes"
        );
    }
}
