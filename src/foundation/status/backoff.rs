//! Backoff settings (bistro-scheduling §5.4): how long a task waits after a failure.

use serde_json::Value;

/// The default backoff list: `[15,30,60,300,900,3600,7200,21600,86400,"repeat"]`.
pub const DEFAULT_BACKOFF: [i64; 9] = [15, 30, 60, 300, 900, 3600, 7200, 21600, 86400];

/// The wait chosen after `incomplete_backoff` once a `fail` list is exhausted.
pub const NO_MORE_BACKOFF_SECONDS: i64 = 60;

/// A parsed backoff list: strictly increasing positive seconds, then `repeat` or `fail`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackoffSettings {
    /// The waits, in seconds, strictly increasing.
    pub values: Vec<i64>,
    /// `repeat`: keep using the last value; otherwise (`fail`) fail permanently.
    pub repeat: bool,
}

/// Why a backoff list was refused; items are numbered from 0.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BackoffError {
    /// Not a JSON array.
    #[error("backoff must be an array")]
    NotAnArray,
    /// An empty array.
    #[error("backoff must not be empty")]
    Empty,
    /// `repeat` with no value before it.
    #[error("\"repeat\" needs at least one value before it")]
    RepeatFirst,
    /// A string other than `repeat` or `fail`.
    #[error("backoff item {0}: unknown string {1:?}, expected \"repeat\" or \"fail\"")]
    UnknownString(usize, String),
    /// An integer beyond `i64`.
    #[error("backoff item {0}: {1} is too large")]
    TooLarge(usize, serde_json::Number),
    /// Zero or negative.
    #[error("backoff item {0}: {1} must be positive")]
    NotPositive(usize, i64),
    /// Not above the previous value.
    #[error("backoff item {0}: {1} must be greater than the previous value")]
    NotIncreasing(usize, i64),
    /// Neither an integer nor `repeat`/`fail`.
    #[error("backoff item {0}: {1} must be an integer number of seconds")]
    NotSeconds(usize, Value),
}

/// A backoff step: the seconds to wait, or `no_more` when the list is exhausted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct BackoffDuration {
    /// Seconds to wait before the task may run again.
    pub seconds: i64,
    /// The list is exhausted: an error becomes a permanent failure.
    pub no_more: bool,
}

impl BackoffDuration {
    /// A step of `seconds`.
    pub fn new(seconds: i64) -> Self {
        Self {
            seconds,
            no_more: false,
        }
    }

    /// The exhausted step.
    pub fn no_more() -> Self {
        Self {
            seconds: NO_MORE_BACKOFF_SECONDS,
            no_more: true,
        }
    }
}

impl Default for BackoffSettings {
    fn default() -> Self {
        Self {
            values: DEFAULT_BACKOFF.to_vec(),
            repeat: true,
        }
    }
}

