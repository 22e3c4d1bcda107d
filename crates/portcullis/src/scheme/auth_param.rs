//! RFC 7235 `auth-param` lists (`name=token` or `name="quoted string"`,
//! separated by commas), as Digest and Hawk credentials carry them.
//!
//! The parser is strict and bounded: it refuses unterminated quotes,
//! missing `=`, empty names, duplicated names and oversized input rather
//! than guessing, so a hostile header costs at most one linear pass.

/// The longest parameter list accepted, in bytes.
pub(crate) const MAX_PARAMS_LEN: usize = 8192;
/// The most parameters accepted.
const MAX_PARAMS: usize = 32;

/// Why a parameter list was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ParamError {
    /// Longer than [`MAX_PARAMS_LEN`] or more than 32 parameters.
    TooLong,
    /// Not `name=value, ...` (bad quoting, missing `=`, stray characters).
    Syntax,
    /// The same name twice (names compare case-insensitively).
    Duplicate,
}

fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

fn skip_ows(s: &[u8], mut i: usize) -> usize {
    while i < s.len() && (s[i] == b' ' || s[i] == b'\t') {
        i += 1;
    }
    i
}

/// Parses `a=b, c="d e"` into `(lowercased name, value)` pairs, in order.
/// Quoted values have their `\` escapes removed. Empty list elements
/// (`a=1,,b=2`) are allowed, as RFC 7230's `#rule` does.
pub(crate) fn parse(input: &str) -> Result<Vec<(String, String)>, ParamError> {
    if input.len() > MAX_PARAMS_LEN {
        return Err(ParamError::TooLong);
    }
    let s = input.as_bytes();
    let mut out: Vec<(String, String)> = Vec::new();
    let mut i = skip_ows(s, 0);
    while i < s.len() {
        if s[i] == b',' {
            i = skip_ows(s, i + 1);
            continue;
        }
        let start = i;
        while i < s.len() && is_tchar(s[i]) {
            i += 1;
        }
        if i == start {
            return Err(ParamError::Syntax);
        }
        let name = input[start..i].to_ascii_lowercase();
        i = skip_ows(s, i);
        if i >= s.len() || s[i] != b'=' {
            return Err(ParamError::Syntax);
        }
        i = skip_ows(s, i + 1);
        let value = if i < s.len() && s[i] == b'"' {
            i += 1;
            let mut v = Vec::new();
            loop {
                match s.get(i) {
                    None => return Err(ParamError::Syntax),
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(b'\\') => {
                        let Some(&c) = s.get(i + 1) else {
                            return Err(ParamError::Syntax);
                        };
                        v.push(c);
                        i += 2;
                    }
                    Some(&c) if c < 0x20 && c != b'\t' || c == 0x7f => {
                        return Err(ParamError::Syntax)
                    }
                    Some(&c) => {
                        v.push(c);
                        i += 1;
                    }
                }
            }
            String::from_utf8(v).map_err(|_| ParamError::Syntax)?
        } else {
            let vs = i;
            while i < s.len() && is_tchar(s[i]) {
                i += 1;
            }
            if i == vs {
                return Err(ParamError::Syntax);
            }
            input[vs..i].to_owned()
        };
        if out.iter().any(|(n, _)| *n == name) {
            return Err(ParamError::Duplicate);
        }
        if out.len() == MAX_PARAMS {
            return Err(ParamError::TooLong);
        }
        out.push((name, value));
        i = skip_ows(s, i);
        match s.get(i) {
            None => break,
            Some(b',') => i = skip_ows(s, i + 1),
            Some(_) => return Err(ParamError::Syntax),
        }
    }
    Ok(out)
}

/// The value of `name` (lowercase) in a parsed list.
pub(crate) fn get<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Splits an `Authorization` value into its scheme keyword and the rest,
/// when the keyword is `keyword` (case-insensitive). `None` for another
/// scheme.
pub(crate) fn strip_keyword<'a>(value: &'a str, keyword: &str) -> Option<&'a str> {
    let value = value.trim_start_matches([' ', '\t']);
    let (kw, rest) = match value.find([' ', '\t']) {
        Some(i) => (&value[..i], &value[i..]),
        None => (value, ""),
    };
    kw.eq_ignore_ascii_case(keyword).then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_quoted_strings() {
        let p = parse(r#"Realm="api", nc=00000001 ,qop=auth, uri="/a?b=\"c\"""#).unwrap();
        assert_eq!(get(&p, "realm"), Some("api"));
        assert_eq!(get(&p, "nc"), Some("00000001"));
        assert_eq!(get(&p, "qop"), Some("auth"));
        assert_eq!(get(&p, "uri"), Some(r#"/a?b="c""#));
        assert!(parse("").unwrap().is_empty());
        assert_eq!(parse("a=1,,b=2").unwrap().len(), 2);
    }

    #[test]
    fn hostile_inputs_are_refused() {
        for bad in [
            r#"a="unterminated"#,
            r#"a="ends in backslash\"#,
            "a",
            "=b",
            "a=",
            "a=b c=d",
            "a=b;c=d",
            "a=\"x\u{1}y\"",
            "a=\"\"\"",
            "a b=c",
        ] {
            assert_eq!(parse(bad), Err(ParamError::Syntax), "{bad:?}");
        }
        assert_eq!(parse("a=1, A=2"), Err(ParamError::Duplicate));
        assert_eq!(
            parse(&format!("a=\"{}\"", "x".repeat(MAX_PARAMS_LEN))),
            Err(ParamError::TooLong)
        );
        let many: Vec<String> = (0..40).map(|i| format!("p{i}=1")).collect();
        assert_eq!(parse(&many.join(",")), Err(ParamError::TooLong));
    }

    #[test]
    fn keyword_is_matched_case_insensitively() {
        assert_eq!(strip_keyword("dIgEsT a=b", "digest"), Some(" a=b"));
        assert_eq!(strip_keyword("Digest", "digest"), Some(""));
        assert_eq!(strip_keyword("Digestive a=b", "digest"), None);
        assert_eq!(strip_keyword("Basic abc", "digest"), None);
    }
}
