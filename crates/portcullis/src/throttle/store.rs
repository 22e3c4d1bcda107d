//! [`RateStore`]: where throttles count requests, and [`MemoryRateStore`].

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use super::bounded::BoundedMap;
use crate::store::StoreError;

/// What a [`RateStore::hit`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hit {
    /// The request was allowed and has been counted.
    Allowed,
    /// The limit is reached; nothing was counted. A request may succeed
    /// after `wait` (positive, at most the period).
    Limited {
        /// Time until the oldest counted request leaves the window.
        wait: Duration,
    },
}

/// Counts requests per key in a sliding window: DRF's `SimpleRateThrottle`
/// history, kept by a backend that may be shared by several servers.
///
/// # Semantics of [`hit`](RateStore::hit)
///
/// Each key holds the times of the requests it allowed. One call, which
/// must be atomic per key:
///
/// 1. forgets every recorded time `t` with `t <= now - period`;
/// 2. if `limit` or more times remain, records nothing and answers
///    [`Hit::Limited`] with `wait = t_k + period - now`, where `t_k` is the
///    `(count - limit + 1)`-th oldest remaining time (the oldest when the
///    count equals the limit, as DRF's `wait()`), clamped to
///    `(0, period]`; with `limit == 0`, `wait = period`;
/// 3. otherwise records `now` and answers [`Hit::Allowed`].
///
/// A key may be dropped once `period` has passed since its newest time.
/// Keys are opaque strings the throttles build (`throttle_<scope>_<ident>`);
/// a backend may prefix them. Millisecond precision is enough.
///
/// A Redis backend can match this with one Lua script over a sorted set
/// scored by milliseconds: `ZREMRANGEBYSCORE key -inf (now-period)`,
/// `ZCARD`; if below the limit `ZADD now <unique member>` and `PEXPIRE key
/// period`, else `ZRANGE key (count-limit) (count-limit) WITHSCORES` for
/// the wait.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use portcullis::throttle::{Hit, MemoryRateStore, RateStore};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let store = MemoryRateStore::new();
/// let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
/// let min = Duration::from_secs(60);
/// assert_eq!(store.hit("k", 2, min, t0).await.unwrap(), Hit::Allowed);
/// assert_eq!(store.hit("k", 2, min, t0 + Duration::from_secs(10)).await.unwrap(), Hit::Allowed);
/// assert_eq!(
///     store.hit("k", 2, min, t0 + Duration::from_secs(15)).await.unwrap(),
///     Hit::Limited { wait: Duration::from_secs(45) },
/// );
/// // The first request leaves the window at t0 + 60 s.
/// assert_eq!(store.hit("k", 2, min, t0 + min).await.unwrap(), Hit::Allowed);
/// # });
/// ```
#[async_trait]
pub trait RateStore: Send + Sync + 'static {
    /// Counts a request under `key` if fewer than `limit` were counted in
    /// the `period` before `now` (see the trait docs for the exact rules).
    async fn hit(
        &self,
        key: &str,
        limit: u32,
        period: Duration,
        now: SystemTime,
    ) -> Result<Hit, StoreError>;

    /// [`hit`](RateStore::hit) answered without waiting, for a store that
    /// can (one in process memory); `None`, the default, means "call
    /// `hit`". Throttles try this first and so skip a boxed future.
    fn hit_now(
        &self,
        key: &str,
        limit: u32,
        period: Duration,
        now: SystemTime,
    ) -> Option<Result<Hit, StoreError>> {
        let _ = (key, limit, period, now);
        None
    }
}

#[async_trait]
impl<T: RateStore + ?Sized> RateStore for Arc<T> {
    async fn hit(
        &self,
        key: &str,
        limit: u32,
        period: Duration,
        now: SystemTime,
    ) -> Result<Hit, StoreError> {
        (**self).hit(key, limit, period, now).await
    }

    fn hit_now(
        &self,
        key: &str,
        limit: u32,
        period: Duration,
        now: SystemTime,
    ) -> Option<Result<Hit, StoreError>> {
        (**self).hit_now(key, limit, period, now)
    }
}

