//! Which REST route a request asks for: 404 for an unknown path, 405 (with `Allow`)
//! for a wrong method.

use crate::execution::http::Reply;

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `GET /`.
    Page,
    /// `POST /` or `POST /api`.
    Envelope,
    /// `GET /api/status`.
    Status,
    /// `GET /metrics`.
    Metrics,
}

/// Routes a request: 404 for an unknown path, 405 (with `Allow`) for a wrong method.
pub fn route(method: &str, path: &str) -> Result<Route, Reply> {
    let allowed: &[(&str, Route)] = match path {
        "/" => &[("GET", Route::Page), ("POST", Route::Envelope)],
        "/api" => &[("POST", Route::Envelope)],
        "/api/status" => &[("GET", Route::Status)],
        "/metrics" => &[("GET", Route::Metrics)],
        _ => {
            return Err(Reply::error(
                404,
                &format!("no route {path}; use GET / (status page), POST / (the API), GET /api/status or GET /metrics"),
            ))
        }
    };
    match allowed.iter().find(|(m, _)| *m == method) {
        Some((_, route)) => Ok(*route),
        None => {
            let methods: Vec<&str> = allowed.iter().map(|(m, _)| *m).collect();
            let mut reply = Reply::error(
                405,
                &format!(
                    "{method} is not allowed on {path}; use {}",
                    methods.join(" or ")
                ),
            );
            reply.allow = Some(methods.join(", "));
            Err(reply)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_answer_404_for_unknown_paths_and_405_for_wrong_methods() {
        assert_eq!(route("GET", "/").unwrap(), Route::Page);
        assert_eq!(route("POST", "/").unwrap(), Route::Envelope);
        assert_eq!(route("POST", "/api").unwrap(), Route::Envelope);
        assert_eq!(route("GET", "/api/status").unwrap(), Route::Status);
        assert_eq!(route("GET", "/metrics").unwrap(), Route::Metrics);
        assert_eq!(route("GET", "/nope").unwrap_err().status, 404);
        let wrong = route("DELETE", "/api").unwrap_err();
        assert_eq!(wrong.status, 405);
        assert_eq!(wrong.allow.as_deref(), Some("POST"));
        assert_eq!(route("POST", "/metrics").unwrap_err().status, 405);
    }
}
