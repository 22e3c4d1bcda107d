//! A small axum app protected by portcullis: global defaults (Session, then
//! Basic; IsAuthenticated) and per-route overrides (Token only; staff only;
//! anyone).
//!
//! ```text
//! cargo run -p portcullis --example axum_app
//! curl -u ada:lovelace http://127.0.0.1:3000/items
//! curl -H "Authorization: Token $(the key printed at start)" http://127.0.0.1:3000/token-only
//! ```

use std::sync::Arc;

use axum::routing::get;
use axum::{Json, Router};
use portcullis::password::{HasherConfig, PasswordHasher};
use portcullis::scheme::basic::Basic;
use portcullis::scheme::session::{SessionAuth, Sessions};
use portcullis::scheme::token::{TokenAuth, Tokens};
use portcullis::store::{MemoryStore, NewUser, UserAdmin};
use portcullis::{
    AllowAny, CurrentUser, Identity, IsAdminUser, PasswordBackend, Policy, SecretKey, User,
};
use serde_json::{json, Value};

async fn items(CurrentUser(user): CurrentUser<User>) -> Json<Value> {
    Json(json!({ "owner": user.username, "items": ["a", "b"] }))
}

async fn whoami(id: Identity<User>) -> Json<Value> {
    Json(json!({ "user": id.username(), "is_authenticated": id.is_authenticated() }))
}

#[tokio::main]
async fn main() {
    let store = MemoryStore::new();
    let secret = SecretKey::new(SecretKey::generate_text()).expect("64 characters");
    let hasher = PasswordHasher::new(HasherConfig::default());
    let ada = store
        .create_user(NewUser {
            username: "ada".into(),
            password_hash: hasher.hash("lovelace").await.expect("hashing"),
            is_active: true,
            ..Default::default()
        })
        .await
        .expect("a new store has no ada");
    let tokens = Tokens::new(store.clone(), secret.clone());
    let (key, _) = tokens.get_or_create(ada.id).await.expect("token");
    println!("ada's token: {key}");

    // The project's defaults: DRF's DEFAULT_AUTHENTICATION_CLASSES and
    // DEFAULT_PERMISSION_CLASSES.
    let defaults = Policy::<User>::default()
        .scheme(SessionAuth::new(Sessions::new(store.clone(), secret)))
        .scheme(Basic::new(PasswordBackend::new(store, hasher)))
        .permission(portcullis::IsAuthenticated);

    let app = Router::new()
        .route("/items", get(items).layer(defaults.layer()))
        // Per-route overrides replace the defaults, as a DRF view's do.
        .route(
            "/token-only",
            get(items).layer(
                defaults
                    .clone()
                    .schemes(vec![Arc::new(TokenAuth::new(tokens))])
                    .layer(),
            ),
        )
        .route(
            "/staff",
            get(items).layer(defaults.clone().permission(IsAdminUser).layer()),
        )
        .route(
            "/whoami",
            get(whoami).layer(defaults.clone().permission(AllowAny).layer()),
        );

    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000")
        .await
        .expect("port 3000 is free");
    println!("listening on http://127.0.0.1:3000");
    axum::serve(listener, app).await.expect("server");
}
