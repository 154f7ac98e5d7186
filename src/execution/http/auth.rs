//! The bearer token that the handlers changing state require: `STATE/http.token`,
//! 64 hex characters from the OS-seeded CSPRNG, created with mode 0600 and
//! `create_new` (so two servers starting at once agree on one token), compared in
//! constant time. The token never appears in messages, logs or `Debug` output.

use crate::storage::state::{io_err, StateDir, StateError};
use rand::RngCore;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Why a request may not change state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization: Bearer ...` header.
    #[error("this handler changes state and needs the header `Authorization: Bearer TOKEN`, TOKEN being the content of STATE/http.token; none was sent")]
    Missing,
    /// A token that is not the state dir's.
    #[error("this handler changes state and needs the header `Authorization: Bearer TOKEN`, TOKEN being the content of STATE/http.token; the token sent is wrong")]
    Wrong,
}

/// The token file of a state directory.
pub fn token_path(state: &StateDir) -> PathBuf {
    state.http_token()
}

/// Reads the token, creating the file on first need.
pub fn ensure_token(state: &StateDir) -> Result<Token, StateError> {
    ensure_secret(&token_path(state))
}

/// The secret that remote workers and their scheduler present to each other:
/// `STATE/worker.token`.
pub fn worker_token_path(state: &StateDir) -> PathBuf {
    state.worker_token()
}

/// Reads a secret file, creating it (mode 0600, 64 random hex characters) on first
/// need, so two processes starting at once agree on one secret.
pub fn ensure_secret(path: &Path) -> Result<Token, StateError> {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let fresh: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(mut file) => {
            file.write_all(fresh.as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(io_err("writing the secret", path))?;
            Ok(Token(fresh))
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_secret(path),
        Err(e) => Err(io_err("creating the secret", path)(e)),
    }
}

/// Reads an existing secret file (such as the scheduler's worker token handed to a
/// worker with `--token-file`).
pub fn read_secret(path: &Path) -> Result<Token, StateError> {
    let text = std::fs::read_to_string(path).map_err(io_err("reading the secret", path))?;
    Ok(Token(text.trim().to_string()))
}

/// A secret token; its `Debug` form hides it.
#[derive(Clone)]
pub struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<hidden>)")
    }
}

impl Token {
    /// The `Authorization` header value that presents this token.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.0)
    }

    /// Checks an `Authorization` header value against the token.
    pub fn check(&self, authorization: Option<&str>) -> Result<(), AuthError> {
        let sent = authorization
            .and_then(|h| {
                let (scheme, value) = h.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| value.trim())
            })
            .ok_or(AuthError::Missing)?;
        if !self.0.is_empty() && constant_time_eq(sent.as_bytes(), self.0.as_bytes()) {
            Ok(())
        } else {
            Err(AuthError::Wrong)
        }
    }
}

/// Compares two byte strings in time that depends only on their lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_token_is_created_once_private_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        let token = ensure_token(&state).unwrap();
        let again = ensure_token(&state).unwrap();
        assert_eq!(token.0, again.0, "a second call reads the same token");
        assert_eq!(token.0.len(), 64);
        let mode = std::fs::metadata(token_path(&state))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(token.check(Some(&format!("Bearer {}", token.0))), Ok(()));
        assert_eq!(token.check(Some(&format!("bearer  {} ", token.0))), Ok(()));
        assert_eq!(token.check(None), Err(AuthError::Missing));
        assert_eq!(token.check(Some("Basic abc")), Err(AuthError::Missing));
        assert_eq!(token.check(Some("Bearer nope")), Err(AuthError::Wrong));
        assert!(!format!("{token:?}").contains(&token.0));
    }
}
