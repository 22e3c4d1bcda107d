use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest as _, Sha256};

use super::*;
use crate::throttle::ManualClock;

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

fn server() -> (OAuth2, ManualClock) {
    let clock = ManualClock::at(SystemTime::now());
    let o = OAuth2::new(
        MemoryOAuth2Store::new(),
        &SecretKey::new([9u8; 32]).unwrap(),
        OAuth2Settings::default(),
    )
    .with_clock(clock.clone());
    (o, clock)
}

async fn client(o: &OAuth2, public: bool) -> (Client, Option<String>) {
    let mut new = if public {
        NewClient::public("app")
    } else {
        NewClient::confidential("app")
    };
    if public {
        new.grant_types = vec![GrantType::AuthorizationCode, GrantType::RefreshToken];
    }
    new.redirect_uris = vec!["https://app.example/cb".into()];
    o.register_client(new).await.unwrap()
}

fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn challenge() -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(VERIFIER.as_bytes()))
}

async fn code_for(o: &OAuth2, c: &Client, pkce: bool) -> String {
    let ch = challenge();
    let mut p = vec![
        ("client_id", c.client_id.as_str()),
        ("response_type", "code"),
        ("state", "xyz"),
    ];
    if pkce {
        p.push(("code_challenge", &ch));
        p.push(("code_challenge_method", "S256"));
    }
    let req = o.validate_authorization(&params(&p)).await.unwrap();
    let loc = o.issue_code(&req, 1).await.unwrap();
    assert!(loc.starts_with("https://app.example/cb?code="));
    assert!(loc.ends_with("&state=xyz"));
    let q = loc.split_once('?').unwrap().1;
    form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned()
}

#[tokio::test]
async fn client_secrets_are_stored_as_digests_and_checked() {
    let (o, _) = server();
    let (c, secret) = client(&o, false).await;
    let secret = secret.unwrap();
    assert_ne!(c.secret_digest.as_deref(), Some(secret.as_str()));
    assert!(o
        .authenticate_client(&c.client_id, Some(&secret))
        .await
        .is_ok());
    for bad in [Some("wrong"), None] {
        assert!(matches!(
            o.authenticate_client(&c.client_id, bad).await,
            Err(OAuth2Error::InvalidClient)
        ));
    }
    assert!(matches!(
        o.authenticate_client("unknown", Some(&secret)).await,
        Err(OAuth2Error::InvalidClient)
    ));
    assert!(!format!("{c:?}").contains(c.secret_digest.as_deref().unwrap()));
}

#[tokio::test]
async fn public_clients_authenticate_without_a_secret_only() {
    let (o, _) = server();
    let (c, secret) = client(&o, true).await;
    assert!(secret.is_none());
    assert!(o.authenticate_client(&c.client_id, None).await.is_ok());
    assert!(o
        .authenticate_client(&c.client_id, Some("x"))
        .await
        .is_err());
}

#[tokio::test]
async fn code_flow_with_pkce_issues_tokens_once() {
    let (o, _) = server();
    let (c, _) = client(&o, true).await;
    let code = code_for(&o, &c, true).await;
    let t = o
        .exchange_code(&c, &code, None, Some(VERIFIER))
        .await
        .unwrap();
    assert_eq!(t.scope, "read write");
    assert_eq!(t.expires_in, 36000);
    assert!(t.refresh_token.is_some());
    assert!(o.validate_access(&t.access_token).await.unwrap().is_some());
    // Reuse: refused, and the tokens issued from the code are revoked.
    let again = o.exchange_code(&c, &code, None, Some(VERIFIER)).await;
    assert!(matches!(again, Err(OAuth2Error::InvalidGrant(_))));
    assert!(o.validate_access(&t.access_token).await.unwrap().is_none());
}

#[tokio::test]
async fn pkce_mismatch_is_invalid_grant() {
    let (o, _) = server();
    let (c, _) = client(&o, true).await;
    let code = code_for(&o, &c, true).await;
    let wrong = "x".repeat(43);
    assert!(matches!(
        o.exchange_code(&c, &code, None, Some(&wrong)).await,
        Err(OAuth2Error::InvalidGrant(_))
    ));
}

