//! The names a server may be reached by, checked on every browser-facing request:
//! a `Host` allowlist against DNS rebinding, and the `Origin` of a browser's request
//! against the same names, so another site's page cannot make the server work (it
//! sends no CORS headers, so the page could not read the answer anyway).

use super::error::HttpError;
use super::reply::Reply;
use super::request::Request;
use std::net::SocketAddr;

/// The `Host` (and `Origin`) names a server answers to.
#[derive(Debug, Clone)]
pub struct HostGuard {
    hosts: Vec<String>,
}

impl HostGuard {
    /// Checks `--allow-host` entries before anything is bound.
    pub(super) fn check_entries(entries: &[String]) -> Result<(), HttpError> {
        for name in entries {
            allowed_host(name, 0)?;
        }
        Ok(())
    }

    /// The names of a server listening on `local_addr`, asked for as `listen`: the
    /// loopback names with its port, the address itself, and the `allow_hosts`.
    pub(super) fn new(
        listen: &str,
        local_addr: SocketAddr,
        allow_hosts: &[String],
    ) -> Result<Self, HttpError> {
        let port = local_addr.port();
        let mut hosts = vec![
            format!("127.0.0.1:{port}"),
            format!("localhost:{port}"),
            format!("[::1]:{port}"),
            local_addr.to_string(),
            listen.to_ascii_lowercase(),
        ];
        for name in allow_hosts {
            hosts.extend(allowed_host(name, port)?);
        }
        let mut seen = std::collections::HashSet::new();
        hosts.retain(|h| seen.insert(h.clone()));
        Ok(Self { hosts })
    }

    /// Refuses (403) a request whose `Host` is not one of the names, or whose
    /// `Origin` is another site's.
    pub fn check(&self, request: &Request) -> Result<(), Reply> {
        let host = request.header("host");
        if !self.host_allowed(host) {
            return Err(Reply::error(
                403,
                &format!(
                    "Host {:?} is not one of this server's names ({}); requests through other names are refused to prevent DNS rebinding (--allow-host adds names)",
                    host.unwrap_or("(none)"),
                    self.hosts.join(", ")
                ),
            ));
        }
        if let Some(origin) = request.header("origin") {
            if !self.origin_allowed(origin) {
                return Err(Reply::error(
                    403,
                    &format!(
                        "Origin {origin:?} is not this server; requests from other sites' pages are refused (this server sends no CORS headers)"
                    ),
                ));
            }
        }
        Ok(())
    }

    fn host_allowed(&self, host: Option<&str>) -> bool {
        host.is_some_and(|h| {
            let h = h.trim().to_ascii_lowercase();
            self.hosts.contains(&h)
        })
    }

    /// Whether a browser's `Origin` is one of this server's names: a page from another
    /// site may POST a text/plain body without a preflight, and its answer, though
    /// unreadable to the page, still costs the server the work.
    fn origin_allowed(&self, origin: &str) -> bool {
        origin_host(origin).is_some_and(|host| self.hosts.contains(&host))
    }
}

/// The `host[:port]` of an `Origin` header (`http://...` or `https://...`),
/// lower-cased, as a browser would send it in `Host` to that origin (a default port
/// is left out of both); None for `null` and anything else.
fn origin_host(origin: &str) -> Option<String> {
    let origin = origin.trim().to_ascii_lowercase();
    let rest = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))?;
    (!rest.is_empty() && !rest.contains(['/', '?', '#', '@'])).then(|| rest.to_string())
}

/// The `Host` values an `--allow-host` entry allows: `NAME:PORT` as given, `NAME`
/// both alone (as sent to a proxy on a default port) and with the listening `port`.
fn allowed_host(entry: &str, port: u16) -> Result<Vec<String>, HttpError> {
    let bad = || HttpError::BadAllowedHost(entry.to_string());
    let entry = entry.trim().to_ascii_lowercase();
    let (name, given_port) = match entry.rfind(']') {
        Some(bracket) if entry.starts_with('[') => match &entry[bracket + 1..] {
            "" => (entry.as_str(), None),
            rest => (
                &entry[..=bracket],
                Some(rest.strip_prefix(':').ok_or_else(bad)?),
            ),
        },
        Some(_) => return Err(bad()),
        None => match entry.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (entry.as_str(), None),
        },
    };
    let name_ok = match name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        Some(ip6) => ip6.parse::<std::net::Ipv6Addr>().is_ok(),
        None => {
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
        }
    };
    if !name_ok {
        return Err(bad());
    }
    Ok(match given_port {
        Some(p) => {
            p.parse::<u16>().map_err(|_| bad())?;
            vec![format!("{name}:{p}")]
        }
        None => vec![name.to_string(), format!("{name}:{port}")],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_become_host_values() {
        assert_eq!(
            origin_host("http://127.0.0.1:6790").as_deref(),
            Some("127.0.0.1:6790")
        );
        assert_eq!(
            origin_host("HTTP://LocalHost").as_deref(),
            Some("localhost")
        );
        assert_eq!(
            origin_host("https://evil.example").as_deref(),
            Some("evil.example")
        );
        assert_eq!(origin_host("http://[::1]:7").as_deref(), Some("[::1]:7"));
        for refused in [
            "null",
            "",
            "file://",
            "http://a/b",
            "http://u@a:1",
            "ftp://a:1",
        ] {
            assert_eq!(origin_host(refused), None, "{refused}");
        }
    }

    #[test]
    fn allowed_hosts_add_a_name_with_and_without_the_port() {
        let allowed = |entry: &str| allowed_host(entry, 6790).map_err(|e| e.to_string());
        assert_eq!(
            allowed("Bistro.Example").unwrap(),
            vec!["bistro.example", "bistro.example:6790"]
        );
        assert_eq!(allowed("b.example:443").unwrap(), vec!["b.example:443"]);
        assert_eq!(allowed("[2001:db8::1]:7").unwrap(), vec!["[2001:db8::1]:7"]);
        assert_eq!(
            allowed("[2001:db8::1]").unwrap(),
            vec!["[2001:db8::1]", "[2001:db8::1]:6790"]
        );
        for bad in [
            "",
            "a:b",
            "a:99999",
            "2001:db8::1",
            "a/b",
            "a b",
            "[::1]x",
            "x]",
            "[",
            "[x]",
        ] {
            let error = allowed(bad).unwrap_err();
            assert!(error.contains("NAME:PORT"), "{bad}: {error}");
        }
    }
}
