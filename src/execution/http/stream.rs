//! Streamed answers: a producer writes on a blocking thread into a sink that sends
//! [`CHUNK_BYTES`] chunks through a channel of [`CHUNKS`] to the connection. A client
//! that does not read pins at most the channel, the sink's chunk and hyper's write
//! buffer ([`BUFFER_BYTES`]), and the producer gives up once a chunk waits longer
//! than its deadline.

use super::reply::Producer;
use bytes::Bytes;
use http_body_util::channel::{Channel, Sender};
use std::io::Write;
use std::time::Duration;
use tokio::runtime::Handle;
use tokio::sync::OwnedSemaphorePermit;

/// The size of the chunks a producer's output is sent in.
const CHUNK_BYTES: usize = 16 * 1024;

/// Chunks waiting for the connection at most.
const CHUNKS: usize = 2;

/// The most a connection buffers (hyper's read and write buffers).
pub const BUFFER_BYTES: usize = 64 * 1024;

/// The body of a streamed answer.
pub type ChannelBody = Channel<Bytes, std::io::Error>;

/// Runs `producer` on a blocking thread (keeping `permit` until it ends) and returns
/// the body it feeds; each chunk must be taken within `wait`.
pub(super) fn spawn(
    producer: Producer,
    permit: Option<OwnedSemaphorePermit>,
    wait: Duration,
) -> ChannelBody {
    let (sender, body) = Channel::new(CHUNKS);
    let handle = Handle::current();
    handle.clone().spawn_blocking(move || {
        let _permit = permit;
        let mut sink = Sink {
            sender: Some(sender),
            handle,
            chunk: Vec::with_capacity(CHUNK_BYTES),
            wait,
        };
        let result = producer(&mut sink).and_then(|()| sink.flush());
        if let (Err(e), Some(sender)) = (result, sink.sender.take()) {
            tracing::debug!("streaming an answer: {e}");
            sender.abort(e);
        }
    });
    body
}

/// Sends what is written in chunks, waiting for the client to take them.
struct Sink {
    sender: Option<Sender<Bytes, std::io::Error>>,
    handle: Handle,
    chunk: Vec<u8>,
    wait: Duration,
}

impl Sink {
    fn send_chunk(&mut self) -> std::io::Result<()> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        let data = Bytes::from(std::mem::replace(
            &mut self.chunk,
            Vec::with_capacity(CHUNK_BYTES),
        ));
        let sender = self.sender.as_mut().ok_or(std::io::ErrorKind::BrokenPipe)?;
        match self
            .handle
            .block_on(tokio::time::timeout(self.wait, sender.send_data(data)))
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "the client went away",
            )),
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("the client took no data for {:?}", self.wait),
            )),
        }
    }
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let room = CHUNK_BYTES - self.chunk.len();
        let n = buf.len().min(room);
        self.chunk.extend_from_slice(&buf[..n]);
        if self.chunk.len() >= CHUNK_BYTES {
            self.send_chunk()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send_chunk()
    }
}
