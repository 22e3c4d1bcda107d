//! Coalescing concurrent point reads into one query.
//!
//! Under load many requests look up a token, a session or a user at the
//! same moment. Each look-up through sqlx costs a trip to the database (a
//! hand-off to SQLite's worker thread, or a network round trip), and that
//! trip, not the index look-up, is most of the price. A [`Batcher`] lets
//! the look-ups that arrive while a query is running wait for the next
//! one, which then fetches all of their keys at once (`WHERE key IN
//! (…)`): one trip for many requests, and no trip at all is added when
//! requests come one at a time.
//!
//! Nothing is remembered: every look-up is answered by a query that
//! started after it was asked, so a write that finished before a look-up
//! began is always seen by it, exactly as with one query per look-up.
//! When the query fails, every look-up in its batch gets the error (the
//! store fails closed); a look-up whose caller gave up is simply skipped.

use std::future::Future;
use std::mem;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use portcullis::store::{SessionRecord, StoreError, TokenRecord};
use portcullis::User;
use tokio::sync::oneshot;

/// The point reads every authenticated request makes when nothing is
/// cached, each coalesced with the same reads of concurrent requests. Each
/// SQL store builds one with its own queries.
#[derive(Clone)]
pub(crate) struct Reads {
    /// `user_by_id`.
    pub(crate) users: Batcher<i64, User>,
    /// `token_with_user`, by digest.
    pub(crate) tokens: Batcher<String, (TokenRecord, Option<User>)>,
    /// `session_with_user`, by key digest.
    pub(crate) sessions: Batcher<String, (SessionRecord, Option<User>)>,
}

/// The most look-ups one query answers (so at most this many keys). The
/// rest wait for the next query.
pub(crate) const MAX_BATCH: usize = 64;

/// How many times a query waits for the other ready tasks before it
/// starts. Each pass costs a trip through the scheduler; more than a few
/// gather nothing new.
const GATHER_PASSES: usize = 4;

/// What a batch query returns: each row found, with the key it answers.
pub(crate) type Rows<K, V> = Result<Vec<(K, V)>, StoreError>;

type Fetch<K, V> = dyn Fn(Vec<K>) -> Pin<Box<dyn Future<Output = Rows<K, V>> + Send>> + Send + Sync;

type Reply<V> = oneshot::Sender<Result<Option<V>, StoreError>>;

/// Look-ups of one kind (tokens by digest, users by id, …) coalesced into
/// batch queries. Cloning is cheap: clones share the queue.
pub(crate) struct Batcher<K, V> {
    inner: Arc<Inner<K, V>>,
}

impl<K, V> Clone for Batcher<K, V> {
    fn clone(&self) -> Self {
        Batcher {
            inner: Arc::clone(&self.inner),
        }
    }
}

struct Inner<K, V> {
    queue: Mutex<Queue<K, V>>,
    fetch: Box<Fetch<K, V>>,
}

struct Queue<K, V> {
    waiting: Vec<(K, Reply<V>)>,
    /// Whether a task is running queries for this batcher.
    draining: bool,
}

