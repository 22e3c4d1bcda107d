//! [`InvalidationBus`]: telling the other servers' caches what a write
//! made stale, and hearing what theirs did.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

/// What a write made stale, as one server tells the others.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Invalidation {
    /// Everything cached about a user: the user, the user's token and
    /// sessions ([`CachedStore::invalidate_user`](super::CachedStore::invalidate_user)).
    User(i64),
    /// One session, by its keyed digest (the stored form, never the key).
    Session(String),
    /// One OAuth2 access token, by its keyed digest (spent or revoked).
    OAuth2Token(String),
    /// Every cached OAuth2 access token (a family revoked, a client
    /// deleted).
    OAuth2Tokens,
    /// Everything: what a server must assume after it may have missed
    /// messages (a lost connection to the bus).
    All,
}

impl Invalidation {
    /// The message's text: `user:<id>`, `session:<digest>`,
    /// `oauth2:<digest>`, `oauth2` or `all`.
    pub fn encode(&self) -> String {
        match self {
            Invalidation::User(id) => format!("user:{id}"),
            Invalidation::Session(digest) => format!("session:{digest}"),
            Invalidation::OAuth2Token(digest) => format!("oauth2:{digest}"),
            Invalidation::OAuth2Tokens => "oauth2".to_owned(),
            Invalidation::All => "all".to_owned(),
        }
    }

    /// The message [`encode`](Self::encode) wrote. Anything else reads as
    /// [`All`](Invalidation::All): a message this server does not
    /// understand may still mean something is stale.
    pub fn decode(text: &str) -> Invalidation {
        if let Some(id) = text.strip_prefix("user:") {
            if let Ok(id) = id.parse() {
                return Invalidation::User(id);
            }
        } else if let Some(digest) = text.strip_prefix("session:") {
            if !digest.is_empty() {
                return Invalidation::Session(digest.to_owned());
            }
        } else if let Some(digest) = text.strip_prefix("oauth2:") {
            if !digest.is_empty() {
                return Invalidation::OAuth2Token(digest.to_owned());
            }
        } else if text == "oauth2" {
            return Invalidation::OAuth2Tokens;
        }
        Invalidation::All
    }
}

type Listener = Arc<dyn Fn(&Invalidation) + Send + Sync>;

/// The caches' link to the other servers: caches [`publish`](Self::publish)
/// what their writes made stale and [`listen`](Self::listen) for what the
/// others' did; a transport (Redis pub/sub, in `portcullis-store`) carries
/// the messages and [`deliver`](Self::deliver)s those that arrive.
///
/// Publishing must not wait on the network: the transport's `publish`
/// function queues the message. A message only ever makes a cache forget,
/// so a forged one costs store reads, never access. Messages can be lost (a transport that is
/// down); each cache's TTL stays the bound on how stale it can be, and a
/// transport that reconnects delivers [`Invalidation::All`] first.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use std::time::Duration;
/// use portcullis::cache::{CachedStore, Invalidation, InvalidationBus};
/// use portcullis::store::{MemoryStore, NewUser, UserAdmin, UserStore};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// // Two servers' caches over one database, linked by a bus that hands
/// // each message straight to the other side.
/// let db = MemoryStore::new();
/// let sent = Arc::new(Mutex::new(Vec::new()));
/// let outbox = sent.clone();
/// let bus_a = InvalidationBus::new(move |m| outbox.lock().unwrap().push(m));
/// let bus_b = InvalidationBus::new(|_| {});
/// let a = CachedStore::new(db.clone(), Duration::from_secs(60)).with_bus(&bus_a);
/// let b = CachedStore::new(db.clone(), Duration::from_secs(60)).with_bus(&bus_b);
///
/// let new = NewUser { username: "ada".into(), is_active: true, ..Default::default() };
/// let ada = db.create_user(new).await.unwrap();
/// assert!(b.user_by_id(ada.id).await.unwrap().unwrap().is_active); // cached on b
/// a.set_active(ada.id, false).await.unwrap();
/// for m in sent.lock().unwrap().drain(..) {
///     bus_b.deliver(&m);
/// }
/// assert!(!b.user_by_id(ada.id).await.unwrap().unwrap().is_active);
/// # });
/// ```
#[derive(Clone)]
pub struct InvalidationBus {
    inner: Arc<Inner>,
}

struct Inner {
    publish: Box<dyn Fn(Invalidation) + Send + Sync>,
    listeners: Mutex<Vec<Listener>>,
}

impl fmt::Debug for InvalidationBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InvalidationBus").finish_non_exhaustive()
    }
}

impl InvalidationBus {
    /// A bus whose messages go out through `publish`, which must return at
    /// once (queue the message, send it elsewhere).
    pub fn new(publish: impl Fn(Invalidation) + Send + Sync + 'static) -> Self {
        InvalidationBus {
            inner: Arc::new(Inner {
                publish: Box::new(publish),
                listeners: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Tells the other servers.
    pub fn publish(&self, what: Invalidation) {
        (self.inner.publish)(what);
    }

    /// Calls `f` for every message delivered from now on.
    pub fn listen(&self, f: impl Fn(&Invalidation) + Send + Sync + 'static) {
        self.listeners().push(Arc::new(f));
    }

    /// Hands a message that arrived to every listener.
    pub fn deliver(&self, what: &Invalidation) {
        // Called outside the lock, so a listener may listen in turn.
        let listeners = self.listeners().clone();
        for f in listeners {
            f(what);
        }
    }

    fn listeners(&self) -> std::sync::MutexGuard<'_, Vec<Listener>> {
        self.inner
            .listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_read_back_and_strangers_mean_everything() {
        for m in [
            Invalidation::User(42),
            Invalidation::User(-1),
            Invalidation::Session("v1$abc".into()),
            Invalidation::OAuth2Token("v1$def".into()),
            Invalidation::OAuth2Tokens,
            Invalidation::All,
        ] {
            assert_eq!(Invalidation::decode(&m.encode()), m);
        }
        for odd in [
            "", "user:", "user:x", "session:", "oauth2:", "users:1", "OAUTH2", "\u{0}",
        ] {
            assert_eq!(Invalidation::decode(odd), Invalidation::All, "{odd:?}");
        }
    }

    #[test]
    fn delivery_reaches_every_listener() {
        let bus = InvalidationBus::new(|_| {});
        let seen = Arc::new(Mutex::new(Vec::new()));
        for _ in 0..2 {
            let seen = seen.clone();
            bus.listen(move |m| seen.lock().unwrap().push(m.clone()));
        }
        bus.deliver(&Invalidation::User(7));
        assert_eq!(*seen.lock().unwrap(), vec![Invalidation::User(7); 2]);
    }
}
