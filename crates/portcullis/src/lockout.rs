//! Login lockout, django-axes' model: failed password logins are counted
//! per username and per client address, and either count reaching the
//! limit refuses every login for that username or from that address, the
//! right password included, until the cool-off has passed since the last
//! counted failure.
//!
//! | setting | default | axes |
//! |---|---|---|
//! | [`with_failure_limit`](Lockout::with_failure_limit) | 5 | `AXES_FAILURE_LIMIT` |
//! | [`with_cooloff`](Lockout::with_cooloff) | 900 s | `AXES_COOLOFF_TIME` |
//! | [`with_client_ip`](Lockout::with_client_ip) | the socket's address | `AXES_IPWARE_PROXY_COUNT` |
//!
//! The rules:
//!
//! - every failure counts against the username, whether or not a user has
//!   it (so the lockout reveals nothing about which usernames exist), and
//!   against the client's address when it is known;
//! - once a count reaches the limit, attempts for that username or from
//!   that address are refused before any user is looked up or password
//!   hashed, with [`AuthError::Throttled`](crate::AuthError::Throttled)
//!   (`429`, `Retry-After`); the failure that reaches the limit is itself
//!   answered as a plain failure;
//! - refused attempts are not counted (their password is never checked),
//!   so the cool-off runs from the last counted failure;
//! - a success clears its username's count (not the address's);
//! - [`unlock`](Lockout::unlock) clears a username's or an address's count.
//!
//! The check and the count are separate store calls, so attempts racing in
//! parallel may each pass the check before any is counted: a burst can
//! overshoot the limit by the number of attempts in flight, never more.
//!
//! Counts live in a [`LockoutStore`]; [`MemoryLockoutStore`] serves one
//! process. For `portcullis unlock` to reach a running server, both must
//! use a shared store (SQL or Redis).
//!
//! [`PasswordBackend::with_lockout`](crate::PasswordBackend::with_lockout)
//! puts a lockout in front of every password check made through
//! [`authenticate_from`](crate::PasswordBackend::authenticate_from); the
//! Basic scheme uses it.
//!
//! ```
//! use std::time::Duration;
//! use portcullis::lockout::Lockout;
//! use portcullis::throttle::ManualClock;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let clock = ManualClock::new();
//! let lockout = Lockout::memory().with_failure_limit(3).with_clock(clock.clone());
//! let addr = Some("192.0.2.1".parse().unwrap());
//!
//! for _ in 0..3 {
//!     assert_eq!(lockout.locked_for("ada", addr).await.unwrap(), None);
//!     lockout.record_failure("ada", addr).await.unwrap();
//! }
//! // Locked for the cool-off (900 s by default), from any address.
//! assert_eq!(lockout.locked_for("ada", None).await.unwrap(), Some(Duration::from_secs(900)));
//! // ... and that address is locked for every username.
//! assert!(lockout.locked_for("bob", addr).await.unwrap().is_some());
//!
//! clock.advance(Duration::from_secs(600));
//! assert_eq!(lockout.locked_for("ada", None).await.unwrap(), Some(Duration::from_secs(300)));
//!
//! lockout.unlock("ada").await.unwrap();
//! assert_eq!(lockout.locked_for("ada", None).await.unwrap(), None);
//! lockout.unlock("192.0.2.1").await.unwrap();
//! assert_eq!(lockout.locked_for("bob", addr).await.unwrap(), None);
//! # });
//! ```

use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use sha2::{Digest, Sha256};

use crate::scheme::RequestHead;
use crate::store::StoreError;
use crate::throttle::bounded::BoundedMap;
use crate::throttle::{ClientIp, Clock, SystemClock};

/// axes' default failure limit is 3; the reference app's is 5.
pub const DEFAULT_FAILURE_LIMIT: u32 = 5;
/// The default cool-off: 15 minutes.
pub const DEFAULT_COOLOFF: Duration = Duration::from_secs(900);
/// The default cap on the keys a [`MemoryLockoutStore`] keeps.
pub const DEFAULT_MAX_KEYS: usize = 100_000;
/// Usernames longer than this (Django's `max_length` for usernames) are
/// hashed in their key.
const MAX_PLAIN_USERNAME: usize = 150;

/// The failures counted under a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Failures {
    /// Failures counted since the key was last cleared or expired.
    pub count: u32,
    /// When the last one was counted.
    pub last_failure: SystemTime,
}

