//! The layer's two paths: a request decided at once goes straight to the
//! inner service; one whose checks must wait (a scheme or a throttle that
//! awaits) is finished in a boxed future with a clone of the inner service.
//! Both must answer the same, and a scheme that sees no credentials of its
//! kind must not run at all.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Body;
use axum::routing::get;
use axum::Router;
use http::{HeaderValue, Request, StatusCode};
use portcullis::permission::{Context, Permission};
use portcullis::scheme::{Authenticated, Outcome, RequestHead, Scheme};
use portcullis::throttle::{Decision, ManualClock, Throttle, ThrottleConfig};
use portcullis::{AllowAny, AuthError, AuthUser, Identity, IsAuthenticated, Policy, User};
use tower::{Layer, Service, ServiceExt};

/// Authenticates `X-User: NAME` after yielding to the runtime once, so its
/// future is pending on the first poll; `X-User: !` is a bad credential.
struct Slow {
    runs: Arc<AtomicUsize>,
}

#[async_trait]
impl Scheme<User> for Slow {
    fn name(&self) -> &'static str {
        "slow"
    }

    async fn authenticate(&self, req: &RequestHead<'_>) -> Outcome<User> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        tokio::task::yield_now().await;
        let Some(v) = req.headers.get("x-user") else {
            return Ok(None);
        };
        match v.to_str() {
            Ok("!") | Err(_) => Err(AuthError::failed("Bad user.")),
            Ok(name) => Ok(Some(Authenticated::new(
                User {
                    id: 7,
                    username: name.to_owned(),
                    is_active: true,
                    ..user()
                },
                "slow",
            ))),
        }
    }

    fn challenge(&self) -> Option<HeaderValue> {
        Some(HeaderValue::from_static("Slow"))
    }

    fn sees_credentials(&self, req: &RequestHead<'_>) -> bool {
        req.headers.contains_key("x-user")
    }
}

fn user() -> User {
    User {
        id: 0,
        username: String::new(),
        password: String::new(),
        email: String::new(),
        first_name: String::new(),
        last_name: String::new(),
        is_active: false,
        is_staff: false,
        is_superuser: false,
        last_login: None,
        date_joined: chrono::Utc::now(),
    }
}

async fn whoami(id: Identity<User>) -> String {
    id.username().unwrap_or("-").to_owned()
}

fn get_req(user: Option<&str>) -> Request<Body> {
    let mut b = Request::get("/");
    if let Some(u) = user {
        b = b.header("x-user", u);
    }
    b.body(Body::empty()).unwrap()
}

/// [`get_req`] from a client address, as the server would give it.
fn from_addr(user: Option<&str>) -> Request<Body> {
    let mut r = get_req(user);
    r.extensions_mut().insert(portcullis::throttle::ClientAddr(
        "192.0.2.1".parse().unwrap(),
    ));
    r
}

