//! Values from tasks and configs, made safe to use.
//!
//! Strings are made safe to print on a terminal: control and bidirectional-override
//! characters are shown escaped, so a hostile status line cannot move the cursor,
//! clear the screen or reorder text. JSON values are read leniently ([`lenient`]), as
//! Bistro reads its configs and status lines.

pub mod lenient;

use std::borrow::Cow;

/// The longest file name a file system holds (Linux's `NAME_MAX`), in bytes.
pub const MAX_FILE_NAME_BYTES: usize = 255;

/// Escapes a name into one safe path component: bytes outside `[A-Za-z0-9._-]` and a
/// leading dot become `%XX`.
pub fn escape_component(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for (i, b) in name.bytes().enumerate() {
        let safe = b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || (b == b'.' && i > 0);
        if safe {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if out.is_empty() {
        out.push_str("%00");
    }
    out
}

fn is_unsafe(c: char) -> bool {
    (c.is_control() && c != '\t')
        || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}')
}

/// Printable ASCII and tabs only: by far the common case, checked without branching
/// per byte, so the check runs many bytes at a time.
fn is_plain_ascii(s: &str) -> bool {
    s.is_ascii()
        && s.bytes()
            .map(|b| usize::from((b < b' ' && b != b'\t') || b == 0x7f))
            .sum::<usize>()
            == 0
}

/// Escapes characters that would act on a terminal.
pub fn for_terminal(s: &str) -> Cow<'_, str> {
    if is_plain_ascii(s) || !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_unsafe(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_terminal_controls_but_not_text() {
        assert_eq!(for_terminal("plain ünïcode\ttab"), "plain ünïcode\ttab");
        assert_eq!(for_terminal("\u{1b}[2Jboom"), "\\u{1b}[2Jboom");
        assert_eq!(for_terminal("a\u{202E}b\r"), "a\\u{202e}b\\u{d}");
    }
}