/// Where failed logins are counted; shared by every server and by the
/// `unlock` command when it must reach a running server.
///
/// # Semantics
///
/// A key is `lockout:username:<username>` or `lockout:ip:<address>` (see
/// [`username_key`] and [`address_key`]); a store treats it as an opaque
/// string and may prefix it. A key holds a count and the time of the last
/// failure, and exists only while `now < last_failure + cooloff`, with the
/// `cooloff` given by the last [`record_failure`](Self::record_failure).
///
/// - `record_failure(key, now, cooloff)`, atomic per key: if the key
///   exists, count + 1, else 1; sets the last failure to `now`; keeps the
///   key until `now + cooloff`; returns the new count.
/// - `failures(key, now)`: the count and last failure if the key exists at
///   `now`, else `None`.
/// - `clear(key)`: deletes the key; deleting a missing key is not an error.
///
/// Second (or millisecond) precision is enough. In Redis: a hash with
/// `HINCRBY count 1`, `HSET last <now>` and `PEXPIREAT <now + cooloff>` in
/// one `MULTI` or script; in SQL: an upsert that restarts the count when
/// the stored `last_failure + cooloff <= now`.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use portcullis::lockout::{Failures, LockoutStore, MemoryLockoutStore};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let store = MemoryLockoutStore::new();
/// let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
/// let cooloff = Duration::from_secs(900);
/// assert_eq!(store.record_failure("k", t0, cooloff).await.unwrap(), 1);
/// let t1 = t0 + Duration::from_secs(10);
/// assert_eq!(store.record_failure("k", t1, cooloff).await.unwrap(), 2);
/// assert_eq!(store.failures("k", t1).await.unwrap(), Some(Failures { count: 2, last_failure: t1 }));
/// // Gone a cool-off after the last failure.
/// assert_eq!(store.failures("k", t1 + cooloff).await.unwrap(), None);
/// assert_eq!(store.record_failure("k", t1 + cooloff, cooloff).await.unwrap(), 1);
/// store.clear("k").await.unwrap();
/// assert_eq!(store.failures("k", t1 + cooloff).await.unwrap(), None);
/// # });
/// ```
#[async_trait]
pub trait LockoutStore: Send + Sync + 'static {
    /// Counts a failure under `key`; returns the new count.
    async fn record_failure(
        &self,
        key: &str,
        now: SystemTime,
        cooloff: Duration,
    ) -> Result<u32, StoreError>;

    /// The failures counted under `key`, if it has not expired at `now`.
    async fn failures(&self, key: &str, now: SystemTime) -> Result<Option<Failures>, StoreError>;

    /// Forgets the failures counted under `key`.
    async fn clear(&self, key: &str) -> Result<(), StoreError>;
}

#[async_trait]
impl<T: LockoutStore + ?Sized> LockoutStore for Arc<T> {
    async fn record_failure(
        &self,
        key: &str,
        now: SystemTime,
        cooloff: Duration,
    ) -> Result<u32, StoreError> {
        (**self).record_failure(key, now, cooloff).await
    }
    async fn failures(&self, key: &str, now: SystemTime) -> Result<Option<Failures>, StoreError> {
        (**self).failures(key, now).await
    }
    async fn clear(&self, key: &str) -> Result<(), StoreError> {
        (**self).clear(key).await
    }
}

/// The key under which a username's failures are counted:
/// `lockout:username:<username>`, or `lockout:username-sha256:<hex>` for a
/// username longer than 150 bytes (so keys stay small).
pub fn username_key(username: &str) -> String {
    let mut key = String::new();
    write_username_key(&mut key, username);
    key
}

fn write_username_key(key: &mut String, username: &str) {
    if username.len() <= MAX_PLAIN_USERNAME {
        key.push_str("lockout:username:");
        key.push_str(username);
    } else {
        let digest = Sha256::digest(username.as_bytes());
        key.push_str("lockout:username-sha256:");
        key.push_str(&hex::encode(digest));
    }
}

/// The key under which an address's failures are counted:
/// `lockout:ip:<address>` (canonical form, IPv4-mapped IPv6 as IPv4).
pub fn address_key(addr: IpAddr) -> String {
    let mut key = String::new();
    write_address_key(&mut key, addr);
    key
}

fn write_address_key(key: &mut String, addr: IpAddr) {
    use std::fmt::Write;
    key.push_str("lockout:ip:");
    match addr.to_canonical() {
        // `a.b.c.d`, as `Display` writes it, without the formatter: this
        // runs on every password login, at-once Basic requests included.
        IpAddr::V4(v4) => {
            let mut digits = itoa::Buffer::new();
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    key.push('.');
                }
                key.push_str(digits.format(octet));
            }
        }
        // Writing to a String cannot fail.
        v6 => {
            let _ = write!(key, "{v6}");
        }
    }
}

