//! `/auth-token/`: DRF's `obtain_auth_token` view and its
//! `AuthTokenSerializer`, field messages and all.
//!
//! POST `username` and `password` as JSON, a URL-encoded form or a
//! multipart form; the answer is `200 {"token": KEY}` with the user's
//! existing token if there is one (DRF's `get_or_create`). The key is only
//! ever shown here: the store holds a keyed hash and a sealed copy.
//!
//! Unlike DRF, the view sits behind the login lockout: too many failures
//! for the username or from the address answer `429` with `Retry-After`.

use axum::extract::Request;
use axum::http::header::{HeaderValue, CACHE_CONTROL};
use axum::http::StatusCode;
use axum::response::Response;
use portcullis::LoginOutcome;
use serde_json::{json, Map, Value};

use super::respond::{json, read_body};
use super::{client_addr, forms, locked_out, store_error, AppStore, Shared};

/// DRF's `AuthTokenSerializer` message for wrong credentials.
const UNABLE_TO_LOG_IN: &str = "Unable to log in with provided credentials.";

/// The view.
pub(crate) async fn obtain<S: AppStore>(shared: &Shared<S>, req: Request) -> Response {
    let headers = req.headers().clone();
    let client = client_addr(shared, &req);
    let body = match read_body(req).await {
        Ok(b) => b,
        Err(res) => return res,
    };
    let data = match forms::data(&headers, body).await {
        Ok(d) => d,
        Err(res) => return res,
    };
    let (username, password) = match validate(&data) {
        Ok(creds) => creds,
        Err(errors) => return json(StatusCode::BAD_REQUEST, errors),
    };
    let outcome = shared
        .backend
        .authenticate_from(&username, &password, client)
        .await;
    let user = match outcome {
        Ok(LoginOutcome::Authenticated(user)) => user,
        Ok(LoginOutcome::LockedOut { wait }) => return locked_out(wait),
        Ok(_) => {
            return json(
                StatusCode::BAD_REQUEST,
                json!({ "non_field_errors": [UNABLE_TO_LOG_IN] }),
            )
        }
        Err(e) => return store_error(e),
    };
    match shared.tokens.get_or_create(user.id).await {
        Ok((key, _created)) => {
            let mut res = json(StatusCode::OK, json!({ "token": key }));
            res.headers_mut()
                .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            res
        }
        Err(e) => store_error(e),
    }
}

/// The serializer: both fields, or DRF's error object.
pub(super) fn validate(data: &Value) -> Result<(String, String), Value> {
    let fields = match data {
        Value::Object(m) => m,
        Value::Null => {
            return Err(json!({ "non_field_errors": ["This field may not be null."] }));
        }
        other => {
            return Err(json!({
                "non_field_errors": [format!(
                    "Invalid data. Expected a dictionary, but got {}.",
                    python_type(other)
                )]
            }));
        }
    };
    let username = char_field(fields, "username", true);
    let password = char_field(fields, "password", false);
    match (username, password) {
        (Ok(u), Ok(p)) => Ok((u, p)),
        (u, p) => {
            let mut errors = Map::new();
            if let Err(e) = u {
                errors.insert("username".into(), json!([e]));
            }
            if let Err(e) = p {
                errors.insert("password".into(), json!([e]));
            }
            Err(Value::Object(errors))
        }
    }
}

/// DRF's `CharField(allow_blank=False)` with `trim_whitespace` as given.
fn char_field(fields: &Map<String, Value>, name: &str, trim: bool) -> Result<String, &'static str> {
    let value = match fields.get(name) {
        None => return Err("This field is required."),
        Some(Value::Null) => return Err("This field may not be null."),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(_) => return Err("Not a valid string."),
    };
    if value.is_empty() || (trim && value.trim().is_empty()) {
        return Err("This field may not be blank.");
    }
    if value.contains('\0') {
        return Err("Null characters are not allowed.");
    }
    Ok(if trim { value.trim().to_owned() } else { value })
}

/// The Python type name DRF's message uses.
fn python_type(v: &Value) -> &'static str {
    match v {
        Value::Array(_) => "list",
        Value::String(_) => "str",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::Null => "NoneType",
        Value::Object(_) => "dict",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_fields_are_required() {
        let e = validate(&json!({})).unwrap_err();
        assert_eq!(
            e,
            json!({"username": ["This field is required."], "password": ["This field is required."]})
        );
    }

    #[test]
    fn username_is_trimmed_password_is_not() {
        let (u, p) = validate(&json!({"username": " ada ", "password": " pw "})).unwrap();
        assert_eq!(u, "ada");
        assert_eq!(p, " pw ");
        let e = validate(&json!({"username": "   ", "password": "x"})).unwrap_err();
        assert_eq!(e, json!({"username": ["This field may not be blank."]}));
    }

    #[test]
    fn odd_types() {
        let e = validate(&json!({"username": null, "password": [1]})).unwrap_err();
        assert_eq!(
            e,
            json!({"username": ["This field may not be null."], "password": ["Not a valid string."]})
        );
        let (u, _) = validate(&json!({"username": 42, "password": "x"})).unwrap();
        assert_eq!(u, "42");
        let e = validate(&json!([1, 2])).unwrap_err();
        assert_eq!(
            e,
            json!({"non_field_errors": ["Invalid data. Expected a dictionary, but got list."]})
        );
    }

    #[test]
    fn null_characters_refused() {
        let e = validate(&json!({"username": "a\u{0}b", "password": "x"})).unwrap_err();
        assert_eq!(e, json!({"username": ["Null characters are not allowed."]}));
    }
}
