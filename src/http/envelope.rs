//! Bistro's request envelope (bistro-runtime §4.2): a JSON object of named sub-queries,
//! `{"a": {"handler": "jobs", ...params}, "b": ...}`, each answered independently as
//! `{"data": ...}` or `{"error": "..."}`. A top-level `prefs` is ignored. A body that
//! is not a JSON object is refused as a whole, with the message as a JSON string.

use super::auth::AuthError;
use super::handlers::{self, Params};
use super::Snapshot;
use serde_json::{json, Map, Value};

/// One sub-query: its key, and its handler and parameters, or why it is malformed.
#[derive(Debug, PartialEq)]
pub struct SubQuery {
    /// The key the answer goes under.
    pub key: String,
    /// The handler name and the other fields, or the sub-query's own error.
    pub call: Result<(String, Params), String>,
}

/// Parses a request body into sub-queries; the error is the whole response's message.
pub fn parse(body: &[u8]) -> Result<Vec<SubQuery>, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        format!("the request body is not valid JSON: {e}; send an object like {{\"a\": {{\"handler\": \"jobs\"}}}}")
    })?;
    let Value::Object(queries) = value else {
        return Err(format!(
            "the request body must be a JSON object of named queries like {{\"a\": {{\"handler\": \"jobs\"}}}}, got {}",
            kind(&value)
        ));
    };
    Ok(queries
        .into_iter()
        .filter(|(key, _)| key != "prefs")
        .map(|(key, query)| {
            let call = match query {
                Value::Object(mut params) => match params.remove("handler") {
                    Some(Value::String(name)) => Ok((name, params)),
                    Some(other) => Err(format!("handler must be a string, got {other}")),
                    None => Err("missing \"handler\"".to_string()),
                },
                other => Err(format!(
                    "a query must be an object with a \"handler\", got {}",
                    kind(&other)
                )),
            };
            SubQuery { key, call }
        })
        .collect())
}

/// Answers every sub-query against one snapshot.
pub fn answer(queries: Vec<SubQuery>, snap: &Snapshot, auth: Result<(), AuthError>) -> Value {
    let out: Map<String, Value> = queries
        .into_iter()
        .map(|SubQuery { key, call }| {
            let result = call.and_then(|(name, params)| handlers::run(&name, &params, snap, auth));
            let answer = match result {
                Ok(data) => json!({ "data": data }),
                Err(error) => json!({ "error": error }),
            };
            (key, answer)
        })
        .collect();
    Value::Object(out)
}

/// A JSON value's kind, for messages.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_queries_are_parsed_independently_and_prefs_is_ignored() {
        let queries = parse(
            br#"{"prefs": {"x": 1}, "a": {"handler": "jobs", "jobs": ["j"]},
                 "b": {"handler": 3}, "c": [], "d": {}}"#,
        )
        .unwrap();
        let keys: Vec<&str> = queries.iter().map(|q| q.key.as_str()).collect();
        assert_eq!(keys, vec!["a", "b", "c", "d"]);
        let (name, params) = queries[0].call.as_ref().unwrap();
        assert_eq!(name, "jobs");
        assert_eq!(params["jobs"], json!(["j"]));
        assert!(!params.contains_key("handler"));
        assert_eq!(
            queries[1].call,
            Err("handler must be a string, got 3".into())
        );
        assert!(queries[2].call.as_ref().unwrap_err().contains("an array"));
        assert_eq!(queries[3].call, Err("missing \"handler\"".into()));
    }

    #[test]
    fn a_body_that_is_not_an_object_is_refused_whole() {
        assert!(parse(b"{nope").unwrap_err().contains("not valid JSON"));
        assert!(parse(b"[1]").unwrap_err().contains("got an array"));
        assert!(parse(b"").unwrap_err().contains("not valid JSON"));
        assert_eq!(parse(b"{}").unwrap(), Vec::new());
    }
}
