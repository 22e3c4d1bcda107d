//! Where `serve` keeps throttle counts and login failures, from the
//! settings: in memory and the database by default, in Redis when
//! `PORTCULLIS_REDIS_URL` is set (so several servers share one budget and
//! one lockout).
//!
//! When Redis cannot be reached, by default the login lockout fails closed
//! (the login is answered `503`, as for any store failure) while the plain
//! rate limits fail open: the request goes on and a warning is logged,
//! since refusing every request of every client because a counter is down
//! would turn a Redis outage into an API outage. Both are settings:
//! `redis_lockout_fail_open` (default `false`) and
//! `redis_throttle_fail_open` (default `true`).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::anyhow;
use async_trait::async_trait;
use portcullis::lockout::{Failures, Lockout, LockoutStore};
use portcullis::store::StoreError;
use portcullis::throttle::{ClientIp, Hit, RateStore, ThrottleConfig};
use portcullis_store::{RedisStore, Store};

use crate::config::{redact_url, Settings};

/// The Redis store the settings name, if any (not yet connected).
pub fn redis(settings: &Settings) -> anyhow::Result<Option<RedisStore>> {
    let Some(url) = &settings.redis_url else {
        return Ok(None);
    };
    let store = RedisStore::new(url)
        .map_err(|e| anyhow!("cannot use the Redis URL {}: {e}", redact_url(url)))?
        .with_prefix(settings.redis_prefix.clone());
    Ok(Some(store))
}

/// Where login failures are counted: Redis when set (failing open only
/// when `redis_lockout_fail_open` says so), else the database.
pub fn lockout_store(
    settings: &Settings,
    redis: Option<&RedisStore>,
    store: &Store,
) -> Arc<dyn LockoutStore> {
    match redis {
        Some(r) if settings.redis_lockout_fail_open => Arc::new(FailOpen(r.clone())),
        Some(r) => Arc::new(r.clone()),
        None => Arc::new(store.clone()),
    }
}

/// The lockout the settings describe over `store`, or `None` when
/// `login_throttle` is off.
pub fn lockout(settings: &Settings, store: Arc<dyn LockoutStore>) -> Option<Lockout> {
    settings.login_throttle.then(|| {
        Lockout::new(store)
            .with_failure_limit(settings.lockout_failures)
            .with_cooloff(Duration::from_secs(settings.lockout_cooloff))
            .with_client_ip(ClientIp::behind_proxies(settings.num_proxies))
            // A clean record is remembered as long as users and tokens are.
            .with_clear_cache(Duration::from_millis(settings.cache_ttl_ms))
    })
}

/// The throttles' settings, counting in Redis (failing open) when set.
pub fn throttle(settings: &Settings, redis: Option<&RedisStore>) -> anyhow::Result<ThrottleConfig> {
    let config = settings.throttle_config()?;
    Ok(match redis {
        Some(r) if settings.redis_throttle_fail_open => config.store(FailOpen(r.clone())),
        Some(r) => config.store(r.clone()),
        None => config,
    })
}

/// A [`RateStore`] or [`LockoutStore`] that lets requests through (and
/// logs a warning) when the store inside fails.
#[derive(Clone, Debug)]
pub struct FailOpen<R>(pub R);

#[async_trait]
impl<R: RateStore> RateStore for FailOpen<R> {
    async fn hit(
        &self,
        key: &str,
        limit: u32,
        period: Duration,
        now: SystemTime,
    ) -> Result<Hit, StoreError> {
        match self.0.hit(key, limit, period, now).await {
            Ok(hit) => Ok(hit),
            Err(e) => {
                tracing::warn!(error = %e, "the throttle store failed: request let through");
                Ok(Hit::Allowed)
            }
        }
    }
}

#[async_trait]
impl<L: LockoutStore> LockoutStore for FailOpen<L> {
    async fn record_failure(
        &self,
        key: &str,
        now: SystemTime,
        cooloff: Duration,
    ) -> Result<u32, StoreError> {
        self.0.record_failure(key, now, cooloff).await.or_else(|e| {
            tracing::warn!(error = %e, "the lockout store failed: failure not counted");
            Ok(0)
        })
    }

    async fn failures(&self, key: &str, now: SystemTime) -> Result<Option<Failures>, StoreError> {
        self.0.failures(key, now).await.or_else(|e| {
            tracing::warn!(error = %e, "the lockout store failed: login let through");
            Ok(None)
        })
    }

    async fn clear(&self, key: &str) -> Result<(), StoreError> {
        self.0.clear(key).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Down;

    #[async_trait]
    impl RateStore for Down {
        async fn hit(
            &self,
            _: &str,
            _: u32,
            _: Duration,
            _: SystemTime,
        ) -> Result<Hit, StoreError> {
            Err(StoreError::unavailable("down"))
        }
    }

    #[tokio::test]
    async fn rate_limits_fail_open() {
        let hit = FailOpen(Down)
            .hit("k", 1, Duration::from_secs(1), SystemTime::now())
            .await;
        assert_eq!(hit.unwrap(), Hit::Allowed);
    }

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
        async fn failures(&self, _: &str, _: SystemTime) -> Result<Option<Failures>, StoreError> {
            Err(StoreError::unavailable("down"))
        }
        async fn clear(&self, _: &str) -> Result<(), StoreError> {
            Err(StoreError::unavailable("down"))
        }
    }

    #[tokio::test]
    async fn the_lockout_fails_closed_unless_told_to_fail_open() {
        let closed = Lockout::new(Arc::new(Down));
        assert!(closed.locked_for("ada", None).await.is_err());
        assert!(closed.record_failure("ada", None).await.is_err());
        let open = Lockout::new(Arc::new(FailOpen(Down)));
        assert_eq!(open.locked_for("ada", None).await.unwrap(), None);
        open.record_failure("ada", None).await.unwrap();
    }

    #[test]
    fn fail_open_settings_default_to_closed_lockout_and_open_throttles() {
        let s = Settings::default();
        assert!(s.redis_throttle_fail_open);
        assert!(!s.redis_lockout_fail_open);
    }

    #[test]
    fn login_throttle_off_means_no_lockout() {
        let store: Arc<dyn LockoutStore> = Arc::new(portcullis::lockout::MemoryLockoutStore::new());
        let mut settings = Settings::default();
        let on = lockout(&settings, store.clone()).unwrap();
        assert_eq!(on.failure_limit(), 5);
        assert_eq!(on.cooloff(), Duration::from_secs(900));
        settings.login_throttle = false;
        assert!(lockout(&settings, store).is_none());
    }
}
