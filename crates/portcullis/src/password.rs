//! Django-compatible password hashing and verification.
//!
//! Reads and writes the encoded password strings that Django stores in
//! `auth_user.password`, so a portcullis service can share a user table with
//! a Django project:
//!
//! | Django hasher | Encoding | Here |
//! |---|---|---|
//! | `PBKDF2PasswordHasher` | `pbkdf2_sha256$<iterations>$<salt>$<b64 digest>` | hash and verify |
//! | `PBKDF2SHA1PasswordHasher` | `pbkdf2_sha1$<iterations>$<salt>$<b64 digest>` | verify |
//! | `Argon2PasswordHasher` | `argon2$argon2id$v=19$m=..,t=..,p=..$<salt>$<hash>` | hash and verify (also `argon2i`, `argon2d`) |
//! | `BCryptSHA256PasswordHasher` | `bcrypt_sha256$$2b$<cost>$<salt+hash>` | hash and verify |
//! | `BCryptPasswordHasher` | `bcrypt$$2b$<cost>$<salt+hash>` | verify |
//! | `ScryptPasswordHasher` | `scrypt$<N>$<salt>$<r>$<p>$<b64 digest>` | hash and verify |
//!
//! Unusable passwords (`!` followed by random characters, as written by
//! Django's `set_unusable_password`) never verify.
//!
//! Hashing is deliberately slow, so [`PasswordHasher`]'s async methods run it
//! off the async runtime, each on a thread of its own at a lower scheduling
//! priority ([`HasherConfig::hashing_nice`]), at most
//! [`HasherConfig::max_concurrent`] at a time; the `*_sync` methods are for
//! code that is already off the runtime.
//! Stored hashes whose work factor exceeds the configured caps are refused
//! instead of verified, so a planted hash cannot be used to burn CPU or
//! memory.
//!
//! ```
//! use portcullis::password::{HasherConfig, PasswordHasher, Verification};
//!
//! let hasher = PasswordHasher::new(HasherConfig::fast_for_tests());
//! let encoded = hasher.hash_sync("correct horse");
//! assert!(encoded.starts_with("pbkdf2_sha256$1000$"));
//! assert_eq!(
//!     hasher.verify_sync("correct horse", &encoded),
//!     Verification::Valid { needs_upgrade: false }
//! );
//! assert_eq!(hasher.verify_sync("wrong", &encoded), Verification::Invalid);
//! ```

use std::fmt;
use std::sync::{Arc, OnceLock};

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, NO_PAD, STANDARD, STANDARD_NO_PAD};
use base64::Engine as _;
use rand::distributions::Alphanumeric;
use rand::rngs::OsRng;
use rand::{Rng as _, RngCore as _};
use sha1::Sha1;
use sha2::{Digest as _, Sha256};
use tokio::sync::Semaphore;

/// Number of characters in a salt generated for a new hash (Django's
/// `salt_entropy` of 128 bits over `[a-zA-Z0-9]` gives 22).
const SALT_LEN: usize = 22;

/// Number of random characters after `!` in an unusable password.
const UNUSABLE_SUFFIX_LEN: usize = 40;

/// Length in bytes of the Argon2 hash Django writes (argon2-cffi's default).
const ARGON2_HASH_LEN: usize = 32;

/// Length in bytes of the scrypt key Django writes.
const SCRYPT_DK_LEN: usize = 64;

/// Base64 as bcrypt writes it (its own alphabet, no padding).
const BCRYPT_B64: GeneralPurpose = GeneralPurpose::new(&alphabet::BCRYPT, NO_PAD);

/// Which algorithm new hashes use.
///
/// Every algorithm can always be verified; this only picks the one used by
/// [`PasswordHasher::hash_sync`] and the one that counts as up to date.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Algorithm {
    /// PBKDF2-HMAC-SHA256 (`pbkdf2_sha256`), Django's default.
    #[default]
    Pbkdf2Sha256,
    /// Argon2id (`argon2`).
    Argon2,
    /// bcrypt of the hex SHA-256 of the password (`bcrypt_sha256`).
    BcryptSha256,
    /// scrypt (`scrypt`).
    Scrypt,
}

impl Algorithm {
    /// Django's name for the algorithm: the first `$`-separated field of an
    /// encoded password.
    pub fn django_name(self) -> &'static str {
        match self {
            Self::Pbkdf2Sha256 => "pbkdf2_sha256",
            Self::Argon2 => "argon2",
            Self::BcryptSha256 => "bcrypt_sha256",
            Self::Scrypt => "scrypt",
        }
    }
}

/// Settings for a [`PasswordHasher`]: the algorithm and work factors for new
/// hashes, and caps on the work factors of stored hashes.
///
/// The defaults are Django 6.0's. Stored hashes whose work factors exceed a
/// `max_*` cap are refused ([`Verification::Invalid`]) without being
/// computed.
#[derive(Clone, Debug)]
pub struct HasherConfig {
    /// Algorithm for new hashes. Default [`Algorithm::Pbkdf2Sha256`].
    pub algorithm: Algorithm,
    /// PBKDF2 iterations for new hashes; stored `pbkdf2_sha256` hashes with
    /// fewer need an upgrade. Default 1 200 000 (Django 6.0).
    pub pbkdf2_iterations: u32,
    /// Stored PBKDF2 hashes with more iterations than this are refused.
    /// Default 10 000 000.
    pub max_pbkdf2_iterations: u32,
    /// Argon2 memory cost in KiB for new hashes. Default 102 400 (Django).
    pub argon2_memory_kib: u32,
    /// Argon2 time cost (passes) for new hashes. Default 2 (Django).
    pub argon2_time_cost: u32,
    /// Argon2 parallelism (lanes) for new hashes. Default 8 (Django). The
    /// lanes are computed on one thread.
    pub argon2_parallelism: u32,
    /// Stored Argon2 hashes needing more memory (KiB) than this are refused.
    /// Default 262 144 (256 MiB).
    pub max_argon2_memory_kib: u32,
    /// Stored Argon2 hashes with a higher time cost are refused. Default 16.
    pub max_argon2_time_cost: u32,
    /// bcrypt cost (log2 rounds) for new hashes, 4 to 31. Default 12 (Django).
    pub bcrypt_cost: u32,
    /// Stored bcrypt hashes with a higher cost are refused. Default 16.
    pub max_bcrypt_cost: u32,
    /// scrypt work factor for new hashes, as log2(N). Default 14 (Django's
    /// N = 2^14).
    pub scrypt_log_n: u8,
    /// scrypt block size `r` for new hashes. Default 8 (Django).
    pub scrypt_block_size: u32,
    /// scrypt parallelism `p` for new hashes. Default 5 (Django 5.x/6.x).
    pub scrypt_parallelism: u32,
    /// Stored scrypt hashes with N above 2^this are refused. Default 18.
    pub max_scrypt_log_n: u8,
    /// Stored scrypt hashes with a larger block size are refused. Default 16.
    pub max_scrypt_block_size: u32,
    /// Stored scrypt hashes with a larger parallelism are refused. Default 16.
    pub max_scrypt_parallelism: u32,
    /// Most hashes computed at once by the async methods; further calls wait
    /// for a slot. Default: the number of CPUs, at least 1.
    pub max_concurrent: usize,
    /// How much lower than the rest of the process the threads that hash
    /// run, in nice levels (Linux only; ignored elsewhere). Default 10:
    /// when the CPU is contended, the scheduler gives such a thread about a
    /// tenth of the share of a request-serving thread, so a flood of
    /// password checks (say, wrong Basic passwords) slows the logins down
    /// rather than every other request. `0` keeps the process's priority.
    pub hashing_nice: u8,
}

