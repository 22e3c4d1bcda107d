//! [`RedisStore`]: throttle counts, login lockouts, replay-cache nonces
//! and (if asked) sessions in Redis, shared by every server that uses the
//! same Redis (feature `redis`).
//!
//! It implements the core's [`RateStore`] (a sliding window per key, in a
//! sorted set scored by milliseconds) and [`LockoutStore`] (a hash per key
//! with the count, the last failure and the expiry) and [`ReplayCache`]
//! (`SET NX PX`: a nonce seen by one server is refused by all). Every call is one Lua
//! script or one command, so it is atomic per key however many servers
//! share the keys. Each key gets an expiry on every write (`PEXPIRE`, the
//! period or the cool-off), so Redis drops what is no longer needed.
//!
//! It is also a [`SessionStore`], for sessions kept out of the SQL
//! database: put it beside the SQL store with
//! [`SeparateSessions`](portcullis::store::SeparateSessions). Each session
//! is a hash (`session:<digest>`: the user id, the data as JSON, the
//! expiry in microseconds) with an index of each user's sessions
//! (`user_sessions:<id>`, a set, for "end this user's other sessions") and
//! of their expiries (`session_expiry`, a sorted set, for
//! [`purge_expired_sessions`](SessionStore::purge_expired_sessions)). Every
//! write is one Lua script, so a session and its index entries change
//! together, whatever other servers do meanwhile. A session that expires
//! is refused at once and deleted by the next purge; Redis drops it on its
//! own a day later ([`SESSION_GRACE`]) if no purge runs (and the next save
//! prunes what it left in the expiry index). The scripts name
//! keys that they derive from the prefix: this takes one Redis server, not
//! Redis Cluster (as the rest of this store does).
//!
//! And it carries the caches' [`InvalidationBus`] between servers
//! ([`invalidation_bus`](RedisStore::invalidation_bus)): each message is a
//! `PUBLISH` on `<prefix>invalidate`, and every server subscribed there
//! drops what it names from its caches.
//!
//! The times come from the caller's [`Clock`](portcullis::throttle::Clock)
//! and are stored in the keys; Redis's own clock only schedules the clean-up.
//! Servers sharing a Redis should keep their clocks in step (NTP).
//!
//! Keys are the core's keys behind a prefix, `portcullis:` unless
//! [`with_prefix`](RedisStore::with_prefix) says otherwise, so several apps
//! (or tests) can share one Redis.
//!
//! A Redis that cannot be reached answers [`StoreError::Unavailable`]
//! within the [timeout](RedisStore::with_timeout) (two seconds by default);
//! the connection is made again on the next call.
//!
//! ```no_run
//! use std::time::{Duration, SystemTime};
//! use portcullis::lockout::LockoutStore;
//! use portcullis::throttle::{Hit, RateStore};
//! use portcullis_store::RedisStore;
//!
//! # async fn demo() {
//! let redis = RedisStore::connect("redis://127.0.0.1:6379").await.unwrap().with_prefix("myapp:");
//! let now = SystemTime::now();
//! let hit = redis.hit("throttle_anon_ip:192.0.2.1", 5, Duration::from_secs(60), now).await.unwrap();
//! assert_eq!(hit, Hit::Allowed);
//! let n = redis.record_failure("lockout:username:ada", now, Duration::from_secs(900)).await.unwrap();
//! assert_eq!(n, 1);
//! # }
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures_util::StreamExt as _;
use portcullis::cache::{Invalidation, InvalidationBus};
use portcullis::lockout::{Failures, LockoutStore};
use portcullis::replay::ReplayCache;
use portcullis::store::{Ping, SessionRecord, SessionStore, StoreError};
use portcullis::throttle::{Hit, RateStore};
use rand::Rng;
use redis::aio::MultiplexedConnection;
use redis::{ErrorKind, RedisError};
use sha1::{Digest, Sha1};
use tokio::sync::Mutex;

use crate::millis::{expiry_millis, from_millis, millis};

/// The prefix put before every key unless set otherwise.
pub const DEFAULT_PREFIX: &str = "portcullis:";
/// How long one call may take before Redis counts as unavailable.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long after its expiry Redis keeps a session that no purge deleted.
pub const SESSION_GRACE: Duration = Duration::from_secs(24 * 60 * 60);