/// A [`LockoutStore`] in process memory, for one server; clones share it.
///
/// At most [`DEFAULT_MAX_KEYS`] keys unless set otherwise; when full,
/// expired keys go first, then those whose cool-off ends soonest.
#[derive(Clone)]
pub struct MemoryLockoutStore {
    map: Arc<Mutex<BoundedMap<Failures>>>,
}

impl fmt::Debug for MemoryLockoutStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let map = self.lock();
        f.debug_struct("MemoryLockoutStore")
            .field("keys", &map.len())
            .field("max_keys", &map.cap())
            .finish()
    }
}

impl Default for MemoryLockoutStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryLockoutStore {
    /// An empty store holding at most 100,000 keys.
    pub fn new() -> Self {
        Self::with_max_keys(DEFAULT_MAX_KEYS)
    }

    /// An empty store holding at most `max_keys` keys.
    ///
    /// # Panics
    ///
    /// If `max_keys` is zero.
    pub fn with_max_keys(max_keys: usize) -> Self {
        MemoryLockoutStore {
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

    fn lock(&self) -> std::sync::MutexGuard<'_, BoundedMap<Failures>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl LockoutStore for MemoryLockoutStore {
    async fn record_failure(
        &self,
        key: &str,
        now: SystemTime,
        cooloff: Duration,
    ) -> Result<u32, StoreError> {
        Ok(self.lock().update(key, now, |old| {
            let count = old.map_or(0, |f| f.count).saturating_add(1);
            let f = Failures {
                count,
                last_failure: now,
            };
            (Some((f, now + cooloff)), count)
        }))
    }

    async fn failures(&self, key: &str, now: SystemTime) -> Result<Option<Failures>, StoreError> {
        Ok(self.lock().get(key, now).copied())
    }

    async fn clear(&self, key: &str) -> Result<(), StoreError> {
        self.lock().remove(key);
        Ok(())
    }
}

/// The lockout service; cheap to clone. See the [module docs](self).
#[derive(Clone)]
pub struct Lockout {
    store: Arc<dyn LockoutStore>,
    clock: Arc<dyn Clock>,
    client_ip: ClientIp,
    failure_limit: u32,
    cooloff: Duration,
    clear: Option<ClearCache>,
}

/// Keys last read from the store with no failures, remembered briefly so
/// that a stream of good logins does not read the store twice each
/// (see [`Lockout::with_clear_cache`]).
#[derive(Clone)]
struct ClearCache {
    ttl: Duration,
    keys: Arc<Mutex<BoundedMap<()>>>,
}

impl ClearCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, BoundedMap<()>> {
        self.keys.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The most keys a clear cache holds.
const CLEAR_CACHE_KEYS: usize = 100_000;

impl fmt::Debug for Lockout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lockout")
            .field("failure_limit", &self.failure_limit)
            .field("cooloff", &self.cooloff)
            .field("client_ip", &self.client_ip)
            .finish_non_exhaustive()
    }
}

impl Default for Lockout {
    fn default() -> Self {
        Self::memory()
    }
}

impl Lockout {
    /// A lockout over `store`: 5 failures, 900 s cool-off, the system
    /// clock, the socket's address.
    pub fn new(store: impl LockoutStore) -> Self {
        Lockout {
            store: Arc::new(store),
            clock: Arc::new(SystemClock),
            client_ip: ClientIp::new(),
            failure_limit: DEFAULT_FAILURE_LIMIT,
            cooloff: DEFAULT_COOLOFF,
            clear: None,
        }
    }

    /// A lockout over a fresh [`MemoryLockoutStore`].
    pub fn memory() -> Self {
        Self::new(MemoryLockoutStore::new())
    }

    /// Sets how many failures lock a username or address out.
    ///
    /// # Panics
    ///
    /// If `limit` is zero (that would lock everyone out).
    pub fn with_failure_limit(mut self, limit: u32) -> Self {
        assert!(limit > 0, "the lockout failure limit must be positive");
        self.failure_limit = limit;
        self
    }

    /// Sets the cool-off, counted from the last failure.
    ///
    /// # Panics
    ///
    /// If `cooloff` is zero.
    pub fn with_cooloff(mut self, cooloff: Duration) -> Self {
        assert!(!cooloff.is_zero(), "the lockout cool-off must be positive");
        self.cooloff = cooloff;
        self
    }

