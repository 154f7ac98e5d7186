//! What the property tests of the parsers share (tests only): their case count, which
//! `BISTRO_FUZZ_SCALE` multiplies (`chaos/all.sh` runs them at 100 times), and a
//! strategy for arbitrary JSON, the shape of most outside input.

use proptest::prelude::*;
use serde_json::Value;

/// Proptest's settings with `base` cases times `BISTRO_FUZZ_SCALE` (default 1).
pub fn config(base: u32) -> ProptestConfig {
    let scale = std::env::var("BISTRO_FUZZ_SCALE")
        .ok()
        .and_then(|s| s.parse::<u32>().ok())
        .unwrap_or(1)
        .max(1);
    ProptestConfig::with_cases(base.saturating_mul(scale))
}

/// Arbitrary JSON: scalars (numbers of every kind, strings with any characters), and
/// arrays and objects nested a few levels, with `keys` among the object keys half the
/// time so the parsers' own keys get arbitrary values.
pub fn json(keys: &'static [&'static str]) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        let key = prop_oneof![prop::sample::select(keys).prop_map(String::from), ".{0,8}"];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key, inner), 0..6)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}
