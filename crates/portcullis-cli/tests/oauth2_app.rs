//! The OAuth2 routes over HTTP, every error path, on the in-memory store
//! and on SQLite, PostgreSQL and MariaDB (a fresh database per test; the
//! servers must be up: these tests fail, never skip).

#[allow(unused_macros)]
#[macro_use]
mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{send, Res, TestApp, SECRET};
use portcullis::oauth2::{
    Client, GrantType, MemoryOAuth2Store, NewClient, OAuth2, OAuth2Settings, OAuth2Store,
    OAuth2Token, OAuth2UserStore,
};
use portcullis::store::{StoreError, UserStore};
use portcullis::SecretKey;
use portcullis::User;
use portcullis_cli::app::{AppConfig, SharedOAuth2Store};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE};
use reqwest::StatusCode;
use serde_json::{json, Value};

const REDIRECT: &str = "https://client.example/cb";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
/// BASE64URL(SHA256(VERIFIER)), RFC 7636 appendix B.
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// The app and a server over the same OAuth2 store, to register clients.
struct Fx<S> {
    app: TestApp<S>,
    oauth2: OAuth2,
}

/// The app's OAuth2 store: a SQL store keeps the tokens beside the users
/// (as `serve` does, so OAuth2 Bearer joins them with the caches off);
/// the memory store gets a memory OAuth2 store of its own.
fn oauth2_store<S: 'static>(store: &S) -> (Arc<dyn OAuth2Store>, SharedOAuth2Store) {
    match (store as &dyn std::any::Any).downcast_ref::<portcullis_store::Store>() {
        Some(s) => (
            Arc::new(s.clone()),
            SharedOAuth2Store::with_users(s.clone()),
        ),
        None => {
            let memory = MemoryOAuth2Store::new();
            (Arc::new(memory.clone()), SharedOAuth2Store::new(memory))
        }
    }
}

async fn start<S: common::Store>(store: S) -> Fx<S> {
    start_with(store, |_| {}).await
}

async fn start_with<S: common::Store>(store: S, change: impl FnOnce(&mut AppConfig)) -> Fx<S> {
    let (o2, shared) = oauth2_store(&store);
    let mut settings = OAuth2Settings::default();
    let app = TestApp::start_with(store, |c| {
        c.oauth2_store = Some(shared);
        change(c);
        settings = c.oauth2.clone();
    })
    .await;
    let oauth2 = OAuth2::new(o2, &SecretKey::new(SECRET).unwrap(), settings);
    Fx { app, oauth2 }
}

impl<S: common::Store> Fx<S> {
    async fn client(&self, change: impl FnOnce(&mut NewClient)) -> (String, Option<String>) {
        let mut new = NewClient::confidential("Test client");
        new.redirect_uris = vec![REDIRECT.into()];
        new.grant_types = GrantType::ALL.to_vec();
        change(&mut new);
        let (c, secret) = self.oauth2.register_client(new).await.unwrap();
        (c.client_id, secret)
    }

    async fn token(&self, form: &[(&str, &str)]) -> Res {
        send(self.app.post("/oauth2/token/").form(form)).await
    }

    /// A client-credentials access token with `scope`.
    async fn client_token(&self, id: &str, secret: &str, scope: &str) -> String {
        let res = send(
            self.app
                .post("/oauth2/token/")
                .basic_auth(id, Some(secret))
                .form(&[("grant_type", "client_credentials"), ("scope", scope)]),
        )
        .await;
        assert_eq!(res.status, StatusCode::OK);
        res.json()["access_token"].as_str().unwrap().to_owned()
    }

    async fn password_token(&self, id: &str, secret: &str, scope: &str) -> Value {
        let res = self
            .token(&[
                ("grant_type", "password"),
                ("client_id", id),
                ("client_secret", secret),
                ("username", "ada"),
                ("password", "pw-ada"),
                ("scope", scope),
            ])
            .await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text());
        res.json()
    }

    async fn bearer(&self, path: &str, token: &str) -> Res {
        send(
            self.app
                .get(path)
                .header(AUTHORIZATION, format!("Bearer {token}")),
        )
        .await
    }

    /// Logs ada in and approves an authorization request; returns the
    /// redirect location.
    async fn authorize(&self, query: &[(&str, &str)]) -> String {
        let cookies = self.app.login("ada", "pw-ada").await;
        let url = format!("/oauth2/authorize/?{}", encode(query));
        let page = send(self.app.get(&url).header(COOKIE, cookies.header())).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text());
        let mut form: Vec<(String, String)> = hidden_fields(&page.text());
        // The contract's fields, each there even when the request left it
        // out (then empty).
        for field in [
            "client_id",
            "redirect_uri",
            "response_type",
            "state",
            "scope",
            "code_challenge",
            "code_challenge_method",
            "csrfmiddlewaretoken",
        ] {
            assert!(
                form.iter().any(|(k, _)| k == field),
                "{field} is missing from the consent form: {form:?}"
            );
        }
        form.push(("allow".into(), "Authorize".into()));
        let res = send(
            self.app
                .post("/oauth2/authorize/")
                .header(COOKIE, cookies.header())
                .form(&form),
        )
        .await;
        assert_eq!(res.status, StatusCode::FOUND, "{}", res.text());
        res.header("location").unwrap().to_owned()
    }
}

