//! Runs the built `portcullis` binary in temporary directories: every
//! command's output and exit code, every error path, the secret key file,
//! PostgreSQL and MariaDB, and `serve` end to end.
//!
//! PostgreSQL (127.0.0.1:5432) and MariaDB (127.0.0.1:3306) must be up:
//! these tests fail, never skip, when they are not.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tempfile::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");
const SECRET: &str = "an-explicit-test-secret-key-that-is-long-enough-0123456789";
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// A working directory, a database URL (none: the default) and a secret
/// (none: the default rules).
struct Env {
    dir: TempDir,
    url: Option<String>,
    secret: Option<String>,
    extra: Vec<(String, String)>,
}

impl Env {
    fn sqlite() -> Env {
        Env {
            dir: tempfile::tempdir().unwrap(),
            url: None,
            secret: None,
            extra: Vec::new(),
        }
    }

    fn with_url(url: String) -> Env {
        Env {
            url: Some(url),
            ..Env::sqlite()
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.current_dir(self.path());
        for (k, _) in std::env::vars() {
            if k.starts_with("PORTCULLIS_") || k == "DATABASE_URL" || k == "RUST_LOG" {
                c.env_remove(k);
            }
        }
        c.env("PORTCULLIS_PASSWORD_ITERATIONS", "1000");
        c.env("RUST_BACKTRACE", "1");
        if let Some(url) = &self.url {
            c.env("PORTCULLIS_DATABASE_URL", url);
        }
        if let Some(secret) = &self.secret {
            c.env("PORTCULLIS_SECRET_KEY", secret);
        }
        for (k, v) in &self.extra {
            c.env(k, v);
        }
        c.args(args);
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_with(self.command(args), None)
    }

    fn run_stdin(&self, args: &[&str], input: &str) -> Output {
        self.run_with(self.command(args), Some(input))
    }

    fn run_with(&self, mut c: Command, input: Option<&str>) -> Output {
        c.stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = c.spawn().expect("the portcullis binary runs");
        if let Some(input) = input {
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(input.as_bytes()).unwrap();
        }
        let out = drain(&mut child);
        let status = wait_timeout(&mut child, COMMAND_TIMEOUT).unwrap_or_else(|| {
            let _ = child.kill();
            panic!("portcullis {c:?} did not finish in {COMMAND_TIMEOUT:?}")
        });
        let (stdout, stderr) = out.join().unwrap();
        Output {
            status,
            stdout,
            stderr,
        }
    }

    /// Runs a command that must succeed; returns its standard output.
    fn ok(&self, args: &[&str]) -> String {
        ok(self.run(args), args)
    }

    /// Runs a command that must fail; returns its one error line.
    fn fails(&self, args: &[&str]) -> String {
        fails(self.run(args), args)
    }

    fn token(&self, username: &str, regenerate: bool) -> String {
        let mut args = vec!["create-token", username];
        if regenerate {
            args.push("-r");
        }
        let out = self.ok(&args);
        parse_token(&out, username)
    }
}

fn drain(child: &mut Child) -> std::thread::JoinHandle<(Vec<u8>, Vec<u8>)> {
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        let e = std::thread::spawn(move || {
            let mut b = Vec::new();
            let _ = err.read_to_end(&mut b);
            b
        });
        let mut o = Vec::new();
        let _ = out.read_to_end(&mut o);
        (o, e.join().unwrap())
    })
}

fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn ok(out: Output, args: &[&str]) -> String {
    assert!(
        out.status.success(),
        "portcullis {args:?} failed ({:?}): {}",
        out.status,
        text(&out.stderr)
    );
    text(&out.stdout)
}

fn fails(out: Output, args: &[&str]) -> String {
    let stderr = text(&out.stderr);
    assert!(
        !out.status.success(),
        "portcullis {args:?} should fail; stdout: {}",
        text(&out.stdout)
    );
    assert!(out.status.code().is_some(), "killed by a signal: {args:?}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "portcullis {args:?} panicked: {stderr}"
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "portcullis {args:?}: not one line: {stderr:?}"
    );
    assert!(
        lines[0].starts_with("error: ") || lines[0].starts_with("Cannot create the Token: "),
        "{stderr:?}"
    );
    lines[0].to_owned()
}

