//! Reading the status file and parsing the status line (bistro-scheduling §5.2 with our
//! one-line rule from the spec README).

use super::{bits, TaskStatus, SAVED_BACKOFF_KEY};
use serde_json::Value;

/// At most this many bytes of a status file are read; more is an error.
pub const MAX_STATUS_BYTES: usize = 65000;

/// How many characters of a bad status line an error message quotes.
const EXCERPT_CHARS: usize = 200;

/// Why a status file did not hold exactly one status line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatusFileError {
    /// Nothing but blank lines (or nothing at all).
    #[error("the task wrote no status line")]
    Empty,
    /// More than one non-blank line.
    #[error("the task wrote {count} status lines instead of one: {excerpt}")]
    SeveralLines {
        /// How many non-blank lines were read.
        count: usize,
        /// The lines, quoted and shortened.
        excerpt: String,
    },
    /// Larger than [`MAX_STATUS_BYTES`].
    #[error("the status file is larger than {MAX_STATUS_BYTES} bytes")]
    TooLarge,
    /// Not valid UTF-8.
    #[error("the status line is not valid UTF-8: {excerpt}")]
    NotUtf8 {
        /// The bytes, lossily decoded and shortened.
        excerpt: String,
    },
}

fn excerpt(s: &str) -> String {
    let mut out: String = s.chars().take(EXCERPT_CHARS).collect();
    if s.chars().count() > EXCERPT_CHARS {
        out.push('…');
    }
    format!("{out:?}")
}

/// Extracts the one status line from a status file's bytes: exactly one non-blank line;
/// trailing blank lines and a final `\r` are ignored.
pub fn read_status_file(bytes: &[u8]) -> Result<String, StatusFileError> {
    if bytes.len() > MAX_STATUS_BYTES {
        return Err(StatusFileError::TooLarge);
    }
    let text = std::str::from_utf8(bytes).map_err(|_| StatusFileError::NotUtf8 {
        excerpt: excerpt(&String::from_utf8_lossy(bytes)),
    })?;
    let lines: Vec<&str> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .filter(|l| !l.trim().is_empty())
        .collect();
    match lines.as_slice() {
        [] => Err(StatusFileError::Empty),
        [line] => Ok((*line).to_string()),
        many => Err(StatusFileError::SeveralLines {
            count: many.len(),
            excerpt: excerpt(&many.join("\n")),
        }),
    }
}

fn label_bits(label: &str) -> Option<u32> {
    Some(match label {
        "done" => bits::DONE,
        "incomplete" => bits::INCOMPLETE,
        "incomplete_backoff" => {
            bits::INCOMPLETE | bits::USES_BACKOFF | bits::DOES_NOT_ADVANCE_BACKOFF
        }
        "backoff" | "error_backoff" => bits::ERROR | bits::USES_BACKOFF,
        "failed" => bits::FAILED,
        _ => return None,
    })
}

/// Why a JSON status line was refused; the task gets `error_backoff` with the reason.
#[derive(Debug, thiserror::Error)]
enum StatusLineError {
    /// Neither a status label nor JSON.
    #[error("not a status label nor valid JSON: {0}")]
    NotJson(serde_json::Error),
    /// JSON, but not an object.
    #[error("a JSON status must be an object")]
    NotAnObject,
    /// `data` is not an object.
    #[error("\"data\" must be an object, got {0}")]
    DataNotAnObject(Value),
    /// No usable `result` or `result_bits`.
    #[error("Need a valid \"result\" or \"result_bits\" key")]
    NoResult,
    /// `result_bits` is not an integer.
    #[error("result_bits must be an integer, got {0}")]
    BitsNotAnInteger(Value),
    /// `result_bits` does not fit the status bits.
    #[error("result_bits out of range: {0}")]
    BitsOutOfRange(i64),
    /// `result_bits` has a bit only the scheduler sets.
    #[error("Don't report Unstarted, Avoided, Disabled, or HasSavedBackoff bits")]
    SchedulerBits,
    /// `result_bits` has no main bit, or several.
    #[error("Set exactly one required bit")]
    NotOneMainBit,
    /// `result_bits` has bits Bistro does not know.
    #[error("Encountered unknown bit(s): {0}")]
    UnknownBits(u32),
    /// `result_bits` says running.
    #[error("a task cannot report itself running")]
    Running,
    /// `result_bits` has USES_BACKOFF alone.
    #[error("USES_BACKOFF needs ERROR or DOES_NOT_ADVANCE_BACKOFF")]
    BackoffWithoutError,
}

