//! `GET /`: the status page. One self-contained HTML document (inline CSS and
//! JavaScript, no external assets) that refreshes itself every 3 seconds from
//! `GET /api/status` and the envelope (`running_tasks`, `errors`, `refresh_time`).
//! Every string from the state is inserted with `textContent`, never as HTML, and the
//! Content-Security-Policy allows no other origin.

/// The page.
pub const HTML: &str = include_str!("page.html");

/// The page's Content-Security-Policy: its own inline code, fetches to this origin.
pub const CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_is_self_contained_and_never_inserts_html() {
        assert!(HTML.contains("<meta name=\"viewport\""));
        for forbidden in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "src=\"http",
            "href=\"http",
            "@import",
        ] {
            assert!(!HTML.contains(forbidden), "the page uses {forbidden}");
        }
    }
}
