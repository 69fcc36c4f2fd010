//! Single-flight: concurrent callers asking for the same key share one
//! execution and its cloned result.
//!
//! ```text
//! caller A ─┐                       ┌─► A gets V.clone()
//! caller B ─┼─► run(key, make) ──► one spawned task ──► V ─┼─► B gets V.clone()
//! caller C ─┘   (first caller makes it;                    └─► C gets V.clone()
//!                later ones join it)
//! ```
//!
//! The work runs in its own tokio task, so a caller that stops waiting (a
//! timeout, a dropped connection) never cancels it for the others: the JWKS
//! refetch started by one request still lands for everyone. Once the work is
//! done its entry stays for the `reuse` window (zero by default), during which
//! new callers get the finished result instead of starting again; then it is
//! removed, so the map only ever holds flights in progress or inside their
//! reuse window. With no reuse window the entry is removed *before* the
//! result is published, so a caller that has seen a result and asks again
//! always gets a fresh execution, never the old result.
//!
//! The reuse window may depend on the result ([`SingleFlight::with_keep`]):
//! the session refresh keeps a rotation longer than a failure. At most
//! `max_kept` finished results are kept; beyond that a result is shared
//! only by callers that overlapped with the work.
//!
//! Used by the gateway's JWKS cache (one fetch at a time, key `()`) and
//! session refresh (one call per refresh token, shared for `refresh_reuse`).

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};

/// The shared work ended without a value: its task panicked or the runtime
/// shut down. Callers must treat it as a failure (fail closed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the shared operation was aborted before it produced a result")]
pub struct FlightAborted;

type SharedResult<V> = Shared<BoxFuture<'static, Result<V, FlightAborted>>>;

struct Flight<V> {
    /// Tells this flight from a later one under the same key, so a finished
    /// task removes only its own entry.
    id: u64,
    result: SharedResult<V>,
}

/// Coalesces concurrent work by key. Cheap to share behind an `Arc`.
///
/// `V` is cloned once per caller, so make it cheap to clone (an `Arc`, a
/// small `Result`).
pub struct SingleFlight<K, V> {
    inflight: Arc<Mutex<HashMap<K, Flight<V>>>>,
    next_id: AtomicU64,
    keep: Keep<V>,
    max_kept: usize,
}

/// How long a finished result stays shared, from the result itself.
type Keep<V> = Arc<dyn Fn(&V) -> Duration + Send + Sync>;