fn parse_token(out: &str, username: &str) -> String {
    let line = out.trim_end();
    assert_eq!(line.lines().count(), 1, "{out:?}");
    let rest = line
        .strip_prefix("Generated token ")
        .unwrap_or_else(|| panic!("unexpected output {out:?}"));
    let (key, user) = rest.split_once(" for user ").unwrap();
    assert_eq!(user, username);
    assert_eq!(key.len(), 40, "{key}");
    assert!(key.bytes().all(|b| b.is_ascii_hexdigit()), "{key}");
    key.to_owned()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn postgres_url() -> String {
    runtime().block_on(portcullis_store::testing::fresh_postgres_url())
}

fn mysql_url() -> String {
    runtime().block_on(portcullis_store::testing::fresh_mysql_url())
}

// ---------------------------------------------------------------- SQLite

#[test]
fn migrate_creates_the_default_database_and_is_idempotent() {
    let env = Env::sqlite();
    let out = env.ok(&["migrate"]);
    assert!(out.contains("sqlite"), "{out}");
    assert!(env.path().join("portcullis.db").exists());
    env.ok(&["migrate"]);
    // migrate touches no credentials: no secret is generated for it.
    assert!(!env.path().join("portcullis.db.secret_key").exists());
}

#[test]
fn createuser_creates_users_and_refuses_duplicates() {
    let env = Env::sqlite();
    assert_eq!(
        env.ok(&[
            "createuser",
            "ada",
            "--password",
            "pw",
            "--email",
            "ada@example.com"
        ]),
        "Created user ada\n"
    );
    assert_eq!(
        env.fails(&["createuser", "ada", "--password", "other"]),
        "error: user ada already exists"
    );
    // Usernames are case-sensitive.
    env.ok(&["createuser", "Ada"]);
    env.ok(&["createuser", "root", "--superuser", "--password", "pw"]);
    env.ok(&["createuser", "staffer", "--staff"]);
    env.ok(&["createuser", "sleeper", "--inactive"]);
    env.ok(&["createuser", "nopassword"]);
}

#[test]
fn createuser_refuses_bad_usernames_and_passwords() {
    let env = Env::sqlite();
    assert!(env.fails(&["createuser", ""]).contains("empty"));
    assert!(env
        .fails(&["createuser", "has space"])
        .contains("valid username"));
    assert!(env
        .fails(&["createuser", "ada", "--password", ""])
        .contains("empty"));
    let line = fails(
        env.run_stdin(&["createuser", "ada", "--password-stdin"], ""),
        &["--password-stdin"],
    );
    assert!(line.contains("standard input"), "{line}");
    let line = fails(
        env.run_stdin(&["createuser", "ada", "--password-stdin"], "\n"),
        &["--password-stdin"],
    );
    assert!(line.contains("standard input"), "{line}");
    // Both sources at once is a usage error, still one line.
    let out = env.run(&["createuser", "ada", "--password", "x", "--password-stdin"]);
    assert_eq!(out.status.code(), Some(2));
    fails(out, &["both"]);
    // Nothing was created by the failures.
    env.ok(&["createuser", "ada"]);
}

#[test]
fn password_stdin_sets_the_password() {
    let env = Env::sqlite();
    let out = env.run_stdin(&["createuser", "bob", "--password-stdin"], "s3cret\n");
    assert_eq!(ok(out, &["createuser"]), "Created user bob\n");
    let out = env.run_stdin(&["changepassword", "bob", "--password-stdin"], "n3w\r\n");
    assert_eq!(
        ok(out, &["changepassword"]),
        "Password changed successfully for user 'bob'\n"
    );
}

#[test]
fn create_token_returns_the_same_key_until_regenerated() {
    let env = Env::sqlite();
    env.ok(&["createuser", "ada"]);
    let first = env.token("ada", false);
    assert_eq!(env.token("ada", false), first);
    let second = env.token("ada", true);
    assert_ne!(second, first);
    assert_eq!(env.token("ada", false), second);
    let out = env.ok(&["create-token", "ada", "--regenerate"]);
    assert_ne!(parse_token(&out, "ada"), second);
}

#[test]
fn create_token_for_an_unknown_user_says_so() {
    let env = Env::sqlite();
    env.ok(&["migrate"]);
    assert_eq!(
        env.fails(&["create-token", "ghost"]),
        "Cannot create the Token: user ghost does not exist"
    );
    assert_eq!(
        env.fails(&["create-token", "ghost", "-r"]),
        "Cannot create the Token: user ghost does not exist"
    );
    env.ok(&["createuser", "Ghost"]);
    // Case-sensitive: "ghost" is still unknown.
    env.fails(&["create-token", "ghost"]);
    assert!(env.fails(&["create-token", ""]).contains("empty"));
}

#[test]
fn create_token_works_for_inactive_users() {
    let env = Env::sqlite();
    env.ok(&["createuser", "sleeper", "--inactive"]);
    env.token("sleeper", false);
}

#[test]
fn user_commands_print_what_they_did() {
    let env = Env::sqlite();
    env.ok(&["createuser", "ada", "--password", "pw"]);
    assert_eq!(env.ok(&["deactivate", "ada"]), "Deactivated user ada\n");
    assert_eq!(env.ok(&["activate", "ada"]), "Activated user ada\n");
    assert_eq!(
        env.ok(&["changepassword", "ada", "--password", "pw2"]),
        "Password changed successfully for user 'ada'\n"
    );
    assert_eq!(env.ok(&["deleteuser", "ada"]), "Deleted user ada\n");
    for cmd in ["deactivate", "activate", "deleteuser"] {
        assert_eq!(
            env.fails(&[cmd, "ada"]),
            "error: user ada does not exist",
            "{cmd}"
        );
        assert!(env.fails(&[cmd, ""]).contains("empty"), "{cmd}");
    }
    assert_eq!(
        env.fails(&["changepassword", "ada", "--password", "x"]),
        "error: user ada does not exist"
    );
    env.ok(&["createuser", "bob"]);
    assert!(env
        .fails(&["changepassword", "bob"])
        .contains("--password-stdin"));
}

#[test]
fn the_secret_file_is_private_created_once_and_reused() {
    let env = Env::sqlite();
    let file = env.path().join("portcullis.db.secret_key");
    env.ok(&["createuser", "ada"]);
    assert!(file.exists(), "createuser reads the secret as serve does");
    let mode = {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(&file).unwrap().permissions().mode()
    };
    assert_eq!(mode & 0o777, 0o600);
    let secret = std::fs::read_to_string(&file).unwrap();
    assert!(secret.trim().len() >= 32);
    let key = env.token("ada", false);
    assert_eq!(env.token("ada", false), key);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), secret);

    // A database elsewhere keeps its secret beside it.
    let other = env.path().join("sub");
    std::fs::create_dir(&other).unwrap();
    let url = format!("sqlite://{}", other.join("x.db").display());
    env.ok(&["--database-url", &url, "createuser", "ada"]);
    let other_secret = std::fs::read_to_string(other.join("x.db.secret_key")).unwrap();
    assert_ne!(other_secret, secret);
}

#[test]
fn an_explicit_secret_is_used_and_no_file_is_written() {
    let mut env = Env::sqlite();
    env.secret = Some(SECRET.into());
    env.ok(&["createuser", "ada"]);
    let key = env.token("ada", false);
    assert!(!env.path().join("portcullis.db.secret_key").exists());
    assert_eq!(env.token("ada", false), key);
    env.secret = Some("too short".into());
    assert!(env
        .fails(&["create-token", "ada"])
        .contains("at least 32 bytes"));
}

#[test]
fn flags_beat_env_beat_the_config_file() {
    let mut env = Env::sqlite();
    let config = env.path().join("portcullis.toml");
    std::fs::write(&config, "database_url = \"sqlite://file.db\"\n").unwrap();
    let cfg = config.to_str().unwrap().to_owned();
    env.ok(&["--config", &cfg, "migrate"]);
    assert!(env.path().join("file.db").exists());

    env.extra = vec![("DATABASE_URL".into(), "sqlite://plain.db".into())];
    env.ok(&["--config", &cfg, "migrate"]);
    assert!(env.path().join("plain.db").exists());

    env.url = Some("sqlite://env.db".into());
    env.ok(&["--config", &cfg, "migrate"]);
    assert!(env.path().join("env.db").exists());

    env.ok(&[
        "migrate",
        "--config",
        &cfg,
        "--database-url",
        "sqlite://flag.db",
    ]);
    assert!(env.path().join("flag.db").exists());
    assert!(!env.path().join("portcullis.db").exists());
}

