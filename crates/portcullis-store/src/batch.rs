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
//!
//! While look-ups keep coming, one task runs query after query on one
//! connection, so taking it from the pool and handing it back (which sqlx
//! follows with a ping) is paid once per busy spell, not once per query.
//! The connection goes back as soon as no look-up waits, when a query on
//! it fails, at least once a second, and after every query while the pool
//! has no other connection to give (so other queries on a small pool wait
//! for one query at most, as before).

use std::future::Future;
use std::mem;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use portcullis::oauth2::OAuth2Token;
use portcullis::store::{SessionRecord, StoreError, TokenRecord};
use portcullis::User;
use tokio::sync::oneshot;
use tokio::time::Instant;

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
    /// `OAuth2Store::token`, by digest (OAuth2 Bearer's read).
    pub(crate) oauth2_tokens: Batcher<String, OAuth2Token>,
    /// `OAuth2UserStore::oauth2_token_with_user`, by digest (OAuth2
    /// Bearer's joined read).
    pub(crate) oauth2_tokens_with_users: Batcher<String, (OAuth2Token, Option<User>)>,
}

/// The most look-ups one query answers (so at most this many keys). The
/// rest wait for the next query.
pub(crate) const MAX_BATCH: usize = 64;

/// How many times a query waits for the other ready tasks before it
/// starts. Each pass costs a trip through the scheduler; more than a few
/// gather nothing new.
const GATHER_PASSES: usize = 4;

/// How long the queries of one batcher keep using the same connection
/// while look-ups keep coming. Handing it back now and then lets the
/// pool apply its own checks (maximum lifetime, idle pings) under
/// steady load too.
const HOLD_AT_MOST: Duration = Duration::from_secs(1);

/// What a batch query returns: each row found, with the key it answers.
pub(crate) type Rows<K, V> = Result<Vec<(K, V)>, StoreError>;

/// Where a batcher's queries get their connection.
pub(crate) trait Source: Send + Sync + 'static {
    /// A connection, handed back to its pool when dropped.
    type Conn: Send + 'static;

    /// A connection to run queries on.
    fn open(&self) -> impl Future<Output = Result<Self::Conn, StoreError>> + Send;

    /// Whether another connection could be had now without waiting. When
    /// not, a batcher hands its connection back after each query, so that
    /// other queries on a small pool are not kept waiting.
    fn has_spare(&self) -> bool;
}

impl<DB: sqlx::Database> Source for sqlx::Pool<DB> {
    type Conn = sqlx::pool::PoolConnection<DB>;

    async fn open(&self) -> Result<Self::Conn, StoreError> {
        self.acquire().await.map_err(crate::error::map_sqlx_error)
    }

    fn has_spare(&self) -> bool {
        self.num_idle() > 0 || self.size() < self.options().get_max_connections()
    }
}

type Reply<V> = oneshot::Sender<Result<Option<V>, StoreError>>;

/// Look-ups of one kind (tokens by digest, users by id, …) coalesced into
/// batch queries. Cloning is cheap: clones share the queue.
pub(crate) struct Batcher<K, V> {
    inner: Arc<dyn Shared<K, V>>,
}

impl<K, V> Clone for Batcher<K, V> {
    fn clone(&self) -> Self {
        Batcher {
            inner: Arc::clone(&self.inner),
        }
    }
}

/// A batcher's state with its source and query types erased.
trait Shared<K, V>: Send + Sync {
    fn queue(&self) -> &Mutex<Queue<K, V>>;
    /// Spawns the task that runs queries until no look-up waits.
    fn start(self: Arc<Self>);
}

struct Inner<K, V, S, F> {
    queue: Mutex<Queue<K, V>>,
    source: S,
    fetch: F,
}

struct Queue<K, V> {
    waiting: Vec<(K, Reply<V>)>,
    /// Whether a task is running queries for this batcher.
    draining: bool,
}

