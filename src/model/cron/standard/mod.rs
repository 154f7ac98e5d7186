//! Standard items: classic cron fields matched against wall-clock time in a time zone.
//!
//! Keys: `minute` (required), `hour`, `day_of_month` or `day_of_week` (not both),
//! `month`, `year`, and `dst_fixes` (required), which says what happens to events
//! whose wall-clock label a DST change skips or repeats:
//!
//! - clocks jump forward: `skip` (such events do not fire) or `unskip` (they fire once,
//!   at the last second before the jump);
//! - clocks are set back: `repeat_use_both`, `repeat_use_only_early` or
//!   `repeat_use_only_late` (fire in both passes through the repeated hour, the first
//!   or the second).
//!
//! The search walks the fields from the year down, carrying into the next larger
//! field when one has no match left. It is bounded, so that a date that never exists
//! (February 30) is reported as an error instead of searching until year 9999.

use super::local::{self, Instants};
use super::selector::{Field, Selector, DAY_OF_MONTH, DAY_OF_WEEK, HOUR, MINUTE, MONTH, YEAR};
use super::CronError;
use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, TimeZone, Timelike};
use serde_json::{Map, Value};

/// Loop iterations (each a carry into a larger field, or the final match) before the
/// search gives up. Real schedules need a handful; Feb 29 every 4th year from a
/// century that skips it needs a few dozen.
const MAX_STEPS: u32 = 1000;

/// Searches start no earlier than 1968-12-30 UTC: every year-1969 label is later.
const FIRST_SECOND: i64 = -31_708_800;

/// No label of year 9999 is later than 10000-01-02 UTC.
const LAST_SECOND: i64 = 253_402_387_200;

/// The keys a standard item may have.
const KEYS: [&str; 7] = [
    "minute",
    "hour",
    "day_of_month",
    "day_of_week",
    "month",
    "year",
    "dst_fixes",
];

/// What to do with events whose label the clock skips when it jumps forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Forward {
    /// They do not fire.
    Skip,
    /// They fire once, at the last second before the jump.
    Unskip,
}

/// Which passes through a repeated hour fire when the clock is set back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rewind {
    Both,
    OnlyEarly,
    OnlyLate,
}

impl Rewind {
    fn early(self) -> bool {
        self != Rewind::OnlyLate
    }

    fn late(self) -> bool {
        self != Rewind::OnlyEarly
    }
}

/// Which days match: by day of the month, or by day of the week.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Days {
    OfMonth(Selector),
    OfWeek(Selector),
}

/// A parsed standard item; the time zone is given to each search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StandardItem {
    year: Selector,
    month: Selector,
    days: Days,
    hour: Selector,
    minute: Selector,
    forward: Forward,
    rewind: Rewind,
}

impl StandardItem {
    /// Parses a standard item (an object without an `epoch` key).
    pub fn parse(obj: &Map<String, Value>) -> Result<Self, CronError> {
        if let Some(unknown) = obj.keys().find(|k| !KEYS.contains(&k.as_str())) {
            return Err(CronError::invalid(
                vec![unknown.clone()],
                format!("unknown key (known: {})", KEYS.join(", ")),
            ));
        }
        if obj.contains_key("day_of_month") && obj.contains_key("day_of_week") {
            return Err(CronError::invalid(
                vec!["day_of_week".into()],
                "cannot be combined with day_of_month: give one or the other",
            ));
        }
        if !obj.contains_key("minute") {
            return Err(CronError::invalid(
                vec!["minute".into()],
                "required: say at which minutes the item fires ({} for every minute)",
            ));
        }
        let (forward, rewind) = parse_dst_fixes(obj.get("dst_fixes"))?;
        let selector = |field: Field| match obj.get(field.name) {
            None => Ok(Selector::all(&field)),
            Some(v) => Selector::parse(v, &field),
        };
        let days = match obj.get("day_of_week") {
            Some(v) => Days::OfWeek(Selector::parse(v, &DAY_OF_WEEK)?),
            None => Days::OfMonth(selector(DAY_OF_MONTH)?),
        };
        Ok(StandardItem {
            year: selector(YEAR)?,
            month: selector(MONTH)?,
            days,
            hour: selector(HOUR)?,
            minute: selector(MINUTE)?,
            forward,
            rewind,
        })
    }

