//! `/auth/login/` and `/auth/logout/`: Django's `LoginView` and
//! `LogoutView` over portcullis sessions, with Django's CSRF rules.
//!
//! The login page is plain HTML with the fields `username`, `password`,
//! `csrfmiddlewaretoken` (and `next`). A successful POST rotates the
//! session key and the CSRF secret and redirects to `next` when it is a
//! local path (never another site: no open redirect), else to
//! `/api/whoami/`. Wrong credentials re-render the form with `200`.

use axum::extract::Request;
use axum::http::header::{
    HeaderName, HeaderValue, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, LOCATION,
    SET_COOKIE, VARY, X_FRAME_OPTIONS,
};
use axum::http::{Extensions, StatusCode};
use axum::response::Response;
use portcullis::scheme::csrf;
use portcullis::scheme::RequestHead;
use portcullis::{Identity, LoginOutcome};
use serde_json::json;

use super::respond::{detail, escape_html, json, read_body};
use super::{client_addr, forms, locked_out, store_error, AppStore, AppUser, Shared};

/// Where a login without a usable `next` goes.
const DEFAULT_NEXT: &str = "/api/whoami/";

/// Django's `AuthenticationForm` message for wrong credentials (and
/// inactive users, which its backend refuses the same way).
const INVALID_LOGIN: &str =
    "Please enter a correct username and password. Note that both fields may be case-sensitive.";

const REQUIRED: &str = "This field is required.";

/// `next` if it is a local path this site may redirect to: it starts with
/// one `/`, is printable ASCII without backslashes (which browsers read as
/// `/`), and is not overly long. Anything else is ignored, as Django's
/// `url_has_allowed_host_and_scheme` ignores foreign URLs.
pub(crate) fn safe_next(candidate: Option<&str>) -> Option<&str> {
    let c = candidate?;
    let ok = c.starts_with('/')
        && !c.starts_with("//")
        && c.len() <= 2048
        && c.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b'\\');
    ok.then_some(c)
}

fn query_next(req: &Request) -> Option<String> {
    let query = req.uri().query()?;
    form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k == "next")
        .map(|(_, v)| v.into_owned())
        .last()
}

/// What the form shows besides the token.
#[derive(Default)]
struct FormState<'a> {
    username: &'a str,
    next: Option<&'a str>,
    error: Option<&'a str>,
    username_error: Option<&'a str>,
    password_error: Option<&'a str>,
}