impl Default for HasherConfig {
    fn default() -> Self {
        Self {
            algorithm: Algorithm::Pbkdf2Sha256,
            pbkdf2_iterations: 1_200_000,
            max_pbkdf2_iterations: 10_000_000,
            argon2_memory_kib: 102_400,
            argon2_time_cost: 2,
            argon2_parallelism: 8,
            max_argon2_memory_kib: 262_144,
            max_argon2_time_cost: 16,
            bcrypt_cost: 12,
            max_bcrypt_cost: 16,
            scrypt_log_n: 14,
            scrypt_block_size: 8,
            scrypt_parallelism: 5,
            max_scrypt_log_n: 18,
            max_scrypt_block_size: 16,
            max_scrypt_parallelism: 16,
            max_concurrent: std::thread::available_parallelism()
                .map(usize::from)
                .unwrap_or(1)
                .max(1),
            hashing_nice: 10,
        }
    }
}

impl HasherConfig {
    /// A configuration with tiny work factors, **for tests only**: PBKDF2
    /// with 1 000 iterations, Argon2 with 1 MiB and one pass, bcrypt cost 4
    /// and scrypt N = 2^10. Hashes made with it are easy to brute-force.
    pub fn fast_for_tests() -> Self {
        Self {
            pbkdf2_iterations: 1_000,
            argon2_memory_kib: 1_024,
            argon2_time_cost: 1,
            argon2_parallelism: 1,
            bcrypt_cost: 4,
            scrypt_log_n: 10,
            scrypt_parallelism: 1,
            ..Self::default()
        }
    }

    /// Checks that new hashes can be made with these settings and that they
    /// are within the caps (so that they would verify).
    fn validate(&self) -> Result<(), ConfigError> {
        if self.pbkdf2_iterations == 0 {
            return Err(ConfigError("pbkdf2_iterations must be at least 1"));
        }
        if self.pbkdf2_iterations > self.max_pbkdf2_iterations {
            return Err(ConfigError(
                "pbkdf2_iterations exceeds max_pbkdf2_iterations",
            ));
        }
        argon2::Params::new(
            self.argon2_memory_kib,
            self.argon2_time_cost,
            self.argon2_parallelism,
            Some(ARGON2_HASH_LEN),
        )
        .map_err(|_| ConfigError("invalid argon2 parameters"))?;
        if self.argon2_memory_kib > self.max_argon2_memory_kib
            || self.argon2_time_cost > self.max_argon2_time_cost
        {
            return Err(ConfigError("argon2 parameters exceed the argon2 caps"));
        }
        if !(4..=31).contains(&self.bcrypt_cost) {
            return Err(ConfigError("bcrypt_cost must be between 4 and 31"));
        }
        if self.bcrypt_cost > self.max_bcrypt_cost {
            return Err(ConfigError("bcrypt_cost exceeds max_bcrypt_cost"));
        }
        if self.scrypt_log_n == 0 {
            return Err(ConfigError("scrypt_log_n must be at least 1"));
        }
        scrypt::Params::new(
            self.scrypt_log_n,
            self.scrypt_block_size,
            self.scrypt_parallelism,
            SCRYPT_DK_LEN,
        )
        .map_err(|_| ConfigError("invalid scrypt parameters"))?;
        if self.scrypt_log_n > self.max_scrypt_log_n
            || self.scrypt_block_size > self.max_scrypt_block_size
            || self.scrypt_parallelism > self.max_scrypt_parallelism
        {
            return Err(ConfigError("scrypt parameters exceed the scrypt caps"));
        }
        Ok(())
    }
}

/// A [`HasherConfig`] that cannot be used: a work factor is out of its
/// algorithm's range or above its own cap.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid password hasher config: {0}")]
pub struct ConfigError(&'static str);

/// The outcome of checking a password against an encoded hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verification {
    /// Wrong password, or an unusable, unknown, malformed or refused hash.
    Invalid,
    /// The password matches.
    Valid {
        /// The hash should be replaced by a new one (Django's
        /// `must_update`): it uses another algorithm than the configured one
        /// or weaker work factors.
        needs_upgrade: bool,
    },
}

impl Verification {
    /// Whether the password matched.
    pub fn is_valid(self) -> bool {
        matches!(self, Self::Valid { .. })
    }
}

/// Hashing the password failed because the blocking task panicked or was
/// cancelled (for instance while the runtime shuts down).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HashError {
    /// The blocking hashing task did not complete.
    #[error("password hashing task failed")]
    TaskFailed,
}

/// Hashes and verifies passwords in Django's formats.
///
/// Cheap to clone: clones share the concurrency limit and the dummy hash.
#[derive(Clone)]
pub struct PasswordHasher {
    inner: Arc<Inner>,
}

struct Inner {
    config: HasherConfig,
    semaphore: Arc<Semaphore>,
    /// Hash of a random password under the current config, built on first
    /// use by [`PasswordHasher::dummy_verify_sync`].
    dummy: OnceLock<String>,
}

impl fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("config", &self.inner.config)
            .field(
                "available_permits",
                &self.inner.semaphore.available_permits(),
            )
            .finish_non_exhaustive()
    }
}

impl PasswordHasher {
    /// A hasher with the given settings.
    ///
    /// # Panics
    ///
    /// If the config is invalid (see [`PasswordHasher::try_new`]).
    pub fn new(config: HasherConfig) -> Self {
        match Self::try_new(config) {
            Ok(hasher) => hasher,
            Err(err) => panic!("{err}"),
        }
    }

