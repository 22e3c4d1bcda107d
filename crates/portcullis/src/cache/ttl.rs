//! The map behind the caches: entries expire a fixed time after they were
//! written, the number of entries is capped, and a look-up is one lock and
//! one hash.
//!
//! It is sharded by key hash when the machine has several cores (one shard
//! per core, rounded up to a power of two, at most 64), so that requests on
//! different cores rarely wait for the same lock; on one core there is one
//! shard and no extra hashing.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

struct Entry<V> {
    value: V,
    expires: Instant,
}

struct Shard<K, V> {
    map: HashMap<K, Entry<V>>,
    /// When inserts next sweep out expired entries: once per TTL, so a
    /// shard holds at most about two TTLs' worth of inserts and each sweep
    /// costs O(1) per insert on average.
    next_sweep: Instant,
}

impl<K, V> Shard<K, V> {
    fn new() -> Self {
        Shard {
            map: HashMap::new(),
            next_sweep: Instant::now(),
        }
    }
}

pub(crate) struct TtlCache<K, V> {
    shards: Box<[Mutex<Shard<K, V>>]>,
    /// Picks the shard; the maps have their own (random) hashers.
    picker: RandomState,
    ttl: Duration,
    /// Entries per shard at most.
    cap: usize,
}

impl<K: Hash + Eq, V: Clone> TtlCache<K, V> {
    /// Entries live for `ttl`; at most about `capacity` of them.
    pub(crate) fn new(ttl: Duration, capacity: u64) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let shards = cores.next_power_of_two().min(64);
        let capacity = usize::try_from(capacity).unwrap_or(usize::MAX).max(1);
        TtlCache {
            shards: (0..shards).map(|_| Mutex::new(Shard::new())).collect(),
            picker: RandomState::new(),
            ttl,
            cap: capacity.div_ceil(shards),
        }
    }

    fn shard<Q: Hash + ?Sized>(&self, key: &Q) -> MutexGuard<'_, Shard<K, V>> {
        let i = if self.shards.len() == 1 {
            0
        } else {
            // The top bits: the maps inside use the low ones of their own.
            (self.picker.hash_one(key) >> 58) as usize & (self.shards.len() - 1)
        };
        // A panic while holding the lock cannot leave an entry half
        // written (every change is a single map operation).
        self.shards[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The live value under `key`.
    pub(crate) fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let now = Instant::now();
        let shard = self.shard(key);
        shard
            .map
            .get(key)
            .filter(|e| e.expires > now)
            .map(|e| e.value.clone())
    }

    /// Whether a live value is held under `key`.
    pub(crate) fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let now = Instant::now();
        self.shard(key)
            .map
            .get(key)
            .is_some_and(|e| e.expires > now)
    }

    /// Stores `value` under `key` for the TTL. A full shard first drops
    /// its expired entries, then the tenth of them that expire soonest.
    pub(crate) fn insert(&self, key: K, value: V) {
        let now = Instant::now();
        let mut shard = self.shard(&key);
        if now >= shard.next_sweep {
            shard.map.retain(|_, e| e.expires > now);
            shard.next_sweep = now + self.ttl;
        }
        if shard.map.len() >= self.cap && !shard.map.contains_key(&key) {
            make_room(&mut shard.map, self.cap, now);
        }
        shard.map.insert(
            key,
            Entry {
                value,
                expires: now + self.ttl,
            },
        );
    }

    /// Drops the entry under `key`.
    pub(crate) fn invalidate<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shard(key).map.remove(key);
    }

    /// Drops every entry.
    pub(crate) fn invalidate_all(&self) {
        for shard in self.shards.iter() {
            shard.lock().unwrap_or_else(|e| e.into_inner()).map.clear();
        }
    }

    /// Drops the entries whose value matches `pred`.
    pub(crate) fn invalidate_if(&self, pred: impl Fn(&V) -> bool) {
        for shard in self.shards.iter() {
            shard
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .map
                .retain(|_, e| !pred(&e.value));
        }
    }

    /// The number of live entries.
    pub(crate) fn len(&self) -> usize {
        let now = Instant::now();
        self.shards
            .iter()
            .map(|s| {
                let shard = s.lock().unwrap_or_else(|e| e.into_inner());
                shard.map.values().filter(|e| e.expires > now).count()
            })
            .sum()
    }

    /// Every live entry (tests).
    #[cfg(test)]
    pub(crate) fn entries(&self) -> Vec<(K, V)>
    where
        K: Clone,
    {
        let now = Instant::now();
        let mut out = Vec::new();
        for s in self.shards.iter() {
            let shard = s.lock().unwrap_or_else(|e| e.into_inner());
            out.extend(
                shard
                    .map
                    .iter()
                    .filter(|(_, e)| e.expires > now)
                    .map(|(k, e)| (k.clone(), e.value.clone())),
            );
        }
        out
    }
}

/// Drops expired entries, then, if the shard is still at its cap, the
/// tenth that expire soonest (at least one), so that sweeps cost O(1) per
/// insert on average.
fn make_room<K: Hash + Eq, V>(shard: &mut HashMap<K, Entry<V>>, cap: usize, now: Instant) {
    shard.retain(|_, e| e.expires > now);
    if shard.len() < cap {
        return;
    }
    let excess = shard.len() - (cap - (cap / 10).max(1).min(cap));
    crate::throttle::bounded::evict_soonest(shard, excess, |e| e.expires);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_after_the_ttl() {
        let c = TtlCache::new(Duration::from_millis(30), 10);
        c.insert("a".to_owned(), 1);
        assert_eq!(c.get("a"), Some(1));
        assert!(c.contains_key("a"));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(c.get("a"), None);
        assert!(!c.contains_key("a"));
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn the_cap_holds_and_the_newest_entries_stay() {
        let c = TtlCache::new(Duration::from_secs(60), 1_000);
        for i in 0..10_000u32 {
            c.insert(i, i);
            assert!(c.len() <= 1_000 + c.shards.len());
        }
        assert_eq!(c.get(&9_999), Some(9_999));
        assert_eq!(c.get(&0), None);
    }

    #[test]
    fn expired_entries_are_swept_by_later_inserts() {
        let c = TtlCache::new(Duration::from_millis(20), 1_000);
        for i in 0..100u32 {
            c.insert(i, i);
        }
        std::thread::sleep(Duration::from_millis(50));
        c.insert(1_000, 0);
        let held: usize = c.shards.iter().map(|s| s.lock().unwrap().map.len()).sum();
        // The insert swept its own shard; with one shard, everything.
        assert!(held < 100, "{held} entries still held");
        if c.shards.len() == 1 {
            assert_eq!(held, 1);
        }
    }

    #[test]
    fn invalidation_drops_what_it_names() {
        let c = TtlCache::new(Duration::from_secs(60), 100);
        for i in 0..10i64 {
            c.insert(i, i % 2);
        }
        c.invalidate(&0);
        assert_eq!(c.get(&0), None);
        c.invalidate_if(|v| *v == 1);
        assert_eq!(c.len(), 4);
        assert_eq!(c.get(&2), Some(0));
        c.invalidate_all();
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn a_cap_of_one_keeps_the_last_entry() {
        let c = TtlCache::new(Duration::from_secs(60), 1);
        c.insert(1, 1);
        c.insert(2, 2);
        assert_eq!(c.get(&2), Some(2));
        assert!(c.len() <= c.shards.len());
    }
}