#[test]
fn bad_settings_are_one_line_errors() {
    let mut env = Env::sqlite();
    assert!(env
        .fails(&["--config", "missing.toml", "migrate"])
        .contains("missing.toml"));
    std::fs::write(env.path().join("bad.toml"), "database_url = [").unwrap();
    assert!(env
        .fails(&["--config", "bad.toml", "migrate"])
        .contains("bad.toml"));
    std::fs::write(env.path().join("typo.toml"), "databse_url = \"x\"\n").unwrap();
    assert!(env
        .fails(&["--config", "typo.toml", "migrate"])
        .contains("databse_url"));
    assert!(env
        .fails(&["--database-url", "oracle://db", "migrate"])
        .contains("unsupported database URL"));
    env.fails(&[
        "--database-url",
        "sqlite:///nonexistent/dir/x.db",
        "migrate",
    ]);
    env.fails(&["no-such-command"]);
    env.extra = vec![("PORTCULLIS_PASSWORD_ITERATIONS".into(), "lots".into())];
    assert!(env
        .fails(&["migrate"])
        .contains("PORTCULLIS_PASSWORD_ITERATIONS"));
    env.extra = vec![("PORTCULLIS_LOG".into(), "info,[[[".into())];
    env.fails(&["migrate"]);
}

#[test]
fn unreachable_databases_fail_without_showing_the_password() {
    let env = Env::sqlite();
    for url in [
        "postgres://portcullis:hunter2secret@127.0.0.1:1/db",
        "mysql://portcullis:hunter2secret@127.0.0.1:1/db",
    ] {
        let line = env.fails(&["--database-url", url, "migrate"]);
        assert!(!line.contains("hunter2secret"), "{line}");
        assert!(line.contains("127.0.0.1:1"), "{line}");
    }
}

#[test]
fn a_one_letter_password_does_not_garble_the_error() {
    let env = Env::sqlite();
    let line = env.fails(&[
        "--database-url",
        "postgres://portcullis:e@127.0.0.1:1/db",
        "migrate",
    ]);
    assert!(
        line.contains("postgres://portcullis:***@127.0.0.1:1/db"),
        "{line}"
    );
    // The driver's words after the URL are intact.
    let rest = line.split_once("/db").unwrap().1;
    assert!(!rest.contains("***"), "{line}");
}

#[test]
fn an_in_memory_database_is_refused_except_by_serve() {
    let env = Env::sqlite();
    for url in ["sqlite://", "sqlite::memory:", "sqlite://x.db?mode=memory"] {
        for args in [
            &["migrate"][..],
            &["createuser", "ada", "--password", "pw"],
            &["create-token", "ada"],
        ] {
            let all: Vec<&str> = ["--database-url", url]
                .iter()
                .chain(args)
                .copied()
                .collect();
            let line = env.fails(&all);
            assert!(line.contains("in memory"), "{url} {args:?}: {line}");
        }
    }
    // `serve` runs on one: a throwaway server.
    let mut env = env;
    env.extra = vec![("PORTCULLIS_DATABASE_URL".into(), "sqlite://".into())];
    let server = Server::start(&env);
    let health = client().get(server.url("/health/")).send().unwrap();
    assert_eq!(health.status(), 200);
    let (status, _) = server.stop("-TERM");
    assert_eq!(status.code(), Some(0));
}

// ---------------------------------------------------- PostgreSQL, MariaDB

fn shared_database_paths(url: String) {
    let mut env = Env::with_url(url.clone());
    // No secret: migrate works (it touches no credentials) ...
    env.ok(&["migrate"]);
    env.ok(&["migrate"]);
    // ... but nothing that handles credentials does.
    for args in [
        &["createuser", "ada"][..],
        &["create-token", "ada"],
        &["changepassword", "ada", "--password", "x"],
        &["serve", "--bind", "127.0.0.1:0"],
    ] {
        let line = env.fails(args);
        assert!(line.contains("PORTCULLIS_SECRET_KEY"), "{args:?}: {line}");
    }

    env.secret = Some(SECRET.into());
    env.ok(&["createuser", "ada", "--password", "pw", "--superuser"]);
    assert_eq!(
        env.fails(&["createuser", "ada"]),
        "error: user ada already exists"
    );
    env.ok(&["createuser", "Ada"]);
    env.ok(&["createuser", "sleeper", "--inactive"]);
    let key = env.token("ada", false);
    assert_eq!(env.token("ada", false), key);
    assert_ne!(env.token("Ada", false), key);
    let new = env.token("ada", true);
    assert_ne!(new, key);
    assert_eq!(env.token("ada", false), new);
    env.token("sleeper", false);
    assert_eq!(
        env.fails(&["create-token", "ghost"]),
        "Cannot create the Token: user ghost does not exist"
    );
    assert_eq!(
        env.fails(&["create-token", "ADA"]),
        "Cannot create the Token: user ADA does not exist"
    );
    env.ok(&["changepassword", "ada", "--password", "pw2"]);
    env.ok(&["deactivate", "ada"]);
    env.ok(&["activate", "ada"]);
    env.ok(&["deleteuser", "Ada"]);
    assert_eq!(env.token("ada", false), new, "deleting Ada left ada alone");
    runtime().block_on(portcullis_store::testing::drop_database(&url));
}

#[test]
fn postgres_migrate_createuser_create_token() {
    shared_database_paths(postgres_url());
}

#[test]
fn mariadb_migrate_createuser_create_token() {
    shared_database_paths(mysql_url());
}

// ------------------------------------------------------------------ serve

/// A running `portcullis serve`.
struct Server {
    child: Child,
    base: String,
    stderr: std::thread::JoinHandle<String>,
}