fn encode(pairs: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn hidden_fields(html: &str) -> Vec<(String, String)> {
    html.split("<input type=\"hidden\" name=\"")
        .skip(1)
        .map(|rest| {
            let (name, rest) = rest.split_once("\" value=\"").unwrap();
            let value = rest.split('"').next().unwrap();
            (name.to_owned(), unescape(value))
        })
        .collect()
}

fn query_param(location: &str, name: &str) -> Option<String> {
    let q = location.split_once('?')?.1;
    form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn error_of(res: &Res) -> String {
    res.json()["error"].as_str().unwrap_or_default().to_owned()
}

// ----- the tests -----

async fn token_endpoint_client_errors<S: common::Store>(store: S) {
    let fx = start(store).await;
    let (id, secret) = fx.client(|_| {}).await;
    let secret = secret.unwrap();
    // A wrong secret, in the body or by Basic: 401 with the Basic challenge.
    let res = fx
        .token(&[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_secret", "wrong"),
        ])
        .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert_eq!(res.header("www-authenticate"), Some("Basic realm=\"api\""));
    assert_eq!(error_of(&res), "invalid_client");
    assert!(!res.text().contains(&secret));
    let res = send(
        fx.app
            .post("/oauth2/token/")
            .basic_auth(&id, Some("wrong"))
            .form(&[("grant_type", "client_credentials")]),
    )
    .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    for (form, want) in [
        (vec![("grant_type", "client_credentials")], "invalid_client"),
        (
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", "nobody"),
                ("client_secret", "x"),
            ],
            "invalid_client",
        ),
        (
            vec![("client_id", id.as_str()), ("client_secret", &secret)],
            "invalid_request",
        ),
        (
            vec![
                ("grant_type", "implicit"),
                ("client_id", &id),
                ("client_secret", &secret),
            ],
            "unsupported_grant_type",
        ),
        (
            vec![
                ("grant_type", "client_credentials"),
                ("grant_type", "client_credentials"),
                ("client_id", &id),
                ("client_secret", &secret),
            ],
            "invalid_request",
        ),
        (
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", &id),
                ("client_secret", &secret),
                ("scope", "admin"),
            ],
            "invalid_scope",
        ),
    ] {
        let res = fx.token(&form).await;
        assert_eq!(error_of(&res), want, "{form:?}: {}", res.text());
        let status = if want == "invalid_client" { 401 } else { 400 };
        assert_eq!(res.status.as_u16(), status, "{form:?}");
        assert_eq!(res.header("cache-control"), Some("no-store"));
    }
    // Basic and a body secret together: one method only.
    let res = send(
        fx.app
            .post("/oauth2/token/")
            .basic_auth(&id, Some(&secret))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_secret", &secret),
            ]),
    )
    .await;
    assert_eq!(error_of(&res), "invalid_request");
    // Two Authorization headers, even the same good one twice: malformed.
    let basic = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("{id}:{secret}")
        )
    );
    let res = send(
        fx.app
            .post("/oauth2/token/")
            .header(AUTHORIZATION, &basic)
            .header(AUTHORIZATION, &basic)
            .form(&[("grant_type", "client_credentials")]),
    )
    .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST, "{}", res.text());
    assert_eq!(error_of(&res), "invalid_request");
    // JSON is not the token endpoint's format.
    let res = send(
        fx.app
            .post("/oauth2/token/")
            .header(CONTENT_TYPE, "application/json")
            .body(json!({"grant_type": "client_credentials"}).to_string()),
    )
    .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    assert_eq!(error_of(&res), "invalid_request");
    // GET is not allowed.
    let res = send(fx.app.get("/oauth2/token/")).await;
    assert_eq!(res.status, StatusCode::METHOD_NOT_ALLOWED);
    // The alias answers the same.
    let res = send(
        fx.app
            .post("/oauth2/access_token/")
            .basic_auth(&id, Some(&secret))
            .form(&[("grant_type", "client_credentials")]),
    )
    .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let body = res.json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 36000);
    assert_eq!(body["scope"], "read write");
    assert!(body.get("refresh_token").is_none());
}

