//! Throttles through the layer, with a hand-moved clock.

use std::time::Duration;

use async_trait::async_trait;
use axum::body::Body;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

use super::*;
use crate::scheme::{scheme_fn, Authenticated};
use crate::store::StoreError;
use crate::{IsAuthenticated, Policy, User};

fn user(id: i64) -> User {
    User::for_tests(id, &format!("user{id}"))
}

/// A scheme that authenticates `X-User: <id>`.
fn policy() -> Policy<User> {
    Policy::new().scheme(scheme_fn("x-user", |req: &RequestHead<'_>| {
        let id = req
            .headers
            .get("x-user")
            .and_then(|v| v.to_str().ok()?.parse::<i64>().ok());
        async move { Ok(id.map(|id| Authenticated::new(user(id), "x-user"))) }
    }))
}

fn app(policy: Policy<User>) -> Router {
    Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(policy.layer())
}

struct Sent {
    status: StatusCode,
    retry_after: Option<String>,
    body: Bytes,
}

async fn send(app: &Router, user: Option<i64>, addr: &str, xff: Option<&str>) -> Sent {
    let mut b = Request::get("/");
    if let Some(id) = user {
        b = b.header("x-user", id.to_string());
    }
    if let Some(x) = xff {
        b = b.header("x-forwarded-for", x);
    }
    let mut req = b.body(Body::empty()).unwrap();
    req.extensions_mut()
        .insert(ClientAddr(addr.parse().unwrap()));
    let res = app.clone().oneshot(req).await.unwrap();
    Sent {
        status: res.status(),
        retry_after: res
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned()),
        body: res.into_body().collect().await.unwrap().to_bytes(),
    }
}

fn config(clock: &ManualClock, rates: &str) -> ThrottleConfig {
    ThrottleConfig::new()
        .clock(clock.clone())
        .rates(rates)
        .unwrap()
}

const A: &str = "192.0.2.1";
const B: &str = "192.0.2.2";

#[test]
fn parses_drf_rates() {
    let r = |s: &str| Rate::parse(s).unwrap();
    assert_eq!(r("100/day"), Rate::new(100, Duration::from_secs(86_400)));
    assert_eq!(r("5/min"), Rate::new(5, Duration::from_secs(60)));
    assert_eq!(r("3/m"), Rate::new(3, Duration::from_secs(60)));
    assert_eq!(r("10/second"), Rate::new(10, Duration::from_secs(1)));
    assert_eq!(r("2/hour"), Rate::new(2, Duration::from_secs(3_600)));
    assert_eq!(r("1/s"), Rate::new(1, Duration::from_secs(1)));
    assert_eq!(r("0/min").num_requests(), 0);
    assert_eq!(r("5/min").to_string(), "5/min");
}

#[test]
fn bad_rates_are_clear_errors() {
    for bad in [
        "",
        "5",
        "5/",
        "x/min",
        "-1/min",
        "5/week",
        "5/fortnight",
        "/min",
        "5.5/min",
    ] {
        let e = Rate::parse(bad).unwrap_err();
        assert!(e.to_string().contains("N/PERIOD"), "{bad}: {e}");
    }
    let e = ThrottleConfig::new().rates("anon:5/min").unwrap_err();
    assert!(matches!(e, RateError::InvalidEntry { .. }), "{e}");
    let e = ThrottleConfig::new().anon().unwrap_err();
    assert_eq!(
        e.to_string(),
        "no default throttle rate set for the \"anon\" scope"
    );
}

#[test]
fn rate_lists_set_only_the_scopes_they_name() {
    let c = ThrottleConfig::new()
        .rate("anon", Rate::parse("1/s").unwrap())
        .rates(" user=10/min , ,burst=3/min")
        .unwrap();
    assert_eq!(c.rate_for("anon"), Some(Rate::parse("1/s").unwrap()));
    assert_eq!(c.rate_for("user"), Some(Rate::parse("10/min").unwrap()));
    assert_eq!(c.rate_for("burst"), Some(Rate::parse("3/min").unwrap()));
}

