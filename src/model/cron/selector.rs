//! The per-field selector of a cron item: which values of one field (minute, month,
//! epoch second, ...) match.
//!
//! JSON forms: an integer; a name (`"Tue"`, `"march"`) for fields that have names; an
//! array of those (`[]` matches everything, as `{}` does, because some JSON encoders
//! turn `{}` into `[]`); or an object with optional `start`, `end` (integer or name)
//! and `period` (`1 <= period < max - min`). Ranges do not wrap around: values are
//! `start, start + period, ...` up to `end`.

use super::CronError;
use crate::foundation::sanitize::lenient;
use serde_json::Value;

/// One field's valid range and names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Field {
    /// The JSON key of the field, for error messages.
    pub name: &'static str,
    /// The smallest valid value.
    pub min: i64,
    /// The largest valid value.
    pub max: i64,
    /// `(3-letter abbreviation, full English name)` of `min`, `min + 1`, ...; names are
    /// matched case-insensitively and must be exactly one of the two.
    pub names: &'static [(&'static str, &'static str)],
}

/// Unix seconds, for epoch items.
pub(crate) const EPOCH: Field = Field {
    name: "epoch",
    min: 0,
    max: i64::MAX,
    names: &[],
};
/// The calendar year (clamped as Bistro does).
pub(crate) const YEAR: Field = Field {
    name: "year",
    min: 1969,
    max: 9999,
    names: &[],
};
/// January is 1.
pub(crate) const MONTH: Field = Field {
    name: "month",
    min: 1,
    max: 12,
    names: &[
        ("jan", "january"),
        ("feb", "february"),
        ("mar", "march"),
        ("apr", "april"),
        ("may", "may"),
        ("jun", "june"),
        ("jul", "july"),
        ("aug", "august"),
        ("sep", "september"),
        ("oct", "october"),
        ("nov", "november"),
        ("dec", "december"),
    ],
};
/// Day of the month; months shorter than 31 days are handled by the item.
pub(crate) const DAY_OF_MONTH: Field = Field {
    name: "day_of_month",
    min: 1,
    max: 31,
    names: &[],
};
/// Sunday is 1, whatever the locale.
pub(crate) const DAY_OF_WEEK: Field = Field {
    name: "day_of_week",
    min: 1,
    max: 7,
    names: &[
        ("sun", "sunday"),
        ("mon", "monday"),
        ("tue", "tuesday"),
        ("wed", "wednesday"),
        ("thu", "thursday"),
        ("fri", "friday"),
        ("sat", "saturday"),
    ],
};
/// Hour of the day.
pub(crate) const HOUR: Field = Field {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
};
/// Minute of the hour.
pub(crate) const MINUTE: Field = Field {
    name: "minute",
    min: 0,
    max: 59,
    names: &[],
};

/// The values of one field that match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Selector {
    /// These values, sorted.
    Values(Vec<i64>),
    /// `start, start + period, ...` up to `end`.
    Range {
        /// The first value.
        start: i64,
        /// The last value that may match.
        end: i64,
        /// The step, at least 1.
        period: i64,
    },
}

impl Selector {
    /// The selector that matches every value of `field`.
    pub fn all(field: &Field) -> Self {
        Selector::Range {
            start: field.min,
            end: field.max,
            period: 1,
        }
    }

    /// Parses the JSON selector of `field`. Errors carry the path from the field's key.
    pub fn parse(v: &Value, field: &Field) -> Result<Self, CronError> {
        Self::parse_here(v, field).map_err(|e| e.under(field.name))
    }

