//! Bistro's cron library (bistro-scheduling §7): stateless crontab items that answer
//! "when is the first event at or after `t`?".
//!
//! It exists for the `add_time` node source, whose `schedule[].cron` entries are cron
//! items. An item is JSON in one of two forms:
//!
//! - epoch: `{"epoch": SELECTOR}` and no other key, a selector over Unix seconds
//!   (`{"epoch": {"period": 900}}` is every 15 minutes aligned to the epoch);
//! - standard: `minute` (required), `hour`, `day_of_month` or `day_of_week`, `month`,
//!   `year` and a required `dst_fixes`, matched against local wall-clock time.
//!
//! Unlike the rest of the config, unknown keys in a cron item are errors: a typo in a
//! schedule should not silently change when nodes appear.

mod epoch;
mod local;
mod selector;
mod standard;

use chrono::TimeZone;
use serde_json::Value;

/// A parsed cron item: call [`CronItem::find_first_match`] to find its events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronItem {
    kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Epoch(epoch::EpochItem),
    Standard(standard::StandardItem),
}

impl CronItem {
    /// The first event time `>= t` (epoch seconds), reading wall-clock fields in the
    /// system time zone (`TZ`, else `/etc/localtime`), as Bistro does. `None` when the
    /// item has no more events.
    pub fn find_first_match(&self, t: i64) -> Result<Option<i64>, CronError> {
        self.find_first_match_in(t, &chrono::Local)
    }

    /// [`CronItem::find_first_match`] in an explicit time zone, so that callers and
    /// tests can be deterministic. Epoch items ignore the zone.
    pub fn find_first_match_in<Tz: TimeZone>(
        &self,
        t: i64,
        tz: &Tz,
    ) -> Result<Option<i64>, CronError> {
        match &self.kind {
            Kind::Epoch(item) => Ok(item.find_first_match(t)),
            Kind::Standard(item) => item.find_first_match(t, tz),
        }
    }
}

/// Parses a cron item: the epoch form when the object has an `epoch` key, else the
/// standard form.
pub fn parse_item(v: &Value) -> Result<CronItem, CronError> {
    let Some(obj) = v.as_object() else {
        return Err(CronError::invalid(
            Vec::new(),
            format!("a cron item must be an object, got {v}"),
        ));
    };
    let kind = if obj.contains_key("epoch") {
        Kind::Epoch(epoch::EpochItem::parse(obj)?)
    } else {
        Kind::Standard(standard::StandardItem::parse(obj)?)
    };
    Ok(CronItem { kind })
}

/// Why a cron item is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CronError {
    /// A value is bad, missing or not allowed. `path` leads from the item to the
    /// offending key (`["day_of_week"]`, `["minute", "period"]`, `["dst_fixes", "2"]`);
    /// it is empty when the item itself is at fault.
    #[error("{}", at_path(path, message))]
    Invalid {
        /// Keys (or array indices) from the item down to the fault.
        path: Vec<String>,
        /// What is wrong there.
        message: String,
    },
    /// The search for a matching date gave up: the selectors most likely name a date
    /// that never exists, such as February 30 or February 29 in odd years.
    #[error(
        "no date matches after {steps} search steps: does the item ask for a date that \
         never exists, such as February 30?"
    )]
    NeverMatches {
        /// How many search steps were made before giving up.
        steps: u32,
    },
}

impl CronError {
    /// An [`CronError::Invalid`] at `path`.
    fn invalid(path: Vec<String>, message: impl Into<String>) -> Self {
        CronError::Invalid {
            path,
            message: message.into(),
        }
    }

    /// The keys from the item down to the fault (empty when the whole item is at fault).
    pub fn path(&self) -> &[String] {
        match self {
            CronError::Invalid { path, .. } => path,
            CronError::NeverMatches { .. } => &[],
        }
    }

    /// The problem, without its path.
    pub fn message(&self) -> String {
        match self {
            CronError::Invalid { message, .. } => message.clone(),
            never @ CronError::NeverMatches { .. } => never.to_string(),
        }
    }

    /// The same error, found one level deeper under `key`.
    fn under(self, key: &str) -> Self {
        match self {
            CronError::Invalid { mut path, message } => {
                path.insert(0, key.to_string());
                CronError::Invalid { path, message }
            }
            never @ CronError::NeverMatches { .. } => never,
        }
    }
}

fn at_path(path: &[String], message: &str) -> String {
    if path.is_empty() {
        message.to_string()
    } else {
        format!("{}: {message}", path.join("."))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The keys of both forms of a cron item.
    const KEYS: &[&str] = &[
        "epoch",
        "start",
        "end",
        "period",
        "year",
        "month",
        "day_of_month",
        "day_of_week",
        "hour",
        "minute",
        "second",
        "dst_fixes",
        "value",
        "values",
    ];

    proptest::proptest! {
        #![proptest_config(crate::foundation::fuzz::config(256))]

        #[test]
        fn fuzz_any_json_cron_item_parses_or_says_why_and_finds_matches_without_panicking(
            v in crate::foundation::fuzz::json(KEYS),
            t in 0i64..4_000_000_000,
        ) {
            match parse_item(&v) {
                Ok(item) => {
                    if let Ok(Some(next)) = item.find_first_match_in(t, &chrono::Utc) {
                        proptest::prop_assert!(next >= t);
                    }
                }
                Err(e) => proptest::prop_assert!(!e.message().is_empty()),
            }
        }
    }

    #[test]
    fn an_epoch_key_selects_the_epoch_form_and_the_rest_is_standard() {
        let epoch = parse_item(&json!({"epoch": 500})).unwrap();
        assert_eq!(epoch.find_first_match(0), Ok(Some(500)));
        let standard =
            parse_item(&json!({"minute": 0, "dst_fixes": ["skip", "repeat_use_both"]})).unwrap();
        assert!(matches!(standard.kind, Kind::Standard(_)));
    }

    #[test]
    fn a_cron_item_must_be_an_object() {
        let err = parse_item(&json!([1])).unwrap_err();
        assert!(err.path().is_empty());
        assert!(err.to_string().contains("must be an object"), "{err}");
    }

    #[test]
    fn errors_name_the_key_at_fault() {
        let err = parse_item(&json!({
            "minute": 0, "day_of_week": "Chicken", "dst_fixes": ["skip", "repeat_use_both"]
        }))
        .unwrap_err();
        assert_eq!(err.path(), ["day_of_week"]);
        assert!(
            err.to_string()
                .starts_with("day_of_week: unknown name \"Chicken\""),
            "{err}"
        );
        let err = parse_item(&json!({"epoch": {"period": 0}})).unwrap_err();
        assert_eq!(err.path(), ["epoch", "period"]);
    }
}