#[test]
fn waits_round_up_to_whole_seconds() {
    assert_eq!(wait_seconds(Duration::from_secs(40)), 40);
    assert_eq!(wait_seconds(Duration::from_millis(40_001)), 41);
    assert_eq!(wait_seconds(Duration::from_millis(1)), 1);
}

#[tokio::test]
async fn anon_window_edges_and_retry_after() {
    let clock = ManualClock::new();
    let app = app(policy().throttle(config(&clock, "anon=2/min").anon().unwrap()));
    assert_eq!(send(&app, None, A, None).await.status, 200);
    clock.advance(Duration::from_secs(30));
    assert_eq!(send(&app, None, A, None).await.status, 200);

    let res = send(&app, None, A, None).await;
    assert_eq!(res.status, 429);
    assert_eq!(res.retry_after.as_deref(), Some("30"));

    clock.advance(Duration::from_millis(29_500));
    let res = send(&app, None, A, None).await;
    assert_eq!(res.status, 429);
    assert_eq!(res.retry_after.as_deref(), Some("1"), "0.5 s rounds up");
    let body: serde_json::Value = serde_json::from_slice(&res.body).unwrap();
    assert_eq!(
        body["detail"],
        "Request was throttled. Expected available in 1 second."
    );

    // Exactly a minute after the first request, it leaves the window.
    clock.advance(Duration::from_millis(500));
    assert_eq!(send(&app, None, A, None).await.status, 200);
    let res = send(&app, None, A, None).await;
    assert_eq!(res.retry_after.as_deref(), Some("30"));
}

#[tokio::test]
async fn anon_throttle_keys_by_address_and_ignores_users() {
    let clock = ManualClock::new();
    let app = app(policy().throttle(config(&clock, "anon=1/min").anon().unwrap()));
    assert_eq!(send(&app, None, A, None).await.status, 200);
    assert_eq!(send(&app, None, A, None).await.status, 429);
    assert_eq!(
        send(&app, None, B, None).await.status,
        200,
        "another address"
    );
    for _ in 0..5 {
        assert_eq!(
            send(&app, Some(1), A, None).await.status,
            200,
            "authenticated"
        );
    }
}

#[tokio::test]
async fn user_throttle_keys_by_user_id_else_address() {
    let clock = ManualClock::new();
    let app = app(policy().throttle(config(&clock, "user=2/min").user().unwrap()));
    // User 1 from two addresses: one count.
    assert_eq!(send(&app, Some(1), A, None).await.status, 200);
    assert_eq!(send(&app, Some(1), B, None).await.status, 200);
    let res = send(&app, Some(1), A, None).await;
    assert_eq!(res.status, 429);
    assert_eq!(res.retry_after.as_deref(), Some("60"));
    // Others are not affected: another user, anonymous requests by address.
    assert_eq!(send(&app, Some(2), A, None).await.status, 200);
    assert_eq!(send(&app, None, A, None).await.status, 200);
    assert_eq!(send(&app, None, A, None).await.status, 200);
    assert_eq!(send(&app, None, A, None).await.status, 429);
    assert_eq!(send(&app, None, B, None).await.status, 200);
}

