//! The lanes answers are computed in: each kind of request has its own permits of
//! blocking threads and its own queue, so one kind cannot take another's capacity.
//! Request bodies are read only within a budget of bytes (one for worker calls, one
//! for the rest), so many clients sending large bodies slowly wait for their turn in
//! the kernel's buffers, not in the server's memory.
//! Worker calls keep answering heartbeats while the public API is flooded, and
//! `GET /api/status` keeps answering while envelopes run regexes over logs.

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// What kind of work a request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// The scheduler <-> worker calls (`POST /rpc/NAME`): never behind public load.
    Rpc,
    /// Reads that answer quickly from a snapshot: `/api/status`, `/metrics`, the
    /// page, refusals.
    Quick,
    /// Envelope queries, which may read logs and run regexes, and stream large
    /// answers to clients that read them slowly.
    Compute,
}

impl std::fmt::Display for Lane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Lane::Rpc => "worker-call",
            Lane::Quick => "status",
            Lane::Compute => "API query",
        })
    }
}

/// How long a request waits for a permit of its lane before it is refused (503).
const QUEUE_WAIT: Duration = Duration::from_secs(10);

/// Request bodies being read or answered at once, in KiB: worker calls'.
const RPC_BODY_KIB: usize = 16 << 10;

/// The same for every other request.
const PUBLIC_BODY_KIB: usize = 32 << 10;

/// The permits of each lane, and the body budgets.
pub(super) struct Lanes {
    rpc: Arc<Semaphore>,
    quick: Arc<Semaphore>,
    compute: Arc<Semaphore>,
    rpc_bodies: Arc<Semaphore>,
    public_bodies: Arc<Semaphore>,
}

impl Lanes {
    /// Blocking threads answering worker calls at once.
    const RPC: usize = 8;
    /// Blocking threads answering quick reads at once.
    const QUICK: usize = 8;
    /// Blocking threads answering (or streaming) envelope queries at once.
    const COMPUTE: usize = 8;
    /// The most blocking threads the lanes can use, the runtime's limit.
    pub(super) const THREADS: usize = Self::RPC + Self::QUICK + Self::COMPUTE;

    /// Waits (without a thread) until a body of `bytes` may be read for a request of
    /// `lane`; None after [`QUEUE_WAIT`]. The body's budget is back once the permit
    /// is dropped.
    pub(super) async fn reserve_body(
        &self,
        lane: Lane,
        bytes: usize,
    ) -> Option<OwnedSemaphorePermit> {
        let budget = match lane {
            Lane::Rpc => &self.rpc_bodies,
            Lane::Quick | Lane::Compute => &self.public_bodies,
        };
        let kib = u32::try_from(bytes.div_ceil(1024)).ok()?;
        tokio::time::timeout(QUEUE_WAIT, Arc::clone(budget).acquire_many_owned(kib))
            .await
            .ok()?
            .ok()
    }

    /// Waits (without a thread) for a permit of `lane`; None after [`QUEUE_WAIT`].
    pub(super) async fn enter(&self, lane: Lane) -> Option<OwnedSemaphorePermit> {
        let permits = match lane {
            Lane::Rpc => &self.rpc,
            Lane::Quick => &self.quick,
            Lane::Compute => &self.compute,
        };
        tokio::time::timeout(QUEUE_WAIT, Arc::clone(permits).acquire_owned())
            .await
            .ok()?
            .ok()
    }
}

impl Default for Lanes {
    fn default() -> Self {
        Self {
            rpc: Arc::new(Semaphore::new(Self::RPC)),
            quick: Arc::new(Semaphore::new(Self::QUICK)),
            compute: Arc::new(Semaphore::new(Self::COMPUTE)),
            rpc_bodies: Arc::new(Semaphore::new(RPC_BODY_KIB)),
            public_bodies: Arc::new(Semaphore::new(PUBLIC_BODY_KIB)),
        }
    }
}
