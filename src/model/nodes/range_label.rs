//! The `range_label` source: numbered children under every node of a parent level.

use super::{parent_level, NodeFetcher, Nodes, SourceError};
use crate::foundation::config::Levels;
use crate::foundation::sanitize::lenient;
use serde_json::{Map, Value};

/// For each parent, children `format` with `{parent}`, `{i}`, `{start}`, `{end}`
/// substituted, for `i` in `start..=end`.
pub(super) struct RangeLabelFetcher;

impl NodeFetcher for RangeLabelFetcher {
    fn fetch(
        &self,
        nodes: &mut Nodes,
        prefs: &Map<String, Value>,
        levels: &Levels,
    ) -> Result<(), SourceError> {
        let (parent, level) = parent_level(prefs, levels)?;
        let int = |key: &'static str| -> Result<i64, SourceError> {
            let v = prefs.get(key).ok_or(SourceError::MissingPref(key))?;
            lenient::as_i64(v).ok_or_else(|| SourceError::bad_pref(key, "an integer", v))
        };
        let (start, end) = (int("start")?, int("end")?);
        let format = match prefs.get("format") {
            None => "{parent}__{i}".to_string(),
            Some(f) => lenient::as_string(f)
                .ok_or_else(|| SourceError::bad_pref("format", "a string", f))?,
        };
        let enabled = match prefs.get("enabled") {
            None => true,
            Some(e) => lenient::as_bool(e)
                .ok_or_else(|| SourceError::bad_pref("enabled", "a boolean", e))?,
        };
        let parents: Vec<usize> = nodes.at_level(parent).collect();
        for p in parents {
            // `{parent}` goes first, as it may bring `{i}` along; numbers hold no
            // braces, so `{start}` and `{end}` may go before `{i}`, once per parent.
            let template = format
                .replace("{parent}", &nodes.list[p].name)
                .replace("{start}", &start.to_string())
                .replace("{end}", &end.to_string());
            let pieces: Vec<&str> = template.split("{i}").collect();
            for i in start..=end {
                nodes.push(label(&pieces, i), level, p, enabled);
            }
        }
        Ok(())
    }
}

/// The pieces of a template split at `{i}`, joined by `i`.
fn label(pieces: &[&str], i: i64) -> String {
    use std::fmt::Write;
    let mut name = String::with_capacity(pieces.iter().map(|p| p.len() + 4).sum());
    for (k, piece) in pieces.iter().enumerate() {
        if k > 0 {
            write!(name, "{i}").expect("a String takes any write");
        }
        name.push_str(piece);
    }
    name
}

#[cfg(test)]
mod tests {
    use super::super::tests::levels;
    use super::*;
    use serde_json::json;

    fn names(prefs: &[Value], l: &[&str]) -> Result<Vec<(String, usize, bool)>, SourceError> {
        let mut nodes = Nodes::with_instance("inst");
        for p in prefs {
            RangeLabelFetcher.fetch(&mut nodes, p.as_object().unwrap(), &levels(l))?;
        }
        Ok(nodes
            .list
            .iter()
            .map(|n| (n.name.clone(), n.level, n.enabled))
            .collect())
    }

    #[test]
    fn missing_or_bad_parents_are_errors() {
        assert!(names(&[json!({"start": 1, "end": 2})], &["a"]).is_err());
        assert!(names(
            &[json!({"parent_level": "x", "start": 1, "end": 2})],
            &["a"]
        )
        .is_err());
        assert!(names(
            &[json!({"parent_level": "instance", "start": 1, "end": 2})],
            &[]
        )
        .is_err());
    }

    #[test]
    fn default_and_custom_formats() {
        let n = names(
            &[json!({"parent_level": "instance", "start": "3", "end": 5})],
            &["a"],
        )
        .unwrap();
        assert_eq!(
            n[1..].iter().map(|x| x.0.as_str()).collect::<Vec<_>>(),
            vec!["inst__3", "inst__4", "inst__5"]
        );
        let n = names(
            &[json!({"parent_level": "instance", "start": -1, "end": 1, "format": "c{i}"})],
            &["a"],
        )
        .unwrap();
        assert_eq!(
            n[1..].iter().map(|x| x.0.as_str()).collect::<Vec<_>>(),
            vec!["c-1", "c0", "c1"]
        );
        let n = names(&[json!({"parent_level": "instance", "start": 2, "end": 3, "format": "{parent}_{i}_{start}_{end}"})], &["a"]).unwrap();
        assert_eq!(
            n[1..].iter().map(|x| x.0.as_str()).collect::<Vec<_>>(),
            vec!["inst_2_2_3", "inst_3_2_3"]
        );
    }

    /// Placeholders are replaced one after the other, `{parent}` first: what the
    /// parent's name brings along is replaced too.
    #[test]
    fn names_are_the_placeholders_replaced_in_turn() {
        let parents = ["p", "i", "a{i}", "{st", "art}", "{end}"];
        let formats = [
            "{parent}__{i}",
            "{{parent}}",
            "{parent}{i}{i}",
            "{st{i}art}",
            "{i}i}{start}-{end}",
            "{parent}art}",
            "",
        ];
        for format in formats {
            let mut nodes = Nodes::with_instance("inst");
            for p in parents {
                nodes.push(p.to_string(), 1, 0, true);
            }
            let prefs = json!({"parent_level": "mid", "start": -1, "end": 2, "format": format});
            RangeLabelFetcher
                .fetch(
                    &mut nodes,
                    prefs.as_object().unwrap(),
                    &levels(&["mid", "leaf"]),
                )
                .unwrap();
            let expected: Vec<String> = parents
                .iter()
                .flat_map(|p| {
                    (-1..=2).map(move |i: i64| {
                        format
                            .replace("{parent}", p)
                            .replace("{i}", &i.to_string())
                            .replace("{start}", "-1")
                            .replace("{end}", "2")
                    })
                })
                .collect();
            let got: Vec<&str> = nodes.list[1 + parents.len()..]
                .iter()
                .map(|n| n.name.as_str())
                .collect();
            assert_eq!(got, expected, "format {format:?}");
        }
    }

    #[test]
    fn a_source_below_an_empty_level_adds_nothing() {
        let n = names(
            &[
                json!({"parent_level": "instance", "start": 5, "end": 3}),
                json!({"parent_level": "mid", "start": 1, "end": 2}),
            ],
            &["mid", "leaf"],
        )
        .unwrap();
        assert_eq!(n, vec![("inst".to_string(), 0, true)]);
    }

    #[test]
    fn empty_ranges_and_multiple_levels() {
        assert_eq!(
            names(
                &[json!({"parent_level": "instance", "start": 3, "end": 2})],
                &["a"]
            )
            .unwrap()
            .len(),
            1
        );
        let n = names(
            &[
                json!({"parent_level": "instance", "start": 1, "end": 2}),
                json!({"parent_level": "mid", "start": 3, "end": 4, "enabled": "false"}),
            ],
            &["mid", "leaf"],
        )
        .unwrap();
        assert_eq!(n.len(), 7);
        assert_eq!(n[2], ("inst__2".into(), 1, true));
        assert_eq!(n[6], ("inst__2__4".into(), 2, false));
    }
}