impl<K, V> Batcher<K, V>
where
    K: PartialEq + Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    /// A batcher whose queries are run by `fetch`, given a clone of
    /// `context` (a connection pool, say) and up to [`MAX_BATCH`] distinct
    /// keys; it returns the rows it found, each with its key, in any order.
    pub(crate) fn new<C, F, Fut>(context: C, fetch: F) -> Self
    where
        C: Clone + Send + Sync + 'static,
        F: Fn(C, Vec<K>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Rows<K, V>> + Send + 'static,
    {
        Batcher {
            inner: Arc::new(Inner {
                queue: Mutex::new(Queue {
                    waiting: Vec::new(),
                    draining: false,
                }),
                fetch: Box::new(move |keys| Box::pin(fetch(context.clone(), keys))),
            }),
        }
    }

    /// The row for `key`, read by a query that starts after this call.
    pub(crate) async fn get(&self, key: K) -> Result<Option<V>, StoreError> {
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut queue = lock(&self.inner.queue);
            queue.waiting.push((key, tx));
            !mem::replace(&mut queue.draining, true)
        };
        if start {
            tokio::spawn(drain(Arc::clone(&self.inner)));
        }
        // The sender is only ever dropped unanswered when the draining
        // task is torn down (a panic, or the runtime shutting down).
        rx.await
            .unwrap_or_else(|_| Err(StoreError::unavailable("the batch query was abandoned")))
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The queue holds no invariant a panic could break half-way.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs queries until no look-up is waiting.
async fn drain<K, V>(inner: Arc<Inner<K, V>>)
where
    K: PartialEq + Clone,
    V: Clone,
{
    // If this task dies (a panicking query, a runtime shutting down), the
    // guard hands the queue to the next look-up and drops the waiting
    // replies, so their callers get an error instead of waiting forever.
    let guard = Reset(&inner.queue);
    loop {
        {
            let mut queue = lock(&inner.queue);
            if queue.waiting.is_empty() {
                queue.draining = false;
                mem::forget(guard);
                return;
            }
        }
        // Let the requests that are ready run first, so that their
        // look-ups join this query, while each pass still brings new ones.
        let mut seen = 0;
        for _ in 0..GATHER_PASSES {
            tokio::task::yield_now().await;
            let now = lock(&inner.queue).waiting.len();
            if now == seen || now >= MAX_BATCH {
                break;
            }
            seen = now;
        }
        let batch = {
            let mut queue = lock(&inner.queue);
            // Only this task takes from the queue, so it is not empty.
            // First come, first asked: the oldest look-ups go now.
            let rest = if queue.waiting.len() > MAX_BATCH {
                queue.waiting.split_off(MAX_BATCH)
            } else {
                Vec::new()
            };
            mem::replace(&mut queue.waiting, rest)
        };
        answer(&inner, batch).await;
    }
}

/// Runs one query for `batch` and answers each look-up in it.
async fn answer<K, V>(inner: &Inner<K, V>, batch: Vec<(K, Reply<V>)>)
where
    K: PartialEq + Clone,
    V: Clone,
{
    // Group the replies by key, so each key is asked for once.
    let mut groups: Vec<(K, Vec<Reply<V>>)> = Vec::with_capacity(batch.len());
    for (key, tx) in batch {
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, txs)) => txs.push(tx),
            None => groups.push((key, vec![tx])),
        }
    }
    let keys = groups.iter().map(|(k, _)| k.clone()).collect();
    match (inner.fetch)(keys).await {
        Ok(mut rows) => {
            for (key, mut txs) in groups {
                let row = rows
                    .iter()
                    .position(|(k, _)| *k == key)
                    .map(|i| rows.swap_remove(i).1);
                let last = txs.pop();
                for tx in txs {
                    let _ = tx.send(Ok(row.clone()));
                }
                if let Some(tx) = last {
                    let _ = tx.send(Ok(row));
                }
            }
        }
        Err(e) => {
            for tx in groups.into_iter().flat_map(|(_, txs)| txs) {
                let _ = tx.send(Err(e.clone()));
            }
        }
    }
}

/// Drops the waiting replies and lets the next look-up start a new task.
struct Reset<'a, K, V>(&'a Mutex<Queue<K, V>>);

impl<K, V> Drop for Reset<'_, K, V> {
    fn drop(&mut self) {
        let waiting = {
            let mut queue = lock(self.0);
            queue.draining = false;
            mem::take(&mut queue.waiting)
        };
        drop(waiting);
    }
}

/// `?` placeholders for an `IN (…)` list of `n` keys, their count rounded
/// up to a power of two so that few distinct statements reach the
/// driver's statement cache; [`pad`] repeats the last key to fill them.
#[cfg(any(feature = "sqlite", feature = "mysql"))]
pub(crate) fn placeholders(n: usize) -> String {
    let mut out = "?, ".repeat(padded(n));
    out.truncate(out.len() - 2);
    out
}

/// `n` rounded up to a power of two.
#[cfg(any(feature = "sqlite", feature = "mysql"))]
pub(crate) fn padded(n: usize) -> usize {
    n.max(1).next_power_of_two()
}

