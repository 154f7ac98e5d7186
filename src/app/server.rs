//! The REST app's server: the transport bound with the app's options, and the
//! wiring of every request: worker calls (`/rpc/NAME`) to the hub's RPC service in
//! their own lane, everything else through the `Host`/`Origin` guard to its route;
//! envelope queries, which may compute, in a lane apart from the quick reads.

use super::routes::{route, Route};
use super::snapshot::Site;
use super::{api_status, envelope, metrics, page};
use crate::execution::http::rpc::{RpcEndpoint, RpcService};
use crate::execution::http::{
    ensure_token, Handler, HostGuard, HttpError, Lane, ListenOptions, Reply, Request, Server,
};
use crate::execution::runner::remote::Hub;
use crate::storage::state::StateDir;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// How the server listens and what it serves.
#[derive(Debug, Clone, Default)]
pub struct HttpOptions {
    /// Where and how the transport listens.
    pub listen: ListenOptions,
    /// The config file (default: the one the scheduler last used).
    pub config: Option<PathBuf>,
    /// The scheduler's remote workers: the server takes their calls (`POST
    /// /rpc/NAME`) and serves their task logs with its own.
    pub hub: Option<Arc<Hub>>,
}

/// A bound server over one state directory.
pub struct HttpServer {
    server: Server,
    app: Arc<App>,
}

/// What answers the requests.
struct App {
    site: Site,
    rpc: Option<RpcEndpoint>,
    guard: HostGuard,
}

impl HttpServer {
    /// Binds the listening socket and makes sure the token file exists. Refuses a
    /// non-loopback address unless `allow_remote`, and a state dir without state.
    pub fn bind(state: &StateDir, opts: &HttpOptions) -> Result<Self, HttpError> {
        let listen = opts.listen.clone();
        listen.check()?;
        state.existing_statuses_db().map_err(HttpError::NoState)?;
        ensure_token(state)?;
        let server = Server::bind(&listen)?;
        let app = Arc::new(App {
            site: Site {
                state: state.clone(),
                config: opts.config.clone(),
                hub: opts.hub.clone(),
            },
            rpc: opts.hub.as_ref().map(|hub| RpcEndpoint {
                service: Arc::clone(hub) as Arc<dyn RpcService>,
                secret: hub.secret_path().to_path_buf(),
            }),
            guard: server.guard().clone(),
        });
        Ok(Self { server, app })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// Serves until `stop` is true (checked every 100 ms). Accept errors (such as
    /// running out of file descriptors) are logged and retried, so the server keeps
    /// serving once they pass.
    pub fn serve(&self, stop: &AtomicBool) {
        self.server
            .serve(stop, Arc::clone(&self.app) as Arc<dyn Handler>);
    }
}

impl Handler for App {
    /// Worker calls in their own lane; envelope queries, which may read logs and run
    /// regexes, and `/api/status?tasks=1`, which lists every task, in theirs (their
    /// answers are streamed); everything else (status, metrics, the page, refusals)
    /// in the quick lane.
    fn lane(&self, method: &str, path: &str, query: &str) -> Lane {
        if path.starts_with("/rpc/") {
            return Lane::Rpc;
        }
        match route(method, path) {
            Ok(Route::Envelope) => Lane::Compute,
            Ok(Route::Status) if api_status::with_tasks(query) => Lane::Compute,
            _ => Lane::Quick,
        }
    }

    /// Answers one request.
    fn answer(&self, request: &Request) -> Reply {
        if let Some(name) = request.path.strip_prefix("/rpc/") {
            // Machine-to-machine calls: the shared secret is their protection (a
            // browser cannot send it cross-origin), not the names they are sent to.
            return match &self.rpc {
                Some(rpc) => rpc.answer(name, request),
                None => Reply::error(
                    404,
                    "this server takes no worker calls: remote workers talk to `bistro daemon` run without --worker-command",
                ),
            };
        }
        if let Err(refusal) = self.guard.check(request) {
            return refusal;
        }
        match route(&request.method, &request.path) {
            Err(reply) => reply,
            Ok(Route::Page) => Reply::html(page::HTML, page::CSP),
            Ok(Route::Status) => api_status::reply(&self.site, &request.query),
            Ok(Route::Metrics) => metrics::reply(&self.site),
            Ok(Route::Envelope) => {
                envelope::reply(&self.site, &request.body, request.header("authorization"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::execution::http::parse_listen;

    #[test]
    fn listen_addresses_parse_and_remote_ones_are_refused_by_default() {
        assert_eq!(
            parse_listen("localhost:7").unwrap(),
            "127.0.0.1:7".parse().unwrap()
        );
        assert!(parse_listen("[::1]:0").unwrap().ip().is_loopback());
        assert!(matches!(
            parse_listen("nope"),
            Err(HttpError::BadAddress(_))
        ));
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        let opts = HttpOptions {
            listen: ListenOptions {
                listen: "0.0.0.0:0".into(),
                ..Default::default()
            },
            ..Default::default()
        };
        assert!(matches!(
            HttpServer::bind(&state, &opts),
            Err(HttpError::NotLoopback(_))
        ));
    }
}