impl Server {
    fn start(env: &Env) -> Server {
        let mut c = env.command(&["serve", "--bind", "127.0.0.1:0"]);
        c.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let base = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(addr) = line.strip_prefix("portcullis listening on ") {
                        break addr.trim().to_owned();
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "serve did not become ready: {}",
                        stderr.join().unwrap_or_default()
                    );
                }
            }
        };
        assert!(base.starts_with("http://127.0.0.1:"), "{base}");
        Server {
            child,
            base,
            stderr,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends a signal and returns the exit status and the logs.
    fn stop(mut self, signal: &str) -> (ExitStatus, String) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let status = wait_timeout(&mut self.child, Duration::from_secs(20)).unwrap_or_else(|| {
            let _ = self.child.kill();
            panic!("serve did not stop on {signal}")
        });
        (status, self.stderr.join().unwrap())
    }
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn token_status(server: &Server, key: &str) -> u16 {
    client()
        .get(server.url("/token/"))
        .header("Authorization", format!("Token {key}"))
        .send()
        .unwrap()
        .status()
        .as_u16()
}

fn basic_status(server: &Server, user: &str, password: &str) -> u16 {
    client()
        .get(server.url("/basic/"))
        .basic_auth(user, Some(password))
        .send()
        .unwrap()
        .status()
        .as_u16()
}