/// The default cap on the keys a [`MemoryRateStore`] keeps.
pub const DEFAULT_MAX_KEYS: usize = 50_000;

/// A [`RateStore`] in process memory, for one server; clones share it.
///
/// Memory is bounded: at most [`max_keys`](MemoryRateStore::with_max_keys)
/// keys (default 50,000), each holding at most `limit` timestamps of 8
/// bytes, as DRF's history does: a key at `1000/day` may hold 8 KB, so
/// 50,000 of them 400 MB; size the cap and the rates together. When a new
/// key finds the store full, expired keys are dropped, then the keys whose
/// windows end soonest, down to 90% of the cap. Under a flood of
/// distinct keys that means some clients' counts are forgotten early: the
/// store fails open for them rather than growing without bound or refusing
/// everyone. Size the cap above the number of clients you expect per
/// period.
#[derive(Clone)]
pub struct MemoryRateStore {
    map: Arc<Mutex<BoundedMap<VecDeque<u64>>>>,
}

impl fmt::Debug for MemoryRateStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let map = self.lock();
        f.debug_struct("MemoryRateStore")
            .field("keys", &map.len())
            .field("max_keys", &map.cap())
            .finish()
    }
}

impl Default for MemoryRateStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryRateStore {
    /// An empty store holding at most 50,000 keys.
    pub fn new() -> Self {
        Self::with_max_keys(DEFAULT_MAX_KEYS)
    }

    /// An empty store holding at most `max_keys` keys.
    ///
    /// # Panics
    ///
    /// If `max_keys` is zero.
    pub fn with_max_keys(max_keys: usize) -> Self {
        MemoryRateStore {
            map: Arc::new(Mutex::new(BoundedMap::new(max_keys))),
        }
    }

    /// The number of keys held (expired ones included until swept).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BoundedMap<VecDeque<u64>>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl RateStore for MemoryRateStore {
    async fn hit(
        &self,
        key: &str,
        limit: u32,
        period: Duration,
        now: SystemTime,
    ) -> Result<Hit, StoreError> {
        Ok(self.count(key, limit, period, now))
    }

    fn hit_now(
        &self,
        key: &str,
        limit: u32,
        period: Duration,
        now: SystemTime,
    ) -> Option<Result<Hit, StoreError>> {
        Some(Ok(self.count(key, limit, period, now)))
    }
}

impl MemoryRateStore {
    /// The sliding window of one key, as milliseconds since the epoch (8
    /// bytes a request instead of a `SystemTime`'s 16, and cheaper to
    /// compare).
    fn count(&self, key: &str, limit: u32, period: Duration, now: SystemTime) -> Hit {
        let now_ms = millis(now);
        let period_ms = u64::try_from(period.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut map = self.lock();
        map.update(key, now, |old| {
            let mut times = old.unwrap_or_default();
            while times
                .front()
                .is_some_and(|&t| t.saturating_add(period_ms) <= now_ms)
            {
                times.pop_front();
            }
            let limit = limit as usize;
            if times.len() >= limit {
                let wait = if limit == 0 {
                    period
                } else {
                    let t = times[times.len() - limit];
                    let ms = t.saturating_add(period_ms).saturating_sub(now_ms);
                    Duration::from_millis(ms.clamp(1, period_ms))
                };
                let newest = times.back().copied();
                let keep = newest.map(|n| (times, from_millis(n) + period));
                return (keep, Hit::Limited { wait });
            }
            times.push_back(now_ms);
            (Some((times, now + period)), Hit::Allowed)
        })
    }
}

/// Milliseconds since the epoch (`0` before it).
fn millis(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn from_millis(ms: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000) + Duration::from_millis(ms)
    }
    const MIN: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn window_edge_is_exclusive_of_the_old_request() {
        let s = MemoryRateStore::new();
        assert_eq!(s.hit("k", 1, MIN, t(0)).await.unwrap(), Hit::Allowed);
        assert_eq!(
            s.hit("k", 1, MIN, t(59_999)).await.unwrap(),
            Hit::Limited {
                wait: Duration::from_millis(1)
            }
        );
        // At exactly now - period the old request no longer counts (DRF's `<=`).
        assert_eq!(s.hit("k", 1, MIN, t(60_000)).await.unwrap(), Hit::Allowed);
    }

