//! The HTTP Message Signatures route (REFERENCE-APP.md, "Signed-request
//! schemes"): `/httpsig/`, [`HttpSigAuth`] only.
//!
//! A `401` carries `WWW-Authenticate: Signature realm="api"` and an
//! `Accept-Signature` field naming what a signature must cover:
//! `@method`, `@target-uri`, `@authority`, and `content-digest` for a
//! request with a body. Keys come from
//! [`AppConfig::signature_keys`](super::AppConfig::signature_keys)
//! (`portcullis add-signature-key`); nonces go to
//! [`AppConfig::replay`](super::AppConfig::replay).

use std::fmt;
use std::sync::Arc;

use axum::extract::Request;
use axum::http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use axum::http::{HeaderName, StatusCode};
use axum::middleware::{self, Next};
use axum::Router;
use portcullis::replay::ReplayCache;
use portcullis::scheme::httpsig::{
    HttpSigAuth, HttpSigConfig, MemorySignatureKeys, SignatureKeyRecord, SignatureKeyStore,
};
use portcullis::scheme::Scheme;
use portcullis::store::{StoreError, UserStore};
use portcullis::{Policy, SecretKey};

use super::views::{self as app_views, ViewInfo};
use super::AppUser;

/// Where the app finds signature keys
/// ([`AppConfig::signature_keys`](super::AppConfig::signature_keys)): any
/// [`SignatureKeyStore`], e.g. a `portcullis_store::Store`.
#[derive(Clone)]
pub struct SharedSignatureKeys(Arc<dyn SignatureKeyStore>);

impl SharedSignatureKeys {
    /// Wraps a key store.
    pub fn new(keys: impl SignatureKeyStore) -> Self {
        SharedSignatureKeys(Arc::new(keys))
    }
}

impl fmt::Debug for SharedSignatureKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedSignatureKeys(..)")
    }
}

#[async_trait::async_trait]
impl SignatureKeyStore for SharedSignatureKeys {
    async fn signature_key(&self, key_id: &str) -> Result<Option<SignatureKeyRecord>, StoreError> {
        self.0.signature_key(key_id).await
    }
    async fn add_signature_key(&self, key: &SignatureKeyRecord) -> Result<(), StoreError> {
        self.0.add_signature_key(key).await
    }
}

/// The `/httpsig/` route, to merge into the app.
pub(crate) fn routes<S>(
    users: S,
    keys: Option<&SharedSignatureKeys>,
    secret: &SecretKey,
    replay: Arc<dyn ReplayCache>,
    config: HttpSigConfig,
    defaults: &Policy<AppUser>,
) -> Router
where
    S: UserStore<User = AppUser> + Clone,
{
    let keys = keys
        .cloned()
        .unwrap_or_else(|| SharedSignatureKeys::new(MemorySignatureKeys::new()));
    let accept = config.clone();
    let scheme: Arc<dyn Scheme<AppUser>> = Arc::new(HttpSigAuth::new(
        users,
        keys,
        secret.clone(),
        replay,
        config,
    ));
    Router::new().route(
        "/httpsig/",
        app_views::protected(
            ViewInfo {
                name: "HTTP Signature",
                description: "HTTP Message Signatures (RFC 9421) only.",
            },
            &defaults.clone().schemes(vec![scheme]),
        )
        .layer(middleware::from_fn(move |req: Request, next: Next| {
            let accept = accept.clone();
            async move {
                let with_body = has_body(&req);
                let mut res = next.run(req).await;
                if res.status() == StatusCode::UNAUTHORIZED {
                    res.headers_mut().insert(
                        HeaderName::from_static("accept-signature"),
                        accept.accept_signature(with_body),
                    );
                }
                res
            }
        })),
    )
}

/// Whether the request carries a body (a positive `Content-Length`, or a
/// chunked one).
fn has_body(req: &Request) -> bool {
    req.headers().contains_key(TRANSFER_ENCODING)
        || req
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .is_some_and(|n| n > 0)
}
