//! Throttles: DRF's `AnonRateThrottle`, `UserRateThrottle` and
//! `ScopedRateThrottle`, run by the layer after the permission check.
//!
//! A [`Throttle`] sees the request through the permission [`Context`], so
//! it can ask for the identity (resolved at most once per request). The
//! layer runs every throttle of the route, as DRF's `check_throttles` does,
//! and when any refuses it answers `429` with `Retry-After` (the longest
//! wait, rounded up to whole seconds) and DRF's `{"detail": "Request was
//! throttled. Expected available in N seconds."}`.
//!
//! Rates are `N/PERIOD`, where only PERIOD's first letter counts: `s`, `m`,
//! `h` or `d` (`"100/day"`, `"5/min"`, `"3/m"`, `"10/second"`). A bad rate
//! is an error when the throttle is built, never at request time.
//!
//! Counts live in a [`RateStore`] (a sliding window of request times per
//! key; [`MemoryRateStore`] by default, bounded). The time comes from a
//! [`Clock`], so tests can move it by hand. The client's address comes from
//! [`ClientIp`]: the socket's peer unless `num_proxies` says to trust
//! `X-Forwarded-For`.
//!
//! ```
//! use std::time::Duration;
//! use axum::{body::Body, routing::get, Router};
//! use portcullis::throttle::{ClientAddr, ManualClock, ThrottleConfig};
//! use portcullis::{Policy, User};
//! use tower::ServiceExt;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let clock = ManualClock::new();
//! let config = ThrottleConfig::new()
//!     .clock(clock.clone())
//!     .rates("anon=2/min,user=10/min")
//!     .unwrap();
//! let policy = Policy::<User>::new()
//!     .throttle(config.anon().unwrap())
//!     .throttle(config.user().unwrap());
//! let app = Router::new().route("/", get(|| async { "hi" })).layer(policy.layer());
//!
//! let get = || {
//!     let mut req = http::Request::get("/").body(Body::empty()).unwrap();
//!     // What `into_make_service_with_connect_info` would give a handler.
//!     req.extensions_mut().insert(ClientAddr("192.0.2.1".parse().unwrap()));
//!     req
//! };
//! assert_eq!(app.clone().oneshot(get()).await.unwrap().status(), 200);
//! clock.advance(Duration::from_secs(20));
//! assert_eq!(app.clone().oneshot(get()).await.unwrap().status(), 200);
//! let res = app.clone().oneshot(get()).await.unwrap();
//! assert_eq!(res.status(), 429);
//! assert_eq!(res.headers()["retry-after"], "40");
//!
//! clock.advance(Duration::from_secs(40));
//! assert_eq!(app.oneshot(get()).await.unwrap().status(), 200);
//! # });
//! ```
//!
//! # A custom throttle
//!
//! ```
//! use async_trait::async_trait;
//! use portcullis::permission::Context;
//! use portcullis::throttle::{Decision, Throttle};
//! use portcullis::{AuthError, AuthUser};
//!
//! /// Refuses every request that has no `X-Api-Key` header.
//! struct NeedsKey;
//!
//! #[async_trait]
//! impl<U: AuthUser> Throttle<U> for NeedsKey {
//!     async fn allow_request(&self, ctx: &Context<'_, U>) -> Result<Decision, AuthError> {
//!         Ok(if ctx.request().headers.contains_key("x-api-key") {
//!             Decision::Allow
//!         } else {
//!             Decision::Deny { wait: None }
//!         })
//!     }
//! }
//! ```

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::AuthError;
use crate::identity::{AuthUser, Identity};
use crate::permission::Context;
use crate::scheme::RequestHead;

pub(crate) mod bounded;
mod client;
mod clock;
mod store;

pub use client::{ClientAddr, ClientIp, X_FORWARDED_FOR};
pub use clock::{Clock, ManualClock, SystemClock};
pub use store::{Hit, MemoryRateStore, RateStore, DEFAULT_MAX_KEYS};

/// A throttle's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The request may go on.
    Allow,
    /// The request is refused; a retry may succeed after `wait`, if known.
    Deny {
        /// DRF's `wait()`.
        wait: Option<Duration>,
    },
}