async fn answer(app: &Router, user: Option<&str>) -> (StatusCode, String) {
    let res = app.clone().oneshot(get_req(user)).await.unwrap();
    let status = res.status();
    let body = axum::body::to_bytes(res.into_body(), 1 << 16)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// `whoami` behind the [`Slow`] scheme and `permission`, and how many
/// times the scheme has run.
fn slow_app(permission: impl Permission<User>) -> (Router, Arc<AtomicUsize>) {
    let runs = Arc::new(AtomicUsize::new(0));
    let policy = Policy::<User>::new()
        .scheme(Slow { runs: runs.clone() })
        .permission(permission);
    let app = Router::new().route("/", get(whoami).layer(policy.layer()));
    (app, runs)
}

#[tokio::test]
async fn a_permission_that_waits_on_a_scheme_still_decides() {
    let (app, runs) = slow_app(IsAuthenticated);

    assert_eq!(
        answer(&app, Some("ada")).await,
        (StatusCode::OK, "ada".into())
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1, "resolved once per request");

    let (s, body) = answer(&app, Some("!")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(body.contains("Bad user."), "{body}");

    let (s, _) = answer(&app, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(
        runs.load(Ordering::SeqCst),
        2,
        "no header: the scheme is skipped"
    );
}

#[tokio::test]
async fn a_scheme_that_sees_no_credentials_is_never_run() {
    let (app, runs) = slow_app(AllowAny);

    assert_eq!(
        answer(&app, None).await,
        (StatusCode::OK, "AnonymousUser".into())
    );
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    assert_eq!(
        answer(&app, Some("bob")).await,
        (StatusCode::OK, "bob".into())
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

/// Counts requests, then refuses the third; always awaits first, and never
/// answers without waiting.
struct SlowThrottle {
    seen: AtomicUsize,
}

#[async_trait]
impl<U: AuthUser> Throttle<U> for SlowThrottle {
    async fn allow_request(&self, ctx: &Context<'_, U>) -> Result<Decision, AuthError> {
        tokio::task::yield_now().await;
        // The layer resolved the identity before the throttles.
        assert!(ctx.resolved_identity().is_some());
        Ok(if self.seen.fetch_add(1, Ordering::SeqCst) < 2 {
            Decision::Allow
        } else {
            Decision::Deny {
                wait: Some(Duration::from_millis(1_500)),
            }
        })
    }
}

#[tokio::test]
async fn throttles_that_wait_and_throttles_that_answer_at_once_agree() {
    let clock = ManualClock::new();
    let config = ThrottleConfig::new()
        .clock(clock.clone())
        .rates("anon=2/min")
        .unwrap();
    let memory = Policy::<User>::new().throttle(config.anon().unwrap());
    let waiting = Policy::<User>::new().throttle(SlowThrottle {
        seen: AtomicUsize::new(0),
    });
    for (name, policy) in [("memory", memory), ("waiting", waiting)] {
        let app = Router::new().route("/", get(whoami).layer(policy.layer()));
        for _ in 0..2 {
            let res = app.clone().oneshot(from_addr(None)).await.unwrap();
            assert_eq!(res.status(), StatusCode::OK, "{name}");
        }
        let res = app.clone().oneshot(from_addr(None)).await.unwrap();
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS, "{name}");
        assert!(res.headers().contains_key("retry-after"), "{name}");
    }
}

#[tokio::test]
async fn throttles_after_one_that_waits_count_each_request_once() {
    // The anonymous fast path asks the memory throttle at once, then has
    // to wait for the slow one: the memory count must not be taken again.
    let clock = ManualClock::new();
    let config = ThrottleConfig::new()
        .clock(clock.clone())
        .rates("anon=3/min")
        .unwrap();
    let slow = Arc::new(SlowThrottle {
        seen: AtomicUsize::new(0),
    });
    let runs = Arc::new(AtomicUsize::new(0));
    let policy = Policy::<User>::new()
        .scheme(Slow { runs: runs.clone() })
        .permission(AllowAny)
        .throttle(config.anon().unwrap())
        .throttle(slow.clone());
    let app = Router::new().route("/", get(whoami).layer(policy.layer()));
    let retry_after = |res: &http::Response<Body>| {
        res.headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned())
    };
    for _ in 0..2 {
        let res = app.clone().oneshot(from_addr(None)).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }
    // Third: the memory throttle allows (3/min), the slow one refuses.
    let res = app.clone().oneshot(from_addr(None)).await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(retry_after(&res).as_deref(), Some("2"));
    // Fourth: both refuse; the longer wait wins.
    let res = app.clone().oneshot(from_addr(None)).await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(retry_after(&res).as_deref(), Some("60"));
    assert_eq!(slow.seen.load(Ordering::SeqCst), 4, "asked once a request");
    assert_eq!(
        runs.load(Ordering::SeqCst),
        0,
        "no credentials, no scheme run"
    );

    // A request with credentials takes the full path: the scheme runs, the
    // anonymous throttle lets the user through, the slow one still counts.
    let res = app.clone().oneshot(from_addr(Some("ada"))).await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(retry_after(&res).as_deref(), Some("2"));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(slow.seen.load(Ordering::SeqCst), 5);
}

#[tokio::test]
async fn one_service_serves_requests_that_overlap() {
    // The same AuthService, called again while its first request still
    // waits: the waiting request owns a clone of the inner service.
    let runs = Arc::new(AtomicUsize::new(0));
    let policy = Policy::<User>::new()
        .scheme(Slow { runs })
        .permission(IsAuthenticated);
    let mut svc = policy
        .layer()
        .layer(tower::service_fn(|req: Request<Body>| async move {
            let who = req
                .extensions()
                .get::<portcullis::layer::LazyIdentity<User>>()
                .map(|l| l.is_resolved());
            Ok::<_, std::convert::Infallible>(http::Response::new(Body::from(format!("{who:?}"))))
        }));
    let first = svc.ready().await.unwrap().call(get_req(Some("ada")));
    let second = svc.ready().await.unwrap().call(get_req(None));
    let (a, b) = tokio::join!(first, second);
    assert_eq!(a.unwrap().status(), StatusCode::OK);
    assert_eq!(b.unwrap().status(), StatusCode::UNAUTHORIZED);
}

/// [`Slow`]'s answers, also given at once for names it "has cached" (those
/// starting with `c`); counts both kinds of run.
struct Cached {
    slow: Slow,
    at_once: Arc<AtomicUsize>,
}

#[async_trait]
impl Scheme<User> for Cached {
    fn name(&self) -> &'static str {
        "cached"
    }

    async fn authenticate(&self, req: &RequestHead<'_>) -> Outcome<User> {
        self.slow.authenticate(req).await
    }

    fn authenticate_now(&self, req: &RequestHead<'_>) -> Option<Outcome<User>> {
        let name = req.headers.get("x-user")?.to_str().ok()?;
        if !name.starts_with('c') && name != "!" {
            return None;
        }
        self.at_once.fetch_add(1, Ordering::SeqCst);
        Some(if name == "!" {
            Err(AuthError::failed("Bad user."))
        } else {
            Ok(Some(Authenticated::new(
                User {
                    id: 7,
                    username: name.to_owned(),
                    is_active: true,
                    is_staff: name == "chief",
                    ..user()
                },
                "cached",
            )))
        })
    }

    fn challenge(&self) -> Option<HeaderValue> {
        self.slow.challenge()
    }

    fn sees_credentials(&self, req: &RequestHead<'_>) -> bool {
        self.slow.sees_credentials(req)
    }
}

/// Allows everyone, but only ever by waiting (no `has_permission_now`).
struct WaitingAllow;

#[async_trait]
impl<U: AuthUser> Permission<U> for WaitingAllow {
    async fn has_permission(&self, ctx: &Context<'_, U>) -> Result<bool, AuthError> {
        tokio::task::yield_now().await;
        Ok(ctx.identity().await?.is_authenticated())
    }
}

#[tokio::test]
async fn schemes_that_answer_at_once_decide_as_the_full_path_does() {
    let runs = Arc::new(AtomicUsize::new(0));
    let at_once = Arc::new(AtomicUsize::new(0));
    let scheme = Arc::new(Cached {
        slow: Slow { runs: runs.clone() },
        at_once: at_once.clone(),
    });
    let app = |permission: Arc<dyn Permission<User>>| {
        let policy = Policy::<User>::new()
            .scheme(scheme.clone())
            .permission(permission);
        Router::new().route("/", get(whoami).layer(policy.layer()))
    };
    let authenticated = app(Arc::new(IsAuthenticated));
    let admin = app(Arc::new(portcullis::IsAdminUser));
    let waiting = app(Arc::new(WaitingAllow));
    let counts = || (runs.load(Ordering::SeqCst), at_once.load(Ordering::SeqCst));

    // Answered at once: the scheme's async path never runs.
    assert_eq!(
        answer(&authenticated, Some("cy")).await,
        (StatusCode::OK, "cy".into())
    );
    assert_eq!(counts(), (0, 1));
    let (s, body) = answer(&authenticated, Some("!")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(body.contains("Bad user."), "{body}");
    assert_eq!(counts(), (0, 2));
    // Denied by a permission asked at once: 403 for a user, 401 (with the
    // challenge) for nobody, as on the full path.
    let (s, _) = answer(&admin, Some("cy")).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(
        answer(&admin, Some("chief")).await,
        (StatusCode::OK, "chief".into())
    );
    let res = admin.clone().oneshot(get_req(None)).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()["www-authenticate"], "Slow");
    assert_eq!(counts(), (0, 4));

    // A permission that has to wait gets the identity found at once: the
    // scheme is not run again.
    assert_eq!(
        answer(&waiting, Some("cy")).await,
        (StatusCode::OK, "cy".into())
    );
    assert_eq!(counts(), (0, 5));

    // Not in the "cache": the full path, once.
    assert_eq!(
        answer(&authenticated, Some("ada")).await,
        (StatusCode::OK, "ada".into())
    );
    assert_eq!(counts(), (1, 5));
}