    /// [`Selector::parse`], with error paths below the field's key.
    fn parse_here(v: &Value, field: &Field) -> Result<Self, CronError> {
        match v {
            Value::Array(items) if items.is_empty() => Ok(Self::all(field)),
            Value::Array(items) => {
                let mut values = items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| parse_value(item, field).map_err(|e| e.under(&i.to_string())))
                    .collect::<Result<Vec<_>, _>>()?;
                values.sort_unstable();
                values.dedup();
                Ok(Selector::Values(values))
            }
            Value::Object(obj) => {
                let (mut start, mut end, mut period) = (field.min, field.max, 1);
                for (key, value) in obj {
                    let parsed = match key.as_str() {
                        "start" => parse_value(value, field).map(|s| start = s),
                        "end" => parse_value(value, field).map(|e| end = e),
                        "period" => parse_period(value, field).map(|p| period = p),
                        _ => Err(CronError::invalid(
                            Vec::new(),
                            "unknown key (a range has start, end and period)",
                        )),
                    };
                    parsed.map_err(|e| e.under(key))?;
                }
                if start > end {
                    return Err(CronError::invalid(
                        Vec::new(),
                        format!("start {start} is after end {end}: ranges do not wrap around"),
                    ));
                }
                Ok(Selector::Range { start, end, period })
            }
            _ => Ok(Selector::Values(vec![parse_value(v, field)?])),
        }
    }

    /// The first matching value `>= v`, and `false`; or, when there is none, the
    /// smallest matching value and `true` (a carry into the next larger unit).
    pub fn first_match(&self, v: i64) -> (i64, bool) {
        match self {
            Selector::Values(values) => match values.iter().find(|&&x| x >= v) {
                Some(&x) => (x, false),
                None => (values[0], true),
            },
            &Selector::Range { start, end, period } => {
                if v <= start {
                    return (start, false);
                }
                let behind = (i128::from(v) - i128::from(start)) % i128::from(period);
                let next = i128::from(v) + (i128::from(period) - behind) % i128::from(period);
                if next > i128::from(end) {
                    (start, true)
                } else {
                    // `next <= end`, so it fits an i64.
                    (next as i64, false)
                }
            }
        }
    }
}

/// Reads one value: an integer in range, or a name when the field has names.
fn parse_value(v: &Value, field: &Field) -> Result<i64, CronError> {
    let value = match v {
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| CronError::invalid(Vec::new(), format!("{v} is not an integer")))?,
        Value::String(s) => parse_name(s, field)?,
        other => {
            return Err(CronError::invalid(
                Vec::new(),
                format!("{other} is neither an integer nor a name"),
            ))
        }
    };
    if value < field.min || value > field.max {
        return Err(CronError::invalid(
            Vec::new(),
            format!("{value} is out of range [{}, {}]", field.min, field.max),
        ));
    }
    Ok(value)
}

/// Maps a 3-letter or full English name, in any case, to its value.
fn parse_name(name: &str, field: &Field) -> Result<i64, CronError> {
    if field.names.is_empty() {
        return Err(CronError::invalid(
            Vec::new(),
            format!("{name:?} is not an integer ({} has no names)", field.name),
        ));
    }
    let lower = name.to_lowercase();
    field
        .names
        .iter()
        .position(|(abbr, full)| lower == *abbr || lower == *full)
        .map(|i| field.min + i as i64)
        .ok_or_else(|| {
            CronError::invalid(
                Vec::new(),
                format!(
                    "unknown name {name:?} (use {}-{}, a 3-letter name such as {:?}, or a \
                     full English name such as {:?})",
                    field.min, field.max, field.names[0].0, field.names[0].1
                ),
            )
        })
}

