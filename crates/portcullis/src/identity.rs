//! Who made the request: [`Identity`], the [`AuthUser`] trait and the
//! default [`User`] model.
//!
//! DRF hands a view `request.user` and `request.auth`. portcullis hands a
//! handler an [`Identity`]: either an authenticated user together with the
//! scheme's [`AuthInfo`], or an [`Anonymous`] visitor whose name and token are
//! configurable (DRF's `UNAUTHENTICATED_USER` and `UNAUTHENTICATED_TOKEN`).

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The user model the framework works with.
///
/// Implement it for your own user type to use portcullis with a custom user
/// model; only [`id`](AuthUser::id) and [`username`](AuthUser::username) are
/// required. Ids are 64-bit integers, like Django's `AutoField`.
///
/// ```
/// use portcullis::AuthUser;
///
/// #[derive(Clone)]
/// struct Member { id: i64, handle: String, banned: bool }
///
/// impl AuthUser for Member {
///     fn id(&self) -> i64 { self.id }
///     fn username(&self) -> &str { &self.handle }
///     fn is_active(&self) -> bool { !self.banned }
/// }
///
/// let m = Member { id: 7, handle: "ada".into(), banned: false };
/// assert!(m.is_active() && !m.is_staff());
/// ```
pub trait AuthUser: Clone + Send + Sync + 'static {
    /// The primary key.
    fn id(&self) -> i64;
    /// The unique, case-sensitive login name.
    fn username(&self) -> &str;
    /// Inactive users cannot authenticate (Django's `is_active`).
    fn is_active(&self) -> bool {
        true
    }
    /// Staff users pass [`IsAdminUser`](crate::permission::IsAdminUser).
    fn is_staff(&self) -> bool {
        false
    }
    /// Superusers have every permission (Django's `is_superuser`).
    fn is_superuser(&self) -> bool {
        false
    }
    /// The stored password hash in Django's format; empty or starting with
    /// `!` when the user has no usable password.
    fn password_hash(&self) -> &str {
        ""
    }
}

/// A shared user is the user: what [`SharedUsers`](crate::store::SharedUsers)
/// hands out, so that a cached user reaches a request without a copy.
impl<U: AuthUser> AuthUser for Arc<U> {
    fn id(&self) -> i64 {
        (**self).id()
    }
    fn username(&self) -> &str {
        (**self).username()
    }
    fn is_active(&self) -> bool {
        (**self).is_active()
    }
    fn is_staff(&self) -> bool {
        (**self).is_staff()
    }
    fn is_superuser(&self) -> bool {
        (**self).is_superuser()
    }
    fn password_hash(&self) -> &str {
        (**self).password_hash()
    }
}

/// The default user model, field for field Django's `auth_user`.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct User {
    /// Primary key.
    pub id: i64,
    /// Unique, case-sensitive login name.
    pub username: String,
    /// Password hash in Django's format (never serialized).
    #[serde(skip_serializing, default)]
    pub password: String,
    /// E-mail address, may be empty.
    pub email: String,
    /// Given name, may be empty.
    pub first_name: String,
    /// Family name, may be empty.
    pub last_name: String,
    /// Whether the account may log in.
    pub is_active: bool,
    /// Whether the user passes `IsAdminUser`.
    pub is_staff: bool,
    /// Whether the user has every permission.
    pub is_superuser: bool,
    /// Time of the last successful login.
    pub last_login: Option<DateTime<Utc>>,
    /// When the account was created.
    pub date_joined: DateTime<Utc>,
}

#[cfg(test)]
impl User {
    /// An active user with nothing but an id and a name, for tests.
    pub(crate) fn for_tests(id: i64, username: &str) -> User {
        User {
            id,
            username: username.to_owned(),
            password: String::new(),
            email: String::new(),
            first_name: String::new(),
            last_name: String::new(),
            is_active: true,
            is_staff: false,
            is_superuser: false,
            last_login: None,
            date_joined: Default::default(),
        }
    }
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("is_active", &self.is_active)
            .field("is_staff", &self.is_staff)
            .field("is_superuser", &self.is_superuser)
            .finish_non_exhaustive()
    }
}

