//! Django's CSRF protection, as DRF's `SessionAuthentication` enforces it.
//!
//! - The cookie `csrftoken` holds a 32-character secret.
//! - A request presents the token in the `X-CSRFToken` header or the
//!   `csrfmiddlewaretoken` form field, either as the 32-character secret or
//!   masked as 64 characters (a random mask followed by the secret shifted
//!   by it), so a page can embed a different token each time (BREACH).
//! - An `Origin` header, when present, must be the request's own origin or
//!   a trusted origin; over HTTPS without `Origin`, the `Referer` must be
//!   present, HTTPS and same-host or trusted.
//! - Tokens are compared in constant time.
//!
//! Failures are Django's reasons, which the session scheme prefixes with
//! `CSRF Failed: ` in a `403`.

use http::header::{HeaderName, HeaderValue, HOST, ORIGIN, REFERER};
use rand::Rng;

use crate::scheme::RequestHead;

const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
/// Length of a CSRF secret.
pub const SECRET_LENGTH: usize = 32;
/// Length of a masked CSRF token.
pub const TOKEN_LENGTH: usize = 64;
/// Django's CSRF cookie age, one year in seconds.
pub const COOKIE_AGE: u64 = 31_449_600;

/// A form field value the layer read before authentication.
#[derive(Clone, Debug)]
pub struct FormToken(pub String);

/// Where tokens are looked for and which origins are trusted.
#[derive(Clone, Debug)]
pub struct CsrfConfig {
    /// Cookie name, default `csrftoken`.
    pub cookie_name: String,
    /// Request header, default `X-CSRFToken`.
    pub header_name: HeaderName,
    /// Form field, default `csrfmiddlewaretoken`.
    pub form_field: String,
    /// Trusted origins such as `https://app.example.com` or
    /// `https://*.example.com` (Django's `CSRF_TRUSTED_ORIGINS`); default
    /// none.
    pub trusted_origins: Vec<String>,
    /// A header and value that mark a request as HTTPS when a trusted
    /// proxy terminates TLS (Django's `SECURE_PROXY_SSL_HEADER`), e.g.
    /// `("x-forwarded-proto", "https")`; default none.
    pub secure_proxy_header: Option<(HeaderName, String)>,
    /// Whether cookies get the `Secure` attribute; default `false`.
    pub cookie_secure: bool,
}

impl Default for CsrfConfig {
    fn default() -> Self {
        CsrfConfig {
            cookie_name: "csrftoken".into(),
            header_name: HeaderName::from_static("x-csrftoken"),
            form_field: "csrfmiddlewaretoken".into(),
            trusted_origins: Vec::new(),
            secure_proxy_header: None,
            cookie_secure: false,
        }
    }
}

/// A fresh 32-character secret.
pub fn new_secret() -> String {
    crate::secret::random_alphanumeric(SECRET_LENGTH)
}

fn index(c: u8) -> usize {
    CHARS.iter().position(|&x| x == c).unwrap_or(0)
}

/// Masks a secret into a 64-character token.
pub fn mask(secret: &str) -> String {
    let mut rng = rand::rngs::OsRng;
    let mask: Vec<u8> = (0..SECRET_LENGTH)
        .map(|_| CHARS[rng.gen_range(0..CHARS.len())])
        .collect();
    let cipher: Vec<u8> = secret
        .bytes()
        .zip(&mask)
        .map(|(s, &m)| CHARS[(index(s) + index(m)) % CHARS.len()])
        .collect();
    let mut out = String::with_capacity(TOKEN_LENGTH);
    out.push_str(std::str::from_utf8(&mask).expect("ASCII"));
    out.push_str(std::str::from_utf8(&cipher).expect("ASCII"));
    out
}

/// Recovers the secret from a 64-character token.
pub fn unmask(token: &str) -> String {
    let (mask, cipher) = token.as_bytes().split_at(SECRET_LENGTH.min(token.len()));
    cipher
        .iter()
        .zip(mask)
        .map(|(&c, &m)| CHARS[(index(c) + CHARS.len() - index(m)) % CHARS.len()] as char)
        .collect()
}

/// Checks a token's shape: 32 or 64 characters from `[a-zA-Z0-9]`.
fn check_format(token: &str) -> Result<(), &'static str> {
    if token.len() != SECRET_LENGTH && token.len() != TOKEN_LENGTH {
        return Err("has incorrect length");
    }
    if !token.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err("has invalid characters");
    }
    Ok(())
}

/// Whether a (masked or plain) token matches a secret, in constant time.
pub fn token_matches(token: &str, secret: &str) -> bool {
    let plain = if token.len() == TOKEN_LENGTH {
        unmask(token)
    } else {
        token.to_owned()
    };
    plain.len() == secret.len() && crate::secret::ct_eq(plain.as_bytes(), secret.as_bytes())
}

