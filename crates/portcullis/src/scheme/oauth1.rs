//! OAuth 1.0a (RFC 5849).
