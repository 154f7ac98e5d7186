//! How a finished task's status replaces the stored one (bistro-scheduling §5.5).
//!
//! We keep the previous status while a task runs (the running table is separate), so
//! `incomplete_backoff` really does not advance the ladder, as Bistro's unit test
//! `DoesNotAdvanceBackoff` intends; Bistro's own run loop loses that because it stores
//! `running` over the previous status.

use super::{bits, BackoffDuration, TaskStatus, SAVED_BACKOFF_KEY};
use serde_json::Value;

/// The backoff step a status hands to its task's next run.
pub fn configured_backoff(status: &TaskStatus) -> BackoffDuration {
    if status.is_failed() {
        return BackoffDuration::no_more();
    }
    if status.has(bits::HAS_SAVED_BACKOFF) {
        let saved = status
            .data
            .as_ref()
            .and_then(|d| d.get(SAVED_BACKOFF_KEY))
            .and_then(Value::as_i64)
            .unwrap_or(0);
        return BackoffDuration::new(saved);
    }
    BackoffDuration::new(status.backoff)
}

/// Applies `new` (as parsed, backoff 0) over `stored`, given the backoff step `next`
/// that was computed when the task started.
///
/// A status with a saved backoff (a lost worker's stand-in, whose `backoff` is the
/// least wait that makes a second copy safe) keeps `next` as its saved step and
/// waits at least that least wait (bistro-runtime §5.9).
pub fn apply_status(
    stored: Option<&TaskStatus>,
    mut new: TaskStatus,
    next: BackoffDuration,
) -> TaskStatus {
    let floor = if new.has(bits::HAS_SAVED_BACKOFF) {
        let data = new.data.get_or_insert_with(Default::default);
        data.insert(SAVED_BACKOFF_KEY.into(), Value::from(next.seconds));
        new.backoff
    } else {
        0
    };
    new.backoff = 0;
    if !new.has(bits::USES_BACKOFF) {
        return new;
    }
    if new.has(bits::DOES_NOT_ADVANCE_BACKOFF) {
        let current = stored
            .map(configured_backoff)
            .filter(|b| !b.no_more && b.seconds > 0);
        new.backoff = current.map_or(next.seconds, |b| b.seconds);
    } else {
        new.backoff = next.seconds;
        if next.no_more && new.has(bits::ERROR) {
            new.bits = (new.bits & !bits::ERROR) | bits::FAILED;
        }
    }
    new.backoff = new.backoff.max(floor);
    new
}