    /// Remembers, for `ttl`, the usernames and addresses the store last
    /// showed with no failures, so logins that keep succeeding do not read
    /// the store on every attempt (Basic sends the password with every
    /// request). Off by default; a zero `ttl` turns it off.
    ///
    /// Every failure counted through this lockout forgets its keys at once,
    /// so attempts through this server are checked against the store as
    /// before. What the cache delays is failures counted by *another*
    /// server sharing the store: this server sees them after at most `ttl`
    /// or at its own next failure for that key, whichever comes first, so
    /// a shared lockout may let through one extra attempt per server per
    /// `ttl`. `unlock` only removes failures, so it is never delayed. At
    /// most 100,000 keys are held.
    pub fn with_clear_cache(mut self, ttl: Duration) -> Self {
        self.clear = (!ttl.is_zero()).then(|| ClearCache {
            ttl,
            keys: Arc::new(Mutex::new(BoundedMap::new(CLEAR_CACHE_KEYS))),
        });
        self
    }

    /// Replaces the clock.
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Sets how the client's address is found (share it with the
    /// throttles' [`ThrottleConfig`](crate::throttle::ThrottleConfig)).
    pub fn with_client_ip(mut self, client_ip: ClientIp) -> Self {
        self.client_ip = client_ip;
        self
    }

    /// The failure limit.
    pub fn failure_limit(&self) -> u32 {
        self.failure_limit
    }

    /// The cool-off.
    pub fn cooloff(&self) -> Duration {
        self.cooloff
    }

    /// The client address setting.
    pub fn client_ip(&self) -> ClientIp {
        self.client_ip
    }

    /// The request's client address under this lockout's setting.
    pub fn client_addr(&self, req: &RequestHead<'_>) -> Option<IpAddr> {
        self.client_ip.resolve(req)
    }

    fn keys(username: &str, addr: Option<IpAddr>) -> impl Iterator<Item = String> {
        std::iter::once(username_key(username)).chain(addr.map(address_key))
    }

    /// How long logins for `username` (or from `addr`) stay refused, or
    /// `None` when they may proceed. The longer wait wins when both are
    /// locked.
    pub async fn locked_for(
        &self,
        username: &str,
        addr: Option<IpAddr>,
    ) -> Result<Option<Duration>, StoreError> {
        Ok(self.status(username, addr).await?.wait)
    }

    /// What [`locked_for`](Lockout::locked_for) answers, and whether the
    /// username has failures counted at all (so that a success need not
    /// write to the store when there is nothing to clear).
    pub async fn status(
        &self,
        username: &str,
        addr: Option<IpAddr>,
    ) -> Result<LockStatus, StoreError> {
        let now = self.clock.now();
        let mut status = LockStatus::default();
        for (i, key) in Self::keys(username, addr).enumerate() {
            if let Some(clear) = &self.clear {
                if clear.lock().get(&key, now).is_some() {
                    continue;
                }
            }
            let Some(f) = self.store.failures(&key, now).await? else {
                if let Some(clear) = &self.clear {
                    clear
                        .lock()
                        .update(&key, now, |_| (Some(((), now + clear.ttl)), ()));
                }
                continue;
            };
            if i == 0 && f.count > 0 {
                status.username_has_failures = true;
            }
            if f.count < self.failure_limit {
                continue;
            }
            let left = (f.last_failure + self.cooloff)
                .duration_since(now)
                .unwrap_or(Duration::ZERO)
                .min(self.cooloff);
            if !left.is_zero() {
                status.wait = status.wait.max(Some(left));
            }
        }
        Ok(status)
    }

    /// [`status`](Self::status) answered without waiting, from the clear
    /// cache alone ([`with_clear_cache`](Self::with_clear_cache)): `Some`
    /// (nothing locked, no failures counted) only when the username and
    /// the address, when known, were both last seen clear within the
    /// cache's time to live. `None` means "ask `status`".
    pub fn status_now(&self, username: &str, addr: Option<IpAddr>) -> Option<LockStatus> {
        thread_local! {
            // The keys are written here: this path does not allocate.
            static KEY: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
        }
        let clear = self.clear.as_ref()?;
        let now = self.clock.now();
        KEY.with(|key| {
            let mut key = key.borrow_mut();
            let keys = clear.lock();
            key.clear();
            write_username_key(&mut key, username);
            keys.get(&key, now)?;
            if let Some(addr) = addr {
                key.clear();
                write_address_key(&mut key, addr);
                keys.get(&key, now)?;
            }
            Some(LockStatus::default())
        })
    }