/// A throttle: DRF's `BaseThrottle`.
///
/// Called after the permission check; every throttle of a route runs, even
/// after one has refused (as DRF's `check_throttles`), and the longest wait
/// is answered. An `Err` (say, the identity failed to resolve, or the store
/// is down) stops the request with that error: fail closed.
#[async_trait]
pub trait Throttle<U: AuthUser>: Send + Sync + 'static {
    /// Whether the request may go on (DRF's `allow_request` and `wait`).
    async fn allow_request(&self, ctx: &Context<'_, U>) -> Result<Decision, AuthError>;

    /// [`allow_request`](Throttle::allow_request) answered without
    /// waiting, when the throttle can (the identity is resolved and its
    /// store is in memory); `None`, the default, means "call
    /// `allow_request`". When it answers, it must count the request
    /// exactly as `allow_request` would have.
    fn allow_request_now(&self, ctx: &Context<'_, U>) -> Option<Result<Decision, AuthError>> {
        let _ = ctx;
        None
    }
}

#[async_trait]
impl<U: AuthUser, T: Throttle<U> + ?Sized> Throttle<U> for Arc<T> {
    async fn allow_request(&self, ctx: &Context<'_, U>) -> Result<Decision, AuthError> {
        (**self).allow_request(ctx).await
    }

    fn allow_request_now(&self, ctx: &Context<'_, U>) -> Option<Result<Decision, AuthError>> {
        (**self).allow_request_now(ctx)
    }
}

/// Runs `throttles` in order (DRF's `check_throttles`): `Ok` when all
/// allow, else [`AuthError::Throttled`] with the longest known wait. The
/// identity is resolved first (DRF authenticates before it throttles), so
/// a scheme's failure is answered before any request is counted.
pub async fn check_throttles<U: AuthUser>(
    throttles: &[Arc<dyn Throttle<U>>],
    ctx: &Context<'_, U>,
) -> Result<(), AuthError> {
    if throttles.is_empty() {
        return Ok(());
    }
    ctx.identity().await?;
    finish_throttles(throttles, ctx, Tally::default()).await
}

/// How far a run of the throttles has got, and what they answered so far.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    /// The next throttle to ask.
    next: usize,
    denied: bool,
    longest: Option<Duration>,
}

impl Tally {
    fn add(&mut self, decision: Decision) {
        if let Decision::Deny { wait } = decision {
            self.denied = true;
            self.longest = self.longest.max(wait);
        }
        self.next += 1;
    }

    fn verdict(&self) -> Result<(), AuthError> {
        if self.denied {
            Err(AuthError::Throttled {
                wait: self.longest.map(wait_seconds),
            })
        } else {
            Ok(())
        }
    }
}

/// Asks the throttles from where `tally` stopped, as long as each answers
/// without waiting ([`Throttle::allow_request_now`]): the verdict once all
/// have answered, `None` when the next one has to wait (nothing counted
/// for it yet; [`finish_throttles`] goes on from there).
pub(crate) fn run_throttles_now<U: AuthUser>(
    throttles: &[Arc<dyn Throttle<U>>],
    ctx: &Context<'_, U>,
    tally: &mut Tally,
) -> Option<Result<(), AuthError>> {
    while let Some(t) = throttles.get(tally.next) {
        match t.allow_request_now(ctx)? {
            Ok(decision) => tally.add(decision),
            Err(e) => return Some(Err(e)),
        }
    }
    Some(tally.verdict())
}

/// The rest of a run of the throttles, waiting where one has to.
pub(crate) async fn finish_throttles<U: AuthUser>(
    throttles: &[Arc<dyn Throttle<U>>],
    ctx: &Context<'_, U>,
    mut tally: Tally,
) -> Result<(), AuthError> {
    loop {
        if let Some(verdict) = run_throttles_now(throttles, ctx, &mut tally) {
            return verdict;
        }
        // Through the `dyn`, not `Arc`'s impl: one boxed future, not two.
        let decision = (*throttles[tally.next]).allow_request(ctx).await?;
        tally.add(decision);
    }
}