/// The keys, with the last repeated up to [`padded`] length.
#[cfg(any(feature = "sqlite", feature = "mysql"))]
pub(crate) fn pad<K: Clone>(mut keys: Vec<K>) -> Vec<K> {
    if let Some(last) = keys.last().cloned() {
        keys.resize(padded(keys.len()), last);
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;
    use tokio::sync::Semaphore;

    /// A batcher over squares of small numbers (odd keys have no row) that
    /// records every batch it was asked for, and waits for a permit
    /// before answering each.
    fn squares(gate: Arc<Semaphore>, seen: Arc<Mutex<Vec<Vec<u32>>>>) -> Batcher<u32, u64> {
        Batcher::new((gate, seen), |(gate, seen), keys: Vec<u32>| async move {
            gate.acquire().await.unwrap().forget();
            lock(&seen).push(keys.clone());
            Ok(keys
                .into_iter()
                .filter(|k| k % 2 == 0)
                .map(|k| (k, u64::from(k) * u64::from(k)))
                .collect())
        })
    }

    #[tokio::test]
    async fn lookups_waiting_on_a_query_share_the_next_one() {
        let gate = Arc::new(Semaphore::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let batcher = squares(Arc::clone(&gate), Arc::clone(&seen));
        // The first look-up starts a query, which waits at the gate.
        let first = tokio::spawn({
            let b = batcher.clone();
            async move { b.get(2).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        // These arrive while it runs: distinct keys, a repeat, a missing one.
        let keys = [4, 6, 4, 7, 8, 2];
        let later: Vec<_> = keys
            .iter()
            .map(|&k| {
                let b = batcher.clone();
                tokio::spawn(async move { b.get(k).await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(20)).await;
        gate.add_permits(10);
        assert_eq!(first.await.unwrap().unwrap(), Some(4));
        for (k, h) in keys.iter().zip(later) {
            let want = (k % 2 == 0).then(|| u64::from(*k) * u64::from(*k));
            assert_eq!(h.await.unwrap().unwrap(), want, "key {k}");
        }
        // Two queries in all; the second asked for each key once.
        let seen = lock(&seen).clone();
        assert_eq!(seen, vec![vec![2], vec![4, 6, 7, 8, 2]]);
    }

    #[tokio::test]
    async fn a_batch_holds_at_most_max_batch_lookups() {
        let gate = Arc::new(Semaphore::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let batcher = squares(Arc::clone(&gate), Arc::clone(&seen));
        let n = MAX_BATCH * 2 + 5;
        let handles: Vec<_> = (0..n as u32)
            .map(|k| {
                let b = batcher.clone();
                tokio::spawn(async move { b.get(k).await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(20)).await;
        gate.add_permits(100);
        for (k, h) in handles.into_iter().enumerate() {
            let k = k as u64;
            assert_eq!(h.await.unwrap().unwrap(), (k % 2 == 0).then_some(k * k));
        }
        let seen = lock(&seen).clone();
        assert!(seen.iter().all(|b| b.len() <= MAX_BATCH), "{seen:?}");
        assert_eq!(seen.iter().map(Vec::len).sum::<usize>(), n);
        assert!(seen.len() <= 4, "{} queries", seen.len());
    }

    #[tokio::test]
    async fn a_failed_query_fails_its_whole_batch_and_the_next_one_runs() {
        let calls = Arc::new(AtomicUsize::new(0));
        let batcher: Batcher<u32, u32> = Batcher::new(Arc::clone(&calls), {
            |calls: Arc<AtomicUsize>, keys: Vec<u32>| {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                async move {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    if n == 0 {
                        Err(StoreError::unavailable("down"))
                    } else {
                        Ok(keys.into_iter().map(|k| (k, k)).collect())
                    }
                }
            }
        });
        let handles: Vec<_> = (0..5)
            .map(|k| {
                let b = batcher.clone();
                tokio::spawn(async move { b.get(k).await })
            })
            .collect();
        for h in handles {
            let err = h.await.unwrap().unwrap_err();
            assert!(err.is_unavailable(), "{err}");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1, "one query for all five");
        assert_eq!(batcher.get(9).await.unwrap(), Some(9));
    }

    #[tokio::test]
    async fn a_panicking_query_errs_its_callers_and_does_not_wedge_the_queue() {
        let calls = Arc::new(AtomicUsize::new(0));
        let batcher: Batcher<u32, u32> = Batcher::new(Arc::clone(&calls), {
            |calls: Arc<AtomicUsize>, keys: Vec<u32>| {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                async move {
                    assert!(n > 0, "the first query panics");
                    Ok(keys.into_iter().map(|k| (k, k + 1)).collect())
                }
            }
        });
        let err = batcher.get(1).await.unwrap_err();
        assert!(err.is_unavailable(), "{err}");
        assert_eq!(batcher.get(1).await.unwrap(), Some(2));
    }

    #[tokio::test]
    async fn a_caller_that_gives_up_does_not_disturb_the_others() {
        let gate = Arc::new(Semaphore::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let batcher = squares(Arc::clone(&gate), Arc::clone(&seen));
        let first = tokio::spawn({
            let b = batcher.clone();
            async move { b.get(2).await }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        let quitter = tokio::spawn({
            let b = batcher.clone();
            async move { b.get(4).await }
        });
        let stayer = tokio::spawn({
            let b = batcher.clone();
            async move { b.get(4).await }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        quitter.abort();
        gate.add_permits(10);
        assert_eq!(first.await.unwrap().unwrap(), Some(4));
        assert_eq!(stayer.await.unwrap().unwrap(), Some(16));
        assert!(quitter.await.unwrap_err().is_cancelled());
    }

    #[test]
    #[cfg(any(feature = "sqlite", feature = "mysql"))]
    fn in_lists_are_padded_to_a_power_of_two() {
        assert_eq!(placeholders(1), "?");
        assert_eq!(placeholders(0), "?");
        assert_eq!(placeholders(3), "?, ?, ?, ?");
        assert_eq!(pad(vec![1, 2, 3]), vec![1, 2, 3, 3]);
        assert_eq!(pad(vec![5; 8]).len(), 8);
        assert_eq!(pad(Vec::<u8>::new()), Vec::<u8>::new());
    }
}