/// The `Set-Cookie` value for a CSRF secret.
pub fn cookie(config: &CsrfConfig, secret: &str) -> HeaderValue {
    let secure = if config.cookie_secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{}={secret}; Max-Age={COOKIE_AGE}; Path=/; SameSite=Lax{secure}",
        config.cookie_name
    ))
    .expect("cookie names and secrets are ASCII")
}

impl CsrfConfig {
    /// The secret from the request's cookie, if it has a valid one.
    pub fn secret_from(&self, req: &RequestHead<'_>) -> Option<String> {
        let c = req.cookie(&self.cookie_name)?;
        check_format(c).ok()?;
        Some(if c.len() == TOKEN_LENGTH {
            unmask(c)
        } else {
            c.to_owned()
        })
    }

    /// Whether the request came over HTTPS (directly, or as a configured
    /// proxy header says).
    pub fn is_secure(&self, req: &RequestHead<'_>) -> bool {
        if req.uri.scheme_str() == Some("https") {
            return true;
        }
        match &self.secure_proxy_header {
            Some((name, value)) => req
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.eq_ignore_ascii_case(value)),
            None => false,
        }
    }

    fn trusted(&self, scheme: &str, host: &str) -> bool {
        self.trusted_origins.iter().any(|t| {
            let Some((ts, th)) = t.split_once("://") else {
                return false;
            };
            if !ts.eq_ignore_ascii_case(scheme) {
                return false;
            }
            same_domain(host, th)
        })
    }

    /// Checks an unsafe request: Django's `CsrfViewMiddleware` for a
    /// request whose form field (if it had a form body) is `form_token`.
    /// The error is Django's reason.
    pub fn check(&self, req: &RequestHead<'_>, form_token: Option<&str>) -> Result<(), String> {
        let secure = self.is_secure(req);
        let host = request_host(req).unwrap_or_default();
        if let Some(origin) = req.headers.get(ORIGIN) {
            let origin = String::from_utf8_lossy(origin.as_bytes());
            let good = format!("{}://{}", if secure { "https" } else { "http" }, host);
            let ok = (!host.is_empty() && origin.eq_ignore_ascii_case(&good))
                || origin
                    .split_once("://")
                    .is_some_and(|(s, h)| self.trusted(s, h));
            if !ok {
                return Err(format!(
                    "Origin checking failed - {origin} does not match any trusted origins."
                ));
            }
        } else if secure {
            let Some(referer) = req.headers.get(REFERER) else {
                return Err("Referer checking failed - no Referer.".into());
            };
            let referer = String::from_utf8_lossy(referer.as_bytes());
            let Some((scheme, rest)) = referer.split_once("://") else {
                return Err("Referer checking failed - Referer is malformed.".into());
            };
            let netloc = rest.split(['/', '?', '#']).next().unwrap_or("");
            if scheme.is_empty() || netloc.is_empty() {
                return Err("Referer checking failed - Referer is malformed.".into());
            }
            if !scheme.eq_ignore_ascii_case("https") {
                return Err(
                    "Referer checking failed - Referer is insecure while host is secure.".into(),
                );
            }
            if !self.trusted("https", netloc) && !same_domain(netloc, &host) {
                return Err(format!(
                    "Referer checking failed - {referer} does not match any trusted origins."
                ));
            }
        }

        let secret = match req.cookie(&self.cookie_name) {
            None => return Err("CSRF cookie not set.".into()),
            Some(c) => match check_format(c) {
                Err(reason) => return Err(format!("CSRF cookie {reason}.")),
                Ok(()) if c.len() == TOKEN_LENGTH => unmask(c),
                Ok(()) => c.to_owned(),
            },
        };

        let (token, source) = match form_token.filter(|t| !t.is_empty()) {
            Some(t) => (t.to_owned(), "POST".to_owned()),
            None => match req.headers.get(&self.header_name) {
                None => return Err("CSRF token missing.".into()),
                Some(v) => (
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    format!("the '{}' HTTP header", display_header(&self.header_name)),
                ),
            },
        };
        if let Err(reason) = check_format(&token) {
            return Err(format!("CSRF token from {source} {reason}."));
        }
        if !token_matches(&token, &secret) {
            return Err(format!("CSRF token from {source} incorrect."));
        }
        Ok(())
    }
}

/// `X-CSRFToken` → `X-Csrftoken`, as Django names the header in messages.
fn display_header(h: &HeaderName) -> String {
    h.as_str()
        .split('-')
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// The request's host (the `Host` header, else the URI's authority).
pub fn request_host(req: &RequestHead<'_>) -> Option<String> {
    req.headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri.authority().map(|a| a.to_string()))
}

