//! The cases of Bistro's `test_add_time_fetcher.cpp` (clock stubbed, instance `inst`).

use super::super::check_prefs;
use super::super::tests::levels;
use super::*;
use crate::foundation::config::Config;
use chrono_tz::America::Los_Angeles;
use serde_json::json;

const ON: bool = true;
const OFF: bool = false;

/// Runs an `add_time` source under the instance at `now`.
fn fetch(now: i64, schedule: Value) -> Result<Nodes, SourceError> {
    let prefs = json!({"parent_level": "instance", "schedule": schedule});
    let mut nodes = Nodes::with_instance("inst");
    add_time_nodes(
        &mut nodes,
        prefs.as_object().unwrap(),
        &levels(&["my_level"]),
        now,
        &Los_Angeles,
    )?;
    Ok(nodes)
}

/// The time nodes at `now`, as (name, enabled, tags), checking they are children of
/// the instance.
fn time_nodes(now: i64, schedule: Value) -> Vec<(String, bool, Vec<String>)> {
    let nodes = fetch(now, schedule).unwrap();
    nodes.list[1..]
        .iter()
        .map(|n| {
            assert_eq!((n.level, n.parent), (1, Some(0)), "{}", n.name);
            (n.name.clone(), n.enabled, n.tags.clone())
        })
        .collect()
}

fn check(now: i64, expected: &[(i64, bool)], items: Value) {
    let expected: Vec<_> = expected
        .iter()
        .map(|&(t, enabled)| (format!("inst:{t}"), enabled, Vec::new()))
        .collect();
    assert_eq!(time_nodes(now, items), expected, "at {now}");
}

fn every(period: i64, lifetime: i64) -> Value {
    json!([{"lifetime": lifetime, "cron": {"epoch": {"period": period}}}])
}

#[test]
fn an_item_without_a_lifetime_is_an_error() {
    let err = fetch(4, json!([{"cron": {"epoch": {"period": 4}}}]))
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("schedule.0.lifetime: "), "{err}");
    assert!(fetch(
        4,
        json!([{"lifetime": 0, "cron": {"epoch": {"period": 4}}}])
    )
    .is_err());
}

#[test]
fn nodes_live_for_their_lifetime_after_each_event() {
    let l1 = every(4, 1);
    check(4, &[(4, ON)], l1.clone());
    check(5, &[], l1.clone());
    check(7, &[], l1.clone());
    check(8, &[(8, ON)], l1);
    let l3 = every(4, 3);
    check(4, &[(4, ON)], l3.clone());
    check(6, &[(4, ON)], l3.clone());
    check(7, &[], l3.clone());
    check(8, &[(8, ON)], l3);
}

#[test]
fn nodes_are_disabled_once_their_enabled_lifetime_is_over() {
    let item = json!([{"lifetime": 4, "enabled_lifetime": 3, "cron": {"epoch": {"period": 4}}}]);
    check(4, &[(4, ON)], item.clone());
    check(6, &[(4, ON)], item.clone());
    check(7, &[(4, OFF)], item.clone());
    check(8, &[(8, ON)], item);
}

#[test]
fn a_realistic_schedule_keeps_a_window_of_old_disabled_nodes() {
    let item =
        json!([{"lifetime": 720, "enabled_lifetime": 360, "cron": {"epoch": {"period": 90}}}]);
    for dt in [0, 5, 77, 89] {
        check(
            990 + dt,
            &[
                (360, OFF),
                (450, OFF),
                (540, OFF),
                (630, OFF),
                (720, ON),
                (810, ON),
                (900, ON),
                (990, ON),
            ],
            item.clone(),
        );
    }
}