/// A wait in whole seconds, rounded up (DRF's `math.ceil(wait)`): what
/// `Retry-After` and the `detail` say.
pub fn wait_seconds(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

/// [`AuthError::Throttled`] for a wait.
pub fn throttled(wait: Duration) -> AuthError {
    AuthError::Throttled {
        wait: Some(wait_seconds(wait)),
    }
}

/// A throttle rate: so many requests per period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    num_requests: u32,
    period: Duration,
}

impl Rate {
    /// `num_requests` per `period`.
    ///
    /// # Panics
    ///
    /// If `period` is zero.
    pub fn new(num_requests: u32, period: Duration) -> Self {
        assert!(!period.is_zero(), "a throttle period must be positive");
        Rate {
            num_requests,
            period,
        }
    }

    /// Parses `N/PERIOD` as DRF's `parse_rate`: PERIOD's first letter
    /// (`s`, `m`, `h`, `d`, any case) picks a second, minute, hour or day.
    pub fn parse(rate: &str) -> Result<Self, RateError> {
        let bad = || RateError::Invalid {
            rate: rate.to_owned(),
        };
        let (num, period) = rate.split_once('/').ok_or_else(bad)?;
        let num: u32 = num.trim().parse().map_err(|_| bad())?;
        let secs = match period.trim().chars().next().map(|c| c.to_ascii_lowercase()) {
            Some('s') => 1,
            Some('m') => 60,
            Some('h') => 3_600,
            Some('d') => 86_400,
            _ => return Err(bad()),
        };
        Ok(Rate::new(num, Duration::from_secs(secs)))
    }

    /// The number of requests allowed per period.
    pub fn num_requests(&self) -> u32 {
        self.num_requests
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.period
    }
}

impl FromStr for Rate {
    type Err = RateError;
    fn from_str(s: &str) -> Result<Self, RateError> {
        Rate::parse(s)
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.num_requests;
        match self.period.as_secs() {
            1 if self.period.subsec_nanos() == 0 => write!(f, "{n}/second"),
            60 if self.period.subsec_nanos() == 0 => write!(f, "{n}/min"),
            3_600 if self.period.subsec_nanos() == 0 => write!(f, "{n}/hour"),
            86_400 if self.period.subsec_nanos() == 0 => write!(f, "{n}/day"),
            _ => write!(f, "{n}/{:?}", self.period),
        }
    }
}

/// A throttle configuration error, found when the throttle is built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RateError {
    /// Not `N/PERIOD`.
    #[error(
        "invalid throttle rate {rate:?}: expected N/PERIOD with PERIOD \
         starting with s, m, h or d, such as \"100/day\" or \"5/min\""
    )]
    Invalid {
        /// The rate as written.
        rate: String,
    },
    /// A `scope=rate` list entry without `=`.
    #[error("invalid throttle rates entry {entry:?}: expected scope=N/PERIOD")]
    InvalidEntry {
        /// The entry as written.
        entry: String,
    },
    /// No rate is set for the scope (DRF's `ImproperlyConfigured`).
    #[error("no default throttle rate set for the {scope:?} scope")]
    MissingScope {
        /// The scope.
        scope: String,
    },
}

/// What every throttle of a project shares: the [`RateStore`], the
/// [`Clock`], the [`ClientIp`] setting and the rates per scope (DRF's
/// `DEFAULT_THROTTLE_RATES`, `NUM_PROXIES` and cache). Cheap to clone.
///
/// ```
/// use portcullis::throttle::{ClientIp, Rate, ThrottleConfig};
///
/// let config = ThrottleConfig::new()
///     .client_ip(ClientIp::behind_proxies(1))
///     .rates("anon=5/min,user=10/min,burst=3/min")
///     .unwrap();
/// assert_eq!(config.rate_for("burst"), Some("3/min".parse::<Rate>().unwrap()));
/// let _burst = config.scoped("burst").unwrap();
/// assert!(config.scoped("nope").is_err());
/// assert!(ThrottleConfig::new().rates("anon=5/fortnight").is_err());
/// ```
#[derive(Clone)]
pub struct ThrottleConfig {
    store: Arc<dyn RateStore>,
    clock: Arc<dyn Clock>,
    client_ip: ClientIp,
    rates: HashMap<String, Rate>,
}