fn check_result_bits(value: &Value) -> Result<u32, StatusLineError> {
    let raw = crate::foundation::sanitize::lenient::as_i64(value)
        .ok_or_else(|| StatusLineError::BitsNotAnInteger(value.clone()))?;
    let b = u32::try_from(raw).map_err(|_| StatusLineError::BitsOutOfRange(raw))?;
    if b & (bits::UNSTARTED | bits::AVOIDED | bits::DISABLED | bits::HAS_SAVED_BACKOFF) != 0 {
        return Err(StatusLineError::SchedulerBits);
    }
    if (b & bits::MAIN).count_ones() != 1 {
        return Err(StatusLineError::NotOneMainBit);
    }
    let known =
        bits::MAIN | bits::USES_BACKOFF | bits::DOES_NOT_ADVANCE_BACKOFF | bits::OVERWRITEABLE;
    if b & !known != 0 {
        return Err(StatusLineError::UnknownBits(b & !known));
    }
    if b & bits::RUNNING != 0 {
        // Bistro accepts it, and the task then looks running forever: refuse.
        return Err(StatusLineError::Running);
    }
    if b & bits::USES_BACKOFF != 0 && b & (bits::ERROR | bits::DOES_NOT_ADVANCE_BACKOFF) == 0 {
        return Err(StatusLineError::BackoffWithoutError);
    }
    Ok(b)
}

fn parse_json_status(
    raw: &str,
) -> Result<(u32, Option<serde_json::Map<String, Value>>), StatusLineError> {
    let value: Value = serde_json::from_str(raw).map_err(StatusLineError::NotJson)?;
    let obj = value.as_object().ok_or(StatusLineError::NotAnObject)?;
    let data = match obj.get("data") {
        None | Some(Value::Null) => None,
        Some(Value::Object(d)) => {
            let mut d = d.clone();
            d.remove(SAVED_BACKOFF_KEY);
            (!d.is_empty()).then_some(d)
        }
        Some(other) => return Err(StatusLineError::DataNotAnObject(other.clone())),
    };
    let b = if let Some(rb) = obj.get("result_bits") {
        check_result_bits(rb)?
    } else if let Some(result) = obj.get("result") {
        result
            .as_str()
            .and_then(label_bits)
            .ok_or(StatusLineError::NoResult)?
    } else {
        return Err(StatusLineError::NoResult);
    };
    Ok((b, data))
}