    /// The first event `>= t` in `tz`; `None` past the last matching year.
    pub fn find_first_match<Tz: TimeZone>(
        &self,
        t: i64,
        tz: &Tz,
    ) -> Result<Option<i64>, CronError> {
        if t > LAST_SECOND {
            return Ok(None);
        }
        let t = t.max(FIRST_SECOND);
        // Labels are whole minutes: from 12:43:45, the 12:43 event is in the past.
        let t = t + (60 - t.rem_euclid(60)) % 60;
        let start = local::label(tz, t);
        let mut found = self.first_event_from(start, t, tz)?;
        if self.rewind.late() {
            if let Some(repeat) = local::repeat_start(tz, t) {
                // `t` is in the first pass through a repeated hour: labels of that hour
                // before `start` fire again in the second pass, after `t`.
                if let Some(label) = self.next_label(repeat)?.filter(|&l| l < start) {
                    if let Instants::Ambiguous { late, .. } = local::instants(tz, label) {
                        found = Some(found.map_or(late, |f| f.min(late)));
                    }
                }
            }
        }
        Ok(found)
    }

    /// The first event `>= t` among the matching labels `>= from`.
    fn first_event_from<Tz: TimeZone>(
        &self,
        mut from: NaiveDateTime,
        t: i64,
        tz: &Tz,
    ) -> Result<Option<i64>, CronError> {
        loop {
            let Some(label) = self.next_label(from)? else {
                return Ok(None);
            };
            match local::instants(tz, label) {
                Instants::Unique(event) => return Ok(Some(event)),
                Instants::Ambiguous { early, late } => {
                    let fired = [(self.rewind.early(), early), (self.rewind.late(), late)]
                        .into_iter()
                        .filter(|&(used, event)| used && event >= t)
                        .map(|(_, event)| event)
                        .min();
                    if fired.is_some() {
                        return Ok(fired);
                    }
                    from = label + Duration::minutes(1);
                }
                Instants::Skipped => {
                    let landing = local::skip_end(tz, label);
                    if self.forward == Forward::Unskip {
                        return Ok(Some(landing - 1));
                    }
                    from = local::label(tz, landing);
                }
            }
        }
    }

    /// The first label `>= from` (rounded up to a whole minute) that every selector
    /// matches; `None` past the last matching year.
    fn next_label(&self, from: NaiveDateTime) -> Result<Option<NaiveDateTime>, CronError> {
        let mut at = Cursor::ceil(from);
        for _ in 0..MAX_STEPS {
            let (year, carry) = self.year.first_match(at.year);
            if carry {
                return Ok(None);
            }
            if year > at.year {
                at = Cursor::year_start(year);
            }
            let (month, carry) = self.month.first_match(at.month);
            if carry {
                at = Cursor::year_start(at.year + 1);
                continue;
            }
            if month > at.month {
                at.start_month(month);
            }
            match self.first_day(&at) {
                None => {
                    at.next_month();
                    continue;
                }
                Some(day) if day > at.day => at.start_day(day),
                Some(_) => {}
            }
            let (hour, carry) = self.hour.first_match(at.hour);
            if carry {
                at.next_day();
                continue;
            }
            if hour > at.hour {
                at.start_hour(hour);
            }
            let (minute, carry) = self.minute.first_match(at.minute);
            if carry {
                at.next_hour();
                continue;
            }
            at.minute = minute;
            return Ok(Some(at.label()));
        }
        Err(CronError::NeverMatches { steps: MAX_STEPS })
    }

    /// The first matching day `>= at.day` in `at`'s month.
    fn first_day(&self, at: &Cursor) -> Option<i64> {
        let day = match &self.days {
            Days::OfMonth(selector) => match selector.first_match(at.day) {
                (day, false) => day,
                (_, true) => return None,
            },
            Days::OfWeek(selector) => {
                let today = i64::from(at.date().weekday().number_from_sunday());
                let ahead = match selector.first_match(today) {
                    (weekday, false) => weekday - today,
                    (weekday, true) => weekday + 7 - today,
                };
                at.day + ahead
            }
        };
        (day <= days_in_month(at.year, at.month)).then_some(day)
    }
}