#[test]
fn varied_periods_lifetimes_and_offsets() {
    check(10, &[(7, ON)], every(7, 7));
    // Near now % period == 0.
    check(7, &[(0, ON)], every(8, 8));
    check(8, &[(8, ON)], every(8, 8));
    check(9, &[(8, ON)], every(8, 8));
    // A positive lifetime means the node is alive at its event's second.
    check(6, &[(6, ON)], every(2, 1));
    check(6, &[(6, ON)], every(2, 2));
    // The lifetime may exceed the period.
    check(6, &[(4, ON), (6, ON)], every(2, 3));
    // Offset by start.
    let offset =
        |lifetime| json!([{"lifetime": lifetime, "cron": {"epoch": {"period": 6, "start": 2}}}]);
    check(9, &[(8, ON)], offset(6));
    check(9, &[(2, ON), (8, ON)], offset(8));
}

#[test]
fn items_landing_on_the_same_time_merge_their_tags() {
    let items = json!([
        {"lifetime": 8, "tags": ["x"], "cron": {"epoch": {"period": 2, "start": 1}}},
        {"lifetime": 6, "tags": ["y"], "cron": {"epoch": {"period": 3, "start": 2}}},
    ]);
    let tags = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        time_nodes(30, items),
        vec![
            ("inst:23".to_string(), ON, tags(&["x"])),
            ("inst:25".to_string(), ON, tags(&["x"])),
            ("inst:26".to_string(), ON, tags(&["y"])),
            ("inst:27".to_string(), ON, tags(&["x"])),
            ("inst:29".to_string(), ON, tags(&["x", "y"])),
        ]
    );
}

#[test]
fn a_node_is_disabled_if_any_item_landing_on_it_disables_it() {
    let items = json!([
        {"lifetime": 10, "enabled_lifetime": 1, "cron": {"epoch": 4}},
        {"lifetime": 10, "cron": {"epoch": 4}},
    ]);
    check(6, &[(4, OFF)], items);
}

#[test]
fn a_standard_cron_item_uses_wall_clock_time() {
    // now = Thu Jan 1 05:53:20 PST 1970; live: after 01:53:20; enabled: after 05:38:20.
    // Events at 1:58 and 5:33 are disabled, 5:47 is enabled.
    let item = json!([{
        "lifetime": 14_400,
        "enabled_lifetime": 900,
        "cron": {
            "minute": [33, 47, 58],
            "hour": {"start": 1, "period": 4},
            "dst_fixes": ["skip", "repeat_use_both"]
        }
    }]);
    check(50_000, &[(35_880, OFF), (48_780, OFF), (49_620, ON)], item);
}

#[test]
fn every_parent_gets_every_time_in_the_format() {
    let prefs = json!({
        "parent_level": "host",
        "format": "{time}@{parent}",
        "schedule": every(5, 10),
    });
    let mut nodes = Nodes::with_instance("inst");
    nodes.push("h1".into(), 1, 0, true);
    nodes.push("h2".into(), 1, 0, false);
    add_time_nodes(
        &mut nodes,
        prefs.as_object().unwrap(),
        &levels(&["host", "time"]),
        12,
        &Los_Angeles,
    )
    .unwrap();
    let names: Vec<_> = nodes.list[3..]
        .iter()
        .map(|n| (n.name.as_str(), n.level, n.parent))
        .collect();
    assert_eq!(
        names,
        vec![
            ("5@h1", 2, Some(1)),
            ("10@h1", 2, Some(1)),
            ("5@h2", 2, Some(2)),
            ("10@h2", 2, Some(2)),
        ]
    );
}

#[test]
fn validation_reports_every_bad_item() {
    let prefs = json!({"format": [], "schedule": [
        {"cron": {"epoch": 4}},
        {"lifetime": 5, "cron": {"epoch": 4}},
        {"lifetime": 5, "cron": {"minute": 0, "day_of_month": 31, "month": "April",
                                 "dst_fixes": ["skip", "repeat_use_both"]}},
    ]});
    let paths: Vec<String> = validate_prefs(prefs.as_object().unwrap())
        .unwrap_err()
        .iter()
        .map(|e| e.path.join("."))
        .collect();
    assert_eq!(paths, ["format", "schedule.0.lifetime", "schedule.2.cron"]);
}