#[tokio::test]
async fn public_clients_need_s256() {
    let (o, _) = server();
    let (c, _) = client(&o, true).await;
    for p in [
        vec![
            ("client_id", c.client_id.as_str()),
            ("response_type", "code"),
        ],
        vec![
            ("client_id", c.client_id.as_str()),
            ("response_type", "code"),
            ("code_challenge", VERIFIER),
            ("code_challenge_method", "plain"),
        ],
    ] {
        let e = o.validate_authorization(&params(&p)).await.unwrap_err();
        let loc = e.location().expect("a redirect");
        assert!(loc.contains("error=invalid_request"), "{loc}");
    }
}

#[tokio::test]
async fn bad_client_or_redirect_uri_is_never_redirected() {
    let (o, _) = server();
    let (c, _) = client(&o, false).await;
    let e = o
        .validate_authorization(&params(&[
            ("client_id", &c.client_id),
            ("response_type", "code"),
            ("redirect_uri", "https://evil.example/cb"),
        ]))
        .await
        .unwrap_err();
    assert!(matches!(e, AuthorizeError::Fatal(_)));
    let e = o
        .validate_authorization(&params(&[("client_id", "nope"), ("response_type", "code")]))
        .await
        .unwrap_err();
    assert!(matches!(
        e,
        AuthorizeError::Fatal(OAuth2Error::InvalidClient)
    ));
}

#[tokio::test]
async fn a_stored_script_redirect_uri_is_never_redirected_to() {
    // A client written straight to the store (say, before registration
    // refused such URIs) with a scheme the browser would run.
    let store = MemoryOAuth2Store::new();
    let o = OAuth2::new(
        store.clone(),
        &SecretKey::new([9u8; 32]).unwrap(),
        OAuth2Settings::default(),
    );
    let (mut c, _) = client(&o, false).await;
    c.client_id = "legacy-client".into();
    c.redirect_uris = vec!["javascript:alert(1)".into()];
    store.create_client(&c).await.unwrap();
    let e = o
        .validate_authorization(&params(&[
            ("client_id", "legacy-client"),
            ("response_type", "code"),
            ("redirect_uri", "javascript:alert(1)"),
        ]))
        .await
        .unwrap_err();
    assert!(matches!(e, AuthorizeError::Fatal(_)), "{e:?}");
    let mut new = NewClient::confidential("app");
    new.redirect_uris = vec!["javascript:alert(1)".into()];
    assert!(o.register_client(new).await.is_err());
}

#[tokio::test]
async fn expired_codes_are_refused() {
    let (o, clock) = server();
    let (c, _) = client(&o, false).await;
    let code = code_for(&o, &c, false).await;
    clock.advance(Duration::from_secs(61));
    assert!(matches!(
        o.exchange_code(&c, &code, None, None).await,
        Err(OAuth2Error::InvalidGrant(_))
    ));
}