#[tokio::test]
async fn scoped_throttles_share_counts_within_a_scope() {
    let clock = ManualClock::new();
    let cfg = config(&clock, "burst=2/min,other=1/min");
    let burst = policy().throttle(cfg.scoped("burst").unwrap());
    let router = Router::new()
        .route("/a", get(|| async { "a" }).layer(burst.layer()))
        .route("/b", get(|| async { "b" }).layer(burst.layer()))
        .route(
            "/c",
            get(|| async { "c" }).layer(policy().throttle(cfg.scoped("other").unwrap()).layer()),
        );
    let hit = |path: &'static str, user: Option<i64>| {
        let router = router.clone();
        async move {
            let mut b = Request::get(path);
            if let Some(id) = user {
                b = b.header("x-user", id.to_string());
            }
            let mut req = b.body(Body::empty()).unwrap();
            req.extensions_mut().insert(ClientAddr(A.parse().unwrap()));
            router.oneshot(req).await.unwrap().status()
        }
    };
    assert_eq!(hit("/a", Some(1)).await, 200);
    assert_eq!(hit("/b", Some(1)).await, 200);
    assert_eq!(hit("/a", Some(1)).await, 429, "/a and /b share the scope");
    assert_eq!(hit("/c", Some(1)).await, 200, "another scope");
    assert_eq!(hit("/c", Some(1)).await, 429);
    assert_eq!(hit("/a", Some(2)).await, 200, "another user");
    assert_eq!(hit("/a", None).await, 200, "anonymous: by address");
    assert_eq!(hit("/a", None).await, 200);
    assert_eq!(hit("/a", None).await, 429);
    assert_eq!(cfg.scoped("burst").unwrap().scope(), "burst");
}

#[tokio::test]
async fn several_throttles_answer_the_longest_wait() {
    let clock = ManualClock::new();
    let cfg = config(&clock, "burst=1/s,sustained=2/min");
    let app = app(policy()
        .throttle(cfg.scoped("burst").unwrap())
        .throttle(cfg.scoped("sustained").unwrap()));
    assert_eq!(send(&app, None, A, None).await.status, 200);
    // Only the burst throttle refuses; as in DRF, the sustained one still
    // counts the request it allowed.
    let res = send(&app, None, A, None).await;
    assert_eq!(res.status, 429);
    assert_eq!(res.retry_after.as_deref(), Some("1"));
    clock.advance(Duration::from_secs(1));
    // Only sustained refuses now (two in the minute).
    let res = send(&app, None, A, None).await;
    assert_eq!(res.retry_after.as_deref(), Some("59"));
    // Both refuse: burst in 1 s, sustained in 59 s; the longest wins.
    let res = send(&app, None, A, None).await;
    assert_eq!(res.status, 429);
    assert_eq!(res.retry_after.as_deref(), Some("59"));
    clock.advance(Duration::from_secs(2));
    let res = send(&app, None, A, None).await;
    assert_eq!(res.retry_after.as_deref(), Some("57"));
}

#[tokio::test]
async fn throttles_run_after_the_permission_check() {
    let clock = ManualClock::new();
    let app = app(policy()
        .permission(IsAuthenticated)
        .throttle(config(&clock, "user=1/min").user().unwrap()));
    for _ in 0..3 {
        // Refused by the permission first; nothing counted.
        assert_eq!(send(&app, None, A, None).await.status, 403);
    }
    assert_eq!(send(&app, Some(1), A, None).await.status, 200);
    assert_eq!(send(&app, Some(1), A, None).await.status, 429);
}

#[tokio::test]
async fn policy_throttles_replaces_and_throttle_appends() {
    let clock = ManualClock::new();
    let cfg = config(&clock, "anon=1/min,user=1/min");
    let p = policy()
        .throttle(cfg.anon().unwrap())
        .throttle(cfg.user().unwrap());
    assert_eq!(p.throttle_list().len(), 2);
    let p = p.throttles(vec![Arc::new(cfg.user().unwrap())]);
    assert_eq!(p.throttle_list().len(), 1);
    let p = p.throttles(Vec::new());
    let app = app(p);
    for _ in 0..3 {
        assert_eq!(send(&app, None, A, None).await.status, 200);
    }
}