/// Releases a status from permanent failure and backoff: FAILED becomes ERROR and the
/// backoff ladder restarts, so the task is eligible at once.
pub fn forgive(status: &mut TaskStatus) {
    if status.is_failed() {
        status.bits = (status.bits & !bits::FAILED) | bits::ERROR;
    }
    if status.has(bits::HAS_SAVED_BACKOFF) {
        if let Some(data) = status.data.as_mut() {
            data.insert(SAVED_BACKOFF_KEY.into(), Value::from(0));
        }
    } else if status.has(bits::USES_BACKOFF) {
        status.backoff = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::foundation::status::{parse_status, BackoffSettings};
    use serde_json::json;

    /// Runs the task once more: computes `next` from the stored status, then applies.
    fn run(backoff: &BackoffSettings, stored: Option<TaskStatus>, label: &str) -> TaskStatus {
        let next = backoff.next(stored.as_ref().map(configured_backoff).unwrap_or_default());
        apply_status(stored.as_ref(), parse_status(label, 100), next)
    }

    #[test]
    fn errors_climb_the_ladder_then_fail_and_incomplete_resets_it() {
        let b = BackoffSettings::parse(&json!([1, 2, 4, "fail"])).unwrap();
        let s = run(&b, None, "error_backoff");
        assert_eq!(s.backoff, 1);
        let s = run(&b, Some(s), "error_backoff");
        assert_eq!(s.backoff, 2);
        let s = run(&b, Some(s), "incomplete");
        assert_eq!(s.backoff, 0);
        let s = run(&b, Some(s), "error_backoff");
        assert_eq!(s.backoff, 1);
        let s = run(&b, Some(s), "error_backoff");
        let s = run(&b, Some(s), "error_backoff");
        assert_eq!(s.backoff, 4);
        assert!(s.in_backoff(103));
        let s = run(&b, Some(s), "error_backoff");
        assert!(s.is_failed());
        assert!(!s.has(bits::ERROR));
    }

    #[test]
    fn a_lost_worker_s_task_waits_the_safety_margin_and_keeps_its_step() {
        let b = BackoffSettings::parse(&json!([1, 2, 100, "fail"])).unwrap();
        let lost = |time| TaskStatus {
            bits: bits::ERROR | bits::USES_BACKOFF | bits::OVERWRITEABLE | bits::HAS_SAVED_BACKOFF,
            data: None,
            time,
            backoff: 66,
        };
        let next = b.next(BackoffDuration::default());
        let s = apply_status(None, lost(100), next);
        assert_eq!(s.backoff, 66, "the safety margin wins over a 1 s step");
        assert_eq!(configured_backoff(&s).seconds, 1, "the job's step is saved");
        let s = apply_status(Some(&s), lost(200), b.next(configured_backoff(&s)));
        assert_eq!((s.backoff, configured_backoff(&s).seconds), (66, 2));
        let s = apply_status(Some(&s), lost(300), b.next(configured_backoff(&s)));
        assert_eq!(s.backoff, 100, "a longer step wins over the margin");
        let s = apply_status(Some(&s), lost(400), b.next(configured_backoff(&s)));
        assert!(s.is_failed(), "a lost worker's task consumes a retry");
        let mut forgiven = apply_status(None, lost(500), next);
        forgive(&mut forgiven);
        assert_eq!(configured_backoff(&forgiven).seconds, 0);
        assert_eq!(forgiven.backoff, 66, "forgiving keeps the safety wait");
    }

    #[test]
    fn incomplete_backoff_does_not_advance_the_ladder() {
        let b = BackoffSettings::parse(&json!([1, 2, 4, "fail"])).unwrap();
        let s = run(&b, None, "incomplete_backoff");
        assert_eq!(s.backoff, 1);
        let s = run(&b, Some(s), "incomplete_backoff");
        assert_eq!(s.backoff, 1);
        let s = run(&b, Some(s), "error_backoff");
        assert_eq!(s.backoff, 2);
        let s = run(&b, Some(s), "incomplete_backoff");
        assert_eq!(s.backoff, 2);
        assert_eq!(s.name(), crate::foundation::status::StatusName::Incomplete);
    }

    #[test]
    fn forgiving_a_failure_makes_it_eligible_and_restarts_the_ladder() {
        let b = BackoffSettings::parse(&json!([1, "fail"])).unwrap();
        let s = run(&b, None, "error_backoff");
        let mut s = run(&b, Some(s), "error_backoff");
        assert!(s.is_failed());
        forgive(&mut s);
        assert!(!s.is_failed() && !s.in_backoff(100));
        assert_eq!(configured_backoff(&s), BackoffDuration::new(0));
        assert_eq!(run(&b, Some(s), "error_backoff").backoff, 1);
    }

    #[test]
    fn done_replaces_data_and_backoff() {
        let b = BackoffSettings::default();
        let s = run(&b, None, r#"{"result":"incomplete","data":{"step":1}}"#);
        assert_eq!(s.data_json(), json!({"step": 1}));
        let s = run(&b, Some(s), "done");
        assert_eq!((s.bits, s.data, s.backoff), (bits::DONE, None, 0));
    }
}

#[cfg(test)]
mod ported {
    //! Bistro's test_task_status predicate, Error and Forgiveness cases.
    use super::*;
    use crate::foundation::status::{parse_status, BackoffSettings, StatusName};
    use serde_json::json;

    #[test]
    fn each_status_answers_only_its_own_predicate() {
        let running = TaskStatus::new(bits::RUNNING, 10);
        assert_eq!(running.name(), StatusName::Running);
        assert!(!running.is_done() && !running.is_failed() && !running.in_backoff(10));
        let done = parse_status(r#"{"result":"done","data":{"k":"v"}}"#, 10);
        assert!(done.is_done() && !done.is_failed() && !done.in_backoff(10));
        assert_eq!(done.data_json(), json!({"k": "v"}), "data kept when given");
        let incomplete = parse_status("incomplete", 10);
        assert!(!incomplete.is_done() && !incomplete.is_failed() && !incomplete.in_backoff(10));
        assert_eq!(incomplete.name(), StatusName::Incomplete);
        let mut incomplete_backoff = parse_status("incomplete_backoff", 10);
        incomplete_backoff.backoff = 5;
        assert!(!incomplete_backoff.is_done() && !incomplete_backoff.is_failed());
        assert!(incomplete_backoff.in_backoff(14));
    }

    #[test]
    fn an_error_keeps_its_message_and_backs_off_until_expiry() {
        let b = BackoffSettings::parse(&json!([1, 2, 4, "fail"])).unwrap();
        let s = apply_status(
            None,
            TaskStatus::error_backoff("my error", 100),
            b.next(BackoffDuration::default()),
        );
        assert_eq!(s.exception(), Some("my error"));
        assert_eq!(s.name(), StatusName::ErrorBackoff);
        assert!(s.in_backoff(100));
        assert!(!s.in_backoff(101), "a 1 s backoff is over at time + 1");
    }

    #[test]
    fn forgiving_an_error_in_backoff_ends_the_backoff() {
        let b = BackoffSettings::parse(&json!([1, 2, 4, "fail"])).unwrap();
        let mut s = apply_status(
            None,
            TaskStatus::error_backoff("boom", 100),
            b.next(BackoffDuration::default()),
        );
        assert!(s.in_backoff(100));
        forgive(&mut s);
        assert!(!s.in_backoff(100) && !s.is_failed());
    }
}
