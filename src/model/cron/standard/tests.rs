//! The cases of Bistro's `test_standard_crontab_item.cpp`, in US Pacific time
//! (America/Los_Angeles), with its expected timestamps.

use super::*;
use chrono_tz::America::Los_Angeles;
use serde_json::json;

fn item_with(dst_fixes: Value, fields: Value) -> StandardItem {
    let mut obj = fields.as_object().unwrap().clone();
    obj.insert("dst_fixes".into(), dst_fixes);
    StandardItem::parse(&obj).unwrap()
}

/// An item with the DST rules most cases use: `skip`, `repeat_use_both`.
fn item(fields: Value) -> StandardItem {
    item_with(json!(["skip", "repeat_use_both"]), fields)
}

fn first(item: &StandardItem, t: i64) -> Option<i64> {
    item.find_first_match(t, &Los_Angeles).unwrap()
}

fn check(item: &StandardItem, cases: &[(i64, i64)]) {
    for &(t, want) in cases {
        assert_eq!(first(item, t), Some(want), "from {t}");
    }
}

#[test]
fn every_minute_and_from_a_start_minute() {
    check(&item(json!({"minute": {}})), &[(0, 0)]);
    check(&item(json!({"minute": {"start": 3}})), &[(0, 180)]);
}

#[test]
fn inputs_with_seconds_round_up_to_the_next_minute() {
    check(&item(json!({"minute": {}})), &[(1, 60), (59, 60), (60, 60)]);
}

#[test]
fn a_minute_period_wraps_into_the_next_hour_and_day() {
    let min7 = item(json!({"minute": {"period": 7}}));
    check(
        &min7,
        &[
            (0, 0),
            (1, 7 * 60),
            (7 * 7 * 60, 7 * 7 * 60),
            (7 * 7 * 60 + 1, 8 * 7 * 60),
            (8 * 7 * 60 - 1, 8 * 7 * 60),
            (8 * 7 * 60, 8 * 7 * 60),
            // After minute 56 comes minute 0 of the next hour.
            (8 * 7 * 60 + 1, 3600),
            (3600 + 1, 3600 + 7 * 60),
        ],
    );
    let midnight = 28_800; // Thu Jan 1 00:00:00 PST 1970
    check(
        &min7,
        &[
            (midnight - 1, midnight),
            (midnight, midnight),
            (midnight + 1, midnight + 7 * 60),
        ],
    );
}

#[test]
fn the_31st_skips_months_without_one() {
    // From Sep 12 1976 (PDT), past September, to Oct 31 00:00 PDT.
    check(
        &item(json!({"minute": {}, "day_of_month": [31]})),
        &[(211_410_000, 215_593_200)],
    );
}

#[test]
fn february_29_is_found_in_a_leap_year_of_a_year_period() {
    let feb29 = item(json!({
        "minute": [37], "hour": 17, "day_of_month": [29], "month": "Feb",
        "year": {"start": 1999, "period": 3}
    }));
    // From Mon Jan 31 15:36:07 PST 2005 to Fri Feb 29 17:37:00 PST 2008.
    check(&feb29, &[(1_107_214_567, 1_204_335_420)]);
}

#[test]
fn february_29_in_odd_years_only_is_an_error_not_a_silent_no_match() {
    let never = item(json!({
        "minute": {}, "day_of_month": [29], "month": "FEBRUARY",
        "year": {"start": 2001, "period": 2}
    }));
    assert_eq!(
        never.find_first_match(0, &Los_Angeles),
        Err(CronError::NeverMatches { steps: MAX_STEPS })
    );
    let feb30 = item(json!({"minute": 0, "day_of_month": 30, "month": 2}));
    assert!(feb30.find_first_match(0, &Los_Angeles).is_err());
}

#[test]
fn a_day_of_week_is_found_later_in_the_same_week() {
    // Sun Jan 19, Fri Jan 24 and Sat Jan 25 2014 all lead to Sat Jan 25 00:00 PST.
    let saturday = item(json!({"minute": {}, "day_of_week": 7}));
    for t in [1_390_118_400, 1_390_550_400, 1_390_636_800] {
        assert_eq!(first(&saturday, t), Some(1_390_636_800), "from {t}");
    }
}

#[test]
fn a_day_of_week_carries_into_the_next_week() {
    // From Tue May 16 09:20:18 PDT 2017, past 08:50, to Tue May 23 08:50 PDT.
    let tuesday = item(json!({"hour": 8, "minute": 50, "day_of_week": 3}));
    check(&tuesday, &[(1_494_951_618, 1_495_554_600)]);
    // Mon Jan 20, Sat Jan 25 and Sun Jan 26 2014 all lead to Sun Jan 26 00:00 PST.
    let sunday = item(json!({"minute": {}, "day_of_week": 1}));
    for t in [1_390_204_800, 1_390_636_800, 1_390_723_200] {
        assert_eq!(first(&sunday, t), Some(1_390_723_200), "from {t}");
    }
}