    /// Counts a failed login for `username` and, when known, `addr`.
    pub async fn record_failure(
        &self,
        username: &str,
        addr: Option<IpAddr>,
    ) -> Result<(), StoreError> {
        let now = self.clock.now();
        for key in Self::keys(username, addr) {
            // Forget the key before the write, so checks from now on read
            // the store, and again after it, so that a check racing with
            // the write cannot leave a stale "clear" behind (also when the
            // write failed).
            let forget = || {
                if let Some(clear) = &self.clear {
                    clear.lock().remove(&key);
                }
            };
            forget();
            let count = self.store.record_failure(&key, now, self.cooloff).await;
            forget();
            let count = count?;
            if count == self.failure_limit {
                tracing::warn!(%key, failures = count, "login locked out");
            }
        }
        Ok(())
    }

    /// A successful login: clears the username's failures.
    pub async fn record_success(&self, username: &str) -> Result<(), StoreError> {
        self.store.clear(&username_key(username)).await
    }

    /// Clears the failures counted against a username or an address (what
    /// `portcullis unlock` does). A string that parses as an IP address
    /// clears both that address and the username spelled the same way.
    pub async fn unlock(&self, username_or_address: &str) -> Result<(), StoreError> {
        self.store.clear(&username_key(username_or_address)).await?;
        if let Ok(ip) = username_or_address.trim().parse::<IpAddr>() {
            self.store.clear(&address_key(ip)).await?;
        }
        Ok(())
    }
}

/// What [`Lockout::status`] found for a login attempt.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LockStatus {
    /// How long the attempt must wait, if the username or address is
    /// locked out.
    pub wait: Option<Duration>,
    /// Whether any failure is counted against the username.
    pub username_has_failures: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{LoginOutcome, PasswordBackend};
    use crate::password::{HasherConfig, PasswordHasher};
    use crate::store::{MemoryStore, NewUser, UserAdmin, UserStore};
    use crate::throttle::{ClientAddr, ManualClock};

    const A: &str = "192.0.2.1";
    const B: &str = "192.0.2.2";

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    struct World {
        store: MemoryStore,
        backend: PasswordBackend<MemoryStore>,
        lockout: Lockout,
        clock: ManualClock,
    }

    async fn world() -> World {
        let store = MemoryStore::new();
        let hasher = PasswordHasher::new(HasherConfig::fast_for_tests());
        for name in ["ada", "bob"] {
            store
                .create_user(NewUser {
                    username: name.into(),
                    password_hash: hasher.hash("pw").await.unwrap(),
                    is_active: true,
                    ..Default::default()
                })
                .await
                .unwrap();
        }
        let clock = ManualClock::new();
        let lockout = Lockout::memory().with_clock(clock.clone());
        let backend = PasswordBackend::new(store.clone(), hasher).with_lockout(lockout.clone());
        World {
            store,
            backend,
            lockout,
            clock,
        }
    }

    impl World {
        async fn login(
            &self,
            user: &str,
            pw: &str,
            from: Option<IpAddr>,
        ) -> LoginOutcome<crate::User> {
            self.backend
                .authenticate_from(user, pw, from)
                .await
                .unwrap()
        }

        async fn fail(&self, user: &str, from: Option<IpAddr>, times: usize) {
            for _ in 0..times {
                assert!(matches!(
                    self.login(user, "wrong", from).await,
                    LoginOutcome::Invalid
                ));
            }
        }
    }

    fn wait_of(o: LoginOutcome<crate::User>) -> Duration {
        match o {
            LoginOutcome::LockedOut { wait } => wait,
            other => panic!("not locked out: {other:?}"),
        }
    }

    #[tokio::test]
    async fn five_failures_lock_the_username_from_every_address() {
        let w = world().await;
        // Five addresses, one failure each: only the username count reaches 5.
        for i in 0..5 {
            w.fail("ada", ip(&format!("198.51.100.{i}")), 1).await;
        }
        assert_eq!(
            wait_of(w.login("ada", "pw", ip(A)).await),
            DEFAULT_COOLOFF,
            "right password refused"
        );
        assert!(w.login("ada", "pw", None).await.is_locked_out());
        // Others, from those addresses, are fine.
        assert!(w
            .login("bob", "pw", ip("198.51.100.0"))
            .await
            .user()
            .is_some());
    }

    #[tokio::test]
    async fn the_failure_that_reaches_the_limit_is_a_plain_failure() {
        let w = world().await;
        w.fail("ada", ip(A), 4).await;
        assert!(matches!(
            w.login("ada", "wrong", ip(A)).await,
            LoginOutcome::Invalid
        ));
        assert!(w.login("ada", "wrong", ip(A)).await.is_locked_out());
    }

