//! [`Clock`]: where throttles and the lockout read the time, so tests can
//! move it by hand instead of sleeping.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// A source of wall-clock time.
///
/// Wall-clock ([`SystemTime`]) rather than monotonic time because the stores
/// that keep rates and failures may be shared by several servers (Redis, a
/// database): their timestamps must mean the same thing in every process.
/// Any `Fn() -> SystemTime` closure is a clock.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use portcullis::throttle::{Clock, ManualClock};
///
/// let fixed = || SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
/// assert_eq!(fixed.now(), SystemTime::UNIX_EPOCH + Duration::from_secs(1_000));
///
/// let clock = ManualClock::new();
/// let t0 = clock.now();
/// clock.advance(Duration::from_secs(59));
/// assert_eq!(clock.now().duration_since(t0).unwrap(), Duration::from_secs(59));
/// ```
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> SystemTime;
}

impl<F> Clock for F
where
    F: Fn() -> SystemTime + Send + Sync + 'static,
{
    fn now(&self) -> SystemTime {
        self()
    }
}

/// The system's clock: [`SystemTime::now`].
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that moves only when told to; clones share the same time.
#[derive(Clone)]
pub struct ManualClock {
    now: Arc<Mutex<SystemTime>>,
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ManualClock").field(&self.now()).finish()
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl ManualClock {
    /// A clock stopped at 2001-09-09T01:46:40Z (Unix time 1,000,000,000).
    pub fn new() -> Self {
        Self::at(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000))
    }

    /// A clock stopped at `time`.
    pub fn at(time: SystemTime) -> Self {
        ManualClock {
            now: Arc::new(Mutex::new(time)),
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
        *now += by;
    }

    /// Sets the clock (it may go backwards).
    pub fn set(&self, time: SystemTime) {
        *self.now.lock().unwrap_or_else(|e| e.into_inner()) = time;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }
}