    #[tokio::test]
    async fn denied_requests_are_not_counted() {
        let s = MemoryRateStore::new();
        s.hit("k", 2, MIN, t(0)).await.unwrap();
        s.hit("k", 2, MIN, t(30_000)).await.unwrap();
        for i in 0..10 {
            assert!(matches!(
                s.hit("k", 2, MIN, t(31_000 + i)).await.unwrap(),
                Hit::Limited { .. }
            ));
        }
        assert_eq!(s.hit("k", 2, MIN, t(60_000)).await.unwrap(), Hit::Allowed);
        assert_eq!(
            s.hit("k", 2, MIN, t(60_001)).await.unwrap(),
            Hit::Limited {
                wait: Duration::from_millis(29_999)
            }
        );
    }

    #[tokio::test]
    async fn a_zero_limit_always_waits_a_period() {
        let s = MemoryRateStore::new();
        assert_eq!(
            s.hit("k", 0, MIN, t(0)).await.unwrap(),
            Hit::Limited { wait: MIN }
        );
        assert!(s.is_empty());
    }

    #[tokio::test]
    async fn a_lowered_limit_waits_for_enough_requests_to_expire() {
        let s = MemoryRateStore::new();
        for i in 0..3 {
            s.hit("k", 3, MIN, t(i * 10_000)).await.unwrap();
        }
        // Three counted, limit now 1: the third-oldest must leave first.
        assert_eq!(
            s.hit("k", 1, MIN, t(25_000)).await.unwrap(),
            Hit::Limited {
                wait: Duration::from_millis(55_000)
            }
        );
    }

    #[tokio::test]
    async fn keys_are_independent() {
        let s = MemoryRateStore::new();
        assert_eq!(s.hit("a", 1, MIN, t(0)).await.unwrap(), Hit::Allowed);
        assert_eq!(s.hit("b", 1, MIN, t(0)).await.unwrap(), Hit::Allowed);
    }

    #[tokio::test]
    async fn a_clock_going_backwards_never_waits_longer_than_a_period() {
        let s = MemoryRateStore::new();
        s.hit("k", 1, MIN, t(120_000)).await.unwrap();
        assert_eq!(
            s.hit("k", 1, MIN, t(0)).await.unwrap(),
            Hit::Limited { wait: MIN }
        );
    }

    #[tokio::test]
    async fn a_flood_of_100_000_distinct_keys_stays_under_the_cap() {
        let s = MemoryRateStore::new();
        for i in 0..100_000u32 {
            let key = format!(
                "throttle_anon_ip:10.{}.{}.{}",
                i >> 16,
                (i >> 8) & 255,
                i & 255
            );
            assert_eq!(s.hit(&key, 5, MIN, t(0)).await.unwrap(), Hit::Allowed);
            assert!(s.len() <= DEFAULT_MAX_KEYS);
        }
        assert!(s.len() <= DEFAULT_MAX_KEYS);
        assert!(s.len() > DEFAULT_MAX_KEYS / 2, "evicts only what it must");

        let small = MemoryRateStore::with_max_keys(1_000);
        for i in 0..100_000u64 {
            small.hit(&i.to_string(), 5, MIN, t(i)).await.unwrap();
        }
        assert!(small.len() <= 1_000);
        // The newest keys survive; the oldest were evicted.
        assert_eq!(
            small.hit("99999", 1, MIN, t(100_000)).await.unwrap(),
            Hit::Limited {
                wait: Duration::from_millis(59_999)
            }
        );
        assert_eq!(
            small.hit("0", 1, MIN, t(100_000)).await.unwrap(),
            Hit::Allowed
        );
    }
}