    #[tokio::test]
    async fn five_failures_lock_the_address_for_every_username() {
        let w = world().await;
        for name in ["u1", "u2", "u3", "u4", "u5"] {
            w.fail(name, ip(A), 1).await;
        }
        assert!(w.login("ada", "pw", ip(A)).await.is_locked_out());
        assert!(
            w.login("ada", "pw", ip(B)).await.user().is_some(),
            "another address"
        );
    }

    #[tokio::test]
    async fn unknown_usernames_count_and_lock_alike() {
        let w = world().await;
        w.fail("ghost", ip(A), 5).await;
        w.fail("ada", ip(B), 5).await;
        let before = w.store.lookups();
        let ghost = wait_of(w.login("ghost", "pw", ip("203.0.113.1")).await);
        let ada = wait_of(w.login("ada", "pw", ip("203.0.113.2")).await);
        assert_eq!(ghost, ada);
        assert_eq!(w.store.lookups(), before, "no user lookup while locked out");
    }

    #[tokio::test]
    async fn cooloff_runs_from_the_last_counted_failure() {
        let w = world().await;
        for _ in 0..5 {
            w.fail("ada", ip(A), 1).await;
            w.clock.advance(Duration::from_secs(60));
        }
        // Last failure 60 s ago.
        assert_eq!(
            wait_of(w.login("ada", "pw", None).await),
            Duration::from_secs(840)
        );
        // Refused attempts do not extend it.
        w.clock.advance(Duration::from_secs(839));
        assert_eq!(
            wait_of(w.login("ada", "wrong", None).await),
            Duration::from_secs(1)
        );
        w.clock.advance(Duration::from_secs(1));
        assert!(w.login("ada", "pw", ip(A)).await.user().is_some());
    }

    #[tokio::test]
    async fn failures_older_than_the_cooloff_do_not_add_up() {
        let w = world().await;
        w.fail("ada", ip(A), 4).await;
        w.clock.advance(DEFAULT_COOLOFF);
        w.fail("ada", ip(A), 4).await;
        assert!(w.login("ada", "pw", ip(A)).await.user().is_some());
    }

    #[tokio::test]
    async fn success_clears_the_username_count() {
        let w = world().await;
        w.fail("ada", ip(A), 4).await;
        assert!(w.login("ada", "pw", ip(B)).await.user().is_some());
        w.fail("ada", ip(B), 4).await;
        assert!(w.login("ada", "pw", ip(B)).await.user().is_some());
        // The address's count is not cleared: A has 4, and one more fills it.
        w.fail("zed", ip(A), 1).await;
        assert!(w.login("bob", "pw", ip(A)).await.is_locked_out());
    }

    #[tokio::test]
    async fn inactive_users_count_as_failures() {
        let w = world().await;
        let ada = w.store.user_by_username("ada").await.unwrap().unwrap().id;
        w.store.set_active(ada, false).await.unwrap();
        for _ in 0..5 {
            assert!(matches!(
                w.login("ada", "pw", ip(A)).await,
                LoginOutcome::Invalid
            ));
        }
        assert!(w.login("ada", "pw", ip(A)).await.is_locked_out());
    }

    #[tokio::test]
    async fn unlock_clears_a_username_or_an_address() {
        let w = world().await;
        w.fail("ada", ip(A), 5).await;
        assert!(w.login("ada", "pw", ip(B)).await.is_locked_out());
        w.lockout.unlock("ada").await.unwrap();
        assert!(w.login("ada", "pw", ip(B)).await.user().is_some());
        // A is still locked for everyone until unlocked too.
        assert!(w.login("bob", "pw", ip(A)).await.is_locked_out());
        w.lockout.unlock(A).await.unwrap();
        assert!(w.login("bob", "pw", ip(A)).await.user().is_some());
        // Unlocking what was never locked is fine.
        w.lockout.unlock("nobody").await.unwrap();
        w.lockout.unlock("::1").await.unwrap();
    }

    #[tokio::test]
    async fn settings_apply() {
        let clock = ManualClock::new();
        let l = Lockout::memory()
            .with_failure_limit(2)
            .with_cooloff(Duration::from_secs(30))
            .with_clock(clock.clone());
        l.record_failure("ada", None).await.unwrap();
        assert_eq!(l.locked_for("ada", None).await.unwrap(), None);
        l.record_failure("ada", None).await.unwrap();
        assert_eq!(
            l.locked_for("ada", None).await.unwrap(),
            Some(Duration::from_secs(30))
        );
        clock.advance(Duration::from_secs(30));
        assert_eq!(l.locked_for("ada", None).await.unwrap(), None);
        assert_eq!(
            (l.failure_limit(), l.cooloff()),
            (2, Duration::from_secs(30))
        );
    }