async fn grants_the_client_is_not_allowed<S: common::Store>(store: S) {
    let fx = start(store).await;
    fx.app.user("ada", "pw-ada").await;
    let (id, secret) = fx
        .client(|c| c.grant_types = vec![GrantType::AuthorizationCode])
        .await;
    let secret = secret.unwrap();
    for grant in ["client_credentials", "password"] {
        let res = fx
            .token(&[
                ("grant_type", grant),
                ("client_id", &id),
                ("client_secret", &secret),
                ("username", "ada"),
                ("password", "pw-ada"),
            ])
            .await;
        assert_eq!(error_of(&res), "unauthorized_client", "{grant}");
    }
    // A client without refresh-token gets no refresh token.
    let (id, secret) = fx
        .client(|c| c.grant_types = vec![GrantType::Password])
        .await;
    let body = fx.password_token(&id, &secret.unwrap(), "read").await;
    assert!(body.get("refresh_token").is_none(), "{body}");
}

async fn password_grant_can_be_switched_off<S: common::Store>(store: S) {
    let fx = start_with(store, |c| c.oauth2.password_grant = false).await;
    fx.app.user("ada", "pw-ada").await;
    let (id, secret) = fx.client(|_| {}).await;
    let res = fx
        .token(&[
            ("grant_type", "password"),
            ("client_id", &id),
            ("client_secret", &secret.unwrap()),
            ("username", "ada"),
            ("password", "pw-ada"),
        ])
        .await;
    assert_eq!(error_of(&res), "unsupported_grant_type");
    let meta = send(fx.app.get("/.well-known/oauth-authorization-server"))
        .await
        .json();
    assert!(!meta["grant_types_supported"]
        .as_array()
        .unwrap()
        .contains(&json!("password")));
}

async fn password_grant_counts_towards_the_lockout<S: common::Store>(store: S) {
    let fx = start(store).await;
    fx.app.user("ada", "pw-ada").await;
    let (id, secret) = fx.client(|_| {}).await;
    let secret = secret.unwrap();
    let attempt = |pw: &'static str| {
        let (id, secret) = (id.clone(), secret.clone());
        let fx = &fx;
        async move {
            fx.token(&[
                ("grant_type", "password"),
                ("client_id", &id),
                ("client_secret", &secret),
                ("username", "ada"),
                ("password", pw),
            ])
            .await
        }
    };
    for _ in 0..5 {
        let res = attempt("wrong").await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST);
        assert_eq!(error_of(&res), "invalid_grant");
    }
    // Locked out: the right password too.
    let res = attempt("pw-ada").await;
    assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS, "{}", res.text());
    assert!(res.header("retry-after").is_some());
}

