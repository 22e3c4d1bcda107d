//! The reference app over real HTTP (REFERENCE-APP.md, "HTTP routes"):
//! every route, scheme and rule, run against each store. Another store
//! joins with one more `app_suite!` line (here or in its own test file).

#[macro_use]
mod common;

use common::{send, TestApp};
use portcullis::store::MemoryStore;
use reqwest::header::AUTHORIZATION;
use reqwest::StatusCode;

async fn memory_store() -> MemoryStore {
    MemoryStore::new()
}

app_suite!(memory, memory_store);

/// Store failures fail closed, as JSON, without details: only the memory
/// store can be switched off on demand.
#[tokio::test]
async fn store_down_is_503_json() {
    let store = MemoryStore::new();
    let app = TestApp::start(store.clone()).await;
    app.user("ada", "lovelace").await;
    store.set_down(true);
    let res = send(app.get("/ready/")).await;
    assert_eq!(res.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.json()["detail"].is_string());
    assert_eq!(send(app.get("/health/")).await.status, StatusCode::OK);
    let res = send(
        app.get("/basic/")
            .header(AUTHORIZATION, common::basic("ada", "lovelace")),
    )
    .await;
    assert_eq!(res.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(!res.text().contains("memory store"));
    let res = send(
        app.post("/auth-token/")
            .form(&[("username", "ada"), ("password", "lovelace")]),
    )
    .await;
    assert_eq!(res.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.json()["detail"].is_string());
    store.set_down(false);
    assert_eq!(send(app.get("/ready/")).await.status, StatusCode::OK);
}