    /// Counts the reads that reach the store.
    #[derive(Clone, Default)]
    struct Counting {
        inner: MemoryLockoutStore,
        reads: Arc<std::sync::atomic::AtomicUsize>,
    }

    #[async_trait]
    impl LockoutStore for Counting {
        async fn record_failure(
            &self,
            key: &str,
            now: SystemTime,
            cooloff: Duration,
        ) -> Result<u32, StoreError> {
            self.inner.record_failure(key, now, cooloff).await
        }
        async fn failures(
            &self,
            key: &str,
            now: SystemTime,
        ) -> Result<Option<Failures>, StoreError> {
            self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.inner.failures(key, now).await
        }
        async fn clear(&self, key: &str) -> Result<(), StoreError> {
            self.inner.clear(key).await
        }
    }

    impl Counting {
        fn reads(&self) -> usize {
            self.reads.load(std::sync::atomic::Ordering::SeqCst)
        }
    }

    #[tokio::test]
    async fn the_clear_cache_spares_reads_and_sees_local_failures_at_once() {
        let store = Counting::default();
        let clock = ManualClock::new();
        let l = Lockout::new(store.clone())
            .with_failure_limit(2)
            .with_clock(clock.clone())
            .with_clear_cache(Duration::from_millis(500));
        let addr = ip(A);
        assert_eq!(l.status_now("ada", addr), None, "not read yet");
        assert_eq!(l.locked_for("ada", addr).await.unwrap(), None);
        assert_eq!(store.reads(), 2, "username and address read once");
        assert_eq!(l.locked_for("ada", addr).await.unwrap(), None);
        assert_eq!(store.reads(), 2, "both remembered as clear");
        assert_eq!(l.status_now("ada", addr), Some(LockStatus::default()));
        assert_eq!(l.status_now("ada", ip("10.0.0.9")), None, "a new address");
        // Failures through this lockout forget the keys at once.
        l.record_failure("ada", addr).await.unwrap();
        assert_eq!(l.status_now("ada", addr), None);
        l.record_failure("ada", addr).await.unwrap();
        assert!(l.locked_for("ada", addr).await.unwrap().is_some());
        assert!(l.locked_for("bob", addr).await.unwrap().is_some());
        // Without the cache every check reads the store.
        let plain = Lockout::new(store.clone());
        let before = store.reads();
        plain.locked_for("carol", None).await.unwrap();
        plain.locked_for("carol", None).await.unwrap();
        assert_eq!(store.reads(), before + 2);
        let off = Lockout::new(store.clone()).with_clear_cache(Duration::ZERO);
        off.locked_for("carol", None).await.unwrap();
        off.locked_for("carol", None).await.unwrap();
        assert_eq!(store.reads(), before + 4);
    }

    #[tokio::test]
    async fn another_servers_failures_are_seen_within_the_ttl() {
        let store = MemoryLockoutStore::new();
        let clock = ManualClock::new();
        let ttl = Duration::from_millis(500);
        let here = Lockout::new(store.clone())
            .with_failure_limit(2)
            .with_clock(clock.clone())
            .with_clear_cache(ttl);
        let there = Lockout::new(store.clone())
            .with_failure_limit(2)
            .with_clock(clock.clone());
        assert_eq!(here.locked_for("ada", None).await.unwrap(), None);
        there.record_failure("ada", None).await.unwrap();
        there.record_failure("ada", None).await.unwrap();
        // Still remembered as clear here...
        assert_eq!(here.locked_for("ada", None).await.unwrap(), None);
        assert!(here.status_now("ada", None).is_some());
        // ...until the TTL has passed.
        clock.advance(ttl);
        assert_eq!(here.status_now("ada", None), None);
        assert!(here.locked_for("ada", None).await.unwrap().is_some());
    }

    #[test]
    fn keys_are_documented_and_bounded() {
        assert_eq!(username_key("ada"), "lockout:username:ada");
        assert_eq!(
            address_key("::ffff:1.2.3.4".parse().unwrap()),
            "lockout:ip:1.2.3.4"
        );
        let long = "x".repeat(10_000);
        assert!(username_key(&long).starts_with("lockout:username-sha256:"));
        assert!(username_key(&long).len() < 100);
    }