async fn authorization_code_flow_and_its_errors<S: common::Store>(store: S) {
    let fx = start(store).await;
    fx.app.user("ada", "pw-ada").await;
    let (id, _) = fx
        .client(|c| {
            c.public = true;
            c.grant_types = vec![GrantType::AuthorizationCode, GrantType::RefreshToken];
        })
        .await;
    let query = [
        ("client_id", id.as_str()),
        ("response_type", "code"),
        ("redirect_uri", REDIRECT),
        ("state", "st4te"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ];
    let location = fx.authorize(&query).await;
    assert!(location.starts_with(REDIRECT), "{location}");
    assert_eq!(query_param(&location, "state").as_deref(), Some("st4te"));
    let code = query_param(&location, "code").unwrap();
    let exchange = |code: String, verifier: &'static str, redirect: &'static str| {
        let id = id.clone();
        let fx = &fx;
        async move {
            fx.token(&[
                ("grant_type", "authorization_code"),
                ("client_id", &id),
                ("code", &code),
                ("redirect_uri", redirect),
                ("code_verifier", verifier),
            ])
            .await
        }
    };
    // A PKCE mismatch and a wrong redirect URI spend the code: RFC 6749's
    // single use, whatever the outcome.
    let res = exchange(code.clone(), "x".repeat(43).leak(), REDIRECT).await;
    assert_eq!(error_of(&res), "invalid_grant", "{}", res.text());
    let res = exchange(code, VERIFIER, REDIRECT).await;
    assert_eq!(error_of(&res), "invalid_grant");

    let code = query_param(&fx.authorize(&query).await, "code").unwrap();
    let res = exchange(code.clone(), VERIFIER, "https://client.example/other").await;
    assert_eq!(error_of(&res), "invalid_grant");

    // A good exchange, then the reuse that revokes what it gave.
    let code = query_param(&fx.authorize(&query).await, "code").unwrap();
    let res = exchange(code.clone(), VERIFIER, REDIRECT).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let tokens = res.json();
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    assert_eq!(fx.bearer("/oauth2/", &access).await.status, StatusCode::OK);
    let res = exchange(code, VERIFIER, REDIRECT).await;
    assert_eq!(error_of(&res), "invalid_grant");
    assert_eq!(
        fx.bearer("/oauth2/", &access).await.status,
        StatusCode::UNAUTHORIZED
    );
}

async fn expired_codes_and_tokens_are_refused<S: common::Store>(store: S) {
    // Zero lifetimes: everything is expired the moment it is issued.
    let fx = start_with(store, |c| {
        c.oauth2.code_lifetime = Duration::ZERO;
        c.oauth2.access_token_lifetime = Duration::ZERO;
    })
    .await;
    fx.app.user("ada", "pw-ada").await;
    let (id, secret) = fx.client(|_| {}).await;
    let secret = secret.unwrap();
    let location = fx
        .authorize(&[("client_id", &id), ("response_type", "code")])
        .await;
    let code = query_param(&location, "code").unwrap();
    let res = fx
        .token(&[
            ("grant_type", "authorization_code"),
            ("client_id", &id),
            ("client_secret", &secret),
            ("code", &code),
        ])
        .await;
    assert_eq!(error_of(&res), "invalid_grant", "{}", res.text());
    let body = fx.password_token(&id, &secret, "read").await;
    let res = fx
        .bearer("/oauth2/", body["access_token"].as_str().unwrap())
        .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
}

async fn authorize_page_errors<S: common::Store>(store: S) {
    let fx = start(store).await;
    fx.app.user("ada", "pw-ada").await;
    let (public, _) = fx
        .client(|c| {
            c.public = true;
            c.grant_types = vec![GrantType::AuthorizationCode];
        })
        .await;
    let (skip, _) = fx.client(|c| c.skip_authorization = true).await;
    // Not logged in: to the login page, and back here afterwards.
    let query = encode(&[("client_id", &public), ("response_type", "code")]);
    let res = send(fx.app.get(&format!("/oauth2/authorize/?{query}"))).await;
    assert_eq!(res.status, StatusCode::FOUND);
    let loc = res.header("location").unwrap();
    assert!(
        loc.starts_with("/auth/login/?next=%2Foauth2%2Fauthorize%2F%3F"),
        "{loc}"
    );

    let cookies = fx.app.login("ada", "pw-ada").await;
    let get = |pairs: Vec<(&str, &str)>| {
        let rb = fx
            .app
            .get(&format!("/oauth2/authorize/?{}", encode(&pairs)))
            .header(COOKIE, cookies.header());
        send(rb)
    };
    // A public client without PKCE, or with `plain`: back with an error.
    for extra in [
        vec![],
        vec![
            ("code_challenge", VERIFIER),
            ("code_challenge_method", "plain"),
        ],
    ] {
        let mut pairs = vec![("client_id", public.as_str()), ("response_type", "code")];
        pairs.extend(extra);
        let res = get(pairs).await;
        assert_eq!(res.status, StatusCode::FOUND);
        let loc = res.header("location").unwrap();
        assert!(loc.starts_with(REDIRECT), "{loc}");
        assert_eq!(
            query_param(loc, "error").as_deref(),
            Some("invalid_request")
        );
    }
    // An unregistered redirect URI or unknown client: shown, never followed.
    for pairs in [
        vec![
            ("client_id", public.as_str()),
            ("response_type", "code"),
            ("redirect_uri", "https://evil.example/cb"),
        ],
        vec![("client_id", "nobody"), ("response_type", "code")],
    ] {
        let res = get(pairs).await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST);
        assert!(res.header("location").is_none());
        assert!(!error_of(&res).is_empty());
    }
    // A trusted client skips the consent page.
    let res = get(vec![
        ("client_id", skip.as_str()),
        ("response_type", "code"),
    ])
    .await;
    assert_eq!(res.status, StatusCode::FOUND);
    assert!(query_param(res.header("location").unwrap(), "code").is_some());
    // Consent POST without its CSRF token: 403; "Cancel": access_denied.
    let page = get(vec![
        ("client_id", public.as_str()),
        ("response_type", "code"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
        ("state", "<s>"),
    ])
    .await;
    assert_eq!(page.status, StatusCode::OK);
    let text = page.text();
    assert!(!text.contains("<s>"), "state is escaped");
    let fields = hidden_fields(&text);
    let without: Vec<_> = fields
        .iter()
        .filter(|(k, _)| k != "csrfmiddlewaretoken")
        .cloned()
        .chain([("allow".to_owned(), "Authorize".to_owned())])
        .collect();
    let res = send(
        fx.app
            .post("/oauth2/authorize/")
            .header(COOKIE, cookies.header())
            .form(&without),
    )
    .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    let res = send(
        fx.app
            .post("/oauth2/authorize/")
            .header(COOKIE, cookies.header())
            .form(&fields),
    )
    .await;
    assert_eq!(res.status, StatusCode::FOUND);
    let loc = res.header("location").unwrap();
    assert_eq!(query_param(loc, "error").as_deref(), Some("access_denied"));
    assert_eq!(query_param(loc, "state").as_deref(), Some("<s>"));
}

async fn refresh_rotation_and_family_revocation<S: common::Store>(store: S) {
    let fx = start(store).await;
    fx.app.user("ada", "pw-ada").await;
    let (id, secret) = fx.client(|_| {}).await;
    let secret = secret.unwrap();
    let (other, other_secret) = fx.client(|_| {}).await;
    let first = fx.password_token(&id, &secret, "read write").await;
    let r1 = first["refresh_token"].as_str().unwrap().to_owned();
    // Another client cannot use it.
    let res = fx
        .token(&[
            ("grant_type", "refresh_token"),
            ("client_id", &other),
            ("client_secret", &other_secret.unwrap()),
            ("refresh_token", &r1),
        ])
        .await;
    assert_eq!(error_of(&res), "invalid_grant");
    let refresh = |token: String, scope: &'static str| {
        let (id, secret) = (id.clone(), secret.clone());
        let fx = &fx;
        async move {
            fx.token(&[
                ("grant_type", "refresh_token"),
                ("client_id", &id),
                ("client_secret", &secret),
                ("refresh_token", &token),
                ("scope", scope),
            ])
            .await
        }
    };
    // A wider scope than granted: refused.
    assert_eq!(
        error_of(&refresh(r1.clone(), "read write admin").await),
        "invalid_scope"
    );
    let res = refresh(r1.clone(), "read").await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let second = res.json();
    assert_eq!(second["scope"], "read");
    let a1 = first["access_token"].as_str().unwrap();
    let a2 = second["access_token"].as_str().unwrap();
    assert_eq!(
        fx.bearer("/oauth2/", a1).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(fx.bearer("/oauth2/", a2).await.status, StatusCode::OK);
    // The rotated token comes back: the whole family goes.
    assert_eq!(error_of(&refresh(r1, "").await), "invalid_grant");
    assert_eq!(
        fx.bearer("/oauth2/", a2).await.status,
        StatusCode::UNAUTHORIZED
    );
    let r2 = second["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(error_of(&refresh(r2, "").await), "invalid_grant");
}

async fn bearer_routes_and_challenges<S: common::Store>(store: S) {
    let fx = start(store).await;
    let ada = fx.app.user("ada", "pw-ada").await;
    let (id, secret) = fx.client(|_| {}).await;
    let secret = secret.unwrap();
    // No token: 401 with the plain challenge.
    for path in ["/oauth2/", "/oauth2/scoped/", "/oauth2/client/"] {
        let res = send(fx.app.get(path)).await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(res.header("www-authenticate"), Some("Bearer realm=\"api\""));
        assert!(!res.detail().is_empty());
    }
    // A bad token: invalid_token.
    let res = fx.bearer("/oauth2/", "not-a-token").await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        res.header("www-authenticate"),
        Some("Bearer realm=\"api\", error=\"invalid_token\"")
    );
    let res = send(
        fx.app
            .get("/oauth2/")
            .header(AUTHORIZATION, "Bearer two words"),
    )
    .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert!(res
        .header("www-authenticate")
        .unwrap()
        .contains("error=\"invalid_request\""));
    let res = send(
        fx.app
            .get("/oauth2/")
            .header(AUTHORIZATION, common::raw(b"Bearer \xff\xfe")),
    )
    .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    let long = "a".repeat(10_000);
    assert_eq!(
        fx.bearer("/oauth2/", &long).await.status,
        StatusCode::UNAUTHORIZED
    );
    // The query form is off by default.
    let read = fx.password_token(&id, &secret, "read").await;
    let token = read["access_token"].as_str().unwrap();
    let res = send(fx.app.get(&format!("/oauth2/?access_token={token}"))).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    // A user token: every method at /oauth2/, never echoing the token.
    for m in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
        let res = send(
            fx.app
                .req(m.parse().unwrap(), "/oauth2/")
                .header(AUTHORIZATION, format!("Bearer {token}")),
        )
        .await;
        assert_eq!(res.status, StatusCode::OK, "{m}");
        let body = res.json();
        assert_eq!(body["user"], "ada");
        assert!(!res.text().contains(token));
    }
    // Without `write`: 403 with RFC 6750's insufficient_scope.
    let res = fx.bearer("/oauth2/scoped/", token).await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert_eq!(
        res.header("www-authenticate"),
        Some("Bearer realm=\"api\", error=\"insufficient_scope\", scope=\"write\"")
    );
    let write = fx.password_token(&id, &secret, "write").await;
    let res = fx
        .bearer("/oauth2/scoped/", write["access_token"].as_str().unwrap())
        .await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.json()["user"], "ada");
    // A client-credentials token: refused at /oauth2/ (403), welcome at
    // /oauth2/client/ and, with `write`, at /oauth2/scoped/.
    let cc = fx.client_token(&id, &secret, "write").await;
    let res = fx.bearer("/oauth2/", &cc).await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert!(res.header("www-authenticate").is_none());
    let res = fx.bearer("/oauth2/client/", &cc).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.json(), json!({"client_id": id, "scope": "write"}));
    let res = fx.bearer("/oauth2/scoped/", &cc).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.json()["user"], Value::Null);
    // An inactive user's token stops working.
    fx.app.store.set_active(ada.id, false).await.unwrap();
    let res = common::within_a_second(StatusCode::UNAUTHORIZED, || {
        fx.app
            .get("/oauth2/")
            .header(AUTHORIZATION, format!("Bearer {token}"))
    })
    .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
}

