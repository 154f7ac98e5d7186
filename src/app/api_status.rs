//! `GET /api/status[?tasks=1]`: the `bistro status --json` document, from the stored
//! nodes only.

use super::snapshot::{NodesUnavailable, Site, Snapshot};
use crate::execution::http::Reply;
use crate::usecases::report::{self, ReportFilter, StatusReport};

/// Answers `GET /api/status`; `query` is the request's query string.
pub fn reply(site: &Site, query: &str) -> Reply {
    let tasks = query
        .split('&')
        .any(|kv| kv == "tasks=1" || kv == "tasks=true");
    let filter = ReportFilter {
        tasks,
        ..Default::default()
    };
    match snapshot_report(site, &filter) {
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