impl AuthUser for User {
    fn id(&self) -> i64 {
        self.id
    }
    fn username(&self) -> &str {
        &self.username
    }
    fn is_active(&self) -> bool {
        self.is_active
    }
    fn is_staff(&self) -> bool {
        self.is_staff
    }
    fn is_superuser(&self) -> bool {
        self.is_superuser
    }
    fn password_hash(&self) -> &str {
        &self.password
    }
}

/// What a scheme says about the credential it accepted: DRF's `request.auth`.
///
/// The description is shown to clients (the reference app echoes it), so it
/// must never contain the secret itself: say "token 12", not the key. A
/// scheme may attach typed data (JWT claims, OAuth2 scopes) for permissions
/// to read with [`AuthInfo::data`].
#[derive(Clone)]
pub struct AuthInfo {
    description: Arc<str>,
    data: Option<Arc<dyn Any + Send + Sync>>,
}

impl AuthInfo {
    /// A credential described by a non-secret string.
    pub fn new(description: impl Into<Arc<str>>) -> Self {
        AuthInfo {
            description: description.into(),
            data: None,
        }
    }

    /// Attaches typed data that permissions and handlers can downcast.
    pub fn with_data<T: Any + Send + Sync>(mut self, data: T) -> Self {
        self.data = Some(Arc::new(data));
        self
    }

    /// The non-secret description.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The typed data, if it is a `T`.
    pub fn data<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.data.as_deref().and_then(|d| d.downcast_ref())
    }
}

impl fmt::Debug for AuthInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("AuthInfo").field(&self.description).finish()
    }
}

/// A request that no scheme authenticated.
///
/// Its name and token come from [`Policy::unauthenticated_user`] and
/// [`Policy::unauthenticated_token`](crate::Policy::unauthenticated_token),
/// DRF's `UNAUTHENTICATED_USER` (default `"AnonymousUser"`) and
/// `UNAUTHENTICATED_TOKEN` (default none).
///
/// [`Policy::unauthenticated_user`]: crate::Policy::unauthenticated_user
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Anonymous {
    pub(crate) name: Option<Arc<str>>,
    pub(crate) token: Option<Arc<str>>,
}

impl Default for Anonymous {
    fn default() -> Self {
        Anonymous {
            name: Some(Arc::from("AnonymousUser")),
            token: None,
        }
    }
}

impl Anonymous {
    /// The configured name of the unauthenticated user, if any.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
    /// The configured unauthenticated token, if any.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }
}

/// The result of authentication: DRF's `(request.user, request.auth)`.
#[derive(Clone, Debug)]
pub enum Identity<U> {
    /// A scheme accepted the request's credentials.
    User {
        /// The authenticated user.
        user: U,
        /// The credential's details; `None` for Basic, Session, RemoteUser.
        auth: Option<AuthInfo>,
        /// The name of the scheme that succeeded.
        scheme: &'static str,
    },
    /// No scheme found credentials.
    Anonymous(Anonymous),
}

impl<U: AuthUser> Identity<U> {
    /// Whether a scheme authenticated the request.
    pub fn is_authenticated(&self) -> bool {
        matches!(self, Identity::User { .. })
    }

    /// The authenticated user.
    pub fn user(&self) -> Option<&U> {
        match self {
            Identity::User { user, .. } => Some(user),
            Identity::Anonymous(_) => None,
        }
    }

    /// The credential's details (DRF's `request.auth`).
    pub fn auth(&self) -> Option<&AuthInfo> {
        match self {
            Identity::User { auth, .. } => auth.as_ref(),
            Identity::Anonymous(_) => None,
        }
    }

    /// The username, or the configured unauthenticated user's name.
    pub fn username(&self) -> Option<&str> {
        match self {
            Identity::User { user, .. } => Some(user.username()),
            Identity::Anonymous(a) => a.name(),
        }
    }

    /// The name of the scheme that authenticated the request.
    pub fn scheme(&self) -> Option<&'static str> {
        match self {
            Identity::User { scheme, .. } => Some(scheme),
            Identity::Anonymous(_) => None,
        }
    }

    /// Whether the user is active and staff.
    pub fn is_staff(&self) -> bool {
        self.user().is_some_and(|u| u.is_active() && u.is_staff())
    }
}