fn render(state: &FormState<'_>, token: &str) -> String {
    let error = state
        .error
        .map(|e| {
            format!(
                "<p class=\"errornote\" role=\"alert\">{}</p>\n",
                escape_html(e)
            )
        })
        .unwrap_or_default();
    let field_error = |e: Option<&str>| {
        e.map(|e| format!("<ul class=\"errorlist\"><li>{}</li></ul>\n", escape_html(e)))
            .unwrap_or_default()
    };
    let next = state
        .next
        .map(|n| {
            format!(
                "<input type=\"hidden\" name=\"next\" value=\"{}\">\n",
                escape_html(n)
            )
        })
        .unwrap_or_default();
    format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>Log in | portcullis</title>
<style>
body {{ margin: 0; min-height: 100vh; display: flex; align-items: center; justify-content: center;
       background: #f4f5f7; color: #1f2933;
       font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }}
main {{ background: #fff; width: 100%; max-width: 22rem; padding: 2rem 2.25rem 2.25rem;
       border-radius: 8px; box-shadow: 0 2px 14px rgba(15, 23, 42, .10); }}
h1 {{ font-size: 1.4rem; margin: 0 0 1.25rem; }}
label {{ display: block; font-size: .9rem; font-weight: 600; margin: 1rem 0 .35rem; }}
input[type=text], input[type=password] {{ width: 100%; box-sizing: border-box; padding: .6rem .7rem;
       border: 1px solid #cbd2d9; border-radius: 4px; font-size: 1rem; }}
input:focus {{ outline: 2px solid #2f6f8f; outline-offset: 1px; }}
button {{ margin-top: 1.5rem; width: 100%; padding: .7rem; border: 0; border-radius: 4px;
       background: #264b5d; color: #fff; font-size: 1rem; font-weight: 600; cursor: pointer; }}
button:hover, button:focus {{ background: #1b3746; }}
.errornote {{ margin: 0 0 .5rem; padding: .65rem .8rem; border: 1px solid #f1b5b2; border-radius: 4px;
       background: #fdecea; color: #a61b1b; font-size: .9rem; }}
.errorlist {{ margin: .35rem 0 0; padding: 0; list-style: none; color: #a61b1b; font-size: .85rem; }}
</style>
</head>
<body>
<main>
<h1>Log in</h1>
{error}<form method="post" action="/auth/login/" novalidate>
<input type="hidden" name="csrfmiddlewaretoken" value="{token}">
{next}<label for="id_username">Username</label>
<input type="text" name="username" id="id_username" value="{username}" maxlength="150" autocomplete="username" autocapitalize="none" autofocus required>
{username_error}<label for="id_password">Password</label>
<input type="password" name="password" id="id_password" autocomplete="current-password" required>
{password_error}<button type="submit">Log in</button>
</form>
</main>
</body>
</html>
"#,
        token = escape_html(token),
        username = escape_html(state.username),
        username_error = field_error(state.username_error),
        password_error = field_error(state.password_error),
    )
}

/// The login page with a CSRF cookie for `secret` and a masked token for it
/// in the form. Never cached, never framed.
fn page<S: AppStore>(shared: &Shared<S>, state: &FormState<'_>, secret: &str) -> Response {
    let html = render(state, &csrf::mask(secret));
    let mut res = Response::new(axum::body::Body::from(html));
    let h = res.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("max-age=0, no-cache, no-store, must-revalidate, private"),
    );
    h.insert(VARY, HeaderValue::from_static("Cookie"));
    h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        HeaderName::from_static("referrer-policy"),
        HeaderValue::from_static("same-origin"),
    );
    h.append(SET_COOKIE, csrf::cookie(&shared.csrf, secret));
    res
}

/// GET: the form. The request's CSRF secret is kept if it has a valid one
/// (Django's `get_token`), else a new one is issued.
pub(crate) async fn form<S: AppStore>(shared: &Shared<S>, req: Request) -> Response {
    let secret = shared
        .csrf
        .secret_from(&RequestHead::from_request(&req))
        .unwrap_or_else(csrf::new_secret);
    let next = query_next(&req);
    let state = FormState {
        next: safe_next(next.as_deref()),
        ..FormState::default()
    };
    page(shared, &state, &secret)
}

/// POST: CSRF check, then the credentials.
pub(crate) async fn submit<S: AppStore>(shared: &Shared<S>, req: Request) -> Response {
    let (method, uri, headers) = (
        req.method().clone(),
        req.uri().clone(),
        req.headers().clone(),
    );
    let query_next = query_next(&req);
    let client = client_addr(shared, &req);
    let body = match read_body(req).await {
        Ok(b) => b,
        Err(res) => return res,
    };
    let fields = match forms::form(&headers, body).await {
        Ok(f) => f,
        Err(res) => return res,
    };
    let extensions = Extensions::new();
    let head = RequestHead {
        method: &method,
        uri: &uri,
        headers: &headers,
        extensions: &extensions,
    };
    if let Err(reason) = shared
        .csrf
        .check(&head, forms::text(&fields, &shared.csrf.form_field))
    {
        return detail(StatusCode::FORBIDDEN, &format!("CSRF Failed: {reason}"));
    }
    // The check passed, so the cookie holds a valid secret.
    let secret = shared
        .csrf
        .secret_from(&head)
        .unwrap_or_else(csrf::new_secret);

    let next_field = forms::text(&fields, "next")
        .map(str::to_owned)
        .or(query_next);
    let next = safe_next(next_field.as_deref());
    let username = forms::text(&fields, "username").unwrap_or("").trim();
    let password = forms::text(&fields, "password").unwrap_or("");
    let mut state = FormState {
        username,
        next,
        ..FormState::default()
    };
    if username.is_empty() || password.is_empty() {
        state.username_error = username.is_empty().then_some(REQUIRED);
        state.password_error = password.is_empty().then_some(REQUIRED);
        return page(shared, &state, &secret);
    }
    let user = match shared
        .backend
        .authenticate_from(username, password, client)
        .await
    {
        Ok(LoginOutcome::Authenticated(user)) => user,
        // The lockout answers as an API would (`429` JSON, `Retry-After`),
        // not with the form: a browser shows the message, a script backs off.
        Ok(LoginOutcome::LockedOut { wait }) => return locked_out(wait),
        Ok(_) => {
            state.error = Some(INVALID_LOGIN);
            return page(shared, &state, &secret);
        }
        Err(e) => return store_error(e),
    };
    let old_key = head.cookie(&shared.sessions.config().cookie_name);
    let login = match shared.sessions.login(&user, old_key).await {
        Ok(l) => l,
        Err(e) => return store_error(e),
    };
    let target = next.unwrap_or(DEFAULT_NEXT);
    let mut res = Response::new(axum::body::Body::empty());
    *res.status_mut() = StatusCode::FOUND;
    let h = res.headers_mut();
    // `safe_next` only lets printable ASCII through, a valid header value.
    h.insert(
        LOCATION,
        HeaderValue::from_str(target).unwrap_or(HeaderValue::from_static(DEFAULT_NEXT)),
    );
    h.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("max-age=0, no-cache, no-store, must-revalidate, private"),
    );
    h.append(SET_COOKIE, login.session_cookie.clone());
    h.append(SET_COOKIE, login.csrf_cookie.clone());
    res
}

/// POST `/auth/logout/`: ends the session and clears its cookie. The
/// session scheme has already checked CSRF for a logged-in user; an
/// anonymous request is checked here, as Django's middleware checks every
/// POST. Answers `302` to a safe `next`, else `200` JSON.
pub(crate) async fn logout<S: AppStore>(
    shared: &Shared<S>,
    identity: Identity<AppUser>,
    req: Request,
) -> Response {
    let (method, uri, headers) = (
        req.method().clone(),
        req.uri().clone(),
        req.headers().clone(),
    );
    let query_next = query_next(&req);
    let body = match read_body(req).await {
        Ok(b) => b,
        Err(res) => return res,
    };
    let fields = match forms::form(&headers, body).await {
        Ok(f) => f,
        Err(res) => return res,
    };
    let extensions = Extensions::new();
    let head = RequestHead {
        method: &method,
        uri: &uri,
        headers: &headers,
        extensions: &extensions,
    };
    if !identity.is_authenticated() {
        if let Err(reason) = shared
            .csrf
            .check(&head, forms::text(&fields, &shared.csrf.form_field))
        {
            return detail(StatusCode::FORBIDDEN, &format!("CSRF Failed: {reason}"));
        }
    }
    let key = head
        .cookie(&shared.sessions.config().cookie_name)
        .unwrap_or("");
    let clear = match shared.sessions.logout(key).await {
        Ok(c) => c,
        Err(e) => return store_error(e),
    };
    let next_field = forms::text(&fields, "next")
        .map(str::to_owned)
        .or(query_next);
    let mut res = match safe_next(next_field.as_deref()).and_then(|n| HeaderValue::from_str(n).ok())
    {
        Some(location) => {
            let mut res = Response::new(axum::body::Body::empty());
            *res.status_mut() = StatusCode::FOUND;
            res.headers_mut().insert(LOCATION, location);
            res
        }
        None => json(StatusCode::OK, json!({ "detail": "Logged out." })),
    };
    res.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res.headers_mut().append(SET_COOKIE, clear);
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_safe() {
        for ok in ["/", "/api/whoami/", "/a?b=c&d=http://x"] {
            assert_eq!(safe_next(Some(ok)), Some(ok), "{ok}");
        }
        for bad in [
            "https://evil.example/",
            "//evil.example/",
            "/\\evil.example",
            "\\\\evil.example",
            "/\t/evil.example",
            "javascript:alert(1)",
            "evil.example",
            "",
            " /x",
            "/é",
        ] {
            assert_eq!(safe_next(Some(bad)), None, "{bad:?}");
        }
        assert_eq!(safe_next(None), None);
    }

    #[test]
    fn form_escapes_what_it_echoes() {
        let html = render(
            &FormState {
                username: "<script>",
                next: Some("/x\"y"),
                ..FormState::default()
            },
            "tok",
        );
        assert!(html.contains("&lt;script&gt;"));
        assert!(html.contains("/x&quot;y"));
        assert!(!html.contains("<script>"));
        for field in [
            "name=\"username\"",
            "name=\"password\"",
            "name=\"csrfmiddlewaretoken\"",
        ] {
            assert!(html.contains(field), "{field}");
        }
    }
}