#[tokio::test]
async fn spoofed_forwarded_for_is_ignored_unless_proxies_are_trusted() {
    let clock = ManualClock::new();
    let direct = app(policy().throttle(config(&clock, "anon=1/min").anon().unwrap()));
    assert_eq!(send(&direct, None, A, Some("1.1.1.1")).await.status, 200);
    assert_eq!(
        send(&direct, None, A, Some("2.2.2.2")).await.status,
        429,
        "num_proxies = 0: one socket address, one count"
    );

    let behind = app(policy().throttle(
        config(&clock, "anon=1/min")
            .client_ip(ClientIp::behind_proxies(1))
            .anon()
            .unwrap(),
    ));
    assert_eq!(
        send(&behind, None, A, Some("6.6.6.6, 1.1.1.1"))
            .await
            .status,
        200
    );
    assert_eq!(send(&behind, None, A, Some("2.2.2.2")).await.status, 200);
    // A client that forges an extra hop still gets the proxy's last entry.
    assert_eq!(
        send(&behind, None, A, Some("9.9.9.9, 1.1.1.1"))
            .await
            .status,
        429
    );
}

#[cfg(feature = "axum")]
#[tokio::test]
async fn connect_info_is_the_client_address() {
    let clock = ManualClock::new();
    let app = app(policy().throttle(config(&clock, "anon=1/min").anon().unwrap()));
    let req = |port: u16, ip: &str| {
        let mut r = Request::get("/").body(Body::empty()).unwrap();
        let sa = std::net::SocketAddr::new(ip.parse().unwrap(), port);
        r.extensions_mut().insert(axum::extract::ConnectInfo(sa));
        r
    };
    assert_eq!(
        app.clone().oneshot(req(1000, A)).await.unwrap().status(),
        200
    );
    assert_eq!(
        app.clone().oneshot(req(2000, A)).await.unwrap().status(),
        429,
        "the port does not matter"
    );
    assert_eq!(app.oneshot(req(1000, B)).await.unwrap().status(), 200);
}

struct DownStore;

#[async_trait]
impl RateStore for DownStore {
    async fn hit(
        &self,
        _: &str,
        _: u32,
        _: Duration,
        _: std::time::SystemTime,
    ) -> Result<Hit, StoreError> {
        Err(StoreError::unavailable("redis down"))
    }
}

#[tokio::test]
async fn a_store_error_fails_closed() {
    let cfg = ThrottleConfig::new()
        .store(DownStore)
        .rates("anon=100/min")
        .unwrap();
    let app = app(policy().throttle(cfg.anon().unwrap()));
    assert_eq!(send(&app, None, A, None).await.status, 503);
}

#[tokio::test]
async fn a_throttle_without_a_wait_sends_no_retry_after() {
    struct Never;
    #[async_trait]
    impl Throttle<User> for Never {
        async fn allow_request(&self, _: &Context<'_, User>) -> Result<Decision, AuthError> {
            Ok(Decision::Deny { wait: None })
        }
    }
    let app = app(policy().throttle(Never));
    let res = send(&app, None, A, None).await;
    assert_eq!(res.status, 429);
    assert_eq!(res.retry_after, None);
}

/// Over real HTTP: DRF's 429, `Retry-After` and body, with the address
/// from `ConnectInfo`.
#[cfg(feature = "axum")]
#[tokio::test]
async fn http_429_with_retry_after_and_drf_body() {
    let clock = ManualClock::new();
    let app = app(policy().throttle(config(&clock, "anon=2/min").anon().unwrap()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
        .unwrap();
    });
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/");
    // A forged X-Forwarded-For changes nothing.
    for xff in ["1.1.1.1", "2.2.2.2"] {
        let res = client
            .get(&url)
            .header("x-forwarded-for", xff)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    clock.advance(Duration::from_secs(15));
    let res = client.get(&url).send().await.unwrap();
    assert_eq!(res.status(), 429);
    assert_eq!(res.headers()["retry-after"], "45");
    assert_eq!(res.headers()["content-type"], "application/json");
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::json!({"detail": "Request was throttled. Expected available in 45 seconds."})
    );
    server.abort();
}
