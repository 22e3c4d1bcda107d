//! The map behind the caches: entries expire a fixed time after they were
//! written, the number of entries is capped, and a look-up is one lock and
//! one hash.
//!
//! It is sharded by key hash when the machine has several cores (one shard
//! per core, rounded up to a power of two, at most 64), so that requests on
//! different cores rarely wait for the same lock; on one core there is one
//! shard and no extra hashing.
//!
//! The hasher is a parameter. The default, std's SipHash, resists
//! collision flooding and suits keys that clients choose (usernames).
//! [`FastCache`] uses foldhash instead, several times cheaper on the 67
//! bytes of a stored key's digest, for keys that no client can choose: the
//! HMAC digests of stored credentials and ids that the store assigned.
//! Such a cache only holds what the store found or the server verified or
//! computed, so a client cannot fill it with keys of its own making
//! either.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A [`TtlCache`] hashed with foldhash, for keys no client chooses (see
/// the [module docs](self)).
pub(crate) type FastCache<K, V> = TtlCache<K, V, foldhash::fast::RandomState>;

struct Entry<V> {
    value: V,
    expires: Instant,
}

struct Shard<K, V, H> {
    map: HashMap<K, Entry<V>, H>,
    /// When inserts next sweep out expired entries: once per TTL, so a
    /// shard holds at most about two TTLs' worth of inserts and each sweep
    /// costs O(1) per insert on average.
    next_sweep: Instant,
}

impl<K, V, H: Default> Shard<K, V, H> {
    fn new() -> Self {
        Shard {
            map: HashMap::default(),
            next_sweep: Instant::now(),
        }
    }
}

pub(crate) struct TtlCache<K, V, H = RandomState> {
    shards: Box<[Mutex<Shard<K, V, H>>]>,
    /// Picks the shard; the maps have their own (random) hashers.
    picker: H,
    ttl: Duration,
    /// Entries per shard at most.
    cap: usize,
}

impl<K: Hash + Eq, V: Clone, H: BuildHasher + Default> TtlCache<K, V, H> {
    /// Entries live for `ttl`; at most about `capacity` of them.
    pub(crate) fn new(ttl: Duration, capacity: u64) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let shards = cores.next_power_of_two().min(64);
        let capacity = usize::try_from(capacity).unwrap_or(usize::MAX).max(1);
        TtlCache {
            shards: (0..shards).map(|_| Mutex::new(Shard::new())).collect(),
            picker: H::default(),
            ttl,
            cap: capacity.div_ceil(shards),
        }
    }

    fn shard<Q: Hash + ?Sized>(&self, key: &Q) -> MutexGuard<'_, Shard<K, V, H>> {
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
fn make_room<K: Hash + Eq, V, H: BuildHasher>(
    shard: &mut HashMap<K, Entry<V>, H>,
    cap: usize,
    now: Instant,
) {
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

    fn entries_expire_after_the_ttl<H: BuildHasher + Default>() {
        let c = TtlCache::<_, _, H>::new(Duration::from_millis(30), 10);
        c.insert("a".to_owned(), 1);
        assert_eq!(c.get("a"), Some(1));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(c.get("a"), None);
        assert_eq!(c.len(), 0);
    }

    fn the_cap_holds_and_the_newest_entries_stay<H: BuildHasher + Default>() {
        let c = TtlCache::<_, _, H>::new(Duration::from_secs(60), 1_000);
        for i in 0..10_000u32 {
            c.insert(i, i);
            assert!(c.len() <= 1_000 + c.shards.len());
        }
        assert_eq!(c.get(&9_999), Some(9_999));
        assert_eq!(c.get(&0), None);
    }

    fn expired_entries_are_swept_by_later_inserts<H: BuildHasher + Default>() {
        let c = TtlCache::<_, _, H>::new(Duration::from_millis(20), 1_000);
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

    fn invalidation_drops_what_it_names<H: BuildHasher + Default>() {
        let c = TtlCache::<_, _, H>::new(Duration::from_secs(60), 100);
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

    fn a_cap_of_one_keeps_the_last_entry<H: BuildHasher + Default>() {
        let c = TtlCache::<_, _, H>::new(Duration::from_secs(60), 1);
        c.insert(1, 1);
        c.insert(2, 2);
        assert_eq!(c.get(&2), Some(2));
        assert!(c.len() <= c.shards.len());
    }

    /// Each test above, once per hasher the caches use.
    macro_rules! with_either_hasher {
        ($($test:ident => $name:ident),* $(,)?) => {$(
            #[test]
            fn $name() {
                $test::<RandomState>();
                $test::<foldhash::fast::RandomState>();
            }
        )*};
    }

    with_either_hasher! {
        entries_expire_after_the_ttl => entries_expire_after_the_ttl_with_either_hasher,
        the_cap_holds_and_the_newest_entries_stay => the_cap_holds_and_the_newest_entries_stay_with_either_hasher,
        expired_entries_are_swept_by_later_inserts => expired_entries_are_swept_by_later_inserts_with_either_hasher,
        invalidation_drops_what_it_names => invalidation_drops_what_it_names_with_either_hasher,
        a_cap_of_one_keeps_the_last_entry => a_cap_of_one_keeps_the_last_entry_with_either_hasher,
    }
}