    /// A hasher with the given settings, or an error if a work factor for new
    /// hashes is out of its algorithm's range or above its own cap.
    pub fn try_new(config: HasherConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let permits = config.max_concurrent.clamp(1, Semaphore::MAX_PERMITS);
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                semaphore: Arc::new(Semaphore::new(permits)),
                dummy: OnceLock::new(),
            }),
        })
    }

    /// The settings.
    pub fn config(&self) -> &HasherConfig {
        &self.inner.config
    }

    /// Hashes `password` with the configured algorithm and a fresh random
    /// salt (22 characters of `[a-zA-Z0-9]` from the OS CSPRNG, as Django
    /// makes them). Blocks for the whole computation.
    pub fn hash_sync(&self, password: &str) -> String {
        let c = &self.inner.config;
        let password = password.as_bytes();
        match c.algorithm {
            Algorithm::Pbkdf2Sha256 => {
                let salt = random_string(SALT_LEN);
                let mut dk = [0u8; 32];
                pbkdf2::pbkdf2_hmac::<Sha256>(
                    password,
                    salt.as_bytes(),
                    c.pbkdf2_iterations,
                    &mut dk,
                );
                format!(
                    "pbkdf2_sha256${}${salt}${}",
                    c.pbkdf2_iterations,
                    STANDARD.encode(dk)
                )
            }
            Algorithm::Argon2 => {
                let salt = random_string(SALT_LEN);
                let params = argon2::Params::new(
                    c.argon2_memory_kib,
                    c.argon2_time_cost,
                    c.argon2_parallelism,
                    Some(ARGON2_HASH_LEN),
                )
                .expect("argon2 parameters are checked by PasswordHasher::new");
                let mut out = [0u8; ARGON2_HASH_LEN];
                argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
                    .hash_password_into(password, salt.as_bytes(), &mut out)
                    .expect("argon2 inputs are within the algorithm's limits");
                format!(
                    "argon2$argon2id$v=19$m={},t={},p={}${}${}",
                    c.argon2_memory_kib,
                    c.argon2_time_cost,
                    c.argon2_parallelism,
                    STANDARD_NO_PAD.encode(salt),
                    STANDARD_NO_PAD.encode(out)
                )
            }
            Algorithm::BcryptSha256 => {
                let mut salt = [0u8; 16];
                OsRng.fill_bytes(&mut salt);
                let parts = bcrypt::hash_with_salt(sha256_hex(password), c.bcrypt_cost, salt)
                    .expect("bcrypt cost is checked by PasswordHasher::new");
                format!(
                    "bcrypt_sha256${}",
                    parts.format_for_version(bcrypt::Version::TwoB)
                )
            }
            Algorithm::Scrypt => {
                let salt = random_string(SALT_LEN);
                let params = scrypt::Params::new(
                    c.scrypt_log_n,
                    c.scrypt_block_size,
                    c.scrypt_parallelism,
                    SCRYPT_DK_LEN,
                )
                .expect("scrypt parameters are checked by PasswordHasher::new");
                let mut dk = [0u8; SCRYPT_DK_LEN];
                scrypt::scrypt(password, salt.as_bytes(), &params, &mut dk)
                    .expect("the scrypt output length is valid");
                format!(
                    "scrypt${}${salt}${}${}${}",
                    1u64 << c.scrypt_log_n,
                    c.scrypt_block_size,
                    c.scrypt_parallelism,
                    STANDARD.encode(dk)
                )
            }
        }
    }

    /// Checks `password` against the `encoded` hash, blocking for the whole
    /// computation.
    ///
    /// Unusable, unknown, malformed and over-cap encodings give
    /// [`Verification::Invalid`], after spending the time of a normal
    /// verification (as Django does) so the answer time does not tell them
    /// apart. Digests are compared in constant time. As in Django, a wrong
    /// password for a hash of the configured algorithm with a lower
    /// PBKDF2/bcrypt work factor costs the configured work factor.
    pub fn verify_sync(&self, password: &str, encoded: &str) -> Verification {
        let c = &self.inner.config;
        let Some(parsed) = parse(encoded).filter(|p| p.within_caps(c)) else {
            self.dummy_verify_sync(password);
            return Verification::Invalid;
        };
        let same_algorithm = parsed.algorithm() == Some(c.algorithm);
        let needs_upgrade = !same_algorithm || parsed.weaker_than(c);
        if parsed.matches(password) {
            Verification::Valid { needs_upgrade }
        } else {
            if same_algorithm && needs_upgrade {
                parsed.harden_runtime(password, c);
            }
            Verification::Invalid
        }
    }

    /// Spends about the time of verifying `password` against a hash made with
    /// the current config, and discards the result: call it when there is no
    /// hash to check (unknown username) so that the response time does not
    /// reveal whether the user exists.
    pub fn dummy_verify_sync(&self, password: &str) {
        let dummy = self
            .inner
            .dummy
            .get_or_init(|| self.hash_sync(&random_string(SALT_LEN)));
        if let Some(parsed) = parse(dummy) {
            // The result is meaningless; only the time spent matters.
            let _ = std::hint::black_box(parsed.matches(password));
        }
    }

    /// [`hash_sync`](Self::hash_sync) on a hashing thread, once one of
    /// the [`max_concurrent`](HasherConfig::max_concurrent) slots is free.
    ///
    /// Must be called within a tokio runtime.
    pub async fn hash(&self, password: &str) -> Result<String, HashError> {
        let password = password.to_owned();
        self.run_blocking(move |hasher| hasher.hash_sync(&password))
            .await
            .ok_or(HashError::TaskFailed)
    }

    /// [`verify_sync`](Self::verify_sync) on a hashing thread, once one
    /// of the [`max_concurrent`](HasherConfig::max_concurrent) slots is free.
    /// [`Verification::Invalid`] if the task panics or is cancelled.
    ///
    /// Must be called within a tokio runtime.
    pub async fn verify(&self, password: &str, encoded: &str) -> Verification {
        let password = password.to_owned();
        let encoded = encoded.to_owned();
        self.run_blocking(move |hasher| hasher.verify_sync(&password, &encoded))
            .await
            .unwrap_or(Verification::Invalid)
    }

    /// [`dummy_verify_sync`](Self::dummy_verify_sync) on a hashing thread,
    /// once one of the [`max_concurrent`](HasherConfig::max_concurrent)
    /// slots is free.
    ///
    /// Must be called within a tokio runtime.
    pub async fn dummy_verify(&self, password: &str) {
        let password = password.to_owned();
        // A failed task has nothing to report.
        let _ = self
            .run_blocking(move |hasher| hasher.dummy_verify_sync(&password))
            .await;
    }

    /// Runs `f` on a thread of its own, at the configured lower priority,
    /// while holding a concurrency permit. The permit moves into the
    /// thread, so it stays taken until the computation ends even if the
    /// caller's future is dropped. `None` if the thread cannot start or `f`
    /// panics.
    ///
    /// A fresh thread per hash (not tokio's blocking pool) because a
    /// thread's priority can be lowered but, without privileges, not raised
    /// again: a pooled thread would stay low for whatever ran on it next.
    /// Starting a thread costs microseconds; a hash costs milliseconds.
    async fn run_blocking<T, F>(&self, f: F) -> Option<T>
    where
        T: Send + 'static,
        F: FnOnce(&PasswordHasher) -> T + Send + 'static,
    {
        let permit = Arc::clone(&self.inner.semaphore)
            .acquire_owned()
            .await
            .ok()?;
        let hasher = self.clone();
        let nice = self.inner.config.hashing_nice;
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("portcullis-hash".into())
            .spawn(move || {
                lower_priority(nice);
                let out = f(&hasher);
                // The slot is free before the caller hears back.
                drop(permit);
                // The receiver may be gone (the caller gave up); nothing to do.
                let _ = tx.send(out);
            })
            .map_err(|e| tracing::error!(error = %e, "cannot start a password hashing thread"))
            .ok()?;
        rx.await.ok()
    }
}

