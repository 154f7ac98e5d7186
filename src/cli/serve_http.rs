//! `bistro serve-http`: the REST API, status page and metrics over the state dir, until
//! SIGINT or SIGTERM.

use super::{Cli, CliError, ExitCode};
use crate::app::{HttpOptions, HttpServer};
use crate::execution::http::DEFAULT_LISTEN;
use crate::storage::state::StateDir;
use clap::Args;

/// `bistro serve-http`.
#[derive(Debug, Args)]
#[command(
    after_help = "Routes: GET / (status page), POST / and POST /api (Bistro's API: \
a JSON object of named queries), GET /api/status[?tasks=1] (the `status --json` \
document), GET /metrics (Prometheus).
Handlers that change state (kill_task, forgive_jobs, save_job, delete_job) need \
`Authorization: Bearer TOKEN`, TOKEN being the content of STATE/http.token (created \
with mode 0600 on first start).

Example:
  curl -s -d '{\"a\":{\"handler\":\"jobs\"}}' http://127.0.0.1:6790/"
)]
pub struct ServeHttpArgs {
    /// Address to listen on (IP:PORT or localhost:PORT; port 0 picks a free one).
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_LISTEN)]
    listen: String,
    /// Allow a non-loopback --listen address: anyone who can reach it can read the
    /// state (changes still need the token).
    #[arg(long)]
    allow_remote: bool,
    /// Another name clients may reach the server by, in `Host` and `Origin` (e.g. the
    /// machine's DNS name with --allow-remote, or a proxy's): NAME (with or without
    /// the listening port) or NAME:PORT. Repeatable.
    #[arg(long = "allow-host", value_name = "NAME[:PORT]")]
    allow_hosts: Vec<String>,
}

pub(super) fn run(state: &StateDir, cli: &Cli, args: &ServeHttpArgs) -> Result<i32, CliError> {
    let opts = HttpOptions {
        listen: crate::execution::http::ListenOptions {
            listen: args.listen.clone(),
            allow_remote: args.allow_remote,
            allow_hosts: args.allow_hosts.clone(),
            ..Default::default()
        },
        config: cli.config.clone(),
        ..Default::default()
    };
    let stop = super::signals::stop_on_signals();
    // Bad addresses and a state dir without state exit 2 (their kind is `Usage`).
    let server = HttpServer::bind(state, &opts)?;
    note!("listening on http://{}", server.local_addr());
    server.serve(stop);
    Ok(ExitCode::Success as i32)
}
