//! Lenient conversion of JSON values, as Bistro's `DynamicParser` does.
//!
//! Bistro accepts `5`, `5.0` and `"5"` for an integer, `true` and `"true"`/`"1"` for a
//! boolean, and stringifies numbers for a string field. Users' configs rely on this
//! (`"start": "3"`, `"enabled": "false"`), so we keep it.

use serde_json::Value;

/// Reads an integer: a JSON integer, an integral float, or a numeric string.
pub fn as_i64(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64().or_else(|| {
            let f = n.as_f64()?;
            (f.fract() == 0.0 && f.abs() < 9.0e18).then_some(f as i64)
        }),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    }
}

/// Reads a number: any JSON number or a numeric string.
pub fn as_f64(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
        _ => None,
    }
}

/// Reads a boolean: `true`/`false`, or the strings `"true"`, `"false"`, `"1"`, `"0"`.
pub fn as_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.as_str() {
            "true" | "1" => Some(true),
            "false" | "0" => Some(false),
            _ => None,
        },
        Value::Number(n) => match n.as_i64() {
            Some(1) => Some(true),
            Some(0) => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// Reads a string: a JSON string, or a number rendered as text.
pub fn as_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn integers_accept_numeric_strings_and_integral_floats() {
        assert_eq!(as_i64(&json!(5)), Some(5));
        assert_eq!(as_i64(&json!(5.0)), Some(5));
        assert_eq!(as_i64(&json!("3")), Some(3));
        assert_eq!(as_i64(&json!(5.5)), None);
        assert_eq!(as_i64(&json!([])), None);
    }

    #[test]
    fn booleans_accept_true_false_strings() {
        assert_eq!(as_bool(&json!("false")), Some(false));
        assert_eq!(as_bool(&json!("1")), Some(true));
        assert_eq!(as_bool(&json!("yes")), None);
    }
}