    #[test]
    fn address_keys_spell_addresses_as_display_does() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut addrs: Vec<IpAddr> = [
            "0.0.0.0",
            "255.255.255.255",
            "10.0.0.1",
            "::1",
            "::",
            "2001:db8::8a2e:370:7334",
        ]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
        for _ in 0..2_000 {
            let n = next();
            addrs.push(IpAddr::from(std::net::Ipv4Addr::from(n as u32)));
            addrs.push(IpAddr::from(
                std::net::Ipv4Addr::from(n as u32).to_ipv6_mapped(),
            ));
            addrs.push(IpAddr::from(std::net::Ipv6Addr::from(
                u128::from(n) << 64 | u128::from(next()),
            )));
        }
        for addr in addrs {
            assert_eq!(
                address_key(addr),
                format!("lockout:ip:{}", addr.to_canonical()),
                "{addr:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_store_error_fails_closed() {
        let w = world().await;
        w.store.set_down(true);
        assert!(w
            .backend
            .authenticate_from("ada", "pw", ip(A))
            .await
            .is_err());
        struct Down;
        #[async_trait]
        impl LockoutStore for Down {
            async fn record_failure(
                &self,
                _: &str,
                _: SystemTime,
                _: Duration,
            ) -> Result<u32, StoreError> {
                Err(StoreError::unavailable("down"))
            }
            async fn failures(
                &self,
                _: &str,
                _: SystemTime,
            ) -> Result<Option<Failures>, StoreError> {
                Err(StoreError::unavailable("down"))
            }
            async fn clear(&self, _: &str) -> Result<(), StoreError> {
                Err(StoreError::unavailable("down"))
            }
        }
        w.store.set_down(false);
        let b = PasswordBackend::new(w.store.clone(), w.backend.hasher().clone())
            .with_lockout(Lockout::new(Down));
        assert!(b.authenticate_from("ada", "pw", ip(A)).await.is_err());
    }

    #[tokio::test]
    async fn memory_stays_bounded_under_100_000_usernames() {
        let store = MemoryLockoutStore::with_max_keys(10_000);
        let l = Lockout::new(store.clone()).with_clock(ManualClock::new());
        for i in 0..100_000 {
            l.record_failure(&format!("user{i}"), None).await.unwrap();
            assert!(store.len() <= 10_000);
        }
        let default = MemoryLockoutStore::new();
        let t = SystemTime::UNIX_EPOCH;
        for i in 0..100_001 {
            default
                .record_failure(&i.to_string(), t, DEFAULT_COOLOFF)
                .await
                .unwrap();
        }
        assert!(default.len() <= DEFAULT_MAX_KEYS);
    }

    /// Basic through the layer: DRF's 429, `Retry-After` and body once
    /// locked, even with the right password.
    #[tokio::test]
    async fn basic_answers_429_when_locked_out() {
        use axum::body::Body;
        use http_body_util::BodyExt;
        use tower::ServiceExt;

        use crate::scheme::basic::Basic;
        use crate::{IsAuthenticated, Policy, User};

        let w = world().await;
        let policy = Policy::<User>::new()
            .scheme(Basic::new(w.backend.clone()))
            .permission(IsAuthenticated);
        let app = axum::Router::new()
            .route("/", axum::routing::get(|| async { "hi" }))
            .layer(policy.layer());
        let send = |creds: &'static str| {
            let app = app.clone();
            async move {
                let mut req = http::Request::get("/")
                    .header("authorization", format!("Basic {creds}"))
                    .body(Body::empty())
                    .unwrap();
                req.extensions_mut().insert(ClientAddr(A.parse().unwrap()));
                app.oneshot(req).await.unwrap()
            }
        };
        const WRONG: &str = "YWRhOndyb25n"; // ada:wrong
        const RIGHT: &str = "YWRhOnB3"; // ada:pw
        assert_eq!(send(RIGHT).await.status(), 200);
        for _ in 0..5 {
            assert_eq!(send(WRONG).await.status(), 401);
        }
        w.clock.advance(Duration::from_millis(100_500));
        let res = send(RIGHT).await;
        assert_eq!(res.status(), 429);
        assert_eq!(res.headers()["retry-after"], "800");
        let body = res.into_body().collect().await.unwrap().to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            body["detail"],
            "Request was throttled. Expected available in 800 seconds."
        );
        // The address is locked too.
        assert_eq!(send("Ym9iOnB3").await.status(), 429); // bob:pw
        w.lockout.unlock("ada").await.unwrap();
        w.lockout.unlock(A).await.unwrap();
        assert_eq!(send(RIGHT).await.status(), 200);
    }
}