#[test]
fn no_tuesday_left_in_november_rolls_over_to_march() {
    // From Wed Nov 25 00:00 PST 1981 to Tue Mar 2 00:00 PST 1982.
    let item = item(json!({"minute": {}, "day_of_week": 3, "month": [3, 11]}));
    check(&item, &[(375_523_200, 383_904_000)]);
}

/// Sun Mar 10 01:59:00 PST 2013; the next second after 01:59:59 is 03:00:00 PDT.
const PRE_SKIP: i64 = 1_362_909_540;

#[test]
fn skip_drops_events_in_the_hour_that_dst_skips() {
    check(
        &item(json!({"minute": 3})),
        &[(PRE_SKIP, PRE_SKIP + 4 * 60)],
    );
    check(
        &item(json!({"minute": [3, 7, 9]})),
        &[(PRE_SKIP, PRE_SKIP + 4 * 60)],
    );
}

#[test]
fn unskip_fires_once_at_the_last_second_before_the_skip() {
    let unskip = item_with(json!(["unskip", "repeat_use_both"]), json!({"minute": 3}));
    check(&unskip, &[(PRE_SKIP, PRE_SKIP + 59)]);
}

/// Sun Nov 3 01:00:00 PDT 2013: the hour from here is passed twice.
const FIRST_AMBIGUOUS: i64 = 1_383_465_600;
/// 01:00:00 PST, the start of the second pass.
const MID_AMBIGUOUS: i64 = FIRST_AMBIGUOUS + 3600;
/// 02:00:00 PST, the first label after both passes.
const FIRST_UNAMBIGUOUS: i64 = MID_AMBIGUOUS + 3600;

fn rewind_item(rule: &str) -> StandardItem {
    item_with(json!(["skip", rule]), json!({"minute": [3, 7]}))
}

#[test]
fn repeat_use_both_fires_in_both_passes_through_the_repeated_hour() {
    let (a, m, u) = (FIRST_AMBIGUOUS, MID_AMBIGUOUS, FIRST_UNAMBIGUOUS);
    check(
        &rewind_item("repeat_use_both"),
        &[
            (a - 90, a + 3 * 60),
            (a, a + 3 * 60),
            (a + 3 * 60, a + 3 * 60),
            (a + 3 * 60 + 1, a + 7 * 60),
            (a + 7 * 60, a + 7 * 60),
            (a + 7 * 60 + 1, m + 3 * 60),
            (m - 90, m + 3 * 60),
            (m, m + 3 * 60),
            (m + 3 * 60, m + 3 * 60),
            (m + 3 * 60 + 1, m + 7 * 60),
            (m + 7 * 60, m + 7 * 60),
            (m + 7 * 60 + 1, u + 3 * 60),
        ],
    );
}

#[test]
fn repeat_use_only_early_fires_in_the_first_pass_only() {
    let (a, u) = (FIRST_AMBIGUOUS, FIRST_UNAMBIGUOUS);
    check(
        &rewind_item("repeat_use_only_early"),
        &[
            (a - 90, a + 3 * 60),
            (a, a + 3 * 60),
            (a + 3 * 60, a + 3 * 60),
            (a + 3 * 60 + 1, a + 7 * 60),
            (a + 7 * 60, a + 7 * 60),
            (a + 7 * 60 + 1, u + 3 * 60),
        ],
    );
}

#[test]
fn repeat_use_only_late_fires_in_the_second_pass_only() {
    let (a, m, u) = (FIRST_AMBIGUOUS, MID_AMBIGUOUS, FIRST_UNAMBIGUOUS);
    check(
        &rewind_item("repeat_use_only_late"),
        &[
            (a - 90, m + 3 * 60),
            (m - 90, m + 3 * 60),
            (m, m + 3 * 60),
            (m + 3 * 60, m + 3 * 60),
            (m + 3 * 60 + 1, m + 7 * 60),
            (m + 7 * 60, m + 7 * 60),
            (m + 7 * 60 + 1, u + 3 * 60),
        ],
    );
}

#[test]
fn explicit_years_match_then_nothing() {
    let two_years = item(json!({
        "year": [2003, 2005], "month": 1, "day_of_month": 1, "hour": 0, "minute": 0
    }));
    check(
        &two_years,
        &[(0, 1_041_408_000), (1_041_408_001, 1_104_566_400)],
    );
    assert_eq!(first(&two_years, 1_104_566_401), None);
}

fn parse_error(v: Value) -> CronError {
    StandardItem::parse(v.as_object().unwrap()).unwrap_err()
}