/// Reads a period: an integer (leniently, `"500"` too) with `1 <= period < max - min`.
fn parse_period(v: &Value, field: &Field) -> Result<i64, CronError> {
    let period = lenient::as_i64(v)
        .ok_or_else(|| CronError::invalid(Vec::new(), format!("{v} is not an integer")))?;
    let limit = field.max - field.min;
    if period < 1 || period >= limit {
        return Err(CronError::invalid(
            Vec::new(),
            format!("{period} is not in [1, {}]", limit - 1),
        ));
    }
    Ok(period)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn day(v: Value) -> Result<Selector, CronError> {
        Selector::parse(&v, &DAY_OF_WEEK)
    }

    fn range(start: i64, end: i64, period: i64) -> Selector {
        Selector::Range { start, end, period }
    }

    #[test]
    fn ranges_default_to_the_whole_field_and_accept_names() {
        assert_eq!(day(json!({})), Ok(range(1, 7, 1)));
        assert_eq!(day(json!([])), Ok(range(1, 7, 1)));
        assert_eq!(day(json!({"period": 3})), Ok(range(1, 7, 3)));
        assert_eq!(day(json!({"start": 2})), Ok(range(2, 7, 1)));
        assert_eq!(day(json!({"start": "Sunday"})), Ok(range(1, 7, 1)));
        assert_eq!(day(json!({"end": "Thu"})), Ok(range(1, 5, 1)));
        assert_eq!(
            day(json!({"start": "Tuesday", "end": "Wed"})),
            Ok(range(3, 4, 1))
        );
        assert_eq!(day(json!({"end": "Fri", "period": 2})), Ok(range(1, 6, 2)));
    }

    #[test]
    fn values_are_integers_or_names_and_come_out_sorted() {
        assert_eq!(day(json!(5)), Ok(Selector::Values(vec![5])));
        assert_eq!(day(json!("Thu")), Ok(Selector::Values(vec![5])));
        assert_eq!(
            day(json!(["Sat", 1, "Fri"])),
            Ok(Selector::Values(vec![1, 6, 7]))
        );
    }

    #[test]
    fn periods_must_be_at_least_one_and_below_the_field_width() {
        for bad in [json!(0), json!(-1), json!(7), json!(6)] {
            let err = day(json!({ "period": bad })).unwrap_err();
            assert_eq!(err.path(), ["day_of_week", "period"], "{bad}");
        }
        assert_eq!(
            Selector::parse(&json!({"period": 58}), &MINUTE),
            Ok(range(0, 59, 58))
        );
        assert!(Selector::parse(&json!({"period": 59}), &MINUTE).is_err());
        assert_eq!(
            Selector::parse(&json!({"period": "500"}), &EPOCH),
            Ok(range(0, i64::MAX, 500))
        );
    }

    #[test]
    fn values_outside_the_field_are_errors() {
        let err = day(json!({"start": 0})).unwrap_err();
        assert_eq!(err.path(), ["day_of_week", "start"]);
        assert!(err.to_string().contains("out of range [1, 7]"), "{err}");
        assert_eq!(
            day(json!({"end": 8})).unwrap_err().path(),
            ["day_of_week", "end"]
        );
        assert_eq!(day(json!([1, 9])).unwrap_err().path(), ["day_of_week", "1"]);
    }

    #[test]
    fn unknown_keys_and_floats_are_errors() {
        assert_eq!(
            day(json!({"bad_key": 3})).unwrap_err().path(),
            ["day_of_week", "bad_key"]
        );
        assert_eq!(day(json!(0.1)).unwrap_err().path(), ["day_of_week"]);
        assert_eq!(
            day(json!({"start": 0.3})).unwrap_err().path(),
            ["day_of_week", "start"]
        );
        assert!(day(json!(true)).is_err());
    }

    #[test]
    fn names_must_be_exactly_the_abbreviation_or_the_full_name() {
        for bad in ["Chicken", "Th", "S", "Tues", "Thurs"] {
            let err = day(json!(bad)).unwrap_err();
            assert!(
                err.to_string()
                    .starts_with(&format!("day_of_week: unknown name \"{bad}\"")),
                "{err}"
            );
        }
        let err = Selector::parse(&json!("5"), &MINUTE).unwrap_err();
        assert!(err.to_string().contains("minute has no names"), "{err}");
    }

    #[test]
    fn a_range_whose_start_is_after_its_end_is_an_error() {
        assert!(day(json!({"start": 5, "end": 3})).is_err());
    }

    #[test]
    fn the_default_range_matches_everything_and_carries_past_the_end() {
        let all = day(json!({})).unwrap();
        assert_eq!(all.first_match(0), (1, false));
        assert_eq!(all.first_match(1), (1, false));
        assert_eq!(all.first_match(6), (6, false));
        assert_eq!(all.first_match(7), (7, false));
        assert_eq!(all.first_match(8), (1, true));
        assert_eq!(all.first_match(10), (1, true));
    }

    #[test]
    fn values_match_the_next_listed_value_and_carry_past_the_last() {
        let five = day(json!(5)).unwrap();
        for v in 0..10 {
            assert_eq!(five.first_match(v), (5, v > 5), "{v}");
        }
        let list = day(json!([2, 4, 5])).unwrap();
        let expected = [
            (0, (2, false)),
            (1, (2, false)),
            (2, (2, false)),
            (3, (4, false)),
            (4, (4, false)),
            (5, (5, false)),
            (6, (2, true)),
            (7, (2, true)),
        ];
        for (v, want) in expected {
            assert_eq!(list.first_match(v), want, "{v}");
        }
    }

    #[test]
    fn a_stepped_range_matches_its_steps_only() {
        let r = day(json!({"start": 3, "end": 7, "period": 2})).unwrap();
        let expected = [
            (1, (3, false)),
            (2, (3, false)),
            (3, (3, false)),
            (4, (5, false)),
            (5, (5, false)),
            (6, (7, false)),
            (7, (7, false)),
            (8, (3, true)),
        ];
        for (v, want) in expected {
            assert_eq!(r.first_match(v), want, "{v}");
        }
    }

    #[test]
    fn huge_epoch_values_do_not_overflow() {
        let r = Selector::parse(&json!({"period": 2}), &EPOCH).unwrap();
        assert_eq!(r.first_match(i64::MAX), (0, true));
        assert_eq!(r.first_match(i64::MAX - 1), (i64::MAX - 1, false));
    }
}