impl<K, V> SingleFlight<K, V>
where
    K: Hash + Eq + Clone + Send + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// A coalescer whose results are shared only by callers that overlap
    /// with the work itself.
    pub fn new() -> Self {
        Self::with_reuse(Duration::ZERO)
    }

    /// A coalescer whose finished results are also handed to callers that
    /// arrive within `reuse` after the work completed.
    pub fn with_reuse(reuse: Duration) -> Self {
        Self::with_keep(move |_| reuse, usize::MAX)
    }

    /// A coalescer whose finished results are handed to later callers for
    /// `keep(&result)`, keeping at most `max_kept` keys (flights included).
    pub fn with_keep(
        keep: impl Fn(&V) -> Duration + Send + Sync + 'static,
        max_kept: usize,
    ) -> Self {
        Self {
            inflight: Arc::new(Mutex::new(HashMap::new())),
            next_id: AtomicU64::new(0),
            keep: Arc::new(keep),
            max_kept,
        }
    }

    /// Runs `make()` for `key` unless a flight for `key` is already under way
    /// (or inside its reuse window), in which case this joins it. Every
    /// caller gets a clone of the one result.
    ///
    /// `make` is called at most once per flight, synchronously, by the caller
    /// that starts it; the future it returns runs on its own task (so this
    /// must be called inside a tokio runtime). Dropping the returned future
    /// only stops this caller from waiting.
    pub fn run<F, Fut>(&self, key: K, make: F) -> Joined<V>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = V> + Send + 'static,
    {
        self.run_leading(key, make).0
    }

    /// [`Self::run`], also telling whether this call started the flight
    /// (`true`) or joined one (`false`).
    pub fn run_leading<F, Fut>(&self, key: K, make: F) -> (Joined<V>, bool)
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = V> + Send + 'static,
    {
        let mut map = self.lock();
        if let Some(flight) = map.get(&key) {
            return (Joined(flight.result.clone()), false);
        }
        let room = map.len() < self.max_kept;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = tokio::sync::oneshot::channel::<V>();
        let result: SharedResult<V> = rx.map(|r| r.map_err(|_| FlightAborted)).boxed().shared();
        map.insert(
            key.clone(),
            Flight {
                id,
                result: result.clone(),
            },
        );
        drop(map);

        // Removes this flight's entry however it ends (done, `make` or the
        // work panicking, the runtime dropping the task), so a key never
        // stays stuck.
        let cleanup = RemoveOnDrop {
            inflight: Arc::clone(&self.inflight),
            key: Some(key),
            id,
        };
        let work = make();
        let keep = Arc::clone(&self.keep);
        tokio::spawn(async move {
            let value = work.await;
            let reuse = if room { keep(&value) } else { Duration::ZERO };
            // Nobody waiting is fine: the value may still be reused.
            if reuse.is_zero() {
                // Remove before publishing: whoever has seen this result
                // and calls `run` again starts a fresh flight.
                drop(cleanup);
                let _ = tx.send(value);
            } else {
                let _ = tx.send(value);
                tokio::time::sleep(reuse).await;
                drop(cleanup);
            }
        });
        (Joined(result), true)
    }

    /// Drops every finished result for which `keep(key, result)` is false
    /// (flights still under way are left alone): later callers run anew.
    pub fn retain_finished(&self, mut keep: impl FnMut(&K, &V) -> bool) {
        self.lock()
            .retain(|k, f| match f.result.clone().now_or_never() {
                Some(Ok(v)) => keep(k, &v),
                Some(Err(_)) | None => true,
            });
    }

    /// Joins the flight for `key` if one is under way (or inside its reuse
    /// window); never starts one.
    pub fn join(&self, key: &K) -> Option<Joined<V>> {
        self.lock().get(key).map(|f| Joined(f.result.clone()))
    }

    /// Whether a flight for `key` is under way (or inside its reuse window).
    pub fn is_running(&self, key: &K) -> bool {
        self.lock().contains_key(key)
    }

    /// Number of keys with a flight under way or inside the reuse window.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when no flight is under way.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Flight<V>>> {
        // The map is left consistent by every critical section (single
        // insert/remove), so a poisoned lock is still usable.
        self.inflight.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<K, V> Default for SingleFlight<K, V>
where
    K: Hash + Eq + Clone + Send + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn default() -> Self {
        Self::new()
    }
}

/// A caller's handle on a flight: resolves to the flight's result (cloned).
/// Dropping it only stops this caller from waiting.
#[must_use = "a Joined does nothing unless awaited"]
pub struct Joined<V>(SharedResult<V>);

impl<V: Clone> Future for Joined<V> {
    type Output = Result<V, FlightAborted>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx)
    }
}

/// Removes a finished flight's entry, unless a newer flight replaced it.
struct RemoveOnDrop<K: Hash + Eq, V> {
    inflight: Arc<Mutex<HashMap<K, Flight<V>>>>,
    key: Option<K>,
    id: u64,
}

