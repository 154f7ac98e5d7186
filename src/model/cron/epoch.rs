//! Epoch items: `{"epoch": SELECTOR}`, a selector over Unix seconds. They ignore time
//! zones, which makes them the simple, DST-free way to say "every 15 minutes".

use super::selector::{Selector, EPOCH};
use super::CronError;
use serde_json::{Map, Value};

/// Matches the Unix seconds that its selector matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EpochItem {
    seconds: Selector,
}

impl EpochItem {
    /// Parses an object holding the `epoch` key and nothing else.
    pub fn parse(obj: &Map<String, Value>) -> Result<Self, CronError> {
        if let Some(other) = obj.keys().find(|k| *k != "epoch") {
            return Err(CronError::invalid(
                vec![other.clone()],
                "not allowed in an epoch item: it has only the epoch key",
            ));
        }
        Ok(EpochItem {
            seconds: Selector::parse(&obj["epoch"], &EPOCH)?,
        })
    }

    /// The first matching second `>= t`; none once the selector is exhausted.
    pub fn find_first_match(&self, t: i64) -> Option<i64> {
        match self.seconds.first_match(t) {
            (match_t, false) => Some(match_t),
            (_, true) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn item(selector: Value) -> EpochItem {
        EpochItem::parse(json!({ "epoch": selector }).as_object().unwrap()).unwrap()
    }

    fn check(item: &EpochItem, cases: &[(i64, Option<i64>)]) {
        for &(t, want) in cases {
            assert_eq!(item.find_first_match(t), want, "from {t}");
        }
    }

    #[test]
    fn a_single_value_matches_once() {
        check(
            &item(json!(500)),
            &[
                (0, Some(500)),
                (499, Some(500)),
                (500, Some(500)),
                (501, None),
                (2_000_000_000, None),
            ],
        );
    }

    #[test]
    fn a_list_of_values_matches_each_then_nothing() {
        check(
            &item(json!([500, 7_000_000])),
            &[
                (0, Some(500)),
                (500, Some(500)),
                (501, Some(7_000_000)),
                (7_000_001, None),
            ],
        );
    }

    #[test]
    fn an_interval_with_a_start_is_aligned_to_the_start() {
        check(
            &item(json!({"start": 5000, "period": "500"})),
            &[
                (0, Some(5000)),
                (5000, Some(5000)),
                (5001, Some(5500)),
                (5623, Some(6000)),
                (1_234_567_890, Some(1_234_568_000)),
                (1_234_568_123, Some(1_234_568_500)),
            ],
        );
    }

    #[test]
    fn a_start_only_interval_runs_forever() {
        check(
            &item(json!({"start": 750, "period": 300})),
            &[
                (3, Some(750)),
                (92_885_829, Some(92_885_850)),
                (92_885_850, Some(92_885_850)),
                (92_885_851, Some(92_886_150)),
                (92_886_150, Some(92_886_150)),
            ],
        );
    }

    #[test]
    fn an_end_only_interval_starts_at_the_epoch_and_stops_after_its_end() {
        check(
            &item(json!({"end": 1500, "period": 30})),
            &[
                (0, Some(0)),
                (1, Some(30)),
                (1440, Some(1440)),
                (1441, Some(1470)),
                (1471, Some(1500)),
                (1500, Some(1500)),
                (1501, None),
            ],
        );
    }

    #[test]
    fn other_keys_beside_epoch_are_errors() {
        let err =
            EpochItem::parse(json!({"epoch": 5, "minute": 3}).as_object().unwrap()).unwrap_err();
        assert_eq!(err.path(), ["minute"]);
    }
}
