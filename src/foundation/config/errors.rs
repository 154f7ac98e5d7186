//! Bistro's error records: a JSON tree that mirrors the offending config.
//!
//! A job with problems keeps an `errors` record of this shape (bistro-scheduling §0):
//! `{"value", "error", "key_errors": {KEY: msg}, "nested": {KEY: record}}`, with only the
//! keys that are needed. The same tree is flattened into one line per problem for
//! `bistro check` and the CLI.

use serde_json::{Map, Value};

/// One node of an error record tree.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ErrorRecord {
    /// The offending value at this level, when known.
    pub value: Option<Value>,
    /// The problem with the value itself.
    pub error: Option<String>,
    /// Required keys that are missing, with their messages.
    pub key_errors: Map<String, Value>,
    /// Problems found below this level, by key or array index.
    pub nested: Vec<(String, ErrorRecord)>,
}

impl ErrorRecord {
    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.error.is_none()
            && self.key_errors.is_empty()
            && self.nested.iter().all(|(_, child)| child.is_empty())
    }

    /// Records a problem with the value at this level.
    pub fn set_error(&mut self, value: &Value, message: impl Into<String>) {
        self.value = Some(value.clone());
        self.error = Some(message.into());
    }

    /// Records a missing required key; `parent` is the object it was looked up in.
    pub fn missing_key(&mut self, parent: &Value, key: &str) {
        self.value = Some(parent.clone());
        self.key_errors.insert(
            key.to_string(),
            Value::String(format!("Couldn't find key {key} in dynamic object")),
        );
    }

    /// Returns the child record for `key`, creating it.
    pub fn nested(&mut self, key: impl Into<String>) -> &mut ErrorRecord {
        let key = key.into();
        let pos = match self.nested.iter().position(|(k, _)| *k == key) {
            Some(pos) => pos,
            None => {
                self.nested.push((key, ErrorRecord::default()));
                self.nested.len() - 1
            }
        };
        &mut self.nested[pos].1
    }

    /// Records `message` about `value` found under `key`.
    pub fn nested_error(
        &mut self,
        key: impl Into<String>,
        value: &Value,
        message: impl Into<String>,
    ) {
        self.nested(key).set_error(value, message);
    }

    /// Drops empty children, so a tree built speculatively stays minimal.
    fn prune(&mut self) {
        for (_, child) in &mut self.nested {
            child.prune();
        }
        self.nested.retain(|(_, child)| !child.is_empty());
    }

    /// The Bistro JSON form of the record.
    pub fn to_json(&self) -> Value {
        let mut copy = self.clone();
        copy.prune();
        copy.to_json_unpruned()
    }

    fn to_json_unpruned(&self) -> Value {
        let mut out = Map::new();
        if let Some(value) = &self.value {
            out.insert("value".into(), value.clone());
        }
        if let Some(error) = &self.error {
            out.insert("error".into(), Value::String(error.clone()));
        }
        if !self.key_errors.is_empty() {
            out.insert("key_errors".into(), Value::Object(self.key_errors.clone()));
        }
        if !self.nested.is_empty() {
            let nested = self
                .nested
                .iter()
                .map(|(k, v)| (k.clone(), v.to_json_unpruned()))
                .collect();
            out.insert("nested".into(), Value::Object(nested));
        }
        Value::Object(out)
    }

    /// One `(key path, message)` pair per problem, depth first, for humans.
    pub fn flatten(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        flatten_json(&self.to_json(), "", &mut out);
        out
    }
}

/// Flattens an error record given in its JSON form (as stored in a job's `errors`).
pub fn flatten_json(record: &Value, path: &str, out: &mut Vec<(String, String)>) {
    let Some(obj) = record.as_object() else {
        out.push((path.to_string(), record.to_string()));
        return;
    };
    let join = |key: &str| {
        if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        }
    };
    if let Some(error) = obj.get("error") {
        let message = error
            .as_str()
            .map_or_else(|| error.to_string(), str::to_string);
        let shown = match obj.get("value") {
            Some(value) if !value.is_object() => format!("{message} (value: {value})"),
            _ => message,
        };
        out.push((path.to_string(), shown));
    }
    if let Some(Value::Object(keys)) = obj.get("key_errors") {
        for (key, message) in keys {
            let message = message
                .as_str()
                .map_or_else(|| message.to_string(), str::to_string);
            out.push((join(key), message));
        }
    }
    if let Some(Value::Object(nested)) = obj.get("nested") {
        for (key, child) in nested {
            flatten_json(child, &join(key), out);
        }
    }
    if !obj.contains_key("error")
        && !obj.contains_key("key_errors")
        && !obj.contains_key("nested")
        && !obj.is_empty()
    {
        out.push((path.to_string(), record.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn missing_key_and_nested_errors_mirror_the_tree() {
        let job = json!({"depends_on": ["a", "b", 3]});
        let mut rec = ErrorRecord::default();
        rec.missing_key(&job, "owner");
        rec.nested("depends_on")
            .nested_error("2", &json!(3), "not a string");
        assert_eq!(
            rec.to_json(),
            json!({
                "value": job,
                "key_errors": {"owner": "Couldn't find key owner in dynamic object"},
                "nested": {"depends_on": {"nested": {"2": {"value": 3, "error": "not a string"}}}}
            })
        );
        assert_eq!(
            rec.flatten(),
            vec![
                (
                    "owner".to_string(),
                    "Couldn't find key owner in dynamic object".to_string()
                ),
                (
                    "depends_on.2".to_string(),
                    "not a string (value: 3)".to_string()
                ),
            ]
        );
    }

    #[test]
    fn empty_children_are_pruned() {
        let mut rec = ErrorRecord::default();
        rec.nested("filters");
        assert!(rec.to_json().as_object().unwrap().is_empty());
    }
}