#[test]
fn usage_errors_name_the_key_at_fault() {
    let dst = json!(["skip", "repeat_use_both"]);
    let cases = [
        (
            json!({"dst_fixes": dst, "minute": 0, "day_of_month": 1, "day_of_week": 1}),
            vec!["day_of_week"],
        ),
        (
            json!({"dst_fixes": dst, "minute": 0, "clown": 1}),
            vec!["clown"],
        ),
        (json!({"dst_fixes": dst}), vec!["minute"]),
        (json!({"minute": 0}), vec!["dst_fixes"]),
        (
            json!({"minute": 0, "dst_fixes": ["unskip"]}),
            vec!["dst_fixes"],
        ),
        (
            json!({"minute": 0, "dst_fixes": ["repeat_use_both"]}),
            vec!["dst_fixes"],
        ),
        (json!({"minute": 0, "dst_fixes": {}}), vec!["dst_fixes"]),
        (
            json!({"minute": 0, "dst_fixes": ["skip", "repeat_use_both", "unskip"]}),
            vec!["dst_fixes", "2"],
        ),
        (
            json!({"minute": 0, "dst_fixes": ["skip", "repeat_use_both", "clown"]}),
            vec!["dst_fixes", "2"],
        ),
        (
            json!({"minute": 0, "dst_fixes": ["skip", "repeat_use_only_late", "repeat_use_both"]}),
            vec!["dst_fixes", "2"],
        ),
        (json!({"dst_fixes": dst, "minute": 60}), vec!["minute"]),
        (
            json!({"dst_fixes": dst, "minute": 0, "month": "Sept"}),
            vec!["month"],
        ),
    ];
    for (v, path) in cases {
        assert_eq!(parse_error(v.clone()).path(), path, "{v}");
    }
    assert!(parse_error(json!({})).to_string().starts_with("minute: "));
}

fn selector_of(key: &str, v: Value) -> Selector {
    let item = item(json!({ "minute": {}, key: v }));
    match key {
        "month" => item.month,
        _ => match item.days {
            Days::OfWeek(selector) => selector,
            Days::OfMonth(_) => panic!("no day_of_week"),
        },
    }
}

#[test]
fn month_names_are_full_or_three_letters_in_any_case() {
    assert_eq!(
        selector_of("month", json!(["January", "FEB", "march", "Apr", "May", 6])),
        Selector::Values(vec![1, 2, 3, 4, 5, 6])
    );
    assert_eq!(
        selector_of("month", json!(["Jun", "Jul", "Aug", "Sep", "Oct", 11])),
        Selector::Values(vec![6, 7, 8, 9, 10, 11])
    );
    assert_eq!(
        selector_of("month", json!(["Nov", "december"])),
        Selector::Values(vec![11, 12])
    );
}

#[test]
fn day_of_week_names_are_full_or_three_letters_in_any_case() {
    assert_eq!(
        selector_of("day_of_week", json!(["Mon", "WEDNESDAY", "frIDay", 7])),
        Selector::Values(vec![2, 4, 6, 7])
    );
    assert_eq!(
        selector_of("day_of_week", json!(["tuesday", "SUN", 2, "thu", 6])),
        Selector::Values(vec![1, 2, 3, 5, 6])
    );
    assert_eq!(
        selector_of("day_of_week", json!("SAT")),
        Selector::Values(vec![7])
    );
}

/// The wall-clock label of `u` in US Pacific, straight from chrono.
fn pacific_label(u: i64) -> NaiveDateTime {
    chrono::DateTime::from_timestamp(u, 0)
        .unwrap()
        .with_timezone(&Los_Angeles)
        .naive_local()
}

proptest::proptest! {
    /// With `skip`, the events are the whole UTC minutes whose label matches; a
    /// repeated label's first pass is the one whose label recurs an hour later, its
    /// second pass the one whose label occurred an hour before.
    #[test]
    fn the_first_match_is_the_first_whole_minute_whose_label_matches(
        minutes in proptest::collection::btree_set(0u32..60, 1..4),
        hours in proptest::collection::btree_set(0u32..24, 1..4),
        rule in proptest::sample::select(
            vec!["repeat_use_both", "repeat_use_only_early", "repeat_use_only_late"],
        ),
        t in proptest::prop_oneof![
            1_362_780_000i64..1_363_000_000, // around the 2013 jump forward
            1_383_350_000i64..1_383_560_000, // around the 2013 rewind
            0i64..2_000_000_000,
        ],
    ) {
        let item = item_with(json!(["skip", rule]), json!({"minute": minutes, "hour": hours}));
        let start = t + (60 - t.rem_euclid(60)) % 60;
        let expected = (0..3 * 1440).map(|i| start + 60 * i).find(|&u| {
            let label = pacific_label(u);
            minutes.contains(&label.minute())
                && hours.contains(&label.hour())
                && match rule {
                    "repeat_use_only_early" => pacific_label(u - 3600) != label,
                    "repeat_use_only_late" => pacific_label(u + 3600) != label,
                    _ => true,
                }
        });
        proptest::prop_assert_eq!(first(&item, t), expected);
    }
}
