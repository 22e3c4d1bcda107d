//! Times as the lockout and throttle stores keep them: whole milliseconds
//! since the Unix epoch.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A time as the lockout table stores it: milliseconds since the Unix
/// epoch (negative before it, saturating far from it).
pub(crate) fn millis(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_millis()).map_or(i64::MIN, |ms| -ms),
    }
}

/// The inverse of [`millis`].
pub(crate) fn from_millis(ms: i64) -> SystemTime {
    let d = Duration::from_millis(ms.unsigned_abs());
    if ms >= 0 {
        UNIX_EPOCH + d
    } else {
        UNIX_EPOCH - d
    }
}

/// `now + cooloff` in milliseconds, saturating.
pub(crate) fn expiry_millis(now: SystemTime, cooloff: Duration) -> i64 {
    millis(now).saturating_add(i64::try_from(cooloff.as_millis()).unwrap_or(i64::MAX))
}