/// With the caches off, every Bearer request reads the database (the SQL
/// stores: token and user in one joined query), so each change shows at
/// once.
async fn bearer_with_the_caches_off<S: common::Store>(store: S) {
    let fx = start_with(store, |c| c.cache_ttl = Duration::ZERO).await;
    let ada = fx.app.user("ada", "pw-ada").await;
    let (id, secret) = fx.client(|_| {}).await;
    let secret = secret.unwrap();
    let t = fx.password_token(&id, &secret, "read write").await;
    let token = t["access_token"].as_str().unwrap().to_owned();
    for _ in 0..3 {
        let res = fx.bearer("/oauth2/", &token).await;
        assert_eq!(res.status, StatusCode::OK);
        assert_eq!(res.json()["user"], "ada");
    }
    let cc = fx.client_token(&id, &secret, "write").await;
    assert_eq!(
        fx.bearer("/oauth2/", &cc).await.status,
        StatusCode::FORBIDDEN
    );
    let res = fx.bearer("/oauth2/client/", &cc).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.json(), json!({"client_id": id, "scope": "write"}));
    assert_eq!(
        fx.bearer("/oauth2/", "unknown").await.status,
        StatusCode::UNAUTHORIZED
    );
    // Deactivation and revocation apply to the very next request.
    fx.app.store.set_active(ada.id, false).await.unwrap();
    assert_eq!(
        fx.bearer("/oauth2/", &token).await.status,
        StatusCode::UNAUTHORIZED
    );
    fx.app.store.set_active(ada.id, true).await.unwrap();
    assert_eq!(fx.bearer("/oauth2/", &token).await.status, StatusCode::OK);
    let res = send(fx.app.post("/oauth2/revoke/").form(&[
        ("token", token.as_str()),
        ("client_id", id.as_str()),
        ("client_secret", secret.as_str()),
    ]))
    .await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(
        fx.bearer("/oauth2/", &token).await.status,
        StatusCode::UNAUTHORIZED
    );
}