/// Parses the status line a task wrote. Never fails: a bad line becomes
/// `error_backoff` with `data.exception = "Cannot parse status: <raw>, <reason>"`.
pub fn parse_status(raw: &str, time: i64) -> TaskStatus {
    if let Some(b) = label_bits(raw) {
        return TaskStatus::new(b, time);
    }
    match parse_json_status(raw) {
        Ok((b, data)) => TaskStatus {
            bits: b,
            data,
            time,
            backoff: 0,
        },
        Err(reason) => TaskStatus::error_backoff(
            format!("Cannot parse status: {}, {reason}", excerpt(raw)),
            time,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plain_labels_map_to_their_bits() {
        assert_eq!(parse_status("done", 1).bits, 4);
        assert_eq!(parse_status("incomplete", 1).bits, 8);
        assert_eq!(parse_status("incomplete_backoff", 1).bits, 8 | 64 | 512);
        assert_eq!(parse_status("backoff", 1).bits, 32 | 64);
        assert_eq!(parse_status("error_backoff", 1).bits, 32 | 64);
        assert_eq!(parse_status("failed", 1).bits, 16);
    }

    fn parse_error(raw: &str) -> String {
        let s = parse_status(raw, 0);
        assert_eq!(
            s.bits,
            bits::ERROR | bits::USES_BACKOFF,
            "{raw} should not parse"
        );
        s.exception().unwrap().to_string()
    }

    #[test]
    fn garbage_becomes_error_backoff_quoting_the_line() {
        assert!(parse_error("").starts_with("Cannot parse status: \"\""));
        assert!(parse_error("foo").contains("\"foo\""));
        assert!(parse_error("done ").contains("Cannot parse status"));
        assert!(parse_error("{}").contains("Need a valid"));
        assert!(parse_error(r#"{"result":"potato"}"#).contains("Need a valid"));
        assert!(parse_error(r#"{"result":[]}"#).contains("Need a valid"));
        assert!(parse_error(r#"{"result":42}"#).contains("Need a valid"));
        assert!(parse_error("[1,2]").contains("must be an object"));
        assert!(
            parse_error(r#"{"result":"done","data":[]}"#).contains("\"data\" must be an object")
        );
    }

    #[test]
    fn result_bits_are_validated() {
        assert!(parse_error(r#"{"result_bits":"bad"}"#).contains("integer"));
        assert!(parse_error(r#"{"result_bits":[]}"#).contains("integer"));
        assert!(parse_error(r#"{"result_bits":0}"#).contains("exactly one"));
        for b in [1, 128, 256, 2048] {
            assert!(
                parse_error(&format!(r#"{{"result_bits":{}}}"#, b | 4)).contains("Don't report")
            );
        }
        assert!(parse_error(r#"{"result_bits":6}"#).contains("exactly one"));
        assert!(parse_error(r#"{"result_bits":4098}"#).contains("unknown bit(s): 4096"));
        assert!(parse_error(r#"{"result_bits":68}"#).contains("USES_BACKOFF"));
        assert!(parse_error(r#"{"result_bits":2}"#).contains("cannot report itself running"));
        for ok in [4, 8, 16, 32, 32 | 64, 8 | 64 | 512, 32 | 1024, 4 | 1024] {
            assert_eq!(
                parse_status(&format!(r#"{{"result_bits":{ok}}}"#), 0).bits,
                ok
            );
        }
        assert_eq!(parse_status(r#"{"result_bits":"4"}"#, 0).bits, 4);
    }

    #[test]
    fn data_is_kept_but_empty_and_private_keys_are_dropped() {
        let s = parse_status(r#"{"result":"failed","data":{"k":"v"}}"#, 0);
        assert_eq!(s.bits, bits::FAILED);
        assert_eq!(s.data_json(), json!({"k": "v"}));
        assert_eq!(parse_status(r#"{"result":"done","data":{}}"#, 0).data, None);
        let s = parse_status(
            r#"{"result_bits":4,"data":{"__bistro_saved_backoff":5}}"#,
            0,
        );
        assert_eq!((s.bits, s.data), (4, None));
    }

    #[test]
    fn exactly_one_non_blank_line_is_required() {
        assert_eq!(read_status_file(b"done\n"), Ok("done".into()));
        assert_eq!(read_status_file(b"done\r\n\n\n"), Ok("done".into()));
        assert_eq!(read_status_file(b"\n  \ndone"), Ok("done".into()));
        assert_eq!(read_status_file(b""), Err(StatusFileError::Empty));
        assert_eq!(read_status_file(b"\n \n"), Err(StatusFileError::Empty));
        assert!(matches!(
            read_status_file(b"incomplete\ndone\n"),
            Err(StatusFileError::SeveralLines { count: 2, .. })
        ));
        assert!(matches!(
            read_status_file(b"\xff\xfe"),
            Err(StatusFileError::NotUtf8 { .. })
        ));
        assert_eq!(
            read_status_file(&vec![b'x'; MAX_STATUS_BYTES + 1]),
            Err(StatusFileError::TooLarge)
        );
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(crate::foundation::fuzz::config(256))]

        #[test]
        fn fuzz_any_json_status_line_gets_exactly_one_main_bit_never_running(
            v in crate::foundation::fuzz::json(&["result", "result_bits", "data", "exception", "__bistro_saved_backoff"]),
        ) {
            let s = parse_status(&v.to_string(), 0);
            prop_assert_eq!((s.bits & bits::MAIN).count_ones(), 1);
            prop_assert_eq!(s.bits & bits::RUNNING, 0);
        }

        #[test]
        fn any_status_line_parses_to_exactly_one_main_bit_never_running(raw in ".{0,300}") {
            let s = parse_status(&raw, 0);
            prop_assert_eq!((s.bits & bits::MAIN).count_ones(), 1);
            prop_assert_eq!(s.bits & bits::RUNNING, 0);
            if s.exception().is_some_and(|e| e.starts_with("Cannot parse status")) {
                prop_assert_eq!(s.bits, bits::ERROR | bits::USES_BACKOFF);
            }
        }

        #[test]
        fn json_statuses_with_any_result_bits_never_yield_private_bits(bits_in in any::<u32>(), with_data in any::<bool>()) {
            let data = if with_data { r#","data":{"k":1,"__bistro_saved_backoff":9}"# } else { "" };
            let s = parse_status(&format!(r#"{{"result_bits":{bits_in}{data}}}"#), 0);
            prop_assert_eq!(s.bits & (bits::UNSTARTED | bits::AVOIDED | bits::DISABLED | bits::HAS_SAVED_BACKOFF), 0);
            prop_assert!(s.data.as_ref().is_none_or(|d| !d.contains_key(crate::foundation::status::SAVED_BACKOFF_KEY)));
        }

        #[test]
        fn any_status_file_bytes_are_read_or_rejected_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(line) = read_status_file(&bytes) {
                prop_assert!(!line.trim().is_empty() && !line.contains('\n'));
            }
        }
    }
}