/// Lowers the calling thread's scheduling priority by `nice` levels. On
/// Linux the nice value belongs to the thread, so only this one moves.
#[cfg(target_os = "linux")]
fn lower_priority(nice: u8) {
    use rustix::process::{getpriority_process, setpriority_process};
    if nice == 0 {
        return;
    }
    let current = getpriority_process(None).unwrap_or(0);
    let target = (current + i32::from(nice)).min(19);
    if let Err(e) = setpriority_process(None, target) {
        tracing::debug!(error = %e, "cannot lower the hashing thread's priority");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority(_nice: u8) {}

/// A new unusable password, as Django's `set_unusable_password` stores it:
/// `!` followed by 40 random characters of `[a-zA-Z0-9]`.
pub fn make_unusable() -> String {
    let mut s = String::with_capacity(1 + UNUSABLE_SUFFIX_LEN);
    s.push('!');
    s.push_str(&random_string(UNUSABLE_SUFFIX_LEN));
    s
}

/// Whether `encoded` is a well-formed hash in one of the supported formats.
/// `false` for `""`, unusable passwords (`!...`) and unknown or malformed
/// encodings. Work-factor caps are not considered.
pub fn is_usable(encoded: &str) -> bool {
    parse(encoded).is_some()
}

/// `len` characters of `[a-zA-Z0-9]` from the OS CSPRNG.
fn random_string(len: usize) -> String {
    OsRng
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// Lowercase hex of SHA-256, the bcrypt input of `bcrypt_sha256`.
fn sha256_hex(password: &[u8]) -> String {
    hex::encode(Sha256::digest(password))
}

/// A decimal number as Python's `%d` writes it: digits only, no sign, no
/// leading zero.
fn parse_number<T: std::str::FromStr>(s: &str) -> Option<T> {
    let canonical =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    if canonical {
        s.parse().ok()
    } else {
        None
    }
}

/// Whether a salt of `chars` characters has less entropy than a new one
/// (Django's `must_update_salt`).
fn salt_too_short(chars: usize) -> bool {
    chars < SALT_LEN
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pbkdf2Digest {
    Sha256,
    Sha1,
}

/// A stored hash, split into its parts.
#[derive(Debug)]
enum Parsed<'a> {
    Pbkdf2 {
        digest: Pbkdf2Digest,
        iterations: u32,
        salt: &'a str,
        hash: Vec<u8>,
    },
    Argon2 {
        variant: argon2::Algorithm,
        version: argon2::Version,
        memory_kib: u32,
        time_cost: u32,
        parallelism: u32,
        salt: Vec<u8>,
        hash: Vec<u8>,
    },
    Bcrypt {
        /// `bcrypt_sha256` (true) or plain `bcrypt` (false).
        sha256: bool,
        cost: u32,
        salt: [u8; 16],
        checksum: &'a str,
    },
    Scrypt {
        log_n: u8,
        block_size: u32,
        parallelism: u32,
        salt: &'a str,
        hash: Vec<u8>,
    },
}

fn parse(encoded: &str) -> Option<Parsed<'_>> {
    let (algorithm, rest) = encoded.split_once('$')?;
    match algorithm {
        "pbkdf2_sha256" => parse_pbkdf2(Pbkdf2Digest::Sha256, rest),
        "pbkdf2_sha1" => parse_pbkdf2(Pbkdf2Digest::Sha1, rest),
        "argon2" => parse_argon2(rest),
        "bcrypt_sha256" => parse_bcrypt(true, rest),
        "bcrypt" => parse_bcrypt(false, rest),
        "scrypt" => parse_scrypt(rest),
        _ => None,
    }
}

/// `<iterations>$<salt>$<b64 digest>`
fn parse_pbkdf2(digest: Pbkdf2Digest, rest: &str) -> Option<Parsed<'_>> {
    let mut fields = rest.splitn(3, '$');
    let iterations: u32 = parse_number(fields.next()?)?;
    let salt = fields.next()?;
    let hash = STANDARD.decode(fields.next()?).ok()?;
    let len = match digest {
        Pbkdf2Digest::Sha256 => 32,
        Pbkdf2Digest::Sha1 => 20,
    };
    if iterations == 0 || salt.is_empty() || hash.len() != len {
        return None;
    }
    Some(Parsed::Pbkdf2 {
        digest,
        iterations,
        salt,
        hash,
    })
}

/// `argon2id$v=19$m=<kib>,t=<passes>,p=<lanes>$<b64 salt>$<b64 hash>`; the
/// version field may be missing (version 0x10).
fn parse_argon2(rest: &str) -> Option<Parsed<'_>> {
    let fields: Vec<&str> = rest.split('$').collect();
    let (variant, version, params, salt, hash) = match fields[..] {
        [variant, version, params, salt, hash] => {
            let version = match version {
                "v=19" => argon2::Version::V0x13,
                "v=16" => argon2::Version::V0x10,
                _ => return None,
            };
            (variant, version, params, salt, hash)
        }
        [variant, params, salt, hash] => (variant, argon2::Version::V0x10, params, salt, hash),
        _ => return None,
    };
    let variant = match variant {
        "argon2id" => argon2::Algorithm::Argon2id,
        "argon2i" => argon2::Algorithm::Argon2i,
        "argon2d" => argon2::Algorithm::Argon2d,
        _ => return None,
    };
    let mut params = params.split(',');
    let memory_kib = parse_number(params.next()?.strip_prefix("m=")?)?;
    let time_cost = parse_number(params.next()?.strip_prefix("t=")?)?;
    let parallelism = parse_number(params.next()?.strip_prefix("p=")?)?;
    if params.next().is_some() {
        return None;
    }
    let salt = STANDARD_NO_PAD.decode(salt).ok()?;
    let hash = STANDARD_NO_PAD.decode(hash).ok()?;
    if salt.len() < argon2::MIN_SALT_LEN || hash.len() < argon2::Params::MIN_OUTPUT_LEN {
        return None;
    }
    // Rejects parameter combinations argon2 cannot compute (m < 8 p, ...).
    argon2::Params::new(memory_kib, time_cost, parallelism, Some(hash.len())).ok()?;
    Some(Parsed::Argon2 {
        variant,
        version,
        memory_kib,
        time_cost,
        parallelism,
        salt,
        hash,
    })
}

/// `$2b$<cost>$<22 chars salt><31 chars checksum>` (also `2a`, `2y`).
fn parse_bcrypt(sha256: bool, rest: &str) -> Option<Parsed<'_>> {
    let mut fields = rest.split('$');
    let (Some(""), Some(version), Some(cost), Some(data), None) = (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    ) else {
        return None;
    };
    if !matches!(version, "2a" | "2b" | "2y") || cost.len() != 2 || data.len() != 53 {
        return None;
    }
    if !cost.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let cost: u32 = cost.parse().ok()?;
    if !(4..=31).contains(&cost) || !data.is_ascii() {
        return None;
    }
    let (salt, checksum) = data.split_at(22);
    let salt: [u8; 16] = BCRYPT_B64.decode(salt).ok()?.try_into().ok()?;
    if BCRYPT_B64.decode(checksum).ok()?.len() != 23 {
        return None;
    }
    Some(Parsed::Bcrypt {
        sha256,
        cost,
        salt,
        checksum,
    })
}

/// `<N>$<salt>$<r>$<p>$<b64 digest>`
fn parse_scrypt(rest: &str) -> Option<Parsed<'_>> {
    let mut fields = rest.split('$');
    let (Some(n), Some(salt), Some(block_size), Some(parallelism), Some(hash), None) = (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    ) else {
        return None;
    };
    let n: u64 = parse_number(n)?;
    if n < 2 || !n.is_power_of_two() || salt.is_empty() {
        return None;
    }
    let log_n = u8::try_from(n.trailing_zeros()).ok()?;
    let block_size = parse_number(block_size)?;
    let parallelism = parse_number(parallelism)?;
    let hash = STANDARD.decode(hash).ok()?;
    if hash.len() != SCRYPT_DK_LEN {
        return None;
    }
    // Rejects parameter combinations scrypt cannot compute.
    scrypt::Params::new(log_n, block_size, parallelism, SCRYPT_DK_LEN).ok()?;
    Some(Parsed::Scrypt {
        log_n,
        block_size,
        parallelism,
        salt,
        hash,
    })
}

