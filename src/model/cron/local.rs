//! Wall-clock labels and the UTC seconds they stand for in a time zone, DST included.
//!
//! Standard cron items match wall-clock labels (`2013-03-10 02:30`). A label may stand
//! for one UTC second, for two (the hour that a DST rewind repeats), or for none (the
//! hour that a DST jump skips). These helpers answer those questions for any
//! [`chrono::TimeZone`], so production can use the system zone and tests a fixed one.

use chrono::{DateTime, LocalResult, NaiveDateTime, Offset, TimeZone, Utc};

/// What one wall-clock label stands for in UTC seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Instants {
    /// Exactly one second.
    Unique(i64),
    /// Two seconds: the label is passed twice because the clock was set back.
    Ambiguous {
        /// The first pass, before the clock is set back.
        early: i64,
        /// The second pass, after it.
        late: i64,
    },
    /// No second: the clock jumped over the label.
    Skipped,
}

/// How far a transition may be from a label it affects: more than any UTC offset.
const SEARCH_WINDOW: i64 = 26 * 3600;

fn utc(t: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(t, 0).unwrap_or(if t < 0 {
        DateTime::<Utc>::MIN_UTC
    } else {
        DateTime::<Utc>::MAX_UTC
    })
}

/// The wall-clock label of UTC second `t` in `tz`.
pub(crate) fn label<Tz: TimeZone>(tz: &Tz, t: i64) -> NaiveDateTime {
    utc(t).with_timezone(tz).naive_local()
}

/// Seconds east of UTC in force at UTC second `t`.
pub(crate) fn utc_offset<Tz: TimeZone>(tz: &Tz, t: i64) -> i32 {
    tz.offset_from_utc_datetime(&utc(t).naive_utc())
        .fix()
        .local_minus_utc()
}

/// The UTC seconds that `label` stands for in `tz`.
pub(crate) fn instants<Tz: TimeZone>(tz: &Tz, label: NaiveDateTime) -> Instants {
    match tz.from_local_datetime(&label) {
        LocalResult::Single(t) => Instants::Unique(t.timestamp()),
        LocalResult::Ambiguous(a, b) => {
            let (a, b) = (a.timestamp(), b.timestamp());
            Instants::Ambiguous {
                early: a.min(b),
                late: a.max(b),
            }
        }
        LocalResult::None => Instants::Skipped,
    }
}

/// For a label that the clock skips: the UTC second at which the clock lands after
/// the jump (so the second before it is the last one before the skip).
pub(crate) fn skip_end<Tz: TimeZone>(tz: &Tz, skipped: NaiveDateTime) -> i64 {
    let x = skipped.and_utc().timestamp();
    first_true(x - SEARCH_WINDOW, x + SEARCH_WINDOW, |u| {
        label(tz, u) > skipped
    })
}

/// When UTC second `t` is in the first pass through wall-clock labels that a DST
/// rewind repeats: the label at which the repeat starts (the first label of the second
/// pass). `None` otherwise.
pub(crate) fn repeat_start<Tz: TimeZone>(tz: &Tz, t: i64) -> Option<NaiveDateTime> {
    match instants(tz, label(tz, t)) {
        Instants::Ambiguous { early, late } if early == t => {
            let before = utc_offset(tz, t);
            let rewind = first_true(t, late, |u| utc_offset(tz, u) != before);
            Some(label(tz, rewind))
        }
        _ => None,
    }
}