impl fmt::Debug for ThrottleConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThrottleConfig")
            .field("client_ip", &self.client_ip)
            .field("rates", &self.rates)
            .finish_non_exhaustive()
    }
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl ThrottleConfig {
    /// A fresh [`MemoryRateStore`], the system clock, the socket's address,
    /// no rates.
    pub fn new() -> Self {
        ThrottleConfig {
            store: Arc::new(MemoryRateStore::new()),
            clock: Arc::new(SystemClock),
            client_ip: ClientIp::new(),
            rates: HashMap::new(),
        }
    }

    /// Replaces the rate store (share one between servers with Redis).
    pub fn store(mut self, store: impl RateStore) -> Self {
        self.store = Arc::new(store);
        self
    }

    /// Replaces the clock.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Sets how the client's address is found.
    pub fn client_ip(mut self, client_ip: ClientIp) -> Self {
        self.client_ip = client_ip;
        self
    }

    /// Sets the rate of one scope (`anon`, `user`, or a scoped name).
    pub fn rate(mut self, scope: impl Into<String>, rate: Rate) -> Self {
        self.rates.insert(scope.into(), rate);
        self
    }

    /// Sets the rates a `scope=N/PERIOD,...` list names, leaving the others
    /// (the form of `PORTCULLIS_THROTTLE_RATES`). Blank entries are skipped.
    pub fn rates(mut self, list: &str) -> Result<Self, RateError> {
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (scope, rate) = entry
                .split_once('=')
                .ok_or_else(|| RateError::InvalidEntry {
                    entry: entry.to_owned(),
                })?;
            let scope = scope.trim();
            if scope.is_empty() {
                return Err(RateError::InvalidEntry {
                    entry: entry.to_owned(),
                });
            }
            self.rates
                .insert(scope.to_owned(), Rate::parse(rate.trim())?);
        }
        Ok(self)
    }

    /// The rate of a scope, if set.
    pub fn rate_for(&self, scope: &str) -> Option<Rate> {
        self.rates.get(scope).copied()
    }

    /// The client address setting.
    pub fn client_ip_setting(&self) -> ClientIp {
        self.client_ip
    }

    /// An [`AnonRateThrottle`] at the `anon` rate.
    pub fn anon(&self) -> Result<AnonRateThrottle, RateError> {
        Ok(AnonRateThrottle::new(self.require("anon")?).config(self.clone()))
    }

    /// A [`UserRateThrottle`] at the `user` rate.
    pub fn user(&self) -> Result<UserRateThrottle, RateError> {
        Ok(UserRateThrottle::new(self.require("user")?).config(self.clone()))
    }

    /// A [`ScopedRateThrottle`] for `scope` at that scope's rate.
    pub fn scoped(&self, scope: &str) -> Result<ScopedRateThrottle, RateError> {
        Ok(ScopedRateThrottle::new(scope, self.require(scope)?).config(self.clone()))
    }

    fn require(&self, scope: &str) -> Result<Rate, RateError> {
        self.rate_for(scope).ok_or_else(|| RateError::MissingScope {
            scope: scope.to_owned(),
        })
    }
}

/// The shared part of the three rate throttles (DRF's `SimpleRateThrottle`).
#[derive(Clone, Debug)]
struct SimpleRate {
    scope: Arc<str>,
    rate: Rate,
    config: ThrottleConfig,
}

impl SimpleRate {
    fn new(scope: &str, rate: Rate) -> Self {
        SimpleRate {
            scope: Arc::from(scope),
            rate,
            config: ThrottleConfig::new(),
        }
    }

    /// Counts a request for `ident`.
    async fn hit(&self, ident: Ident) -> Result<Decision, AuthError> {
        let mut key = String::new();
        self.write_key(&mut key, ident);
        let now = self.config.clock.now();
        let hit = (*self.config.store)
            .hit(&key, self.rate.num_requests, self.rate.period, now)
            .await?;
        Ok(self.decide(hit, ident))
    }

