//! `GET /api/status[?tasks=1]`: the `bistro status --json` document, from the stored
//! nodes only. With every task listed (`?tasks=1`) the document is streamed as it
//! is serialized, so a client that does not read pins only a small buffer.

use super::snapshot::{NodesUnavailable, Site, Snapshot};
use crate::execution::http::Reply;
use crate::usecases::report::{self, ReportFilter, StatusReport};

/// Whether the query string asks for every task (`tasks=1` or `tasks=true`).
pub fn with_tasks(query: &str) -> bool {
    query
        .split('&')
        .any(|kv| kv == "tasks=1" || kv == "tasks=true")
}

/// Answers `GET /api/status`; `query` is the request's query string.
pub fn reply(site: &Site, query: &str) -> Reply {
    let tasks = with_tasks(query);
    let filter = ReportFilter {
        tasks,
        ..Default::default()
    };
    match snapshot_report(site, &filter) {
        Ok((_, report)) if tasks => Reply::json_stream(Box::new(move |out| {
            serde_json::to_writer(out, &report).map_err(Into::into)
        })),
        Ok((_, report)) => Reply::json(200, &serde_json::to_value(&report).expect("serializes")),
        Err(refusal) => refusal,
    }
}

/// The `status --json` document as of now, from the stored nodes only, or the
/// refusal to send instead: 503 while there is nothing to report yet (no state,
/// no config, no nodes fetched for it), 500 for real failures.
pub fn snapshot_report(
    site: &Site,
    filter: &ReportFilter,
) -> Result<(Snapshot, StatusReport), Reply> {
    let snap = Snapshot::load(&site.state, site.config.as_deref())
        .map_err(|e| Reply::error(e.status(), &e.to_string()))?;
    let nodes = match snap.nodes() {
        Ok(nodes) => nodes,
        Err(e @ NodesUnavailable::NotFetched(_)) => return Err(Reply::error(503, &e.to_string())),
        Err(e) => return Err(Reply::error(500, &e.to_string())),
    };
    let statuses = snap
        .store
        .snapshot()
        .map_err(|e| Reply::error(500, &e.to_string()))?;
    let mut report = report::read(
        &report::CountsInput {
            config: &snap.config,
            nodes,
            statuses: &statuses,
            state: &snap.state,
            config_error: snap.config_error.as_ref().map(ToString::to_string),
            now: snap.now,
        },
        filter,
    )
    .map_err(|e| Reply::error(500, &e.to_string()))?;
    drop(statuses);
    report.workers = report::workers(&site.state);
    Ok((snap, report))
}