/// Reads `dst_fixes`: exactly one rule for each direction of clock change.
fn parse_dst_fixes(v: Option<&Value>) -> Result<(Forward, Rewind), CronError> {
    const HELP: &str = "an array with one of \"skip\" or \"unskip\" (clocks jump \
        forward) and one of \"repeat_use_both\", \"repeat_use_only_early\" or \
        \"repeat_use_only_late\" (clocks are set back)";
    let here = || vec!["dst_fixes".to_string()];
    let Some(Value::Array(rules)) = v else {
        return Err(CronError::invalid(here(), format!("required: {HELP}")));
    };
    let (mut forward, mut rewind) = (None, None);
    for (i, rule) in rules.iter().enumerate() {
        let entry = vec!["dst_fixes".to_string(), i.to_string()];
        let twice = |kind: &str| {
            CronError::invalid(
                entry.clone(),
                format!("a second rule for when clocks {kind}: give exactly one"),
            )
        };
        match rule.as_str() {
            Some(name @ ("skip" | "unskip")) => {
                if forward.is_some() {
                    return Err(twice("jump forward"));
                }
                forward = Some(if name == "skip" {
                    Forward::Skip
                } else {
                    Forward::Unskip
                });
            }
            Some(name @ ("repeat_use_both" | "repeat_use_only_early" | "repeat_use_only_late")) => {
                if rewind.is_some() {
                    return Err(twice("are set back"));
                }
                rewind = Some(match name {
                    "repeat_use_both" => Rewind::Both,
                    "repeat_use_only_early" => Rewind::OnlyEarly,
                    _ => Rewind::OnlyLate,
                });
            }
            _ => {
                return Err(CronError::invalid(
                    entry,
                    format!("unknown rule {rule}: dst_fixes is {HELP}"),
                ))
            }
        }
    }
    match (forward, rewind) {
        (Some(forward), Some(rewind)) => Ok((forward, rewind)),
        _ => Err(CronError::invalid(
            here(),
            format!("incomplete: dst_fixes is {HELP}"),
        )),
    }
}

fn days_in_month(year: i64, month: i64) -> i64 {
    let (next_year, next_month) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    date(next_year, next_month, 1)
        .pred_opt()
        .map_or(31, |last| i64::from(last.day()))
}

/// A calendar date; the search only builds dates that exist in years 1968..=10000.
fn date(year: i64, month: i64, day: i64) -> NaiveDate {
    NaiveDate::from_ymd_opt(year as i32, month as u32, day as u32)
        .expect("the cron search builds only real dates")
}

/// The search position: a wall-clock label, one field at a time.
#[derive(Debug, Clone, Copy)]
struct Cursor {
    year: i64,
    month: i64,
    day: i64,
    hour: i64,
    minute: i64,
}

impl Cursor {
    /// `label`, rounded up to a whole minute.
    fn ceil(label: NaiveDateTime) -> Self {
        let whole = label.with_second(0).and_then(|l| l.with_nanosecond(0));
        let label = match whole {
            Some(whole) if whole < label => whole + Duration::minutes(1),
            Some(whole) => whole,
            None => label,
        };
        Cursor {
            year: i64::from(label.year()),
            month: i64::from(label.month()),
            day: i64::from(label.day()),
            hour: i64::from(label.hour()),
            minute: i64::from(label.minute()),
        }
    }

    fn year_start(year: i64) -> Self {
        Cursor {
            year,
            month: 1,
            day: 1,
            hour: 0,
            minute: 0,
        }
    }

    fn start_month(&mut self, month: i64) {
        *self = Cursor {
            month,
            ..Cursor::year_start(self.year)
        };
    }

    fn next_month(&mut self) {
        if self.month == 12 {
            *self = Cursor::year_start(self.year + 1);
        } else {
            self.start_month(self.month + 1);
        }
    }

    fn start_day(&mut self, day: i64) {
        (self.day, self.hour, self.minute) = (day, 0, 0);
    }

    fn next_day(&mut self) {
        if self.day == days_in_month(self.year, self.month) {
            self.next_month();
        } else {
            self.start_day(self.day + 1);
        }
    }

    fn start_hour(&mut self, hour: i64) {
        (self.hour, self.minute) = (hour, 0);
    }

    fn next_hour(&mut self) {
        if self.hour == 23 {
            self.next_day();
        } else {
            self.start_hour(self.hour + 1);
        }
    }

    fn date(&self) -> NaiveDate {
        date(self.year, self.month, self.day)
    }

    fn label(&self) -> NaiveDateTime {
        self.date()
            .and_hms_opt(self.hour as u32, self.minute as u32, 0)
            .expect("hours and minutes come from their selectors' ranges")
    }
}

#[cfg(test)]
mod tests;