/// Saves a session (`KEYS[1]`, the session's hash) and indexes it.
/// ARGV: prefix, digest, user id, data, expiry (µs), when Redis may drop
/// the hash (ms since the epoch), how long from now that is (ms, always
/// positive: the caller deletes instead), and the expiry (µs) before
/// which Redis has dropped every session on its own.
const SAVE_SESSION_SCRIPT: &str = r"
local prefix, digest, user = ARGV[1], ARGV[2], ARGV[3]
local before = redis.call('HGET', KEYS[1], 'user')
if before and before ~= user then
  redis.call('SREM', prefix .. 'user_sessions:' .. before, digest)
end
-- Entries of sessions Redis dropped by their TTL, for stores never purged.
redis.call('ZREMRANGEBYSCORE', prefix .. 'session_expiry', '-inf', '(' .. ARGV[8])
redis.call('HSET', KEYS[1], 'user', user, 'data', ARGV[4], 'expires', ARGV[5])
redis.call('PEXPIREAT', KEYS[1], ARGV[6])
local index = prefix .. 'user_sessions:' .. user
redis.call('SADD', index, digest)
local wanted = ARGV[7]
local ttl = redis.call('PTTL', index)
if ttl == -1 or ttl < tonumber(wanted) then
  redis.call('PEXPIRE', index, wanted)
end
redis.call('ZADD', prefix .. 'session_expiry', ARGV[5], digest)
return 1
";

/// Deletes one session (`KEYS[1]`) and its index entries.
/// ARGV: prefix, digest.
const DELETE_SESSION_SCRIPT: &str = r"
local user = redis.call('HGET', KEYS[1], 'user')
redis.call('DEL', KEYS[1])
redis.call('ZREM', ARGV[1] .. 'session_expiry', ARGV[2])
if user then
  redis.call('SREM', ARGV[1] .. 'user_sessions:' .. user, ARGV[2])
end
return 1
";

/// Deletes a user's sessions (`KEYS[1]`, the user's index) but one.
/// ARGV: prefix, the digest to keep (empty: none), the user id. A digest
/// whose session is now another user's (its hash dropped by its TTL, then
/// saved again) only leaves this index. Returns how many sessions it
/// deleted.
const DELETE_USER_SESSIONS_SCRIPT: &str = r"
local prefix, keep, user = ARGV[1], ARGV[2], ARGV[3]
local n = 0
for _, digest in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if digest ~= keep then
    local key = prefix .. 'session:' .. digest
    local owner = redis.call('HGET', key, 'user')
    if owner == user then
      n = n + redis.call('DEL', key)
      redis.call('ZREM', prefix .. 'session_expiry', digest)
    elseif not owner then
      redis.call('ZREM', prefix .. 'session_expiry', digest)
    end
    redis.call('SREM', KEYS[1], digest)
  end
end
return n
";

/// Deletes up to ARGV[3] sessions that expired at ARGV[2] (µs) or before,
/// from the expiry index `KEYS[1]`. ARGV[1]: prefix. Returns how many
/// index entries it handled and how many sessions it deleted.
const PURGE_SESSIONS_SCRIPT: &str = r"
local prefix = ARGV[1]
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
local n = 0
for _, digest in ipairs(due) do
  local key = prefix .. 'session:' .. digest
  local user = redis.call('HGET', key, 'user')
  n = n + redis.call('DEL', key)
  if user then
    redis.call('SREM', prefix .. 'user_sessions:' .. user, digest)
  end
  redis.call('ZREM', KEYS[1], digest)