#[tokio::test]
async fn redirect_uri_named_in_the_request_must_be_repeated() {
    let (o, _) = server();
    let (c, _) = client(&o, false).await;
    let req = o
        .validate_authorization(&params(&[
            ("client_id", &c.client_id),
            ("response_type", "code"),
            ("redirect_uri", "https://app.example/cb"),
        ]))
        .await
        .unwrap();
    let loc = o.issue_code(&req, 1).await.unwrap();
    let code = loc.split_once("code=").unwrap().1.to_owned();
    assert!(matches!(
        o.exchange_code(&c, &code, None, None).await,
        Err(OAuth2Error::InvalidGrant(_))
    ));
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_family() {
    let (o, _) = server();
    let (c, _) = client(&o, false).await;
    let first = o
        .issue(&c, Some(1), &["read".to_owned()], None)
        .await
        .unwrap();
    let r1 = first.refresh_token.clone().unwrap();
    let (second, user) = o.refresh(&c, &r1, None).await.unwrap();
    assert_eq!(user, Some(1));
    assert_eq!(second.scope, "read");
    assert!(o
        .validate_access(&first.access_token)
        .await
        .unwrap()
        .is_none());
    assert!(o
        .validate_access(&second.access_token)
        .await
        .unwrap()
        .is_some());
    // Replaying the rotated token revokes everything of the family.
    assert!(o.refresh(&c, &r1, None).await.is_err());
    assert!(o
        .validate_access(&second.access_token)
        .await
        .unwrap()
        .is_none());
    let r2 = second.refresh_token.unwrap();
    assert!(o.refresh(&c, &r2, None).await.is_err());
}

#[tokio::test]
async fn refresh_cannot_widen_scope() {
    let (o, _) = server();
    let (c, _) = client(&o, false).await;
    let t = o
        .issue(&c, Some(1), &["read".to_owned()], None)
        .await
        .unwrap();
    assert!(matches!(
        o.refresh(&c, &t.refresh_token.unwrap(), Some("read write"))
            .await,
        Err(OAuth2Error::InvalidScope)
    ));
}

#[tokio::test]
async fn client_credentials_tokens_have_no_user_and_no_refresh() {
    let (o, _) = server();
    let (c, _) = client(&o, false).await;
    let t = o.client_credentials(&c, Some("write")).await.unwrap();
    assert!(t.refresh_token.is_none());
    assert_eq!(t.scope, "write");
    let row = o.validate_access(&t.access_token).await.unwrap().unwrap();
    assert_eq!(row.user_id, None);
    assert!(matches!(
        o.client_credentials(&c, Some("admin")).await,
        Err(OAuth2Error::InvalidScope)
    ));
}

#[tokio::test]
async fn revoke_and_introspect() {
    let (o, _) = server();
    let (c, _) = client(&o, false).await;
    let (other, _) = client(&o, false).await;
    let t = o
        .issue(&c, Some(1), &["read".to_owned()], None)
        .await
        .unwrap();
    assert!(o.introspect(&t.access_token).await.unwrap().is_some());
    // Another client's revocation is ignored.
    assert!(!o.revoke(&other, &t.access_token).await.unwrap());
    assert!(o.revoke(&c, &t.refresh_token.unwrap()).await.unwrap());
    assert!(o.introspect(&t.access_token).await.unwrap().is_none());
}

#[tokio::test]
async fn clear_expired_removes_old_rows() {
    let (o, clock) = server();
    let (c, _) = client(&o, false).await;
    o.client_credentials(&c, None).await.unwrap();
    assert_eq!(o.clear_expired().await.unwrap(), 0);
    clock.advance(Duration::from_secs(36_001));
    assert_eq!(o.clear_expired().await.unwrap(), 1);
}

#[test]
fn redirect_uris_are_checked() {
    for good in [
        "https://app.example/cb",
        "http://127.0.0.1:9/cb?x=1",
        "com.example.app:/callback",
    ] {
        assert!(check_redirect_uri(good).is_ok(), "{good}");
    }
    for bad in [
        "not a uri",
        "/relative",
        "https://app.example/cb#frag",
        "https:///nohost",
        "cb",
        "1x:/y",
        "javascript:alert(1)",
        "JavaScript://%0aalert(1)",
        "data:text/html,<script>alert(1)</script>",
        "vbscript:msgbox",
        "file:///etc/passwd",
        "myapp:/callback",
    ] {
        assert!(check_redirect_uri(bad).is_err(), "{bad}");
    }
}

#[test]
fn scopes_and_grants_parse() {
    assert_eq!(parse_scope(" read  write read"), vec!["read", "write"]);
    assert_eq!(
        GrantType::parse("refresh-token"),
        Some(GrantType::RefreshToken)
    );
    assert_eq!(GrantType::parse("password"), Some(GrantType::Password));
    assert_eq!(GrantType::parse("implicit"), None);
    assert!(valid_pkce(VERIFIER));
    assert!(!valid_pkce("short"));
}

mod over_http {
    use ::http::{Method, Request};
    use axum::body::Body;
    use axum::routing::get;
    use axum::Router;
    use tower::ServiceExt;

    use super::*;
    use crate::store::{MemoryStore, NewUser, UserAdmin};
    use crate::{IsAuthenticated, Permission, Policy, User};

    async fn setup(settings: OAuth2Settings) -> (OAuth2, MemoryStore, Client, i64) {
        let users = MemoryStore::new();
        let ada = users
            .create_user(NewUser {
                username: "ada".into(),
                is_active: true,
                ..Default::default()
            })
            .await
            .unwrap();
        let o = OAuth2::new(
            MemoryOAuth2Store::new(),
            &SecretKey::new([5u8; 32]).unwrap(),
            settings,
        );
        let (c, _) = o
            .register_client(NewClient::confidential("app"))
            .await
            .unwrap();
        (o, users, c, ada.id)
    }

    fn app(o: &OAuth2, users: &MemoryStore, p: impl Permission<User>) -> Router {
        let policy = Policy::<User>::new()
            .scheme(OAuth2Auth::new(o.clone(), users.clone()))
            .permission(p);
        Router::new()
            .route("/", get(|| async { "hi" }).post(|| async { "hi" }))
            .layer(policy.layer())
    }

    async fn status(app: &Router, req: Request<Body>) -> (u16, Option<String>) {
        let res = app.clone().oneshot(req).await.unwrap();
        let c = res
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned());
        (res.status().as_u16(), c)
    }

    fn bearer(method: &str, uri: &str, token: &str) -> Request<Body> {
        Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap()
    }

    #[tokio::test]
    async fn client_tokens_are_refused_where_a_user_is_needed() {
        let (o, users, c, _) = setup(OAuth2Settings::default()).await;
        let t = o.client_credentials(&c, None).await.unwrap();
        let app = app(&o, &users, IsAuthenticated);
        let (s, challenge) = status(&app, bearer("GET", "/", &t.access_token)).await;
        assert_eq!((s, challenge), (403, None));
    }

    #[tokio::test]
    async fn query_tokens_only_when_allowed_and_never_twice() {
        let (o, users, c, ada) = setup(OAuth2Settings::default()).await;
        let t = o.issue(&c, Some(ada), &c.scopes, None).await.unwrap();
        let uri = format!("/?access_token={}", t.access_token);
        let get = |uri: &str| Request::get(uri).body(Body::empty()).unwrap();
        let off = app(&o, &users, IsAuthenticated);
        assert_eq!(status(&off, get(&uri)).await.0, 401);

        let settings = OAuth2Settings {
            allow_query_token: true,
            ..OAuth2Settings::default()
        };
        let on_server = OAuth2 {
            settings,
            ..o.clone()
        };
        let on = app(&on_server, &users, IsAuthenticated);
        assert_eq!(status(&on, get(&uri)).await.0, 200);
        let (s, c) = status(&on, bearer("GET", &uri, &t.access_token)).await;
        assert_eq!(s, 401);
        assert!(c.unwrap().contains("error=\"invalid_request\""));
        let twice = format!("{uri}&access_token={}", t.access_token);
        let (s, c) = status(&on, get(&twice)).await;
        assert_eq!(s, 401);
        assert!(c.unwrap().contains("error=\"invalid_request\""));
        // Percent-encoded, the token is decoded before it is looked up.
        let (first, rest) = t.access_token.split_at(1);
        let encoded = format!("/?access_token=%{:02X}{rest}", first.as_bytes()[0]);
        assert_eq!(status(&on, get(&encoded)).await.0, 200);
    }

    #[tokio::test]
    async fn form_tokens_only_when_allowed_and_never_twice() {
        let (o, users, c, ada) = setup(OAuth2Settings::default()).await;
        let t = o.issue(&c, Some(ada), &c.scopes, None).await.unwrap();
        let post = |header: Option<&str>| {
            let mut b =
                Request::post("/").header("content-type", "application/x-www-form-urlencoded");
            if let Some(token) = header {
                b = b.header("authorization", format!("Bearer {token}"));
            }
            b.body(Body::from(format!("access_token={}", t.access_token)))
                .unwrap()
        };
        let off = app(&o, &users, IsAuthenticated);
        assert_eq!(status(&off, post(None)).await.0, 401);

        let on_server = OAuth2 {
            settings: OAuth2Settings {
                allow_form_token: true,
                ..OAuth2Settings::default()
            },
            ..o.clone()
        };
        let on = app(&on_server, &users, IsAuthenticated);
        assert_eq!(status(&on, post(None)).await.0, 200);
        let (s, c) = status(&on, post(Some(&t.access_token))).await;
        assert_eq!(s, 401);
        assert!(c.unwrap().contains("error=\"invalid_request\""));
    }

    /// Users and tokens side by side, counting the joined reads.
    #[derive(Clone)]
    struct SideBySide {
        users: MemoryStore,
        tokens: MemoryOAuth2Store,
        joined: Arc<std::sync::atomic::AtomicUsize>,
    }

    #[async_trait::async_trait]
    impl crate::store::UserStore for SideBySide {
        type User = User;
        async fn user_by_id(&self, id: i64) -> Result<Option<User>, StoreError> {
            self.users.user_by_id(id).await
        }
        async fn user_by_username(&self, name: &str) -> Result<Option<User>, StoreError> {
            self.users.user_by_username(name).await
        }
    }

    #[async_trait::async_trait]
    impl OAuth2UserStore for SideBySide {
        async fn oauth2_token_with_user(
            &self,
            digest: &str,
        ) -> Result<Option<(OAuth2Token, Option<User>)>, StoreError> {
            use crate::store::UserStore as _;
            self.joined
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let Some(t) = self.tokens.token(digest).await? else {
                return Ok(None);
            };
            let user = match t.user_id {
                Some(id) => self.users.user_by_id(id).await?,
                None => None,
            };
            Ok(Some((t, user)))
        }
    }

    #[tokio::test]
    async fn joined_reads_answer_as_two_reads_and_yield_to_a_token_cache() {
        let users = MemoryStore::new();
        let mut made = Vec::new();
        for (name, active) in [("ada", true), ("bob", false)] {
            let user = users
                .create_user(NewUser {
                    username: name.into(),
                    is_active: active,
                    ..Default::default()
                })
                .await
                .unwrap();
            made.push(user.id);
        }
        let tokens = MemoryOAuth2Store::new();
        let side = SideBySide {
            users: users.clone(),
            tokens: tokens.clone(),
            joined: Arc::default(),
        };
        let key = SecretKey::new([5u8; 32]).unwrap();
        let plain = OAuth2::new(tokens.clone(), &key, OAuth2Settings::default());
        let (c, _) = plain
            .register_client(NewClient::confidential("app"))
            .await
            .unwrap();
        let ada = plain
            .issue(&c, Some(made[0]), &c.scopes, None)
            .await
            .unwrap();
        let bob = plain
            .issue(&c, Some(made[1]), &c.scopes, None)
            .await
            .unwrap();
        let client = plain.client_credentials(&c, None).await.unwrap();
        let revoked = plain
            .issue(&c, Some(made[0]), &c.scopes, None)
            .await
            .unwrap();
        assert!(plain.revoke(&c, &revoked.access_token).await.unwrap());
        let refresh = ada.refresh_token.clone().unwrap();
        let cases = [
            (ada.access_token.as_str(), 200),
            (refresh.as_str(), 401),
            (bob.access_token.as_str(), 401),
            (client.access_token.as_str(), 403),
            (revoked.access_token.as_str(), 401),
            ("unknown", 401),
            (&*"x".repeat(300), 401),
        ];
        let serve = |o: &OAuth2| {
            let policy = Policy::<User>::new()
                .scheme(
                    OAuth2Auth::new(o.clone(), users.clone())
                        .with_joined_reads(Arc::new(side.clone())),
                )
                .permission(IsAuthenticated);
            Router::new()
                .route("/", get(|| async { "hi" }))
                .layer(policy.layer())
        };
        // Without a token cache: every request is one joined read.
        let app = serve(&plain);
        for (token, want) in &cases {
            let (got, _) = status(&app, bearer("GET", "/", token)).await;
            assert_eq!(got, *want, "{token}");
        }
        let joined = side.joined.load(std::sync::atomic::Ordering::SeqCst);
        assert_eq!(joined, cases.len() - 1, "the overlong token is never read");
        // With one: read through it (so it fills), never joined.
        let cached = OAuth2::new(
            CachedOAuth2Store::new(tokens.clone(), Duration::from_secs(60)),
            &key,
            OAuth2Settings::default(),
        );
        let app = serve(&cached);
        for (token, want) in &cases {
            let (got, _) = status(&app, bearer("GET", "/", token)).await;
            assert_eq!(got, *want, "{token}");
        }
        assert_eq!(
            side.joined.load(std::sync::atomic::Ordering::SeqCst),
            joined
        );
        let digest = cached.digest(&ada.access_token);
        assert!(cached.store().token_cached(&digest).is_some());
    }

    #[test]
    fn the_description_names_the_client_and_every_scope() {
        let token = |scopes: &[&str]| BearerToken::<User> {
            token: AccessToken {
                client_id: "app".into(),
                user_id: Some(1),
                scopes: scopes.iter().map(|s| s.to_string()).collect(),
                expires_at: None,
            },
            user: None,
        };
        assert_eq!(
            token(&["read", "write"]).description(),
            "oauth2 client=app scope=read write"
        );
        assert_eq!(
            token(&["read"]).description(),
            "oauth2 client=app scope=read"
        );
        assert_eq!(token(&[]).description(), "oauth2 client=app scope=");
    }

    #[tokio::test]
    async fn read_write_scope_follows_the_method() {
        let (o, users, c, ada) = setup(OAuth2Settings::default()).await;
        let read = o
            .issue(&c, Some(ada), &["read".to_owned()], None)
            .await
            .unwrap();
        let app = app(&o, &users, TokenHasReadWriteScope::new());
        assert_eq!(
            status(&app, bearer("GET", "/", &read.access_token)).await.0,
            200
        );
        assert_eq!(
            status(&app, bearer("POST", "/", &read.access_token))
                .await
                .0,
            403
        );
    }

    #[tokio::test]
    async fn oas_requirements_pick_alternatives_per_method() {
        let (o, users, c, ada) = setup(OAuth2Settings::default()).await;
        let read = o
            .issue(&c, Some(ada), &["read".to_owned()], None)
            .await
            .unwrap();
        let req = TokenMatchesOASRequirements::new()
            .allow(Method::GET, ["admin"])
            .allow(Method::GET, ["read"])
            .allow(Method::POST, ["read", "write"]);
        let app = app(&o, &users, req);
        assert_eq!(
            status(&app, bearer("GET", "/", &read.access_token)).await.0,
            200
        );
        assert_eq!(
            status(&app, bearer("POST", "/", &read.access_token))
                .await
                .0,
            403
        );
        let scoped = app_with_scope(&o, &users);
        assert_eq!(
            status(&scoped, bearer("GET", "/", &read.access_token))
                .await
                .0,
            403
        );
    }

    fn app_with_scope(o: &OAuth2, users: &MemoryStore) -> Router {
        app(o, users, TokenHasScope::new(["write"]))
    }

    #[tokio::test]
    async fn cached_access_tokens_are_answered_at_once_as_authenticate_would() {
        use crate::scheme::at_once::{answers_alike, cached_store_with_ada};
        use crate::scheme::{RequestHead, Scheme};
        let (users, ada) = cached_store_with_ada().await;
        let o = OAuth2::new(
            CachedOAuth2Store::new(MemoryOAuth2Store::new(), Duration::from_secs(60)),
            &SecretKey::new([5u8; 32]).unwrap(),
            OAuth2Settings::default(),
        );
        let (c, _) = o
            .register_client(NewClient::confidential("app"))
            .await
            .unwrap();
        let auth = OAuth2Auth::new(o.clone(), users);
        let t = o.issue(&c, Some(ada.id), &c.scopes, None).await.unwrap();
        let req = bearer("GET", "/", &t.access_token);
        let head = RequestHead::from_request(&req);

        assert!(auth.authenticate_now(&head).is_none(), "nothing cached yet");
        auth.authenticate(&head).await.unwrap();
        answers_alike(&auth, &head).await;

        // A client's own token: refused, at once as the full path does.
        let own = o.client_credentials(&c, None).await.unwrap();
        let req = bearer("GET", "/", &own.access_token);
        let own_head = RequestHead::from_request(&req);
        auth.authenticate(&own_head).await.unwrap_err();
        answers_alike(&auth, &own_head).await;

        // Revoked through the cached store: forgotten at once.
        assert!(o.revoke(&c, &t.access_token).await.unwrap());
        assert!(auth.authenticate_now(&head).is_none());
        assert!(auth.authenticate(&head).await.is_err());
    }
}
