//! A map with a cap on its keys and an expiry per entry: what the memory
//! rate and lockout stores keep, so a flood of distinct keys cannot grow
//! them without bound.

use std::collections::HashMap;
use std::time::SystemTime;

struct Slot<V> {
    /// `None` only while [`BoundedMap::update`] has the value out.
    value: Option<V>,
    expires: SystemTime,
}

pub(crate) struct BoundedMap<V> {
    map: HashMap<Box<str>, Slot<V>>,
    cap: usize,
}

impl<V> BoundedMap<V> {
    pub(crate) fn new(cap: usize) -> Self {
        assert!(cap > 0, "a bounded store needs room for at least one key");
        BoundedMap {
            map: HashMap::new(),
            cap,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn cap(&self) -> usize {
        self.cap
    }

    /// The live value under `key` (an expired one counts as absent).
    pub(crate) fn get(&self, key: &str, now: SystemTime) -> Option<&V> {
        self.map
            .get(key)
            .filter(|s| s.expires > now)
            .and_then(|s| s.value.as_ref())
    }

    pub(crate) fn remove(&mut self, key: &str) {
        self.map.remove(key);
    }

    /// Hands `f` the live value under `key` (or `None`); `f` returns the new
    /// value with its expiry (or `None` to drop the key) and a result.
    pub(crate) fn update<R>(
        &mut self,
        key: &str,
        now: SystemTime,
        f: impl FnOnce(Option<V>) -> (Option<(V, SystemTime)>, R),
    ) -> R {
        // A key that is there is updated in place: one hash, no key copy.
        if let Some(slot) = self.map.get_mut(key) {
            let old = slot.value.take().filter(|_| slot.expires > now);
            let (new, result) = f(old);
            match new {
                Some((value, expires)) => {
                    slot.value = Some(value);
                    slot.expires = expires;
                }
                None => {
                    self.map.remove(key);
                }
            }
            return result;
        }
        let (new, result) = f(None);
        if let Some((value, expires)) = new {
            self.make_room(now);
            self.map.insert(
                key.into(),
                Slot {
                    value: Some(value),
                    expires,
                },
            );
        }
        result
    }

    /// At the cap: drops expired entries, then the ones expiring soonest,
    /// down to 90% of the cap, so sweeps cost O(1) per insert on average.
    fn make_room(&mut self, now: SystemTime) {
        if self.map.len() < self.cap {
            return;
        }
        let target = self.cap - (self.cap / 10).max(1);
        self.map.retain(|_, s| s.expires > now);
        if self.map.len() <= target {
            return;
        }
        let excess = self.map.len() - target;
        evict_soonest(&mut self.map, excess, |s| s.expires);
        tracing::debug!(
            cap = self.cap,
            evicted = excess,
            "bounded store full: evicted the entries expiring soonest"
        );
    }
}

/// Drops the `excess` entries of `map` that expire soonest (ties broken
/// arbitrarily, never more than `excess`): what a full bounded map or cache
/// gives up.
pub(crate) fn evict_soonest<K, V, H, T: Ord + Copy>(
    map: &mut HashMap<K, V, H>,
    excess: usize,
    expires: impl Fn(&V) -> T,
) {
    if excess == 0 {
        return;
    }
    let mut expiries: Vec<T> = map.values().map(&expires).collect();
    let threshold = *expiries.select_nth_unstable(excess - 1).1;
    let mut ties = excess - expiries.iter().filter(|&&t| t < threshold).count();
    map.retain(|_, v| {
        let t = expires(v);
        if t < threshold {
            false
        } else if t == threshold && ties > 0 {
            ties -= 1;
            false
        } else {
            true
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn t(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(s)
    }

    #[test]
    fn expired_entries_count_as_absent() {
        let mut m = BoundedMap::new(10);
        m.update("a", t(0), |_| (Some((1, t(10))), ()));
        assert_eq!(m.get("a", t(9)), Some(&1));
        assert_eq!(m.get("a", t(10)), None);
        let seen = m.update("a", t(10), |old| (None, old));
        assert_eq!(seen, None);
        assert_eq!(m.len(), 0);
    }

    #[test]
    fn evicts_the_soonest_expiring_first() {
        let mut m = BoundedMap::new(10);
        for i in 0..10u64 {
            m.update(&i.to_string(), t(0), |_| (Some((i, t(100 + i))), ()));
        }
        m.update("new", t(0), |_| (Some((99, t(500))), ()));
        assert!(m.len() <= 10);
        assert!(m.get("0", t(0)).is_none(), "soonest to expire goes first");
        assert!(m.get("9", t(0)).is_some());
        assert!(m.get("new", t(0)).is_some());
    }

    #[test]
    fn equal_expiries_evict_only_what_is_needed() {
        let mut m = BoundedMap::new(100);
        for i in 0..100u64 {
            m.update(&i.to_string(), t(0), |_| (Some((i, t(60))), ()));
        }
        m.update("new", t(0), |_| (Some((0, t(60))), ()));
        assert_eq!(m.len(), 91);
    }
}