end
return {#due, n}
";

/// How many expired sessions one purge script handles, so that a large
/// purge does not hold Redis for long.
const PURGE_CHUNK: usize = 1000;

/// How many invalidations may wait to be published; beyond that they are
/// dropped (and logged), and the other servers rely on their caches' TTL.
const INVALIDATION_QUEUE: usize = 10_000;
/// How long the bus waits before subscribing again after losing Redis.
const RESUBSCRIBE_AFTER: Duration = Duration::from_secs(1);
/// A bus with nothing to publish for this long publishes [`HEARTBEAT`],
/// so that every subscriber hears something at least this often.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);
/// A subscription that hears nothing for this long (not even a
/// heartbeat) is taken for dead, and the bus subscribes again: a
/// connection can die without being closed (a crashed host, a dropped
/// flow).
const SILENCE_LIMIT: Duration = Duration::from_secs(15);
/// The message that says only "still here".
const HEARTBEAT: &str = "heartbeat";
/// The bus warns about one kind of trouble at most this often.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Lets a warning through at most once per [`WARN_EVERY`].
#[derive(Default)]
struct Every(std::sync::Mutex<Option<std::time::Instant>>);

impl Every {
    fn due(&self) -> bool {
        let mut last = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = std::time::Instant::now();
        let due = last.is_none_or(|t| now.duration_since(t) >= WARN_EVERY);
        if due {
            *last = Some(now);
        }
        due
    }
}

/// One sliding-window hit (see [`RateStore`]'s semantics). Returns `-1`
/// when allowed, else the wait in milliseconds.
const HIT_SCRIPT: &str = r"
local key = KEYS[1]
local now = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - period)
local count = redis.call('ZCARD', key)
if count < limit then
  redis.call('ZADD', key, now, ARGV[4])
  redis.call('PEXPIRE', key, period)
  return -1
end
if count > 0 then
  redis.call('PEXPIRE', key, period)
end
if limit == 0 then
  return period
end
local t = redis.call('ZRANGE', key, count - limit, count - limit, 'WITHSCORES')
local wait = tonumber(t[2]) + period - now
if wait < 1 then wait = 1 end
if wait > period then wait = period end
return wait
";

/// One counted failure (see [`LockoutStore`]'s semantics): restarts the
/// count when the stored expiry has passed; returns the new count.
const FAILURE_SCRIPT: &str = r"
local key = KEYS[1]
local now = tonumber(ARGV[1])
local exp = redis.call('HGET', key, 'exp')
local n = 1
if exp and tonumber(exp) > now then
  n = (tonumber(redis.call('HGET', key, 'count')) or 0) + 1
end
redis.call('HSET', key, 'count', n, 'last', ARGV[1], 'exp', ARGV[3])
redis.call('PEXPIRE', key, ARGV[2])
return n
";

/// Throttle counts and lockouts in Redis; clones share one connection.
#[derive(Clone)]
pub struct RedisStore {
    client: redis::Client,
    conn: Arc<Mutex<Option<MultiplexedConnection>>>,
    prefix: Arc<str>,
    timeout: Duration,
    hit: Arc<Script>,
    failure: Arc<Script>,
    sessions: Arc<SessionScripts>,
}

/// The session scripts, hashed once.
struct SessionScripts {
    save: Script,
    delete: Script,
    delete_user: Script,
    purge: Script,
}

/// A Lua script run by its SHA-1 (`EVALSHA`), sent whole (`EVAL`) only
/// when Redis does not know it yet.
struct Script {
    code: &'static str,
    sha: String,
}

impl Script {
    fn new(code: &'static str) -> Self {
        Script {
            code,
            sha: hex::encode(Sha1::digest(code.as_bytes())),
        }
    }

    /// Runs the script on one key with `args`.
    async fn invoke<T: redis::FromRedisValue>(
        &self,
        conn: &mut MultiplexedConnection,
        key: &str,
        args: &[String],
    ) -> Result<T, RedisError> {
        let call = |command: &str, script: &str| {
            let mut cmd = redis::cmd(command);
            cmd.arg(script).arg(1).arg(key);
            for a in args {
                cmd.arg(a);
            }
            cmd
        };
        match call("EVALSHA", &self.sha).query_async(conn).await {
            Err(e) if e.kind() == ErrorKind::NoScriptError => {
                call("EVAL", self.code).query_async(conn).await
            }
            other => other,
        }
    }
}