/// The smallest `u` in `lo..=hi` with `pred(u)`, for a predicate that is false then
/// true over that window and true at `hi`.
fn first_true(mut lo: i64, mut hi: i64, pred: impl Fn(i64) -> bool) -> i64 {
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if pred(mid) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    hi
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{FixedOffset, NaiveDate};
    use chrono_tz::America::{Los_Angeles, New_York};
    use proptest::prelude::*;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, mo, d)
            .unwrap()
            .and_hms_opt(h, mi, s)
            .unwrap()
    }

    /// 2013 in US Pacific: the clock is set back at 2:00 PDT on Nov 3 and jumps
    /// forward at 2:00 PST on Mar 10. US Eastern does the same 3 hours earlier.
    fn check_us_zone<Tz: TimeZone>(tz: &Tz, offset_from_pacific: i64) {
        let amb_start = 1_383_465_600 + offset_from_pacific; // Nov 3 01:00:00 PDT
        let amb_mid = 1_383_469_199 + offset_from_pacific; // Nov 3 01:59:59 PDT
        let amb_end = 1_383_472_799 + offset_from_pacific; // Nov 3 01:59:59 PST
        let after_skip = 1_362_909_600 + offset_from_pacific; // Mar 10 03:00:00 PDT
        let feb29_1980_4am = 320_673_600 + offset_from_pacific;

        for t in [amb_start, amb_mid, amb_mid + 1, amb_end] {
            match instants(tz, label(tz, t)) {
                Instants::Ambiguous { early, late } => {
                    assert!(t == early || t == late, "{t}: {early} {late}")
                }
                other => panic!("{t} should be ambiguous, got {other:?}"),
            }
        }
        for t in [amb_start - 1, amb_end + 1, after_skip, after_skip - 1] {
            assert_eq!(instants(tz, label(tz, t)), Instants::Unique(t), "{t}");
        }

        assert_eq!(label(tz, amb_start), at(2013, 11, 3, 1, 0, 0));
        assert_eq!(label(tz, amb_mid), at(2013, 11, 3, 1, 59, 59));
        assert_eq!(label(tz, amb_end), at(2013, 11, 3, 1, 59, 59));
        assert_eq!(label(tz, after_skip - 1), at(2013, 3, 10, 1, 59, 59));
        assert_eq!(label(tz, after_skip), at(2013, 3, 10, 3, 0, 0));
        assert_eq!(label(tz, feb29_1980_4am), at(1980, 2, 29, 4, 0, 0));

        let before_skip = at(2013, 3, 10, 1, 59, 59);
        let after_skip_label = at(2013, 3, 10, 3, 0, 0);
        for skipped in [
            before_skip + chrono::Duration::seconds(1),
            before_skip + chrono::Duration::seconds(1800),
            before_skip + chrono::Duration::seconds(3600),
            after_skip_label - chrono::Duration::seconds(1),
            after_skip_label - chrono::Duration::seconds(1800),
            after_skip_label - chrono::Duration::seconds(3600),
        ] {
            assert_eq!(instants(tz, skipped), Instants::Skipped, "{skipped}");
            assert_eq!(skip_end(tz, skipped), after_skip, "{skipped}");
        }

        let pacific = offset_from_pacific as i32;
        assert_eq!(utc_offset(tz, amb_start), -25_200 - pacific);
        assert_eq!(utc_offset(tz, amb_mid), -25_200 - pacific);
        assert_eq!(utc_offset(tz, amb_mid + 1), -28_800 - pacific);
        assert_eq!(utc_offset(tz, amb_end), -28_800 - pacific);
        assert_eq!(utc_offset(tz, feb29_1980_4am), -28_800 - pacific);

        let repeat = Some(at(2013, 11, 3, 1, 0, 0));
        assert_eq!(repeat_start(tz, amb_start), repeat);
        assert_eq!(repeat_start(tz, amb_mid), repeat);
        assert_eq!(repeat_start(tz, amb_mid + 1), None);
        assert_eq!(repeat_start(tz, amb_start - 1), None);
    }

    #[test]
    fn us_pacific_labels_are_ambiguous_or_skipped_around_dst() {
        check_us_zone(&Los_Angeles, 0);
    }

    #[test]
    fn us_eastern_labels_are_ambiguous_or_skipped_around_dst() {
        check_us_zone(&New_York, -10_800);
    }

    proptest! {
        #[test]
        fn zones_without_dst_round_trip_every_second_uniquely(
            t in 0i64..2_000_000_000,
            offset in prop::sample::select(vec![-7 * 3600, 14 * 3600, -12 * 3600, 4 * 3600 + 1800]),
        ) {
            let tz = FixedOffset::east_opt(offset).unwrap();
            prop_assert_eq!(instants(&tz, label(&tz, t)), Instants::Unique(t));
        }

        #[test]
        fn us_pacific_labels_of_real_seconds_map_back_to_them(t in 0i64..2_000_000_000) {
            match instants(&Los_Angeles, label(&Los_Angeles, t)) {
                Instants::Unique(u) => prop_assert_eq!(u, t),
                Instants::Ambiguous { early, late } => prop_assert!(t == early || t == late),
                Instants::Skipped => prop_assert!(false, "a real second has a label"),
            }
        }
    }
}