    /// [`hit`](Self::hit) without waiting, when the store can; the key is
    /// built in a buffer kept per thread, so this path does not allocate.
    fn hit_now(&self, ident: Ident) -> Option<Result<Decision, AuthError>> {
        thread_local! {
            static KEY: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
        }
        let now = self.config.clock.now();
        let hit = KEY.with(|key| {
            let mut key = key.borrow_mut();
            key.clear();
            self.write_key(&mut key, ident);
            self.config
                .store
                .hit_now(&key, self.rate.num_requests, self.rate.period, now)
        })?;
        Some(
            hit.map(|hit| self.decide(hit, ident))
                .map_err(AuthError::from),
        )
    }

    /// `throttle_<scope>_<ident>`, DRF's cache key.
    fn write_key(&self, key: &mut String, ident: Ident) {
        key.reserve(10 + self.scope.len() + 45);
        key.push_str("throttle_");
        key.push_str(&self.scope);
        key.push('_');
        ident.write(key);
    }

    fn decide(&self, hit: Hit, ident: Ident) -> Decision {
        match hit {
            Hit::Allowed => Decision::Allow,
            Hit::Limited { wait } => {
                tracing::debug!(scope = %self.scope, %ident, ?wait, "request throttled");
                Decision::Deny { wait: Some(wait) }
            }
        }
    }

    fn addr(&self, req: &RequestHead<'_>) -> Ident {
        Ident::Addr(self.config.client_ip.resolve(req))
    }

    fn user_or_addr<U: AuthUser>(&self, id: &Identity<U>, req: &RequestHead<'_>) -> Ident {
        match id {
            Identity::User { user, .. } => Ident::User(user.id()),
            Identity::Anonymous(_) => self.addr(req),
        }
    }

    /// Counts the request by user id, or by address when anonymous.
    async fn by_user_or_addr<U: AuthUser>(
        &self,
        ctx: &Context<'_, U>,
    ) -> Result<Decision, AuthError> {
        let id = ctx.identity().await?;
        self.hit(self.user_or_addr(id, ctx.request())).await
    }

    /// [`by_user_or_addr`](Self::by_user_or_addr) without waiting, when
    /// the identity is resolved and the store can.
    fn by_user_or_addr_now<U: AuthUser>(
        &self,
        ctx: &Context<'_, U>,
    ) -> Option<Result<Decision, AuthError>> {
        match ctx.resolved_identity()? {
            Err(e) => Some(Err(e)),
            Ok(id) => self.hit_now(self.user_or_addr(id, ctx.request())),
        }
    }
}

/// Whom a throttle counts: `user:<id>`, or `ip:<address>` (`ip:unknown`
/// when the address is unknown).
#[derive(Clone, Copy, Debug)]
enum Ident {
    User(i64),
    Addr(Option<IpAddr>),
}

impl Ident {
    /// Appends the ident; IPv4 addresses and ids without `fmt`, which
    /// costs more than the rest of the throttle.
    fn write(self, out: &mut String) {
        match self {
            Ident::User(id) => {
                out.push_str("user:");
                if id < 0 {
                    out.push('-');
                }
                push_decimal(out, id.unsigned_abs());
            }
            Ident::Addr(Some(IpAddr::V4(ip))) => {
                out.push_str("ip:");
                for (i, octet) in ip.octets().into_iter().enumerate() {
                    if i > 0 {
                        out.push('.');
                    }
                    push_decimal(out, u64::from(octet));
                }
            }
            Ident::Addr(Some(ip)) => {
                use std::fmt::Write;
                let _ = write!(out, "ip:{ip}");
            }
            Ident::Addr(None) => out.push_str("ip:unknown"),
        }
    }
}

impl fmt::Display for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::new();
        self.write(&mut s);
        f.write_str(&s)
    }
}

fn push_decimal(out: &mut String, n: u64) {
    out.push_str(itoa::Buffer::new().format(n));
}

macro_rules! config_methods {
    () => {
        /// Uses a shared configuration (store, clock, client address); the
        /// rate stays the one given.
        pub fn config(mut self, config: ThrottleConfig) -> Self {
            self.0.config = config;
            self
        }

        /// The rate.
        pub fn rate(&self) -> Rate {
            self.0.rate
        }
    };
}