impl<K, V, S, F, Fut> Shared<K, V> for Inner<K, V, S, F>
where
    K: PartialEq + Clone + Send + 'static,
    V: Clone + Send + 'static,
    S: Source,
    F: Fn(S::Conn, Vec<K>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = (S::Conn, Rows<K, V>)> + Send + 'static,
{
    fn queue(&self) -> &Mutex<Queue<K, V>> {
        &self.queue
    }

    fn start(self: Arc<Self>) {
        tokio::spawn(drain(self));
    }
}

impl<K, V> Batcher<K, V>
where
    K: PartialEq + Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    /// A batcher whose queries are run by `fetch`, given a connection
    /// from `source` and up to [`MAX_BATCH`] distinct keys. It returns the
    /// connection with the rows it found, each with its key, in any order.
    ///
    /// While look-ups keep coming, one connection serves query after query
    /// (up to [`HOLD_AT_MOST`]); it goes back to the pool as soon as none
    /// is waiting, when a query fails, and after each query while the pool
    /// has no other connection to give.
    pub(crate) fn new<S, F, Fut>(source: S, fetch: F) -> Self
    where
        S: Source,
        F: Fn(S::Conn, Vec<K>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = (S::Conn, Rows<K, V>)> + Send + 'static,
    {
        Batcher {
            inner: Arc::new(Inner {
                queue: Mutex::new(Queue {
                    waiting: Vec::new(),
                    draining: false,
                }),
                source,
                fetch,
            }),
        }
    }

    /// The row for `key`, read by a query that starts after this call.
    pub(crate) async fn get(&self, key: K) -> Result<Option<V>, StoreError> {
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut queue = lock(self.inner.queue());
            queue.waiting.push((key, tx));
            !mem::replace(&mut queue.draining, true)
        };
        if start {
            Arc::clone(&self.inner).start();
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
async fn drain<K, V, S, F, Fut>(inner: Arc<Inner<K, V, S, F>>)
where
    K: PartialEq + Clone,
    V: Clone,
    S: Source,
    F: Fn(S::Conn, Vec<K>) -> Fut,
    Fut: Future<Output = (S::Conn, Rows<K, V>)>,
{
    // If this task dies (a panicking query, a runtime shutting down), the
    // guard hands the queue to the next look-up and drops the waiting
    // replies, so their callers get an error instead of waiting forever.
    let guard = Reset(&inner.queue);
    // The connection of the last query, kept while look-ups keep coming,
    // with the time it was taken from the pool.
    let mut held: Option<(S::Conn, Instant)> = None;
    loop {
        // Let the requests that are ready run first, so that their
        // look-ups join this query, while each pass still brings new ones.
        // After a query, the requests it answered run here too, and under
        // steady load their next look-ups arrive: this task and its
        // connection carry on instead of being set up anew.
        let mut seen = 0;
        for _ in 0..GATHER_PASSES {
            tokio::task::yield_now().await;
            let now = lock(&inner.queue).waiting.len();
            if (now == seen && now > 0) || now >= MAX_BATCH {
                break;
            }
            seen = now;
        }
        let batch = {
            let mut queue = lock(&inner.queue);
            if queue.waiting.is_empty() {
                queue.draining = false;
                mem::forget(guard);
                return;
            }
            // First come, first asked: the oldest look-ups go now.
            let rest = if queue.waiting.len() > MAX_BATCH {
                queue.waiting.split_off(MAX_BATCH)
            } else {
                Vec::new()
            };
            mem::replace(&mut queue.waiting, rest)
        };
        let conn = match held.take() {
            Some((conn, since)) if since.elapsed() < HOLD_AT_MOST => Ok((conn, since)),
            old => {
                // An old connection goes back to the pool before a new one
                // is asked for (on a pool of one, nothing else could come).
                drop(old);
                inner.source.open().await.map(|c| (c, Instant::now()))
            }
        };
        match conn {
            Ok((conn, since)) => {
                let conn = answer(&inner.fetch, conn, batch).await;
                held = conn
                    .filter(|_| inner.source.has_spare())
                    .map(|c| (c, since));
            }
            Err(e) => fail(batch.into_iter().map(|(_, tx)| tx), &e),
        }
    }
}

/// Runs one query for `batch` on `conn` and answers each look-up in it;
/// returns the connection unless the query failed.
async fn answer<K, V, C, F, Fut>(fetch: &F, conn: C, batch: Vec<(K, Reply<V>)>) -> Option<C>
where
    K: PartialEq + Clone,
    V: Clone,
    F: Fn(C, Vec<K>) -> Fut,
    Fut: Future<Output = (C, Rows<K, V>)>,
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
    match fetch(conn, keys).await {
        (conn, Ok(mut rows)) => {
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
            Some(conn)
        }
        // The connection may be what failed: it goes back to the pool,
        // which checks it, and the next query takes another.
        (_, Err(e)) => {
            fail(groups.into_iter().flat_map(|(_, txs)| txs), &e);
            None
        }
    }
}

/// Answers every reply with `e`.
fn fail<V>(replies: impl Iterator<Item = Reply<V>>, e: &StoreError) {
    for tx in replies {
        let _ = tx.send(Err(e.clone()));
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

/// A batch query's text keys bound one by one, to fill the `IN (…)` list
/// that [`placeholders`] wrote for them (SQLite and MariaDB).
pub(crate) fn bind_each<'q, DB>(
    mut query: sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>,
    keys: Vec<String>,
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>
where
    DB: sqlx::Database,
    String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    for key in pad(keys) {
        query = query.bind(key);
    }
    query
}

/// PostgreSQL's `IN (…)` list for a batch of text keys: one array
/// parameter, unnested, whatever the batch's size.
///
/// The planner joins the keys by hashing them or probes an index with
/// each. A list of parameters (`IN ($1, $2, …)`, or `= ANY($1)`) would be
/// compared with each row in turn: on a small table, which PostgreSQL
/// reads whole, that was a fifth of the database's time at 30 keys. One
/// statement also serves every batch size.
#[cfg(feature = "postgres")]
pub(crate) const TEXT_ARRAY: &str = "SELECT unnest(?::text[])";

/// [`TEXT_ARRAY`]'s parameter: the keys, as one array.
#[cfg(feature = "postgres")]
pub(crate) fn bind_array(
    query: sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments>,
    keys: Vec<String>,
) -> sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments> {
    query.bind(keys)
}

/// `?` placeholders for an `IN (…)` list of `n` keys, their count rounded
/// up to a power of two so that few distinct statements reach the
/// driver's statement cache; [`pad`] repeats the last key to fill them.
pub(crate) fn placeholders(n: usize) -> String {
    let mut out = "?, ".repeat(padded(n));
    out.truncate(out.len() - 2);
    out
}

/// `n` rounded up to a power of two.
pub(crate) fn padded(n: usize) -> usize {
    n.max(1).next_power_of_two()
}

/// The keys, with the last repeated up to [`padded`] length.
pub(crate) fn pad<K: Clone>(mut keys: Vec<K>) -> Vec<K> {
    if let Some(last) = keys.last().cloned() {
        keys.resize(padded(keys.len()), last);
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use tokio::sync::Semaphore;

    /// A source whose connections are counted: how many were opened, and
    /// how many are still out (not yet dropped). Opening fails while
    /// `down` is set, and while one is out if `one` is (a pool of one).
    /// It has a spare connection unless `full` is set.
    #[derive(Clone, Default)]
    struct Counted {
        opened: Arc<AtomicUsize>,
        out: Arc<AtomicUsize>,
        down: Arc<AtomicBool>,
        one: Arc<AtomicBool>,
        full: Arc<AtomicBool>,
    }

    struct Conn(Arc<AtomicUsize>);

    impl Drop for Conn {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }

    impl Source for Counted {
        type Conn = Conn;

        async fn open(&self) -> Result<Conn, StoreError> {
            let out = self.out.load(Ordering::SeqCst);
            if self.down.load(Ordering::SeqCst) || (self.one.load(Ordering::SeqCst) && out > 0) {
                return Err(StoreError::unavailable("no connection"));
            }
            self.opened.fetch_add(1, Ordering::SeqCst);
            self.out.fetch_add(1, Ordering::SeqCst);
            Ok(Conn(Arc::clone(&self.out)))
        }

        fn has_spare(&self) -> bool {
            !self.full.load(Ordering::SeqCst)
        }
    }

    /// Looks `key` up in a task of its own.
    fn spawn_get<V: Clone + Send + 'static>(
        batcher: &Batcher<u32, V>,
        key: u32,
    ) -> tokio::task::JoinHandle<Result<Option<V>, StoreError>> {
        let b = batcher.clone();
        tokio::spawn(async move { b.get(key).await })
    }

    /// A batcher over squares of small numbers (odd keys have no row) that
    /// records every batch it was asked for, and waits for a permit
    /// before answering each.
    fn squares(
        source: Counted,
        gate: Arc<Semaphore>,
        seen: Arc<Mutex<Vec<Vec<u32>>>>,
    ) -> Batcher<u32, u64> {
        Batcher::new(source, move |conn, keys: Vec<u32>| {
            let (gate, seen) = (Arc::clone(&gate), Arc::clone(&seen));
            async move {
                gate.acquire().await.unwrap().forget();
                lock(&seen).push(keys.clone());
                let rows = keys
                    .into_iter()
                    .filter(|k| k % 2 == 0)
                    .map(|k| (k, u64::from(k) * u64::from(k)))
                    .collect();
                (conn, Ok(rows))
            }
        })
    }

    #[tokio::test]
    async fn lookups_waiting_on_a_query_share_the_next_one() {
        let gate = Arc::new(Semaphore::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let batcher = squares(Counted::default(), Arc::clone(&gate), Arc::clone(&seen));
        // The first look-up starts a query, which waits at the gate.
        let first = spawn_get(&batcher, 2);
        tokio::time::sleep(Duration::from_millis(20)).await;
        // These arrive while it runs: distinct keys, a repeat, a missing one.
        let keys = [4, 6, 4, 7, 8, 2];
        let later: Vec<_> = keys.iter().map(|&k| spawn_get(&batcher, k)).collect();
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
        let batcher = squares(Counted::default(), Arc::clone(&gate), Arc::clone(&seen));
        let n = MAX_BATCH * 2 + 5;
        let handles: Vec<_> = (0..n as u32).map(|k| spawn_get(&batcher, k)).collect();
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

    /// Waits (up to a second) until no connection is out.
    async fn all_returned(source: &Counted) {
        for _ in 0..100 {
            if source.out.load(Ordering::SeqCst) == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("a connection was kept after the queue emptied");
    }

    #[tokio::test]
    async fn one_connection_serves_the_queries_while_lookups_keep_coming() {
        let source = Counted::default();
        let gate = Arc::new(Semaphore::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let batcher = squares(source.clone(), Arc::clone(&gate), Arc::clone(&seen));
        let first = spawn_get(&batcher, 2);
        tokio::time::sleep(Duration::from_millis(20)).await;
        let second = spawn_get(&batcher, 4);
        tokio::time::sleep(Duration::from_millis(20)).await;
        gate.add_permits(10);
        assert_eq!(first.await.unwrap().unwrap(), Some(4));
        assert_eq!(second.await.unwrap().unwrap(), Some(16));
        assert_eq!(lock(&seen).len(), 2, "two queries");
        assert_eq!(source.opened.load(Ordering::SeqCst), 1, "on one connection");
        // With nothing waiting, the connection goes back; the next query
        // takes one again.
        all_returned(&source).await;
        assert_eq!(batcher.get(6).await.unwrap(), Some(36));
        assert_eq!(source.opened.load(Ordering::SeqCst), 2);
        all_returned(&source).await;
    }

    /// Look-ups 2, then 4 while the query for 2 waits at the gate; the
    /// clock moves on by `wait` before the gate opens.
    async fn two_queries_in_a_row(source: &Counted, wait: Duration) -> [Option<u64>; 2] {
        let gate = Arc::new(Semaphore::new(0));
        let batcher = squares(source.clone(), Arc::clone(&gate), Arc::default());
        let first = spawn_get(&batcher, 2);
        tokio::time::sleep(Duration::from_millis(20)).await;
        let second = spawn_get(&batcher, 4);
        tokio::time::sleep(Duration::from_millis(20)).await;
        if !wait.is_zero() {
            tokio::time::advance(wait).await;
        }
        gate.add_permits(10);
        [
            first.await.unwrap().unwrap(),
            second.await.unwrap().unwrap(),
        ]
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_held_too_long_goes_back_before_the_next_is_taken() {
        // A pool of one: the next query can only have the old connection.
        let source = Counted::default();
        source.one.store(true, Ordering::SeqCst);
        let found = two_queries_in_a_row(&source, HOLD_AT_MOST * 2).await;
        assert_eq!(found, [Some(4), Some(16)]);
        assert_eq!(source.opened.load(Ordering::SeqCst), 2, "taken anew");
        all_returned(&source).await;
    }

    #[tokio::test]
    async fn without_a_spare_connection_each_query_hands_its_own_back() {
        let source = Counted::default();
        source.full.store(true, Ordering::SeqCst);
        let found = two_queries_in_a_row(&source, Duration::ZERO).await;
        assert_eq!(found, [Some(4), Some(16)]);
        assert_eq!(source.opened.load(Ordering::SeqCst), 2);
        all_returned(&source).await;
    }

    #[tokio::test]
    async fn a_failed_query_fails_its_whole_batch_and_the_next_one_runs() {
        let source = Counted::default();
        let calls = Arc::new(AtomicUsize::new(0));
        let batcher: Batcher<u32, u32> = Batcher::new(source.clone(), {
            let calls = Arc::clone(&calls);
            move |conn, keys: Vec<u32>| {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                async move {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    if n == 0 {
                        (conn, Err(StoreError::unavailable("down")))
                    } else {
                        (conn, Ok(keys.into_iter().map(|k| (k, k)).collect()))
                    }
                }
            }
        });
        let handles: Vec<_> = (0..5).map(|k| spawn_get(&batcher, k)).collect();
        for h in handles {
            let err = h.await.unwrap().unwrap_err();
            assert!(err.is_unavailable(), "{err}");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1, "one query for all five");
        assert_eq!(batcher.get(9).await.unwrap(), Some(9));
        // The connection of the failed query was not used again.
        assert_eq!(source.opened.load(Ordering::SeqCst), 2);
        all_returned(&source).await;
    }

    #[tokio::test]
    async fn no_connection_fails_the_batch_and_the_next_one_tries_again() {
        let source = Counted::default();
        let batcher = squares(
            source.clone(),
            Arc::new(Semaphore::new(10)),
            Arc::new(Mutex::new(Vec::new())),
        );
        source.down.store(true, Ordering::SeqCst);
        let err = batcher.get(2).await.unwrap_err();
        assert!(err.is_unavailable(), "{err}");
        source.down.store(false, Ordering::SeqCst);
        assert_eq!(batcher.get(2).await.unwrap(), Some(4));
    }

    #[tokio::test]
    async fn a_panicking_query_errs_its_callers_and_does_not_wedge_the_queue() {
        let source = Counted::default();
        let calls = Arc::new(AtomicUsize::new(0));
        let batcher: Batcher<u32, u32> = Batcher::new(source.clone(), {
            let calls = Arc::clone(&calls);
            move |conn, keys: Vec<u32>| {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                async move {
                    assert!(n > 0, "the first query panics");
                    (conn, Ok(keys.into_iter().map(|k| (k, k + 1)).collect()))
                }
            }
        });
        let err = batcher.get(1).await.unwrap_err();
        assert!(err.is_unavailable(), "{err}");
        assert_eq!(batcher.get(1).await.unwrap(), Some(2));
        all_returned(&source).await;
    }

    #[tokio::test]
    async fn a_caller_that_gives_up_does_not_disturb_the_others() {
        let gate = Arc::new(Semaphore::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let batcher = squares(Counted::default(), Arc::clone(&gate), Arc::clone(&seen));
        let first = spawn_get(&batcher, 2);
        tokio::time::sleep(Duration::from_millis(10)).await;
        let quitter = spawn_get(&batcher, 4);
        let stayer = spawn_get(&batcher, 4);
        tokio::time::sleep(Duration::from_millis(10)).await;
        quitter.abort();
        gate.add_permits(10);
        assert_eq!(first.await.unwrap().unwrap(), Some(4));
        assert_eq!(stayer.await.unwrap().unwrap(), Some(16));
        assert!(quitter.await.unwrap_err().is_cancelled());
    }

    #[test]
    fn in_lists_are_padded_to_a_power_of_two() {
        assert_eq!(placeholders(1), "?");
        assert_eq!(placeholders(0), "?");
        assert_eq!(placeholders(3), "?, ?, ?, ?");
        assert_eq!(pad(vec![1, 2, 3]), vec![1, 2, 3, 3]);
        assert_eq!(pad(vec![5; 8]).len(), 8);
        assert_eq!(pad(Vec::<u8>::new()), Vec::<u8>::new());
    }
}
