//! The client's request body on its way upstream, remembering why it failed:
//! a body the client framed wrongly (a bad chunk, a connection cut short) is
//! the client's 400, one over `max_body_bytes` its 413 — not the upstream's
//! 502, which is what the upstream client would otherwise report.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::task::{Context, Poll};

use crate::http_util::{Body, BoxError};
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};

const FINE: u8 = 0;
const MALFORMED: u8 = 1;
const TOO_LARGE: u8 = 2;

/// How the client's body failed, if it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFault {
    Malformed,
    TooLarge,
}

/// Shared between the body (owned by the upstream client) and the request:
/// how the body failed, and when it ended.
#[derive(Debug, Clone)]
pub struct FaultCell(Arc<Shared>);

#[derive(Debug, Default)]
struct Shared {
    fault: AtomicU8,
    /// Milliseconds after [`base`] at which the body ended, plus one (0: not
    /// yet). Measured from one process-wide instant, so a request without a
    /// body reads no clock for it.
    ended: AtomicU64,
}

impl Default for FaultCell {
    fn default() -> Self {
        Self(Arc::new(Shared::default()))
    }
}

/// The instant body ends are measured from.
fn base() -> tokio::time::Instant {
    static BASE: std::sync::OnceLock<tokio::time::Instant> = std::sync::OnceLock::new();
    *BASE.get_or_init(tokio::time::Instant::now)
}

impl FaultCell {
    pub fn get(&self) -> Option<BodyFault> {
        match self.0.fault.load(Ordering::Acquire) {
            MALFORMED => Some(BodyFault::Malformed),
            TOO_LARGE => Some(BodyFault::TooLarge),
            _ => None,
        }
    }

    /// When the body ended (sent whole, or failed), if it has: from then
    /// on the upstream owes the answer.
    pub fn ended_at(&self) -> Option<tokio::time::Instant> {
        match self.0.ended.load(Ordering::Acquire) {
            0 => None,
            ms => Some(base() + std::time::Duration::from_millis(ms - 1)),
        }
    }

    fn set(&self, code: u8) {
        let _ = self
            .0
            .fault
            .compare_exchange(FINE, code, Ordering::AcqRel, Ordering::Acquire);
        self.finish();
    }

    fn finish(&self) {
        let ms = u64::try_from(base().elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        let _ = self
            .0
            .ended
            .compare_exchange(0, ms + 1, Ordering::AcqRel, Ordering::Acquire);
    }
}

#[derive(Debug, thiserror::Error)]
#[error("request body over max_body_bytes")]
pub struct BodyTooLarge;

/// The downstream body, limited to `max_body_bytes` when set.
pub struct ClientBody {
    inner: Body,
    left: Option<u64>,
    fault: FaultCell,
}

impl ClientBody {
    pub fn new(inner: Body, limit: Option<u64>, fault: FaultCell) -> Self {
        Self {
            inner,
            left: limit,
            fault,
        }
    }
}

impl HttpBody for ClientBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => {
                this.fault.finish();
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => {
                this.fault.set(MALFORMED);
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(left), Some(data)) = (this.left.as_mut(), frame.data_ref()) {
                    let len = u64::try_from(data.len()).unwrap_or(u64::MAX);
                    if len > *left {
                        this.fault.set(TOO_LARGE);
                        return Poll::Ready(Some(Err(Box::new(BodyTooLarge))));
                    }
                    *left -= len;
                }
                // hyper stops polling a body of known length once it is
                // at its end.
                if this.inner.is_end_stream() {
                    this.fault.finish();
                }
                Poll::Ready(Some(Ok(frame)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