impl fmt::Debug for RedisStore {
    // Never the URL: it may hold a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// A Redis failure: connection trouble is [`StoreError::Unavailable`],
/// anything else [`StoreError::Backend`].
fn map_redis_error(e: RedisError) -> StoreError {
    if is_connection_error(&e) {
        StoreError::unavailable(e)
    } else {
        StoreError::backend(e)
    }
}

fn is_connection_error(e: &RedisError) -> bool {
    e.is_io_error() || e.is_connection_refusal() || e.is_connection_dropped() || e.is_timeout()
}

#[derive(Debug, thiserror::Error)]
#[error("redis did not answer within {0:?}")]
struct TimedOut(Duration);

impl RedisStore {
    /// A store for a `redis://` (or `rediss://`, `redis+unix://`) URL; the
    /// connection is made on first use. A malformed URL is an error that
    /// does not repeat the URL.
    pub fn new(url: &str) -> Result<Self, StoreError> {
        let client = redis::Client::open(url)
            .map_err(|e| StoreError::backend(format!("invalid Redis URL ({})", e.category())))?;
        Ok(RedisStore {
            client,
            conn: Arc::new(Mutex::new(None)),
            prefix: Arc::from(DEFAULT_PREFIX),
            timeout: DEFAULT_TIMEOUT,
            hit: Arc::new(Script::new(HIT_SCRIPT)),
            failure: Arc::new(Script::new(FAILURE_SCRIPT)),
            sessions: Arc::new(SessionScripts {
                save: Script::new(SAVE_SESSION_SCRIPT),
                delete: Script::new(DELETE_SESSION_SCRIPT),
                delete_user: Script::new(DELETE_USER_SESSIONS_SCRIPT),
                purge: Script::new(PURGE_SESSIONS_SCRIPT),
            }),
        })
    }

    /// [`new`](Self::new), then a `PING`: fails with
    /// [`StoreError::Unavailable`] when Redis cannot be reached.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let store = Self::new(url)?;
        store.ping().await?;
        Ok(store)
    }

    /// Puts `prefix` before every key (default [`DEFAULT_PREFIX`]).
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Arc::from(prefix.into());
        self
    }

    /// Sets how long one call may take (default [`DEFAULT_TIMEOUT`]).
    ///
    /// # Panics
    ///
    /// If `timeout` is zero.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        assert!(!timeout.is_zero(), "the Redis timeout must be positive");
        self.timeout = timeout;
        self
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// The shared connection, made if there is none.
    async fn connection(&self) -> Result<MultiplexedConnection, StoreError> {
        let mut slot = self.conn.lock().await;
        if let Some(conn) = slot.as_ref() {
            return Ok(conn.clone());
        }
        let conn = self
            .client
            .get_multiplexed_async_connection_with_config(
                &redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(self.timeout)
                    .set_response_timeout(self.timeout),
            )
            .await
            .map_err(map_redis_error)?;
        *slot = Some(conn.clone());
        Ok(conn)
    }

    /// Runs `op` on the connection within the timeout; a connection error
    /// drops the connection so the next call makes a new one.
    async fn run<T, F, Fut>(&self, op: F) -> Result<T, StoreError>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: std::future::Future<Output = Result<T, RedisError>>,
    {
        let attempt = async {
            let conn = self.connection().await?;
            match op(conn).await {
                Ok(v) => Ok(v),
                Err(e) => {
                    if is_connection_error(&e) {
                        *self.conn.lock().await = None;
                    }
                    Err(map_redis_error(e))
                }
            }
        };
        match tokio::time::timeout(self.timeout, attempt).await {
            Ok(result) => result,
            Err(_) => {
                *self.conn.lock().await = None;
                Err(StoreError::unavailable(TimedOut(self.timeout)))
            }
        }
    }
}

fn duration_millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX).max(1)
}

#[async_trait]
impl RateStore for RedisStore {
    async fn hit(
        &self,
        key: &str,
        limit: u32,
        period: Duration,
        now: SystemTime,
    ) -> Result<Hit, StoreError> {
        let key = self.key(key);
        let now_ms = millis(now);
        let period_ms = duration_millis(period);
        let member = format!("{now_ms}-{:016x}", rand::thread_rng().gen::<u64>());
        let script = self.hit.clone();
        let answer: i64 = self
            .run(|mut conn| async move {
                script
                    .invoke(
                        &mut conn,
                        &key,
                        &[
                            now_ms.to_string(),
                            period_ms.to_string(),
                            limit.to_string(),
                            member,
                        ],
                    )
                    .await
            })
            .await?;
        Ok(if answer < 0 {
            Hit::Allowed
        } else {
            let wait = Duration::from_millis(answer.unsigned_abs());
            Hit::Limited {
                wait: wait.clamp(Duration::from_millis(1), period),
            }
        })
    }
}

