//! The blocking client of the scheduler <-> worker calls, on ureq: one JSON `POST`
//! with a deadline for the whole exchange (connecting included), so a frozen peer
//! costs a bounded wait, and a cap on the answer's size.
//!
//! ureq, not hyper's own client: the callers are synchronous threads (the worker's
//! loops, the hub's sweeps), and ureq is a well-kept blocking client that needs no
//! runtime of its own.

use serde_json::Value;
use std::time::Duration;

/// The largest answer accepted (task logs are paged well below it).
const MAX_ANSWER_BYTES: u64 = 64 << 20;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The peer could not be reached or the exchange broke off (the call may or may
    /// not have been carried out).
    #[error("calling {addr}{path}: {message}")]
    Transport {
        /// `host:port`.
        addr: String,
        /// The path called.
        path: String,
        /// What happened.
        message: String,
    },
    /// The peer answered with a refusal: the call was not carried out.
    #[error("{addr}{path} refused the call ({status}): {message}")]
    Refused {
        /// `host:port`.
        addr: String,
        /// The path called.
        path: String,
        /// The HTTP status.
        status: u16,
        /// The peer's `error` message.
        message: String,
    },
}

/// Posts `body` as JSON to `http://addr/path` with `Authorization: authorization`
/// and returns the JSON answer of a 200. Everything must happen within `timeout`.
pub fn post_json(
    addr: &str,
    path: &str,
    authorization: &str,
    body: &Value,
    timeout: Duration,
) -> Result<Value, ClientError> {
    let fail = |message: String| ClientError::Transport {
        addr: addr.to_string(),
        path: path.to_string(),
        message,
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .build()
        .into();
    let mut answer = agent
        .post(format!("http://{addr}{path}"))
        .header("Authorization", authorization)
        .send_json(body)
        .map_err(|e| fail(e.to_string()))?;
    let status = answer.status().as_u16();
    let value: Value = answer
        .body_mut()
        .with_config()
        .limit(MAX_ANSWER_BYTES)
        .read_json()
        .map_err(|e| fail(format!("the answer ({status}) is not JSON: {e}")))?;
    if status == 200 {
        return Ok(value);
    }
    Err(ClientError::Refused {
        addr: addr.to_string(),
        path: path.to_string(),
        status,
        message: value
            .get("error")
            .and_then(Value::as_str)
            .map_or_else(|| value.to_string(), str::to_string),
    })
}