/// Polls until `f` gives `want`; the reference app promises changes made
/// by the CLI are honoured within 1 second.
fn eventually(want: u16, mut f: impl FnMut() -> u16) -> u16 {
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let got = f();
        if got == want || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn serve_end_to_end_on_sqlite_then_sigterm() {
    let env = Env::sqlite();
    let server = Server::start(&env);
    assert!(env.path().join("portcullis.db.secret_key").exists());

    let health = client().get(server.url("/health/")).send().unwrap();
    assert_eq!(health.status(), 200);
    let body: serde_json::Value = health.json().unwrap();
    assert_eq!(body["status"], "ok");

    let password = "first-Passw0rd";
    env.ok(&["createuser", "ada", "--password", password]);
    let key = env.token("ada", false);
    let res = client()
        .get(server.url("/token/"))
        .header("Authorization", format!("Token {key}"))
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().unwrap();
    assert_eq!(body["user"], "ada");
    assert_eq!(token_status(&server, "0".repeat(40).as_str()), 401);

    env.ok(&["deactivate", "ada"]);
    assert_eq!(eventually(401, || token_status(&server, &key)), 401);
    env.ok(&["activate", "ada"]);
    assert_eq!(eventually(200, || token_status(&server, &key)), 200);

    assert_eq!(basic_status(&server, "ada", password), 200);
    let new_password = "second-Passw0rd";
    let out = env.run_stdin(
        &["changepassword", "ada", "--password-stdin"],
        &format!("{new_password}\n"),
    );
    ok(out, &["changepassword"]);
    // Not polled: until the server sees the change, each try with the new
    // password is a failed login that the lockout counts. The contract
    // promises the change within one second.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(basic_status(&server, "ada", new_password), 200);
    assert_eq!(basic_status(&server, "ada", password), 401);

    let regenerated = env.token("ada", true);
    assert_eq!(eventually(401, || token_status(&server, &key)), 401);
    assert_eq!(token_status(&server, &regenerated), 200);

    env.ok(&["deleteuser", "ada"]);
    assert_eq!(eventually(401, || token_status(&server, &regenerated)), 401);

    let (status, logs) = server.stop("-TERM");
    assert_eq!(status.code(), Some(0), "logs: {logs}");
    assert!(logs.contains("/token/"), "requests are logged: {logs}");
    for secret in [key.as_str(), regenerated.as_str(), password, new_password] {
        assert!(!logs.contains(secret), "a credential was logged: {logs}");
    }
    let file_secret = std::fs::read_to_string(env.path().join("portcullis.db.secret_key")).unwrap();
    assert!(!logs.contains(file_secret.trim()));
}

/// What `serve` itself serves (the app's layers around its routes, not the
/// `Router` the other HTTP tests use) answers errors and `HEAD` as the
/// contract says, over a real connection.
#[test]
fn serve_answers_errors_as_json_and_head_without_a_body() {
    let mut env = Env::sqlite();
    env.extra = vec![("PORTCULLIS_FORM_LIMIT".into(), "1000".into())];
    let server = Server::start(&env);
    let c = client();
    let json = |res: reqwest::blocking::Response| -> serde_json::Value { res.json().unwrap() };

    let res = c.get(server.url("/nope/")).send().unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(json(res), serde_json::json!({"detail": "Not found."}));

    let res = c.delete(server.url("/health/")).send().unwrap();
    assert_eq!(res.status(), 405);
    assert_eq!(res.headers()["allow"], "GET, HEAD");
    assert_eq!(
        json(res),
        serde_json::json!({"detail": "Method \"DELETE\" not allowed."})
    );

    // Over the form limit: 413 before any scheme reads the body.
    let res = c
        .post(server.url("/token/"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("x".repeat(1001))
        .send()
        .unwrap();
    assert_eq!(res.status(), 413);
    assert_eq!(
        json(res),
        serde_json::json!({"detail": "Request body too large."})
    );

    // HEAD: the GET's status and headers, no body.
    for (path, status) in [("/health/", 200), ("/nope/", 404), ("/token/", 401)] {
        let res = c.head(server.url(path)).send().unwrap();
        assert_eq!(res.status(), status, "{path}");
        assert_eq!(res.headers()["content-type"], "application/json", "{path}");
        assert!(res.bytes().unwrap().is_empty(), "{path}");
    }
    let res = c.head(server.url("/token/")).send().unwrap();
    assert_eq!(res.headers()["www-authenticate"], "Token");

    let (status, logs) = server.stop("-TERM");
    assert_eq!(status.code(), Some(0), "logs: {logs}");
}

#[test]
fn serve_stops_cleanly_on_sigint_and_keeps_its_secret() {
    let mut env = Env::sqlite();
    env.ok(&["createuser", "ada"]);
    let key = env.token("ada", false);
    // Settings reach the app, here from a config file named in the
    // environment.
    let config = env.path().join("settings.toml");
    std::fs::write(&config, "unauthenticated_user = \"Visitor\"\n").unwrap();
    env.extra = vec![("PORTCULLIS_CONFIG".into(), config.to_str().unwrap().into())];
    let server = Server::start(&env);
    assert_eq!(
        token_status(&server, &key),
        200,
        "the CLI's secret is serve's"
    );
    let whoami: serde_json::Value = client()
        .get(server.url("/api/whoami/"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(whoami["user"], "Visitor", "{whoami}");
    let (status, logs) = server.stop("-INT");
    assert_eq!(status.code(), Some(0), "logs: {logs}");
    // A restart keeps tokens valid.
    let server = Server::start(&env);
    assert_eq!(token_status(&server, &key), 200);
    let (status, _) = server.stop("-TERM");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn serve_closes_connections_that_stall_before_their_headers() {
    use std::io::Write;
    use std::net::TcpStream;
    let mut env = Env::sqlite();
    env.extra = vec![("PORTCULLIS_HEADER_READ_TIMEOUT".into(), "1".into())];
    let server = Server::start(&env);
    let addr = server.base.trim_start_matches("http://").to_owned();
    // Half a request's headers, then nothing (slowloris); and a connection
    // that never sends anything.
    let mut partial = TcpStream::connect(&addr).unwrap();
    partial
        .write_all(b"GET /health/ HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .unwrap();
    let silent = TcpStream::connect(&addr).unwrap();
    for (what, mut conn) in [("partial headers", partial), ("no request", silent)] {
        conn.set_read_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        let mut buf = [0u8; 64];
        let n = conn
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("{what}: the connection was left open: {e}"));
        assert_eq!(n, 0, "{what}: closed without an answer");
    }
    // A whole request on time is answered as usual.
    assert_eq!(
        client()
            .get(server.url("/health/"))
            .send()
            .unwrap()
            .status(),
        200
    );
    let (status, _) = server.stop("-TERM");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn serve_reports_a_busy_address_in_one_line() {
    let env = Env::sqlite();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let line = env.fails(&["serve", "--bind", &addr]);
    assert!(line.contains(&addr), "{line}");
    assert!(env
        .fails(&["serve", "--bind", "not-an-address"])
        .contains("not-an-address"));
}

#[test]
fn serve_on_postgres_with_a_secret() {
    let mut env = Env::with_url(postgres_url());
    env.secret = Some(SECRET.into());
    env.ok(&["createuser", "ada", "--password", "pw"]);
    let key = env.token("ada", false);
    let server = Server::start(&env);
    assert_eq!(token_status(&server, &key), 200);
    let (status, _) = server.stop("-TERM");
    assert_eq!(status.code(), Some(0));
    runtime().block_on(portcullis_store::testing::drop_database(
        env.url.as_deref().unwrap(),
    ));
}

// ------------------------------------------------------------------ JWT

/// The two paths `create-jwt-key` prints.
fn key_paths(out: &str) -> (String, String) {
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out:?}");
    let private = lines[0]
        .strip_prefix("private key: ")
        .expect("private line");
    let public = lines[1].strip_prefix("public key: ").expect("public line");
    (private.to_owned(), public.to_owned())
}

#[test]
fn create_jwt_key_writes_a_private_and_a_public_pem() {
    use portcullis::jwt::JwtKey;
    let env = Env::sqlite();
    for (alg, parsed) in [
        ("ES256", portcullis::jwt::Algorithm::ES256),
        ("eddsa", portcullis::jwt::Algorithm::EdDSA),
        ("RS256", portcullis::jwt::Algorithm::RS256),
    ] {
        let prefix = format!("keys-{alg}");
        let (private, public) =
            key_paths(&env.ok(&["create-jwt-key", "--alg", alg, "--out", &prefix]));
        assert_eq!(private, format!("{prefix}-private.pem"));
        assert_eq!(public, format!("{prefix}-public.pem"));
        let private_pem = std::fs::read_to_string(env.path().join(&private)).unwrap();
        let public_pem = std::fs::read_to_string(env.path().join(&public)).unwrap();
        assert!(JwtKey::private_pem(parsed, &private_pem)
            .unwrap()
            .can_sign());
        assert!(!JwtKey::public_pem(parsed, &public_pem).unwrap().can_sign());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(env.path().join(&private))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{private}: {mode:o}");
        }
        // Never overwrites.
        let err = env.fails(&["create-jwt-key", "--alg", alg, "--out", &prefix]);
        assert!(err.contains("already exists"), "{err}");
        assert_eq!(
            std::fs::read_to_string(env.path().join(&private)).unwrap(),
            private_pem
        );
    }
    // The default prefix.
    let (private, public) = key_paths(&env.ok(&["create-jwt-key", "--alg", "ES256"]));
    assert_eq!(private, "jwt-es256-private.pem");
    assert_eq!(public, "jwt-es256-public.pem");
    // HMAC needs no key pair; unknown algorithms are named.
    let err = env.fails(&["create-jwt-key", "--alg", "HS256"]);
    assert!(err.contains("secret key"), "{err}");
    let err = env.fails(&["create-jwt-key", "--alg", "none"]);
    assert!(err.contains("unsupported JWT algorithm"), "{err}");
    let err = env.fails(&["create-jwt-key"]);
    assert!(err.contains("--alg"), "{err}");
    // Nothing touched the database.
    assert!(!env.path().join("portcullis.db").exists());
}

#[test]
fn serve_signs_with_a_created_jwt_key_and_publishes_it() {
    let mut env = Env::sqlite();
    env.ok(&["createuser", "ada", "--password", "lovelace"]);
    env.extra = vec![
        ("PORTCULLIS_JWT_ALGORITHM".into(), "ES256".into()),
        (
            "PORTCULLIS_JWT_SIGNING_KEY_FILE".into(),
            "jwt-es256-private.pem".into(),
        ),
    ];
    // The key file does not exist yet: serve says so in one line, and
    // create-jwt-key still works with the setting in place.
    let err = env.fails(&["serve", "--bind", "127.0.0.1:0"]);
    assert!(err.contains("jwt_signing_key_file"), "{err}");
    env.ok(&["create-jwt-key", "--alg", "ES256"]);
    let server = Server::start(&env);
    let jwks: serde_json::Value = client()
        .get(server.url("/.well-known/jwks.json"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(jwks["keys"][0]["alg"], "ES256", "{jwks}");
    let pair: serde_json::Value = client()
        .post(server.url("/api/token/"))
        .form(&[("username", "ada"), ("password", "lovelace")])
        .send()
        .unwrap()
        .json()
        .unwrap();
    let access = pair["access"].as_str().expect("an access token");
    let status = client()
        .get(server.url("/jwt/"))
        .header("Authorization", format!("Bearer {access}"))
        .send()
        .unwrap()
        .status();
    assert_eq!(status, 200);
    let (status, _) = server.stop("-TERM");
    assert!(status.success());
}

/// Records expired and live refresh tokens in the env's database, runs
/// `flush-expired-tokens` twice.
fn flush_expired_tokens_on(env: &Env, url: &str) {
    use chrono::{Duration as Days, Utc};
    use portcullis::jwt::{JwtBlacklist, OutstandingToken};
    env.ok(&["createuser", "ada", "--password", "lovelace"]);
    runtime().block_on(async {
        let store = portcullis_store::Store::connect(url).await.unwrap();
        let tok = |jti: &str, secs: i64| OutstandingToken {
            jti: jti.into(),
            user_id: Some(1),
            created_at: Utc::now() - Days::days(2),
            expires_at: Utc::now() + Days::seconds(secs),
        };
        store.record_outstanding(&tok("old", -60)).await.unwrap();
        store.blacklist(&tok("old-black", -1)).await.unwrap();
        store.blacklist(&tok("live-black", 3600)).await.unwrap();
        store.record_outstanding(&tok("live", 3600)).await.unwrap();
        store.close().await;
    });
    assert_eq!(
        env.ok(&["flush-expired-tokens"]),
        "Removed 2 expired tokens\n"
    );
    assert_eq!(
        env.ok(&["flush-expired-tokens"]),
        "Removed 0 expired tokens\n"
    );
    runtime().block_on(async {
        let store = portcullis_store::Store::connect(url).await.unwrap();
        assert!(store.is_blacklisted("live-black").await.unwrap());
        assert!(!store.is_blacklisted("old-black").await.unwrap());
        store.close().await;
    });
}

#[test]
fn flush_expired_tokens_removes_expired_refresh_tokens() {
    let env = Env::sqlite();
    // A fresh database: nothing to remove, and the schema is created.
    assert_eq!(
        env.ok(&["flush-expired-tokens"]),
        "Removed 0 expired tokens\n"
    );
    let url = format!("sqlite://{}", env.path().join("portcullis.db").display());
    flush_expired_tokens_on(&env, &url);
}

#[test]
fn postgres_flush_expired_tokens() {
    let url = postgres_url();
    let _cleanup = portcullis_store::testing::DropOnExit::new(&url);
    let mut env = Env::with_url(url.clone());
    env.secret = Some(SECRET.into());
    flush_expired_tokens_on(&env, &url);
}

#[test]
fn mariadb_flush_expired_tokens() {
    let url = mysql_url();
    let _cleanup = portcullis_store::testing::DropOnExit::new(&url);
    let mut env = Env::with_url(url.clone());
    env.secret = Some(SECRET.into());
    flush_expired_tokens_on(&env, &url);
}

// ------------------------------------------------ throttling and lockout

/// A client whose requests come from `ip` (any 127.0.0.0/8 address).
fn client_from(ip: &str) -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .local_address(ip.parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap()
}

fn basic_from(c: &reqwest::blocking::Client, server: &Server, user: &str, pw: &str) -> u16 {
    c.get(server.url("/basic/"))
        .basic_auth(user, Some(pw))
        .send()
        .unwrap()
        .status()
        .as_u16()
}

fn get_status(server: &Server, path: &str, forwarded_for: Option<&str>) -> u16 {
    let mut req = client().get(server.url(path));
    if let Some(xff) = forwarded_for {
        req = req.header("X-Forwarded-For", xff);
    }
    req.send().unwrap().status().as_u16()
}

/// Polls for at most one second (the contract's bound) until `f` gives
/// `want`.
fn within_a_second(want: u16, mut f: impl FnMut() -> u16) -> u16 {
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let got = f();
        if got == want || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn sqlite_env_with(extra: &[(&str, &str)]) -> Env {
    let mut env = Env::sqlite();
    env.secret = Some(SECRET.to_owned());
    env.extra = extra
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    env
}

#[test]
fn unlock_reaches_a_running_server() {
    let env = sqlite_env_with(&[]);
    env.ok(&["createuser", "ada", "--password", "lovelace"]);
    let server = Server::start(&env);
    let here = client_from("127.0.0.1");
    for _ in 0..5 {
        assert_eq!(basic_from(&here, &server, "ada", "wrong"), 401);
    }
    assert_eq!(basic_from(&here, &server, "ada", "lovelace"), 429);
    let there = client_from("127.0.0.2");
    assert_eq!(basic_from(&there, &server, "ada", "lovelace"), 429);

    // The username's failures are cleared: ada may log in again ...
    assert_eq!(env.ok(&["unlock", "ada"]).trim(), "Unlocked ada");
    assert_eq!(
        within_a_second(200, || basic_from(&there, &server, "ada", "lovelace")),
        200
    );
    // ... but not from the address that failed five times, until it is
    // unlocked as well.
    assert_eq!(basic_from(&here, &server, "ada", "lovelace"), 429);
    env.ok(&["unlock", "127.0.0.1"]);
    assert_eq!(
        within_a_second(200, || basic_from(&here, &server, "ada", "lovelace")),
        200
    );

    // Nothing to clear is fine too; a missing argument is one line.
    assert_eq!(env.ok(&["unlock", "nobody"]).trim(), "Unlocked nobody");
    let err = env.fails(&["unlock", ""]);
    assert!(err.contains("username or the address"), "{err}");
    let (status, _) = server.stop("-TERM");
    assert!(status.success());
}

#[test]
fn login_throttle_off_turns_off_the_lockout_only() {
    let env = sqlite_env_with(&[("PORTCULLIS_LOGIN_THROTTLE", "off")]);
    env.ok(&["createuser", "ada", "--password", "lovelace"]);
    let server = Server::start(&env);
    for _ in 0..8 {
        assert_eq!(basic_status(&server, "ada", "wrong"), 401);
    }
    assert_eq!(basic_status(&server, "ada", "lovelace"), 200);
    // The throttled routes keep their rates; a forged X-Forwarded-For is
    // ignored (PORTCULLIS_NUM_PROXIES defaults to 0).
    for i in 0..5 {
        assert_eq!(
            get_status(&server, "/throttled/", Some(&format!("198.51.100.{i}"))),
            200
        );
    }
    assert_eq!(
        get_status(&server, "/throttled/", Some("198.51.100.99")),
        429
    );
    for _ in 0..3 {
        assert_eq!(get_status(&server, "/throttled-scoped/", None), 200);
    }
    assert_eq!(get_status(&server, "/throttled-scoped/", None), 429);
    let (status, _) = server.stop("-TERM");
    assert!(status.success());
}

#[test]
fn throttle_settings_num_proxies_and_rates() {
    let env = sqlite_env_with(&[
        ("PORTCULLIS_NUM_PROXIES", "1"),
        ("PORTCULLIS_THROTTLE_RATES", "anon=2/min"),
    ]);
    let server = Server::start(&env);
    // Behind one trusted proxy, the last X-Forwarded-For hop is the client.
    for ip in ["198.51.100.1", "198.51.100.2", "198.51.100.3"] {
        assert_eq!(get_status(&server, "/throttled/", Some(ip)), 200);
    }
    assert_eq!(
        get_status(&server, "/throttled/", Some("6.6.6.6, 198.51.100.1")),
        200
    );
    assert_eq!(
        get_status(&server, "/throttled/", Some("198.51.100.1")),
        429
    );
    // Only the named scope changed: burst keeps 3/min.
    for _ in 0..3 {
        assert_eq!(get_status(&server, "/throttled-scoped/", None), 200);
    }
    assert_eq!(get_status(&server, "/throttled-scoped/", None), 429);
    let (status, _) = server.stop("-TERM");
    assert!(status.success());

    let bad = sqlite_env_with(&[("PORTCULLIS_THROTTLE_RATES", "anon=5/fortnight")]);
    let err = bad.fails(&["serve", "--bind", "127.0.0.1:0"]);
    assert!(err.contains("PORTCULLIS_THROTTLE_RATES"), "{err}");
}

/// Two servers on one Redis (a key prefix of this test's own) share one
/// anonymous budget and one lockout. Redis must be up at
/// `PORTCULLIS_TEST_REDIS_URL` (default 127.0.0.1:6379): fails, never skips.
#[test]
fn two_servers_share_one_redis_budget_and_lockout() {
    let redis = portcullis_store::testing::redis_url();
    let prefix = portcullis_store::testing::fresh_redis_prefix();
    let env = sqlite_env_with(&[
        ("PORTCULLIS_REDIS_URL", &redis),
        ("PORTCULLIS_REDIS_PREFIX", &prefix),
    ]);
    env.ok(&["createuser", "ada", "--password", "lovelace"]);
    let (one, two) = (Server::start(&env), Server::start(&env));
    let mut statuses = Vec::new();
    for i in 0..6 {
        let server = if i % 2 == 0 { &one } else { &two };
        statuses.push(get_status(server, "/throttled/", None));
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429]);
    assert_eq!(get_status(&one, "/throttled/", None), 429);

    // Failures on both servers add up to one lockout.
    let here = client_from("127.0.0.1");
    for i in 0..5 {
        let server = if i % 2 == 0 { &one } else { &two };
        assert_eq!(basic_from(&here, server, "ada", "wrong"), 401);
    }
    assert_eq!(basic_from(&here, &two, "ada", "lovelace"), 429);
    assert_eq!(basic_from(&here, &one, "ada", "lovelace"), 429);
    env.ok(&["unlock", "ada"]);
    env.ok(&["unlock", "127.0.0.1"]);
    assert_eq!(
        within_a_second(200, || basic_from(&here, &two, "ada", "lovelace")),
        200
    );
    for server in [one, two] {
        let (status, _) = server.stop("-TERM");
        assert!(status.success());
    }
}

/// Logs in through `/auth/login/` and returns the `Cookie` header value
/// (the session and the CSRF token).
fn login(server: &Server, user: &str, password: &str) -> String {
    let c = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let form = c.get(server.url("/auth/login/")).send().unwrap();
    let cookie = |res: &reqwest::blocking::Response, name: &str| {
        res.cookies()
            .find(|c| c.name() == name)
            .map(|c| c.value().to_owned())
            .unwrap_or_else(|| panic!("no {name} cookie"))
    };
    let csrf = cookie(&form, "csrftoken");
    let res = c
        .post(server.url("/auth/login/"))
        .header("Cookie", format!("csrftoken={csrf}"))
        .form(&[
            ("username", user),
            ("password", password),
            ("csrfmiddlewaretoken", csrf.as_str()),
        ])
        .send()
        .unwrap();
    assert_eq!(res.status(), 302, "login of {user}");
    format!(
        "sessionid={}; csrftoken={}",
        cookie(&res, "sessionid"),
        cookie(&res, "csrftoken")
    )
}

/// Logs out through `/auth/logout/` with the cookies [`login`] returned.
fn logout(server: &Server, cookies: &str) {
    let csrf = cookies.split("csrftoken=").nth(1).unwrap();
    let res = client()
        .post(server.url("/auth/logout/"))
        .header("Cookie", cookies)
        .header("X-CSRFToken", csrf)
        .header("Origin", server.base.clone())
        .send()
        .unwrap();
    assert!(res.status().as_u16() < 400, "logout: {}", res.status());
}

fn session_status(server: &Server, cookies: &str) -> u16 {
    client()
        .get(server.url("/session/"))
        .header("Cookie", cookies)
        .send()
        .unwrap()
        .status()
        .as_u16()
}

/// With `PORTCULLIS_REDIS_SESSIONS`, a session made on one server works on
/// another sharing the Redis (and not the one with another prefix), and
/// `changepassword` and `deleteuser` end the sessions kept there. Redis
/// must be up at `PORTCULLIS_TEST_REDIS_URL`: fails, never skips.
#[test]
fn redis_sessions_are_shared_and_ended_by_the_commands() {
    use portcullis::store::SessionStore;

    let redis = portcullis_store::testing::redis_url();
    let prefix = portcullis_store::testing::fresh_redis_prefix();
    let with_redis = [
        ("PORTCULLIS_REDIS_URL", redis.as_str()),
        ("PORTCULLIS_REDIS_PREFIX", prefix.as_str()),
        ("PORTCULLIS_REDIS_SESSIONS", "true"),
    ];
    let mut env = sqlite_env_with(&with_redis);
    env.ok(&["createuser", "ada", "--password", "lovelace"]);
    env.ok(&["createuser", "bob", "--password", "builder"]);
    let (one, two) = (Server::start(&env), Server::start(&env));
    let ada = login(&one, "ada", "lovelace");
    assert_eq!(session_status(&one, &ada), 200);
    assert_eq!(session_status(&two, &ada), 200, "the other server knows it");

    // The database holds no session: it is in Redis alone.
    let with_redis = std::mem::take(&mut env.extra);
    let three = Server::start(&env);
    env.extra = with_redis;
    assert_eq!(session_status(&three, &ada), 403);
    let (status, _) = three.stop("-TERM");
    assert!(status.success());

    // The session auth hash alone would refuse the old sessions after a
    // password change, and a deleted user has none: ask Redis whether the
    // commands deleted them (ada and bob are users 1 and 2 of a fresh
    // database). What is left to delete here, the command left behind.
    let rt = runtime();
    let sessions = rt
        .block_on(portcullis_store::RedisStore::connect(&redis))
        .unwrap()
        .with_prefix(prefix.clone());
    let left_of = |user_id| {
        rt.block_on(sessions.delete_user_sessions(user_id, None))
            .unwrap()
    };
    let _second = login(&two, "ada", "lovelace");
    env.ok(&["changepassword", "ada", "--password", "difference"]);
    assert_eq!(left_of(1), 0, "changepassword ended both sessions in Redis");
    assert_eq!(eventually(403, || session_status(&one, &ada)), 403);
    assert_eq!(eventually(403, || session_status(&two, &ada)), 403);
    let ada = login(&two, "ada", "difference");
    assert_eq!(session_status(&one, &ada), 200);

    let bob = login(&one, "bob", "builder");
    env.ok(&["deleteuser", "bob"]);
    assert_eq!(left_of(2), 0, "deleteuser ended bob's session in Redis");
    assert_eq!(eventually(403, || session_status(&two, &bob)), 403);
    assert_eq!(
        session_status(&one, &ada),
        200,
        "ada's session is untouched"
    );

    // Logging out on one server ends the session on the other.
    logout(&one, &ada);
    assert_eq!(eventually(403, || session_status(&two, &ada)), 403);
    for server in [one, two] {
        let (status, _) = server.stop("-TERM");
        assert!(status.success());
    }

    // Without a Redis URL, the setting is refused in one line.
    let bad = sqlite_env_with(&[("PORTCULLIS_REDIS_SESSIONS", "true")]);
    let err = bad.fails(&["serve", "--bind", "127.0.0.1:0"]);
    assert!(err.contains("PORTCULLIS_REDIS_URL"), "{err}");
}

/// With a Redis URL, running servers hear of the commands' writes and of
/// each other's at once: with a cache TTL of a minute, a deactivated
/// user's token, a replaced token and a session logged out on the other
/// server are all refused within the second the contract allows.
#[test]
fn redis_tells_every_servers_cache_at_once() {
    let redis = portcullis_store::testing::redis_url();
    let prefix = portcullis_store::testing::fresh_redis_prefix();
    let env = sqlite_env_with(&[
        ("PORTCULLIS_REDIS_URL", &redis),
        ("PORTCULLIS_REDIS_PREFIX", &prefix),
        ("PORTCULLIS_REDIS_SESSIONS", "true"),
        ("PORTCULLIS_CACHE_TTL_MS", "60000"),
    ]);
    env.ok(&["createuser", "ada", "--password", "lovelace"]);
    let key = env.token("ada", false);
    let (one, two) = (Server::start(&env), Server::start(&env));
    // Cached on both, then deactivated by a command.
    assert_eq!(token_status(&one, &key), 200);
    assert_eq!(token_status(&two, &key), 200);
    env.ok(&["deactivate", "ada"]);
    assert_eq!(eventually(401, || token_status(&one, &key)), 401);
    assert_eq!(eventually(401, || token_status(&two, &key)), 401);
    env.ok(&["activate", "ada"]);
    assert_eq!(eventually(200, || token_status(&two, &key)), 200);
    let new = env.token("ada", true);
    assert_eq!(eventually(401, || token_status(&one, &key)), 401);
    assert_eq!(token_status(&one, &new), 200);

    // A session cached on two, logged out on one.
    let cookies = login(&one, "ada", "lovelace");
    assert_eq!(session_status(&two, &cookies), 200);
    logout(&one, &cookies);
    assert_eq!(eventually(403, || session_status(&two, &cookies)), 403);
    for server in [one, two] {
        let (status, _) = server.stop("-TERM");
        assert!(status.success());
    }
}

/// With the sessions in a Redis that cannot be reached, a session request
/// and a login fail closed (`503`), while Token, which needs no Redis,
/// works.
#[test]
fn redis_sessions_fail_closed_when_redis_is_down() {
    let env = sqlite_env_with(&[
        ("PORTCULLIS_REDIS_URL", "redis://127.0.0.1:1"),
        ("PORTCULLIS_REDIS_SESSIONS", "true"),
    ]);
    env.ok(&["createuser", "ada", "--password", "lovelace"]);
    let key = env.token("ada", false);
    let server = Server::start(&env);
    let res = client()
        .get(server.url("/session/"))
        .header("Cookie", "sessionid=abcdefghijklmnopqrstuvwxyz012345")
        .send()
        .unwrap();
    assert_eq!(res.status(), 503);
    let body = res.text().unwrap();
    assert!(body.contains("\"detail\""), "{body}");
    assert!(!body.contains("127.0.0.1:1"), "{body}");
    assert_eq!(basic_status(&server, "ada", "lovelace"), 503, "the lockout");
    assert_eq!(token_status(&server, &key), 200);
    let (status, _) = server.stop("-TERM");
    assert!(status.success());
}