/// Throttles anonymous requests by client address (DRF's
/// `AnonRateThrottle`, scope `anon`); authenticated requests pass.
#[derive(Clone, Debug)]
pub struct AnonRateThrottle(SimpleRate);

impl AnonRateThrottle {
    /// At `rate`, with its own memory store, the system clock and the
    /// socket's address; see [`config`](Self::config).
    pub fn new(rate: Rate) -> Self {
        AnonRateThrottle(SimpleRate::new("anon", rate))
    }
    config_methods!();
}

#[async_trait]
impl<U: AuthUser> Throttle<U> for AnonRateThrottle {
    async fn allow_request(&self, ctx: &Context<'_, U>) -> Result<Decision, AuthError> {
        if ctx.identity().await?.is_authenticated() {
            return Ok(Decision::Allow);
        }
        self.0.hit(self.0.addr(ctx.request())).await
    }

    fn allow_request_now(&self, ctx: &Context<'_, U>) -> Option<Result<Decision, AuthError>> {
        match ctx.resolved_identity()? {
            Err(e) => Some(Err(e)),
            Ok(id) if id.is_authenticated() => Some(Ok(Decision::Allow)),
            Ok(_) => self.0.hit_now(self.0.addr(ctx.request())),
        }
    }
}

/// Throttles by user id when authenticated, else by client address (DRF's
/// `UserRateThrottle`, scope `user`).
#[derive(Clone, Debug)]
pub struct UserRateThrottle(SimpleRate);

impl UserRateThrottle {
    /// At `rate`; see [`config`](Self::config).
    pub fn new(rate: Rate) -> Self {
        UserRateThrottle(SimpleRate::new("user", rate))
    }
    config_methods!();
}

#[async_trait]
impl<U: AuthUser> Throttle<U> for UserRateThrottle {
    async fn allow_request(&self, ctx: &Context<'_, U>) -> Result<Decision, AuthError> {
        self.0.by_user_or_addr(ctx).await
    }

    fn allow_request_now(&self, ctx: &Context<'_, U>) -> Option<Result<Decision, AuthError>> {
        self.0.by_user_or_addr_now(ctx)
    }
}

/// Throttles a named part of the API by user id or client address (DRF's
/// `ScopedRateThrottle` with a view's `throttle_scope`): routes sharing a
/// scope share its counts.
#[derive(Clone, Debug)]
pub struct ScopedRateThrottle(SimpleRate);

impl ScopedRateThrottle {
    /// Scope `scope` at `rate`; see [`config`](Self::config).
    pub fn new(scope: &str, rate: Rate) -> Self {
        ScopedRateThrottle(SimpleRate::new(scope, rate))
    }
    config_methods!();

    /// The scope.
    pub fn scope(&self) -> &str {
        &self.0.scope
    }
}

#[async_trait]
impl<U: AuthUser> Throttle<U> for ScopedRateThrottle {
    async fn allow_request(&self, ctx: &Context<'_, U>) -> Result<Decision, AuthError> {
        self.0.by_user_or_addr(ctx).await
    }

    fn allow_request_now(&self, ctx: &Context<'_, U>) -> Option<Result<Decision, AuthError>> {
        self.0.by_user_or_addr_now(ctx)
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod ident_tests {
    use super::Ident;

    /// The hand-written keys equal what `format!` wrote before, so counts
    /// kept in a shared store (Redis) carry over.
    #[test]
    fn idents_read_as_formatted() {
        let cases: [(Ident, String); 6] = [
            (Ident::User(0), "user:0".into()),
            (Ident::User(i64::MIN), format!("user:{}", i64::MIN)),
            (Ident::User(1_234_567), "user:1234567".into()),
            (
                Ident::Addr(Some("0.10.200.255".parse().unwrap())),
                "ip:0.10.200.255".into(),
            ),
            (
                Ident::Addr(Some("2001:db8::1".parse().unwrap())),
                "ip:2001:db8::1".into(),
            ),
            (Ident::Addr(None), "ip:unknown".into()),
        ];
        for (ident, want) in cases {
            let mut got = String::new();
            ident.write(&mut got);
            assert_eq!(got, want);
        }
    }
}