#[test]
fn no_schedule_adds_nothing() {
    assert_eq!(time_nodes(100, json!([])), Vec::new());
}

#[test]
fn bad_prefs_name_the_key_at_fault() {
    let cron = json!({"epoch": 4});
    let cases = [
        (json!({"schedule": {}}), "schedule"),
        (json!({"schedule": [7]}), "schedule.0"),
        (
            json!({"schedule": [{"lifetime": "x", "cron": cron}]}),
            "schedule.0.lifetime",
        ),
        (json!({"schedule": [{"lifetime": 5}]}), "schedule.0.cron"),
        (
            json!({"schedule": [{"lifetime": 5, "cron": cron, "tags": "x"}]}),
            "schedule.0.tags",
        ),
        (
            json!({"schedule": [{"lifetime": 5, "cron": cron, "tags": [[]]}]}),
            "schedule.0.tags.0",
        ),
        (
            json!({"schedule": [
                {"lifetime": 5, "cron": cron},
                {"lifetime": 5, "cron": {"minute": 0, "day_of_week": "Chicken",
                                         "dst_fixes": ["skip", "repeat_use_both"]}},
            ]}),
            "schedule.1.cron.day_of_week",
        ),
        (
            json!({"schedule": [{"lifetime": 5, "cron": {"minute": 0, "day_of_month": 30,
                "month": "feb", "dst_fixes": ["skip", "repeat_use_both"]}}]}),
            "schedule.0.cron",
        ),
        (json!({"format": [], "schedule": []}), "format"),
    ];
    for (prefs, at) in cases {
        let errors = validate_prefs(prefs.as_object().unwrap()).unwrap_err();
        let paths: Vec<String> = errors.iter().map(|e| e.path.join(".")).collect();
        assert_eq!(paths, [at], "{prefs}");
    }
    assert_eq!(
        validate_prefs(
            json!({"schedule": [{"lifetime": "5", "cron": cron}]})
                .as_object()
                .unwrap()
        ),
        Ok(())
    );
}

#[test]
fn a_bad_add_time_schedule_is_a_config_error_naming_the_key() {
    let config = |cron: Value| {
        json!({"bistro_settings": {
            "nodes": {"levels": ["time"], "node_sources": [{
                "source": "add_time",
                "prefs": {"parent_level": "instance", "schedule": [
                    {"lifetime": 60, "cron": {"epoch": {"period": 60}}},
                    {"lifetime": 60, "cron": cron},
                ]},
            }]},
            "resources": {},
        }})
    };
    let problems = |cron: Value| {
        Config::from_value_with(&config(cron), check_prefs)
            .unwrap_err()
            .problems()
    };
    let dst = json!(["skip", "repeat_use_both"]);
    let feb30 =
        problems(json!({"minute": 0, "day_of_month": 30, "month": "Feb", "dst_fixes": dst}));
    assert_eq!(feb30.len(), 1);
    assert_eq!(
        feb30[0].0,
        "bistro_settings.nodes.node_sources.0.prefs.schedule.1.cron"
    );
    assert!(feb30[0].1.contains("February 30"), "{}", feb30[0].1);
    let chicken = problems(json!({"minute": 0, "day_of_week": "Chicken", "dst_fixes": dst}));
    assert_eq!(
        chicken[0].0,
        "bistro_settings.nodes.node_sources.0.prefs.schedule.1.cron.day_of_week"
    );
    assert!(
        chicken[0].1.starts_with("unknown name \"Chicken\""),
        "{}",
        chicken[0].1
    );
    assert!(
        chicken[0].1.ends_with("(value: \"Chicken\")"),
        "{}",
        chicken[0].1
    );
    let good =
        Config::from_value_with(&config(json!({"minute": 0, "dst_fixes": dst})), check_prefs);
    assert!(good.is_ok());
}