/// Django's `is_same_domain`: exact match, or `pattern` starting with `.`
/// or `*.` matching the domain and its subdomains. Ports must match.
fn same_domain(host: &str, pattern: &str) -> bool {
    let host = host.to_ascii_lowercase();
    let pattern = pattern.to_ascii_lowercase();
    let pattern = pattern.strip_prefix('*').unwrap_or(&pattern);
    if let Some(suffix) = pattern.strip_prefix('.') {
        host == suffix || host.ends_with(&format!(".{suffix}"))
    } else {
        host == pattern
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Request;

    fn head_check(req: &Request<()>, cfg: &CsrfConfig, form: Option<&str>) -> Result<(), String> {
        cfg.check(&RequestHead::from_request(req), form)
    }

    fn post() -> http::request::Builder {
        Request::post("/x").header(HOST, "testserver")
    }

    #[test]
    fn mask_round_trips() {
        let s = new_secret();
        let t = mask(&s);
        assert_eq!(t.len(), TOKEN_LENGTH);
        assert_ne!(t, mask(&s), "masks differ each time");
        assert_eq!(unmask(&t), s);
        assert!(token_matches(&t, &s));
        assert!(token_matches(&s, &s));
        assert!(!token_matches(&mask(&new_secret()), &s));
    }

    #[test]
    fn missing_cookie() {
        let req = post()
            .header("x-csrftoken", "a".repeat(32))
            .body(())
            .unwrap();
        assert_eq!(
            head_check(&req, &CsrfConfig::default(), None).unwrap_err(),
            "CSRF cookie not set."
        );
    }

    #[test]
    fn missing_token() {
        let s = new_secret();
        let req = post()
            .header("cookie", format!("csrftoken={s}"))
            .body(())
            .unwrap();
        assert_eq!(
            head_check(&req, &CsrfConfig::default(), None).unwrap_err(),
            "CSRF token missing."
        );
    }

    #[test]
    fn header_token_accepted_masked_or_plain() {
        let s = new_secret();
        for t in [mask(&s), s.clone()] {
            let req = post()
                .header("cookie", format!("csrftoken={s}"))
                .header("x-csrftoken", t)
                .body(())
                .unwrap();
            head_check(&req, &CsrfConfig::default(), None).unwrap();
        }
    }

    #[test]
    fn wrong_header_token() {
        let s = new_secret();
        let req = post()
            .header("cookie", format!("csrftoken={s}"))
            .header("x-csrftoken", mask(&new_secret()))
            .body(())
            .unwrap();
        assert_eq!(
            head_check(&req, &CsrfConfig::default(), None).unwrap_err(),
            "CSRF token from the 'X-Csrftoken' HTTP header incorrect."
        );
    }

    #[test]
    fn form_token_checked_first() {
        let s = new_secret();
        let req = post()
            .header("cookie", format!("csrftoken={s}"))
            .body(())
            .unwrap();
        head_check(&req, &CsrfConfig::default(), Some(&mask(&s))).unwrap();
        assert_eq!(
            head_check(&req, &CsrfConfig::default(), Some("short")).unwrap_err(),
            "CSRF token from POST has incorrect length."
        );
    }

    #[test]
    fn bad_origin_refused_trusted_accepted() {
        let s = new_secret();
        let req = post()
            .header("cookie", format!("csrftoken={s}"))
            .header("x-csrftoken", &s)
            .header(ORIGIN, "https://evil.example")
            .body(())
            .unwrap();
        assert_eq!(
            head_check(&req, &CsrfConfig::default(), None).unwrap_err(),
            "Origin checking failed - https://evil.example does not match any trusted origins."
        );
        let cfg = CsrfConfig {
            trusted_origins: vec!["https://*.example".into()],
            ..Default::default()
        };
        head_check(&req, &cfg, None).unwrap();
        let same = post()
            .header("cookie", format!("csrftoken={s}"))
            .header("x-csrftoken", &s)
            .header(ORIGIN, "http://testserver")
            .body(())
            .unwrap();
        head_check(&same, &CsrfConfig::default(), None).unwrap();
    }

    #[test]
    fn https_needs_a_good_referer() {
        let s = new_secret();
        let cfg = CsrfConfig {
            secure_proxy_header: Some((
                HeaderName::from_static("x-forwarded-proto"),
                "https".into(),
            )),
            ..Default::default()
        };
        let base = || {
            post()
                .header("cookie", format!("csrftoken={s}"))
                .header("x-csrftoken", &s)
                .header("x-forwarded-proto", "https")
        };
        let req = base().body(()).unwrap();
        assert_eq!(
            head_check(&req, &cfg, None).unwrap_err(),
            "Referer checking failed - no Referer."
        );
        let req = base()
            .header(REFERER, "http://testserver/")
            .body(())
            .unwrap();
        assert!(head_check(&req, &cfg, None)
            .unwrap_err()
            .contains("insecure"));
        let req = base().header(REFERER, "https://other/").body(()).unwrap();
        assert!(head_check(&req, &cfg, None)
            .unwrap_err()
            .contains("does not match any trusted origins"));
        let req = base()
            .header(REFERER, "https://testserver/page")
            .body(())
            .unwrap();
        head_check(&req, &cfg, None).unwrap();
    }

    #[test]
    fn header_display_name() {
        assert_eq!(
            display_header(&HeaderName::from_static("x-csrftoken")),
            "X-Csrftoken"
        );
    }
}