impl Parsed<'_> {
    /// The [`Algorithm`] that writes this kind of hash, if any.
    fn algorithm(&self) -> Option<Algorithm> {
        match self {
            Self::Pbkdf2 {
                digest: Pbkdf2Digest::Sha256,
                ..
            } => Some(Algorithm::Pbkdf2Sha256),
            Self::Pbkdf2 { .. } => None,
            Self::Argon2 { .. } => Some(Algorithm::Argon2),
            Self::Bcrypt { sha256: true, .. } => Some(Algorithm::BcryptSha256),
            Self::Bcrypt { .. } => None,
            Self::Scrypt { .. } => Some(Algorithm::Scrypt),
        }
    }

    /// Whether computing this hash stays within the configured caps.
    fn within_caps(&self, c: &HasherConfig) -> bool {
        match *self {
            Self::Pbkdf2 { iterations, .. } => iterations <= c.max_pbkdf2_iterations,
            Self::Argon2 {
                memory_kib,
                time_cost,
                ..
            } => memory_kib <= c.max_argon2_memory_kib && time_cost <= c.max_argon2_time_cost,
            Self::Bcrypt { cost, .. } => cost <= c.max_bcrypt_cost,
            Self::Scrypt {
                log_n,
                block_size,
                parallelism,
                ..
            } => {
                log_n <= c.max_scrypt_log_n
                    && block_size <= c.max_scrypt_block_size
                    && parallelism <= c.max_scrypt_parallelism
            }
        }
    }

    /// Whether the work factors are below those configured for new hashes of
    /// the same algorithm (or the salt is shorter than a new one).
    fn weaker_than(&self, c: &HasherConfig) -> bool {
        match *self {
            Self::Pbkdf2 {
                iterations, salt, ..
            } => iterations < c.pbkdf2_iterations || salt_too_short(salt.chars().count()),
            Self::Argon2 {
                variant,
                version,
                memory_kib,
                time_cost,
                ref salt,
                ref hash,
                ..
            } => {
                variant != argon2::Algorithm::Argon2id
                    || version != argon2::Version::V0x13
                    || memory_kib < c.argon2_memory_kib
                    || time_cost < c.argon2_time_cost
                    || hash.len() < ARGON2_HASH_LEN
                    || salt_too_short(salt.len())
            }
            Self::Bcrypt { cost, .. } => cost < c.bcrypt_cost,
            Self::Scrypt {
                log_n,
                block_size,
                parallelism,
                ..
            } => {
                log_n < c.scrypt_log_n
                    || block_size < c.scrypt_block_size
                    || parallelism < c.scrypt_parallelism
            }
        }
    }

    /// Recomputes the hash of `password` and compares it, in constant time,
    /// with the stored one.
    fn matches(&self, password: &str) -> bool {
        let password = password.as_bytes();
        match self {
            Self::Pbkdf2 {
                digest,
                iterations,
                salt,
                hash,
            } => {
                let mut dk = vec![0u8; hash.len()];
                match digest {
                    Pbkdf2Digest::Sha256 => pbkdf2::pbkdf2_hmac::<Sha256>(
                        password,
                        salt.as_bytes(),
                        *iterations,
                        &mut dk,
                    ),
                    Pbkdf2Digest::Sha1 => {
                        pbkdf2::pbkdf2_hmac::<Sha1>(password, salt.as_bytes(), *iterations, &mut dk)
                    }
                }
                crate::secret::ct_eq(&dk, hash)
            }
            Self::Argon2 {
                variant,
                version,
                memory_kib,
                time_cost,
                parallelism,
                salt,
                hash,
            } => {
                let Ok(params) =
                    argon2::Params::new(*memory_kib, *time_cost, *parallelism, Some(hash.len()))
                else {
                    return false;
                };
                let mut out = vec![0u8; hash.len()];
                argon2::Argon2::new(*variant, *version, params)
                    .hash_password_into(password, salt, &mut out)
                    .is_ok()
                    && crate::secret::ct_eq(&out, hash)
            }
            Self::Bcrypt {
                sha256,
                cost,
                salt,
                checksum,
            } => {
                let computed = if *sha256 {
                    bcrypt::hash_with_salt(sha256_hex(password), *cost, *salt)
                } else {
                    bcrypt::hash_with_salt(password, *cost, *salt)
                };
                let Ok(computed) = computed else {
                    return false;
                };
                let computed = computed.format_for_version(bcrypt::Version::TwoB);
                let computed = &computed.as_bytes()[computed.len().saturating_sub(31)..];
                crate::secret::ct_eq(computed, checksum.as_bytes())
            }
            Self::Scrypt {
                log_n,
                block_size,
                parallelism,
                salt,
                hash,
            } => {
                let Ok(params) = scrypt::Params::new(*log_n, *block_size, *parallelism, hash.len())
                else {
                    return false;
                };
                let mut dk = vec![0u8; hash.len()];
                scrypt::scrypt(password, salt.as_bytes(), &params, &mut dk).is_ok()
                    && crate::secret::ct_eq(&dk, hash)
            }
        }
    }

    /// After a wrong password for a hash of the configured algorithm with a
    /// lower work factor, spends the difference, so that the response time
    /// does not reveal how old the stored hash is (Django's
    /// `harden_runtime`; like Django, only for PBKDF2 and bcrypt).
    fn harden_runtime(&self, password: &str, c: &HasherConfig) {
        match *self {
            Self::Pbkdf2 {
                digest: Pbkdf2Digest::Sha256,
                iterations,
                salt,
                ..
            } if iterations < c.pbkdf2_iterations => {
                let mut dk = [0u8; 32];
                pbkdf2::pbkdf2_hmac::<Sha256>(
                    password.as_bytes(),
                    salt.as_bytes(),
                    c.pbkdf2_iterations - iterations,
                    &mut dk,
                );
                std::hint::black_box(dk);
            }
            Self::Bcrypt {
                sha256: true,
                cost,
                salt,
                ..
            } if cost < c.bcrypt_cost => {
                let input = sha256_hex(password.as_bytes());
                let extra = (1u64 << (c.bcrypt_cost - cost)) - 1;
                for _ in 0..extra {
                    let _ = std::hint::black_box(bcrypt::hash_with_salt(&input, cost, salt));
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn hashing_threads_run_at_a_lower_priority() {
        use rustix::process::getpriority_process;
        let here = getpriority_process(None).unwrap();
        let hasher = PasswordHasher::new(HasherConfig::fast_for_tests());
        assert_eq!(hasher.config().hashing_nice, 10);
        let there = hasher
            .run_blocking(|_| getpriority_process(None).unwrap())
            .await
            .unwrap();
        assert_eq!(there, (here + 10).min(19));
        // This thread (and so the runtime) keeps its priority.
        assert_eq!(getpriority_process(None).unwrap(), here);
        let same = PasswordHasher::new(HasherConfig {
            hashing_nice: 0,
            ..HasherConfig::fast_for_tests()
        });
        let there = same
            .run_blocking(|_| getpriority_process(None).unwrap())
            .await
            .unwrap();
        assert_eq!(there, here);
    }

    #[tokio::test]
    async fn a_panicking_hash_is_reported_as_none() {
        let hasher = PasswordHasher::new(HasherConfig::fast_for_tests());
        let out: Option<()> = hasher.run_blocking(|_| panic!("boom")).await;
        assert!(out.is_none());
        // The slot was given back.
        assert!(hasher.run_blocking(|_| 1).await.is_some());
    }

    const VECTORS: &str = include_str!("../tests/data/django_hash_vectors.json");

    fn vectors() -> Vec<(String, String, String)> {
        let list: serde_json::Value = serde_json::from_str(VECTORS).unwrap();
        list.as_array()
            .unwrap()
            .iter()
            .map(|v| {
                (
                    v["algorithm"].as_str().unwrap().to_owned(),
                    v["password"].as_str().unwrap().to_owned(),
                    v["encoded"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    /// The vectors with low work factors (all but the one at Django's
    /// default PBKDF2 iterations, which is slow in debug builds).
    fn fast_vectors() -> Vec<(String, String, String)> {
        vectors()
            .into_iter()
            .filter(|(_, _, e)| !e.starts_with("pbkdf2_sha256$1000000$"))
            .collect()
    }

    fn fast() -> PasswordHasher {
        PasswordHasher::new(HasherConfig::fast_for_tests())
    }

    fn fast_with(algorithm: Algorithm) -> PasswordHasher {
        PasswordHasher::new(HasherConfig {
            algorithm,
            ..HasherConfig::fast_for_tests()
        })
    }

    const ALL: [Algorithm; 4] = [
        Algorithm::Pbkdf2Sha256,
        Algorithm::Argon2,
        Algorithm::BcryptSha256,
        Algorithm::Scrypt,
    ];

    #[test]
    fn django_vectors_verify() {
        let hasher = fast();
        let vectors = fast_vectors();
        for algorithm in [
            "pbkdf2_sha256",
            "pbkdf2_sha1",
            "argon2",
            "bcrypt_sha256",
            "bcrypt",
            "scrypt",
        ] {
            assert!(
                vectors.iter().any(|(a, _, _)| a == algorithm),
                "no vector for {algorithm}"
            );
        }
        for (algorithm, password, encoded) in &vectors {
            assert!(encoded.starts_with(&format!("{algorithm}$")));
            assert!(is_usable(encoded), "{encoded}");
            assert!(
                hasher.verify_sync(password, encoded).is_valid(),
                "{algorithm} {password:?} {encoded}"
            );
            let wrong = format!("{password}x");
            assert_eq!(
                hasher.verify_sync(&wrong, encoded),
                Verification::Invalid,
                "{encoded}"
            );
            assert_eq!(
                hasher.verify_sync("", encoded).is_valid(),
                password.is_empty()
            );
        }
    }

    #[test]
    fn django_vectors_needs_upgrade() {
        for (algorithm, password, encoded) in fast_vectors() {
            let configured = match algorithm.as_str() {
                "pbkdf2_sha256" => Some(Algorithm::Pbkdf2Sha256),
                "argon2" => Some(Algorithm::Argon2),
                "bcrypt_sha256" => Some(Algorithm::BcryptSha256),
                "scrypt" => Some(Algorithm::Scrypt),
                _ => None,
            };
            // Another configured algorithm: always an upgrade.
            let other = if configured == Some(Algorithm::Scrypt) {
                Algorithm::Pbkdf2Sha256
            } else {
                Algorithm::Scrypt
            };
            assert_eq!(
                fast_with(other).verify_sync(&password, &encoded),
                Verification::Valid {
                    needs_upgrade: true
                },
                "{encoded}"
            );
            let Some(configured) = configured else {
                continue; // pbkdf2_sha1 and plain bcrypt are never current
            };
            // The generator's work factors are the fast config's, except
            // for the marked ones.
            let weaker = encoded.starts_with("argon2$argon2i$")
                || encoded.starts_with("argon2$argon2d$")
                || encoded.contains("$m=256,t=2,p=2$");
            assert_eq!(
                fast_with(configured).verify_sync(&password, &encoded),
                Verification::Valid {
                    needs_upgrade: weaker
                },
                "{encoded}"
            );
        }
    }

    #[test]
    fn django_default_iterations_vector() {
        let (_, password, encoded) = vectors()
            .into_iter()
            .find(|(_, _, e)| e.starts_with("pbkdf2_sha256$1000000$"))
            .expect("a vector at Django's default iterations");
        assert_eq!(
            fast().verify_sync(&password, &encoded),
            Verification::Valid {
                needs_upgrade: false
            }
        );
        // Refused without computing when over the cap.
        let capped = PasswordHasher::new(HasherConfig {
            max_pbkdf2_iterations: 999_999,
            ..HasherConfig::fast_for_tests()
        });
        assert_eq!(
            capped.verify_sync(&password, &encoded),
            Verification::Invalid
        );
    }

    #[test]
    fn roundtrip_every_algorithm() {
        for algorithm in ALL {
            let hasher = fast_with(algorithm);
            for password in ["", "password", "pässwörd 🔐", &"long".repeat(50)] {
                let encoded = hasher.hash_sync(password);
                assert!(
                    encoded.starts_with(&format!("{}$", algorithm.django_name())),
                    "{encoded}"
                );
                assert!(is_usable(&encoded));
                assert_eq!(
                    hasher.verify_sync(password, &encoded),
                    Verification::Valid {
                        needs_upgrade: false
                    },
                    "{encoded}"
                );
                assert_eq!(
                    hasher.verify_sync(&format!("{password}!"), &encoded),
                    Verification::Invalid
                );
                // Readable under any configured algorithm.
                assert!(
                    fast().verify_sync(password, &encoded).is_valid(),
                    "{encoded}"
                );
            }
            // Fresh salts.
            assert_ne!(hasher.hash_sync("same"), hasher.hash_sync("same"));
        }
    }

    #[test]
    fn new_hash_formats() {
        let is_salt = |s: &str| s.len() == SALT_LEN && s.bytes().all(|b| b.is_ascii_alphanumeric());

        let e = fast_with(Algorithm::Pbkdf2Sha256).hash_sync("pw");
        let f: Vec<&str> = e.split('$').collect();
        assert_eq!(f.len(), 4);
        assert_eq!((f[0], f[1]), ("pbkdf2_sha256", "1000"));
        assert!(is_salt(f[2]), "{e}");
        assert_eq!(STANDARD.decode(f[3]).unwrap().len(), 32);

        let e = fast_with(Algorithm::Argon2).hash_sync("pw");
        let f: Vec<&str> = e.split('$').collect();
        assert_eq!(f.len(), 6);
        assert_eq!(&f[..4], ["argon2", "argon2id", "v=19", "m=1024,t=1,p=1"]);
        let salt = STANDARD_NO_PAD.decode(f[4]).unwrap();
        assert!(is_salt(std::str::from_utf8(&salt).unwrap()), "{e}");
        assert_eq!(STANDARD_NO_PAD.decode(f[5]).unwrap().len(), ARGON2_HASH_LEN);

        let e = fast_with(Algorithm::BcryptSha256).hash_sync("pw");
        assert!(e.starts_with("bcrypt_sha256$$2b$04$"), "{e}");
        assert_eq!(e.len(), "bcrypt_sha256$".len() + 60);

        let e = fast_with(Algorithm::Scrypt).hash_sync("pw");
        let f: Vec<&str> = e.split('$').collect();
        assert_eq!(f.len(), 6);
        assert_eq!((f[0], f[1], f[3], f[4]), ("scrypt", "1024", "8", "1"));
        assert!(is_salt(f[2]), "{e}");
        assert_eq!(STANDARD.decode(f[5]).unwrap().len(), SCRYPT_DK_LEN);
    }

    #[test]
    fn default_config_matches_django() {
        let c = HasherConfig::default();
        assert_eq!(c.algorithm, Algorithm::Pbkdf2Sha256);
        assert_eq!(c.pbkdf2_iterations, 1_200_000);
        assert_eq!(c.max_pbkdf2_iterations, 10_000_000);
        assert_eq!(
            (
                c.argon2_memory_kib,
                c.argon2_time_cost,
                c.argon2_parallelism
            ),
            (102_400, 2, 8)
        );
        assert_eq!(c.bcrypt_cost, 12);
        assert_eq!(
            (c.scrypt_log_n, c.scrypt_block_size, c.scrypt_parallelism),
            (14, 8, 5)
        );
        assert!(c.max_concurrent >= 1);
        assert!(PasswordHasher::try_new(c).is_ok());
    }

    #[test]
    fn invalid_configs_are_rejected() {
        let bad = [
            HasherConfig {
                pbkdf2_iterations: 0,
                ..HasherConfig::default()
            },
            HasherConfig {
                pbkdf2_iterations: 20_000_000,
                ..HasherConfig::default()
            },
            HasherConfig {
                bcrypt_cost: 3,
                ..HasherConfig::default()
            },
            HasherConfig {
                bcrypt_cost: 17,
                ..HasherConfig::default()
            },
            HasherConfig {
                argon2_memory_kib: 8,
                argon2_parallelism: 8,
                ..HasherConfig::default()
            },
            HasherConfig {
                argon2_memory_kib: 1 << 20,
                ..HasherConfig::default()
            },
            HasherConfig {
                scrypt_log_n: 0,
                ..HasherConfig::default()
            },
            HasherConfig {
                scrypt_log_n: 20,
                ..HasherConfig::default()
            },
            HasherConfig {
                scrypt_block_size: 0,
                ..HasherConfig::default()
            },
        ];
        for config in bad {
            assert!(
                PasswordHasher::try_new(config.clone()).is_err(),
                "{config:?}"
            );
        }
        // max_concurrent 0 is taken as 1.
        let hasher = PasswordHasher::new(HasherConfig {
            max_concurrent: 0,
            ..HasherConfig::fast_for_tests()
        });
        assert_eq!(hasher.inner.semaphore.available_permits(), 1);
    }

    #[test]
    #[should_panic(expected = "invalid password hasher config")]
    fn new_panics_on_invalid_config() {
        let _ = PasswordHasher::new(HasherConfig {
            pbkdf2_iterations: 0,
            ..HasherConfig::default()
        });
    }

    #[test]
    fn lower_work_factors_need_upgrade() {
        for algorithm in ALL {
            let old = fast_with(algorithm).hash_sync("pw");
            let stronger = PasswordHasher::new(HasherConfig {
                algorithm,
                pbkdf2_iterations: 2_000,
                argon2_memory_kib: 2_048,
                bcrypt_cost: 5,
                scrypt_log_n: 11,
                ..HasherConfig::fast_for_tests()
            });
            assert_eq!(
                stronger.verify_sync("pw", &old),
                Verification::Valid {
                    needs_upgrade: true
                },
                "{old}"
            );
            // A wrong password still fails (after hardening the runtime).
            assert_eq!(stronger.verify_sync("nope", &old), Verification::Invalid);
            // Higher work factors than configured are not an upgrade.
            let new = stronger.hash_sync("pw");
            assert_eq!(
                fast_with(algorithm).verify_sync("pw", &new),
                Verification::Valid {
                    needs_upgrade: false
                },
                "{new}"
            );
        }
    }

    #[test]
    fn short_salt_needs_upgrade() {
        let mut dk = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(b"pw", b"shortsalt", 1000, &mut dk);
        let encoded = format!("pbkdf2_sha256$1000$shortsalt${}", STANDARD.encode(dk));
        assert_eq!(
            fast().verify_sync("pw", &encoded),
            Verification::Valid {
                needs_upgrade: true
            }
        );
    }

    #[test]
    fn over_cap_hashes_are_refused() {
        let vectors = fast_vectors();
        let find = |prefix: &str, part: &str| {
            vectors
                .iter()
                .find(|(_, _, e)| e.starts_with(prefix) && e.contains(part))
                .cloned()
                .unwrap()
        };
        let capped = PasswordHasher::new(HasherConfig {
            max_pbkdf2_iterations: 1_500,
            max_argon2_memory_kib: 1_024,
            max_argon2_time_cost: 1,
            max_scrypt_log_n: 10,
            max_scrypt_parallelism: 1,
            max_bcrypt_cost: 4,
            ..HasherConfig::fast_for_tests()
        });
        for (prefix, part, refused) in [
            ("pbkdf2_sha256$1000$", "", false),
            ("pbkdf2_sha256$2000$", "", true),
            ("pbkdf2_sha1$1000$", "", false),
            ("argon2$argon2id$v=19$m=1024,t=1,", "", false),
            ("argon2$argon2id$v=19$m=256,t=2,", "", true),
            ("scrypt$1024$", "$8$1$", false),
            ("scrypt$1024$", "$8$5$", true),
            ("bcrypt_sha256$$2b$04$", "", false),
        ] {
            let (_, password, encoded) = find(prefix, part);
            assert_eq!(
                !capped.verify_sync(&password, &encoded).is_valid(),
                refused,
                "{encoded}"
            );
        }

        // Absurd work factors come back at once instead of running.
        let salt = "A".repeat(22);
        let b64 = |n: usize| STANDARD.encode(vec![0u8; n]);
        let start = std::time::Instant::now();
        for encoded in [
            format!("pbkdf2_sha256$4294967295${salt}${}", b64(32)),
            format!("pbkdf2_sha256$10000001${salt}${}", b64(32)),
            format!("pbkdf2_sha1$4294967295${salt}${}", b64(20)),
            format!("bcrypt_sha256$$2b$31${}", ".".repeat(53)),
            format!("bcrypt_sha256$$2b$17${}", ".".repeat(53)),
            format!("bcrypt$$2b$31${}", ".".repeat(53)),
            format!(
                "argon2$argon2id$v=19$m=4294967295,t=1,p=1${}${}",
                STANDARD_NO_PAD.encode(&salt),
                STANDARD_NO_PAD.encode([0u8; 32])
            ),
            format!(
                "argon2$argon2id$v=19$m=1024,t=4294967295,p=1${}${}",
                STANDARD_NO_PAD.encode(&salt),
                STANDARD_NO_PAD.encode([0u8; 32])
            ),
            format!("scrypt$1073741824${salt}$8$1${}", b64(64)),
            format!("scrypt$1024${salt}$1048576$1${}", b64(64)),
            format!("scrypt$1024${salt}$8$1048576${}", b64(64)),
        ] {
            assert!(
                is_usable(&encoded) || encoded.contains("$1048576$"),
                "{encoded}"
            );
            assert_eq!(
                PasswordHasher::new(HasherConfig::fast_for_tests()).verify_sync("pw", &encoded),
                Verification::Invalid,
                "{encoded}"
            );
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(20));
    }

    #[test]
    fn malformed_encodings_are_invalid() {
        let (_, _, good) = vectors()
            .into_iter()
            .find(|(_, p, e)| p == "password" && e.starts_with("pbkdf2_sha256$1000$"))
            .unwrap();
        let hasher = fast();
        assert!(hasher.verify_sync("password", &good).is_valid());
        let salt = "A".repeat(22);
        let b64 = STANDARD.encode([0u8; 32]);
        let cases = [
            String::new(),
            "$".into(),
            "$$$".into(),
            "!".into(),
            "!abc".into(),
            make_unusable(),
            "pbkdf2_sha256".into(),
            "pbkdf2_sha256$".into(),
            "pbkdf2_sha256$x$y".into(),
            "pbkdf2_sha256$1000$y".into(),
            format!("pbkdf2_sha256$99999999999999999999999${salt}${b64}"),
            format!("pbkdf2_sha256$0${salt}${b64}"),
            format!("pbkdf2_sha256$-1${salt}${b64}"),
            format!("pbkdf2_sha256$+1000${salt}${b64}"),
            format!("pbkdf2_sha256$01000${salt}${b64}"),
            format!("pbkdf2_sha256$ 1000${salt}${b64}"),
            format!("pbkdf2_sha256$1000$${b64}"),
            format!("pbkdf2_sha256$1000${salt}$not base64!"),
            format!("pbkdf2_sha256$1000${salt}${}", &b64[..b64.len() - 1]),
            format!("pbkdf2_sha256$1000${salt}${}", STANDARD.encode([0u8; 20])),
            format!("pbkdf2_sha256$1000${salt}${b64}$extra"),
            format!("{good}$"),
            format!("{good}="),
            good.replace("pbkdf2_sha256", "PBKDF2_SHA256"),
            good.replace("pbkdf2_sha256", "pbkdf2_sha512"),
            "md5$salt$5f4dcc3b5aa765d61d8327deb882cf99".into(),
            "5f4dcc3b5aa765d61d8327deb882cf99".into(),
            "sha1$$5baa61e4c9b93f3f0682250b6cf8331b7ee68fd8".into(),
            "argon2".into(),
            "argon2$".into(),
            "argon2$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ".into(),
            "argon2$argon2x$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2g".into(),
            "argon2$argon2id$v=18$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2g".into(),
            "argon2$argon2id$v=19$t=1,m=1024,p=1$c2FsdHNhbHQ$aGFzaGhhc2g".into(),
            "argon2$argon2id$v=19$m=1024,t=1$c2FsdHNhbHQ$aGFzaGhhc2g".into(),
            "argon2$argon2id$v=19$m=1024,t=1,p=1,x=1$c2FsdHNhbHQ$aGFzaGhhc2g".into(),
            "argon2$argon2id$v=19$m=8,t=1,p=8$c2FsdHNhbHQ$aGFzaGhhc2g".into(),
            "argon2$argon2id$v=19$m=1024,t=0,p=1$c2FsdHNhbHQ$aGFzaGhhc2g".into(),
            "argon2$argon2id$v=19$m=1024,t=1,p=1$c2Fs$aGFzaGhhc2g".into(),
            "argon2$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGE".into(),
            "argon2$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2g=".into(),
            "argon2$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$!!!!".into(),
            "bcrypt_sha256$".into(),
            "bcrypt_sha256$$2b$12$short".into(),
            format!("bcrypt_sha256$2b$12${}", ".".repeat(53)),
            format!("bcrypt_sha256$$2x$12${}", ".".repeat(53)),
            format!("bcrypt_sha256$$2b$3${}", ".".repeat(53)),
            format!("bcrypt_sha256$$2b$03${}", ".".repeat(53)),
            format!("bcrypt_sha256$$2b$32${}", ".".repeat(53)),
            format!("bcrypt_sha256$$2b$+4${}", ".".repeat(53)),
            format!("bcrypt_sha256$$2b$12${}", ".".repeat(54)),
            // Non-canonical base64 (salt with trailing bits set).
            format!("bcrypt_sha256$$2b$04${}", "a".repeat(53)),
            format!("bcrypt_sha256$$2b$12${}", "+".repeat(53)),
            format!("bcrypt_sha256$$2b$12${}é", "a".repeat(51)),
            format!("bcrypt_sha256$$2b$12${}$", ".".repeat(53)),
            "scrypt$".into(),
            format!("scrypt$1000${salt}$8$1${}", STANDARD.encode([0u8; 64])),
            format!("scrypt$1${salt}$8$1${}", STANDARD.encode([0u8; 64])),
            format!("scrypt$0${salt}$8$1${}", STANDARD.encode([0u8; 64])),
            format!("scrypt$1024$$8$1${}", STANDARD.encode([0u8; 64])),
            format!("scrypt$1024${salt}$0$1${}", STANDARD.encode([0u8; 64])),
            format!("scrypt$1024${salt}$8$0${}", STANDARD.encode([0u8; 64])),
            format!("scrypt$1024${salt}$8$1${}", STANDARD.encode([0u8; 32])),
            format!("scrypt$1024${salt}$8$1$!!"),
            format!("scrypt${salt}$1024$8$1${}", STANDARD.encode([0u8; 64])),
            format!("scrypt$1024${salt}$8$1${}$", STANDARD.encode([0u8; 64])),
            format!(
                "scrypt$18446744073709551616${salt}$8$1${}",
                STANDARD.encode([0u8; 64])
            ),
            "\0\u{fffd}$$$$$$$$$$".into(),
        ];
        for encoded in &cases {
            assert!(!is_usable(encoded), "{encoded:?}");
            assert_eq!(
                hasher.verify_sync("password", encoded),
                Verification::Invalid,
                "{encoded:?}"
            );
            assert_eq!(hasher.verify_sync("", encoded), Verification::Invalid);
        }
        // No proper prefix of a real hash verifies.
        for (_, password, encoded) in &fast_vectors() {
            for end in 0..encoded.len() {
                let Some(cut) = encoded.get(..end) else {
                    continue;
                };
                // Unparseable cuts are covered above; skip their dummy work.
                if is_usable(cut) {
                    assert!(!hasher.verify_sync(password, cut).is_valid(), "{cut}");
                }
            }
        }
    }

    #[test]
    fn unusable_passwords() {
        let a = make_unusable();
        let b = make_unusable();
        assert_ne!(a, b);
        assert_eq!(a.len(), 41);
        assert!(a.starts_with('!'));
        assert!(a[1..].bytes().all(|b| b.is_ascii_alphanumeric()));
        assert!(!is_usable(&a));
        assert!(!is_usable(""));
        assert!(!is_usable("!"));
        assert!(!is_usable("nonsense"));
        assert!(!is_usable("unknown$1$2$3"));
        assert!(is_usable(&fast().hash_sync("x")));
        let hasher = fast();
        assert_eq!(hasher.verify_sync("", &a), Verification::Invalid);
        assert_eq!(hasher.verify_sync(&a, &a), Verification::Invalid);
        assert_eq!(hasher.verify_sync(&a[1..], &a), Verification::Invalid);
    }

    #[test]
    fn dummy_verify_uses_the_configured_algorithm() {
        for algorithm in ALL {
            let hasher = fast_with(algorithm);
            hasher.dummy_verify_sync("anything");
            let dummy = hasher.inner.dummy.get().unwrap().clone();
            assert!(dummy.starts_with(&format!("{}$", algorithm.django_name())));
            // Built once, shared by clones.
            hasher.clone().dummy_verify_sync("other");
            assert_eq!(hasher.inner.dummy.get(), Some(&dummy));
            // Debug shows the config, not the dummy hash.
            let debug = format!("{hasher:?}");
            assert!(debug.contains("PasswordHasher"));
            assert!(!debug.contains(&dummy));
        }
    }

    #[test]
    fn verification_is_valid() {
        assert!(Verification::Valid {
            needs_upgrade: false
        }
        .is_valid());
        assert!(Verification::Valid {
            needs_upgrade: true
        }
        .is_valid());
        assert!(!Verification::Invalid.is_valid());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn async_methods() {
        let hasher = PasswordHasher::new(HasherConfig {
            max_concurrent: 2,
            ..HasherConfig::fast_for_tests()
        });
        let encoded = hasher.hash("secret").await.unwrap();
        assert_eq!(
            hasher.verify("secret", &encoded).await,
            Verification::Valid {
                needs_upgrade: false
            }
        );
        assert_eq!(
            hasher.verify("wrong", &encoded).await,
            Verification::Invalid
        );
        assert_eq!(
            hasher.verify("secret", "garbage").await,
            Verification::Invalid
        );
        hasher.dummy_verify("secret").await;

        // A flood of checks queues on the semaphore and all complete.
        let tasks: Vec<_> = (0..32)
            .map(|i| {
                let hasher = hasher.clone();
                let encoded = encoded.clone();
                tokio::spawn(async move {
                    let password = if i % 2 == 0 { "secret" } else { "wrong" };
                    hasher.verify(password, &encoded).await.is_valid() == (i % 2 == 0)
                })
            })
            .collect();
        for task in tasks {
            assert!(task.await.unwrap());
        }
        assert_eq!(hasher.inner.semaphore.available_permits(), 2);
    }

    #[tokio::test]
    async fn async_methods_on_current_thread_runtime() {
        let hasher = fast_with(Algorithm::Scrypt);
        let encoded = hasher.hash("pässwörd 🔐").await.unwrap();
        assert!(hasher.verify("pässwörd 🔐", &encoded).await.is_valid());
        for (_, password, encoded) in &fast_vectors() {
            assert!(
                hasher.verify(password, encoded).await.is_valid(),
                "{encoded}"
            );
        }
    }

    #[tokio::test]
    async fn cancelled_verify_keeps_its_permit_until_done() {
        let hasher = PasswordHasher::new(HasherConfig {
            max_concurrent: 1,
            ..HasherConfig::fast_for_tests()
        });
        let encoded = hasher.hash("pw").await.unwrap();
        // Dropping the future after it started does not leak the permit.
        let fut = hasher.verify("pw", &encoded);
        drop(tokio::time::timeout(std::time::Duration::from_nanos(1), fut).await);
        assert!(hasher.verify("pw", &encoded).await.is_valid());
        assert_eq!(hasher.inner.semaphore.available_permits(), 1);
    }
}