#[async_trait]
impl LockoutStore for RedisStore {
    async fn record_failure(
        &self,
        key: &str,
        now: SystemTime,
        cooloff: Duration,
    ) -> Result<u32, StoreError> {
        let key = self.key(key);
        let now_ms = millis(now);
        let expires_ms = expiry_millis(now, cooloff);
        let cooloff_ms = duration_millis(cooloff);
        let script = self.failure.clone();
        let count: i64 = self
            .run(|mut conn| async move {
                script
                    .invoke(
                        &mut conn,
                        &key,
                        &[
                            now_ms.to_string(),
                            cooloff_ms.to_string(),
                            expires_ms.to_string(),
                        ],
                    )
                    .await
            })
            .await?;
        Ok(u32::try_from(count.max(0)).unwrap_or(u32::MAX))
    }

    async fn failures(&self, key: &str, now: SystemTime) -> Result<Option<Failures>, StoreError> {
        let key = self.key(key);
        let (count, last, exp): (Option<i64>, Option<i64>, Option<i64>) = self
            .run(|mut conn| async move {
                redis::cmd("HMGET")
                    .arg(&key)
                    .arg("count")
                    .arg("last")
                    .arg("exp")
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        Ok(match (count, last, exp) {
            (Some(count), Some(last), Some(exp)) if exp > millis(now) => Some(Failures {
                count: u32::try_from(count.max(0)).unwrap_or(u32::MAX),
                last_failure: from_millis(last),
            }),
            _ => None,
        })
    }

    async fn clear(&self, key: &str) -> Result<(), StoreError> {
        let key = self.key(key);
        self.run(|mut conn| async move {
            redis::cmd("DEL")
                .arg(&key)
                .query_async::<i64>(&mut conn)
                .await
        })
        .await?;
        Ok(())
    }
}

/// Nonces for the signed-request schemes: one `SET key 1 NX PX ttl`, so
/// a nonce used through any server sharing this Redis is refused by all.
#[async_trait]
impl ReplayCache for RedisStore {
    async fn first_use(
        &self,
        key: &str,
        ttl: Duration,
        _now: SystemTime,
    ) -> Result<bool, StoreError> {
        let key = self.key(key);
        let ttl_ms = duration_millis(ttl);
        let set: Option<String> = self
            .run(|mut conn| async move {
                redis::cmd("SET")
                    .arg(&key)
                    .arg(1)
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl_ms)
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        Ok(set.is_some())
    }
}

/// A session's hash key.
fn session_key(store: &RedisStore, key_digest: &str) -> String {
    store.key(&format!("session:{key_digest}"))
}

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// A session hash that does not read back (written by something else).
fn unreadable_session() -> StoreError {
    StoreError::backend("a session in Redis is not in the expected form")
}

#[async_trait]
impl SessionStore for RedisStore {
    async fn load_session(&self, key_digest: &str) -> Result<Option<SessionRecord>, StoreError> {
        let key = session_key(self, key_digest);
        let (user, data, expires): (Option<i64>, Option<String>, Option<i64>) = self
            .run(|mut conn| async move {
                redis::cmd("HMGET")
                    .arg(&key)
                    .arg("user")
                    .arg("data")
                    .arg("expires")
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        let (Some(user_id), Some(data), Some(expires)) = (user, data, expires) else {
            return Ok(None);
        };
        let expires = DateTime::from_timestamp_micros(expires).ok_or_else(unreadable_session)?;
        if expires <= Utc::now() {
            return Ok(None);
        }
        let data = serde_json::from_str(&data).map_err(|_| unreadable_session())?;
        Ok(Some(SessionRecord {
            key_digest: key_digest.to_owned(),
            user_id,
            data,
            expires,
        }))
    }

    async fn save_session(&self, session: &SessionRecord) -> Result<(), StoreError> {
        let key = session_key(self, &session.key_digest);
        let grace = chrono::Duration::from_std(SESSION_GRACE).unwrap_or(chrono::Duration::MAX);
        let now = Utc::now();
        let drop_at = session
            .expires
            .checked_add_signed(grace)
            .map_or(i64::MAX, |t| t.timestamp_millis());
        let keep_for = drop_at.saturating_sub(now.timestamp_millis());
        if keep_for <= 0 {
            // Expired so long ago that Redis would drop it at once: what
            // is left of it goes, and nothing is indexed.
            return self.delete_session(&session.key_digest).await;
        }
        let dropped_before = now.checked_sub_signed(grace).map_or(i64::MIN, micros);
        let args = [
            self.prefix.to_string(),
            session.key_digest.clone(),
            session.user_id.to_string(),
            session.data.to_string(),
            micros(session.expires).to_string(),
            drop_at.to_string(),
            keep_for.to_string(),
            dropped_before.to_string(),
        ];
        let scripts = self.sessions.clone();
        self.run(
            |mut conn| async move { scripts.save.invoke::<i64>(&mut conn, &key, &args).await },
        )
        .await?;
        Ok(())
    }

    async fn delete_session(&self, key_digest: &str) -> Result<(), StoreError> {
        let key = session_key(self, key_digest);
        let args = [self.prefix.to_string(), key_digest.to_owned()];
        let scripts = self.sessions.clone();
        self.run(
            |mut conn| async move { scripts.delete.invoke::<i64>(&mut conn, &key, &args).await },
        )
        .await?;
        Ok(())
    }

    async fn delete_user_sessions(
        &self,
        user_id: i64,
        keep: Option<&str>,
    ) -> Result<u64, StoreError> {
        let key = self.key(&format!("user_sessions:{user_id}"));
        let args = [
            self.prefix.to_string(),
            keep.unwrap_or("").to_owned(),
            user_id.to_string(),
        ];
        let scripts = self.sessions.clone();
        let n: i64 = self
            .run(|mut conn| async move { scripts.delete_user.invoke(&mut conn, &key, &args).await })
            .await?;
        Ok(n.unsigned_abs())
    }

    async fn purge_expired_sessions(&self) -> Result<u64, StoreError> {
        let key = self.key("session_expiry");
        let now = micros(Utc::now()).to_string();
        let mut purged = 0;
        loop {
            let args = [
                self.prefix.to_string(),
                now.clone(),
                PURGE_CHUNK.to_string(),
            ];
            let scripts = self.sessions.clone();
            let key = key.clone();
            let (handled, deleted): (usize, u64) = self
                .run(|mut conn| async move { scripts.purge.invoke(&mut conn, &key, &args).await })
                .await?;
            purged += deleted;
            if handled < PURGE_CHUNK {
                return Ok(purged);
            }
        }
    }
}

impl RedisStore {
    /// The channel cache invalidations travel on: `<prefix>invalidate`.
    pub fn invalidation_channel(&self) -> String {
        self.key("invalidate")
    }

    /// Publishes one invalidation to the servers subscribed, as a command
    /// run outside a server does after its write.
    pub async fn publish_invalidation(&self, what: &Invalidation) -> Result<(), StoreError> {
        self.publish_text(what.encode()).await
    }

    async fn publish_text(&self, message: String) -> Result<(), StoreError> {
        let channel = self.invalidation_channel();
        self.run(|mut conn| async move {
            redis::cmd("PUBLISH")
                .arg(&channel)
                .arg(&message)
                .query_async::<i64>(&mut conn)
                .await
        })
        .await?;
        Ok(())
    }

    /// A cache [`InvalidationBus`] carried by this Redis, and the task
    /// that carries it (spawn it, e.g. with `tokio::spawn`; it runs until
    /// dropped).
    ///
    /// What the bus publishes is queued and sent in order by the task;
    /// what arrives on the channel (from any server, this one included)
    /// is delivered to the bus's listeners. Every time the task
    /// (re)subscribes it delivers [`Invalidation::All`] first, since
    /// messages sent while it was not listening are lost. A bus with
    /// nothing to say publishes a heartbeat every 5 seconds, and one that
    /// hears nothing for 15 seconds subscribes again, so a subscription
    /// that died without being closed is noticed. A Redis that is down
    /// costs nothing but warnings (at most one every 10 seconds for each
    /// kind): the caches' TTL remains the bound.
    pub fn invalidation_bus(
        &self,
    ) -> (
        InvalidationBus,
        impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        let (tx, rx) = tokio::sync::mpsc::channel(INVALIDATION_QUEUE);
        let warned = Every::default();
        let bus = InvalidationBus::new(move |what| {
            use tokio::sync::mpsc::error::TrySendError;
            let why = match tx.try_send(what) {
                Ok(()) => return,
                Err(TrySendError::Full(_)) => "the cache invalidation queue is full",
                Err(TrySendError::Closed(_)) => "the cache invalidation bus has stopped",
            };
            if warned.due() {
                tracing::warn!(
                    "{why}: changes reach the other servers when their cache entries expire"
                );
            }
        });
        let task = {
            let (store, bus) = (self.clone(), bus.clone());
            async move {
                tokio::join!(store.clone().publish_queued(rx), store.follow(bus));
            }
        };
        (bus, task)
    }

    /// Publishes what the bus queued, in order, and a heartbeat whenever
    /// nothing was queued for [`HEARTBEAT_EVERY`].
    async fn publish_queued(self, mut queue: tokio::sync::mpsc::Receiver<Invalidation>) {
        let warned = Every::default();
        loop {
            let message = match tokio::time::timeout(HEARTBEAT_EVERY, queue.recv()).await {
                Ok(Some(what)) => what.encode(),
                Ok(None) => return,
                Err(_) => HEARTBEAT.to_owned(),
            };
            if let Err(e) = self.publish_text(message).await {
                if warned.due() {
                    tracing::warn!(
                        error = %e,
                        "cannot publish cache invalidations: the other servers see \
                         changes when their cache entries expire"
                    );
                }
            }
        }
    }

    /// Delivers what arrives on the channel to `bus`, subscribing again
    /// whenever the subscription is lost.
    async fn follow(self, bus: InvalidationBus) {
        let channel = self.invalidation_channel();
        let warned = Every::default();
        loop {
            let subscribed = tokio::time::timeout(self.timeout, async {
                let mut pubsub = self.client.get_async_pubsub().await?;
                pubsub.subscribe(&channel).await?;
                Ok::<_, RedisError>(pubsub)
            })
            .await;
            match subscribed {
                Ok(Ok(mut pubsub)) => {
                    tracing::debug!("following cache invalidations in Redis");
                    // Anything may have changed while nobody listened.
                    bus.deliver(&Invalidation::All);
                    let mut messages = pubsub.on_message();
                    let why = loop {
                        match tokio::time::timeout(SILENCE_LIMIT, messages.next()).await {
                            Ok(Some(message)) => {
                                let text: String = message.get_payload().unwrap_or_default();
                                if text != HEARTBEAT {
                                    bus.deliver(&Invalidation::decode(&text));
                                }
                            }
                            Ok(None) => break "lost the Redis subscription",
                            Err(_) => break "heard nothing on the Redis subscription for 15 s",
                        }
                    };
                    if warned.due() {
                        tracing::warn!("{why} for cache invalidations: subscribing again");
                    }
                }
                Ok(Err(e)) => {
                    if warned.due() {
                        tracing::warn!(
                            error = %map_redis_error(e),
                            "cannot subscribe to cache invalidations in Redis"
                        );
                    }
                }
                Err(_) => {
                    if warned.due() {
                        tracing::warn!(
                            error = %TimedOut(self.timeout),
                            "cannot subscribe to cache invalidations in Redis"
                        );
                    }
                }
            }
            tokio::time::sleep(RESUBSCRIBE_AFTER).await;
        }
    }
}

#[async_trait]
impl Ping for RedisStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.run(
            |mut conn| async move { redis::cmd("PING").query_async::<String>(&mut conn).await },
        )
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_url_is_refused_without_echoing_it() {
        let e = RedisStore::new("nope://user:hunter2@host").unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }

    #[test]
    fn debug_shows_no_url() {
        let s = RedisStore::new("redis://:hunter2@127.0.0.1:6379").unwrap();
        assert!(!format!("{s:?}").contains("hunter2"));
        assert_eq!(s.prefix(), DEFAULT_PREFIX);
        assert_eq!(s.with_prefix("t:").key("k"), "t:k");
    }

    #[tokio::test]
    async fn a_redis_that_is_down_is_unavailable_quickly() {
        let s = RedisStore::new("redis://127.0.0.1:1")
            .unwrap()
            .with_timeout(Duration::from_millis(500));
        let started = std::time::Instant::now();
        let e = s.ping().await.unwrap_err();
        assert!(e.is_unavailable(), "{e}");
        assert!(started.elapsed() < Duration::from_secs(3));
        // Sessions fail closed: no answer is an error, never "no session".
        let e = s.load_session("v1$00").await.unwrap_err();
        assert!(e.is_unavailable(), "{e}");
        let e = s.delete_user_sessions(1, None).await.unwrap_err();
        assert!(e.is_unavailable(), "{e}");
    }
}
