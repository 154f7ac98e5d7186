//! Cutting a task's output into log lines: at each newline, and over-long lines into
//! pieces of [`MAX_LINE_BYTES`]. Shared by the supervisor host, which reads pipes, and
//! by runners that read output files back (Slurm), so a line is stored the same way
//! wherever the task ran.

use crate::execution::supervisor::constants::MAX_LINE_BYTES;

/// Cuts a pipe's bytes into log lines, and over-long lines into pieces of
/// [`MAX_LINE_BYTES`].
#[derive(Debug, Default)]
pub struct LineCutter {
    pending: Vec<u8>,
}

impl LineCutter {
    /// Feeds `bytes`; `emit(text, ended_by_newline)` gets each complete line or piece.
    pub fn feed(&mut self, mut bytes: &[u8], mut emit: impl FnMut(&[u8], bool)) {
        while !bytes.is_empty() {
            let room = MAX_LINE_BYTES - self.pending.len();
            let reach = bytes.len().min(room + 1);
            match bytes[..reach].iter().position(|&b| b == b'\n') {
                Some(i) if self.pending.is_empty() => {
                    emit(&bytes[..i], true);
                    bytes = &bytes[i + 1..];
                }
                Some(i) => {
                    self.pending.extend_from_slice(&bytes[..i]);
                    emit(&self.pending, true);
                    self.pending.clear();
                    bytes = &bytes[i + 1..];
                }
                None if bytes.len() <= room => {
                    self.pending.extend_from_slice(bytes);
                    return;
                }
                None => {
                    self.pending.extend_from_slice(&bytes[..room]);
                    emit(&self.pending, false);
                    self.pending.clear();
                    bytes = &bytes[room..];
                }
            }
        }
    }

    /// The pipe ended: what is left is a last line without a newline.
    pub fn finish(&mut self, mut emit: impl FnMut(&[u8], bool)) {
        if !self.pending.is_empty() {
            emit(&self.pending, false);
            self.pending.clear();
        }
    }
}