impl BackoffSettings {
    /// Parses a backoff list; the error says which item is wrong.
    pub fn parse(value: &Value) -> Result<Self, BackoffError> {
        let items = value.as_array().ok_or(BackoffError::NotAnArray)?;
        if items.is_empty() {
            return Err(BackoffError::Empty);
        }
        let mut values: Vec<i64> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            match item {
                Value::String(s) if s == "repeat" || s == "fail" => {
                    if s == "repeat" && values.is_empty() {
                        return Err(BackoffError::RepeatFirst);
                    }
                    return Ok(Self {
                        values,
                        repeat: s == "repeat",
                    });
                }
                Value::String(s) => return Err(BackoffError::UnknownString(i, s.clone())),
                Value::Number(n) if n.is_i64() || n.is_u64() => {
                    let v = n
                        .as_i64()
                        .ok_or_else(|| BackoffError::TooLarge(i, n.clone()))?;
                    if v <= 0 {
                        return Err(BackoffError::NotPositive(i, v));
                    }
                    if values.last().is_some_and(|&last| v <= last) {
                        return Err(BackoffError::NotIncreasing(i, v));
                    }
                    values.push(v);
                }
                other => return Err(BackoffError::NotSeconds(i, other.clone())),
            }
        }
        Ok(Self {
            values,
            repeat: false,
        })
    }

    /// The step after `current`: the first value above it, the last one again with
    /// `repeat`, or `no_more`.
    pub fn next(&self, current: BackoffDuration) -> BackoffDuration {
        if !current.no_more {
            if let Some(&v) = self.values.iter().find(|&&v| v > current.seconds) {
                return BackoffDuration::new(v);
            }
        }
        match (self.repeat, self.values.last()) {
            (true, Some(&last)) => BackoffDuration::new(last),
            _ => BackoffDuration::no_more(),
        }
    }

    /// The JSON form, always ending in `"repeat"` or `"fail"`.
    pub fn to_json(&self) -> Value {
        let mut items: Vec<Value> = self.values.iter().map(|&v| Value::from(v)).collect();
        items.push(Value::from(if self.repeat { "repeat" } else { "fail" }));
        Value::Array(items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn steps(b: &BackoffSettings, from: &[i64]) -> Vec<BackoffDuration> {
        from.iter()
            .map(|&s| b.next(BackoffDuration::new(s)))
            .collect()
    }

    #[test]
    fn invalid_lists_are_rejected() {
        for bad in [
            json!([0]),
            json!([1, 2, 3, "invalid"]),
            json!({}),
            json!([1, 2, {}]),
            json!([1, 1, 2, "fail"]),
            json!([]),
            json!(["repeat"]),
            json!([3, 2]),
        ] {
            assert!(
                BackoffSettings::parse(&bad).is_err(),
                "{bad} should be rejected"
            );
        }
    }

    #[test]
    fn direct_fail_has_no_backoff() {
        let b = BackoffSettings::parse(&json!(["fail"])).unwrap();
        assert_eq!(b.next(BackoffDuration::new(0)), BackoffDuration::no_more());
    }

    #[test]
    fn a_list_without_terminator_fails_after_the_last_value() {
        for list in [json!([1, 2, 3]), json!([1, 2, 3, "fail"])] {
            let b = BackoffSettings::parse(&list).unwrap();
            assert_eq!(
                steps(&b, &[0, 1, 2, 3]),
                vec![
                    BackoffDuration::new(1),
                    BackoffDuration::new(2),
                    BackoffDuration::new(3),
                    BackoffDuration::no_more()
                ]
            );
        }
    }

    #[test]
    fn repeat_keeps_the_last_value() {
        let b = BackoffSettings::parse(&json!([1, 2, 3, "repeat"])).unwrap();
        assert_eq!(b.next(BackoffDuration::new(3)), BackoffDuration::new(3));
    }

    #[test]
    fn export_then_parse_round_trips() {
        for list in [json!([1, 2, 3]), json!([5, "repeat"]), json!(["fail"])] {
            let b = BackoffSettings::parse(&list).unwrap();
            assert_eq!(BackoffSettings::parse(&b.to_json()).unwrap(), b);
        }
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn the_ladder_climbs_monotonically_and_stays_within_the_list(
            mut values in proptest::collection::btree_set(1i64..100_000, 1..8),
            repeat in any::<bool>(),
        ) {
            let b = BackoffSettings { values: std::mem::take(&mut values).into_iter().collect(), repeat };
            let mut step = BackoffDuration::default();
            for _ in 0..12 {
                let next = b.next(step);
                if next.no_more {
                    prop_assert!(!repeat);
                    prop_assert_eq!(next, BackoffDuration::no_more());
                } else {
                    prop_assert!(b.values.contains(&next.seconds));
                    prop_assert!(next.seconds >= step.seconds);
                }
                step = next;
            }
            prop_assert_eq!(BackoffSettings::parse(&b.to_json()).unwrap(), b);
        }
    }
}