impl<K: Hash + Eq, V> Drop for RemoveOnDrop<K, V> {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else { return };
        let mut map = self.inflight.lock().unwrap_or_else(PoisonError::into_inner);
        if map.get(&key).is_some_and(|f| f.id == self.id) {
            map.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// N concurrent callers with the same key → one execution, N results.
    #[tokio::test]
    async fn concurrent_callers_share_one_execution() {
        let sf: Arc<SingleFlight<&'static str, u32>> = Arc::new(SingleFlight::new());
        let runs = Arc::new(AtomicUsize::new(0));
        let (release_tx, release_rx) = tokio::sync::watch::channel(false);
        let mut waiters = Vec::new();
        for _ in 0..50 {
            let runs = Arc::clone(&runs);
            let mut release = release_rx.clone();
            waiters.push(sf.run("k", move || async move {
                runs.fetch_add(1, Ordering::SeqCst);
                release
                    .wait_for(|go| *go)
                    .await
                    .expect("sender outlives the test");
                7
            }));
        }
        assert!(sf.is_running(&"k"));
        release_tx.send(true).expect("receivers alive");
        for w in waiters {
            assert_eq!(w.await, Ok(7));
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn different_keys_run_separately() {
        let sf: SingleFlight<u32, u32> = SingleFlight::new();
        let runs = Arc::new(AtomicUsize::new(0));
        let mut waiters = Vec::new();
        for k in 0..5u32 {
            let runs = Arc::clone(&runs);
            waiters.push(sf.run(k, move || async move {
                runs.fetch_add(1, Ordering::SeqCst);
                k * 10
            }));
        }
        for (k, w) in waiters.into_iter().enumerate() {
            assert_eq!(w.await, Ok(k as u32 * 10));
        }
        assert_eq!(runs.load(Ordering::SeqCst), 5);
    }

    /// After a caller has seen a result (no reuse window), the next call
    /// runs again: the old result is never handed out late.
    #[tokio::test]
    async fn finished_flight_is_not_reused_by_default() {
        let sf: SingleFlight<(), usize> = SingleFlight::new();
        let runs = Arc::new(AtomicUsize::new(0));
        for expected in 1..=3 {
            let r = Arc::clone(&runs);
            let v = sf
                .run(
                    (),
                    move || async move { r.fetch_add(1, Ordering::SeqCst) + 1 },
                )
                .await;
            assert_eq!(v, Ok(expected));
            assert!(sf.is_empty());
        }
        assert_eq!(runs.load(Ordering::SeqCst), 3);
    }

    /// Callers on several worker threads: still one execution.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn one_execution_across_threads() {
        let sf: Arc<SingleFlight<u8, usize>> = Arc::new(SingleFlight::new());
        let runs = Arc::new(AtomicUsize::new(0));
        let (release_tx, release_rx) = tokio::sync::watch::channel(false);
        let started = Arc::new(tokio::sync::Barrier::new(33));
        let mut tasks = Vec::new();
        for _ in 0..32 {
            let (sf, runs, started) = (Arc::clone(&sf), Arc::clone(&runs), Arc::clone(&started));
            let mut release = release_rx.clone();
            tasks.push(tokio::spawn(async move {
                let joined = sf.run(1, move || async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    release.wait_for(|go| *go).await.expect("sender alive");
                    runs.load(Ordering::SeqCst)
                });
                started.wait().await;
                joined.await
            }));
        }
        started.wait().await;
        release_tx.send(true).expect("receivers alive");
        for t in tasks {
            assert_eq!(t.await.expect("task"), Ok(1));
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn reuse_window_shares_finished_result() {
        let sf: SingleFlight<(), usize> = SingleFlight::with_reuse(Duration::from_secs(5));
        let runs = Arc::new(AtomicUsize::new(0));
        let call = |sf: &SingleFlight<(), usize>| {
            let r = Arc::clone(&runs);
            sf.run(
                (),
                move || async move { r.fetch_add(1, Ordering::SeqCst) + 1 },
            )
        };
        assert_eq!(call(&sf).await, Ok(1));
        tokio::time::advance(Duration::from_secs(4)).await;
        assert_eq!(call(&sf).await, Ok(1), "inside the window: reused");
        tokio::time::advance(Duration::from_secs(2)).await;
        wait_until_empty(&sf).await;
        assert_eq!(call(&sf).await, Ok(2), "after the window: runs again");
    }

    /// A caller that stops waiting does not cancel the work for the others.
    #[tokio::test]
    async fn dropped_caller_does_not_cancel_work() {
        let sf: SingleFlight<(), u8> = SingleFlight::new();
        let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
        let first = sf.run((), move || async move {
            release_rx.await.expect("sender kept until released");
            1
        });
        let second = sf.join(&()).expect("flight is running");
        drop(first);
        release_tx.send(()).expect("task alive");
        assert_eq!(second.await, Ok(1));
    }

    #[tokio::test]
    async fn panicking_work_aborts_and_frees_the_key() {
        let sf: SingleFlight<(), u8> = SingleFlight::new();
        let r = sf.run((), || async { panic!("work failed") }).await;
        assert_eq!(r, Err(FlightAborted));
        wait_until_empty(&sf).await;
        assert_eq!(sf.run((), || async { 3 }).await, Ok(3));
    }

    #[tokio::test]
    async fn join_without_flight_is_none() {
        let sf: SingleFlight<(), u8> = SingleFlight::new();
        assert!(sf.join(&()).is_none());
        assert!(sf.is_empty());
    }

    /// The entry is removed by the task right after it publishes; yield
    /// until that happened (bounded, no sleeping).
    async fn wait_until_empty<K, V>(sf: &SingleFlight<K, V>)
    where
        K: Hash + Eq + Clone + Send + 'static,
        V: Clone + Send + Sync + 'static,
    {
        for _ in 0..1000 {
            if sf.is_empty() {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("flight entry was never removed");
    }
}