async fn introspect_and_revoke<S: common::Store>(store: S) {
    let fx = start(store).await;
    fx.app.user("ada", "pw-ada").await;
    let (id, secret) = fx.client(|_| {}).await;
    let secret = secret.unwrap();
    let (other, other_secret) = fx.client(|_| {}).await;
    let other_secret = other_secret.unwrap();
    let (public, _) = fx
        .client(|c| {
            c.public = true;
            c.grant_types = vec![GrantType::AuthorizationCode];
        })
        .await;
    let t = fx.password_token(&id, &secret, "read").await;
    let access = t["access_token"].as_str().unwrap().to_owned();
    let introspect = |cid: String, csecret: Option<String>, token: String| {
        let fx = &fx;
        async move {
            let mut form = vec![("token", token), ("client_id", cid)];
            if let Some(s) = csecret {
                form.push(("client_secret", s));
            }
            send(fx.app.post("/oauth2/introspect/").form(&form)).await
        }
    };
    let res = introspect(other.clone(), Some(other_secret.clone()), access.clone()).await;
    assert_eq!(res.status, StatusCode::OK);
    let body = res.json();
    assert_eq!(body["active"], true);
    assert_eq!(body["username"], "ada");
    assert_eq!(body["client_id"], id.as_str());
    assert_eq!(body["scope"], "read");
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["exp"].as_i64().unwrap() > 0);
    let res = introspect(other.clone(), Some("bad".into()), access.clone()).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_of(&res), "invalid_client");
    assert_eq!(res.header("www-authenticate"), Some("Basic realm=\"api\""));
    let res = introspect(public.clone(), None, access.clone()).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    let res = introspect(other.clone(), Some(other_secret.clone()), "nope".into()).await;
    assert_eq!(res.json(), json!({"active": false}));

    // Revocation by another client is ignored (200, nothing happens).
    let revoke = |cid: String, csecret: String, token: String| {
        let fx = &fx;
        async move {
            send(fx.app.post("/oauth2/revoke/").form(&[
                ("token", token),
                ("client_id", cid),
                ("client_secret", csecret),
            ]))
            .await
        }
    };
    let res = revoke(other.clone(), other_secret.clone(), access.clone()).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(fx.bearer("/oauth2/", &access).await.status, StatusCode::OK);
    let res = revoke(id.clone(), "bad".into(), access.clone()).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    let res = revoke(id.clone(), secret.clone(), access.clone()).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(
        fx.bearer("/oauth2/", &access).await.status,
        StatusCode::UNAUTHORIZED
    );
    let res = introspect(other, Some(other_secret), access).await;
    assert_eq!(res.json(), json!({"active": false}));
    let res = send(
        fx.app
            .post("/oauth2/revoke/")
            .form(&[("client_id", id.as_str()), ("client_secret", &secret)]),
    )
    .await;
    assert_eq!(error_of(&res), "invalid_request");
}

async fn metadata_names_the_endpoints<S: common::Store>(store: S) {
    let fx = start(store).await;
    let res = send(fx.app.get("/.well-known/oauth-authorization-server")).await;
    assert_eq!(res.status, StatusCode::OK);
    let m = res.json();
    let issuer = m["issuer"].as_str().unwrap().to_owned();
    assert_eq!(issuer, fx.app.base);
    assert_eq!(m["token_endpoint"], format!("{issuer}/oauth2/token/"));
    assert_eq!(
        m["authorization_endpoint"],
        format!("{issuer}/oauth2/authorize/")
    );
    assert_eq!(
        m["introspection_endpoint"],
        format!("{issuer}/oauth2/introspect/")
    );
    assert_eq!(m["revocation_endpoint"], format!("{issuer}/oauth2/revoke/"));
    assert_eq!(m["response_types_supported"], json!(["code"]));
    assert!(m["code_challenge_methods_supported"]
        .as_array()
        .unwrap()
        .contains(&json!("S256")));
}

/// A SQL store that counts its joined reads.
#[derive(Clone)]
struct Counting {
    store: portcullis_store::Store,
    joined: Arc<AtomicUsize>,
}

#[async_trait::async_trait]
impl UserStore for Counting {
    type User = User;
    async fn user_by_id(&self, id: i64) -> Result<Option<User>, StoreError> {
        self.store.user_by_id(id).await
    }
    async fn user_by_username(&self, name: &str) -> Result<Option<User>, StoreError> {
        self.store.user_by_username(name).await
    }
}

#[async_trait::async_trait]
impl OAuth2UserStore for Counting {
    async fn oauth2_token_with_user(
        &self,
        digest: &str,
    ) -> Result<Option<(OAuth2Token, Option<User>)>, StoreError> {
        self.joined.fetch_add(1, Ordering::SeqCst);
        self.store.oauth2_token_with_user(digest).await
    }
}

#[async_trait::async_trait]
impl OAuth2Store for Counting {
    async fn create_client(&self, client: &Client) -> Result<(), StoreError> {
        self.store.create_client(client).await
    }
    async fn client(&self, client_id: &str) -> Result<Option<Client>, StoreError> {
        self.store.client(client_id).await
    }
    async fn clients(&self) -> Result<Vec<Client>, StoreError> {
        self.store.clients().await
    }
    async fn delete_client(&self, client_id: &str) -> Result<bool, StoreError> {
        self.store.delete_client(client_id).await
    }
    async fn insert_token(&self, token: &OAuth2Token) -> Result<(), StoreError> {
        self.store.insert_token(token).await
    }
    async fn token(&self, digest: &str) -> Result<Option<OAuth2Token>, StoreError> {
        self.store.token(digest).await
    }
    async fn consume_token(&self, digest: &str) -> Result<bool, StoreError> {
        self.store.consume_token(digest).await
    }
    async fn revoke_family(&self, family: &str) -> Result<u64, StoreError> {
        self.store.revoke_family(family).await
    }
    async fn clear_expired(&self, now: chrono::DateTime<chrono::Utc>) -> Result<u64, StoreError> {
        self.store.clear_expired(now).await
    }
}

/// `SharedOAuth2Store::with_users` reaches the Bearer scheme: with the
/// caches off every request is one joined read; with them on, none is
/// (tokens are read through the cache, which fills).
#[tokio::test]
async fn the_app_joins_token_and_user_only_with_the_caches_off() {
    for (ttl, joins) in [(Duration::ZERO, true), (Duration::from_secs(60), false)] {
        let store = sqlite_store().await;
        let counting = Counting {
            store: store.clone(),
            joined: Arc::default(),
        };
        let shared = SharedOAuth2Store::with_users(counting.clone());
        let fx = start_with(store, |c| {
            c.cache_ttl = ttl;
            c.oauth2_store = Some(shared);
        })
        .await;
        fx.app.user("ada", "pw-ada").await;
        let (id, secret) = fx.client(|_| {}).await;
        let t = fx.password_token(&id, &secret.unwrap(), "read").await;
        let token = t["access_token"].as_str().unwrap();
        for _ in 0..3 {
            let res = fx.bearer("/oauth2/", token).await;
            assert_eq!(res.status, StatusCode::OK);
            assert_eq!(res.json()["user"], "ada");
        }
        let n = counting.joined.load(Ordering::SeqCst);
        assert_eq!(n, if joins { 3 } else { 0 }, "cache TTL {ttl:?}");
    }
}

/// One `#[tokio::test]` a behaviour, for one store.
macro_rules! oauth2_suite {
    ($suite:ident, $factory:expr) => {
        mod $suite {
            #[allow(unused_imports)]
            use super::*;
            oauth2_suite!(@tests $factory;
                token_endpoint_client_errors,
                grants_the_client_is_not_allowed,
                password_grant_can_be_switched_off,
                password_grant_counts_towards_the_lockout,
                authorization_code_flow_and_its_errors,
                expired_codes_and_tokens_are_refused,
                authorize_page_errors,
                refresh_rotation_and_family_revocation,
                bearer_routes_and_challenges,
                bearer_with_the_caches_off,
                introspect_and_revoke,
                metadata_names_the_endpoints,
            );
        }
    };
    (@tests $factory:expr; $($test:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $test() {
                let store = ($factory)().await;
                super::$test(store).await;
            }
        )*
    };
}

async fn memory_store() -> portcullis::store::MemoryStore {
    portcullis::store::MemoryStore::new()
}

async fn migrated(url: String) -> portcullis_store::Store {
    let store = portcullis_store::Store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    store
}

async fn sqlite_store() -> portcullis_store::Store {
    // The directory must outlive the test; it is in the system temp dir.
    let dir = tempfile::tempdir().unwrap().keep();
    migrated(portcullis_store::testing::fresh_sqlite_url(&dir)).await
}

async fn postgres_store() -> portcullis_store::Store {
    migrated(portcullis_store::testing::fresh_postgres_url().await).await
}

async fn mariadb_store() -> portcullis_store::Store {
    migrated(portcullis_store::testing::fresh_mysql_url().await).await
}

oauth2_suite!(memory, memory_store);
oauth2_suite!(sqlite, sqlite_store);
oauth2_suite!(postgres, postgres_store);
oauth2_suite!(mariadb, mariadb_store);
