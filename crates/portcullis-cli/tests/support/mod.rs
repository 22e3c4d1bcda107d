//! What the interop tests that drive `portcullis` with real clients share:
//! [`Env`], a scratch directory where the binary runs with a clean
//! environment, and [`Server`], a `portcullis serve` child process, ready
//! once it logs its address, killed when dropped.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");
const SECRET: &str = "an-interop-test-secret-key-that-is-long-enough-0123456789";

/// A scratch directory (the SQLite database lives there) in which
/// `portcullis` runs without the caller's `PORTCULLIS_*` variables, with a
/// fixed secret key, fast password hashing and any `extra` variables.
pub(crate) struct Env {
    dir: tempfile::TempDir,
    /// Variables set on every command, after the defaults.
    pub(crate) extra: Vec<(&'static str, String)>,
}

impl Env {
    /// A fresh directory with no extra variables.
    pub(crate) fn new() -> Env {
        Env::with(&[])
    }

    /// A fresh directory with `extra` variables.
    pub(crate) fn with(extra: &[(&'static str, &'static str)]) -> Env {
        Env {
            dir: tempfile::tempdir().unwrap(),
            extra: extra.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
        }
    }

    /// The directory.
    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `portcullis ARGS` in the directory, not yet run.
    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.current_dir(self.path());
        for (k, _) in std::env::vars() {
            if k.starts_with("PORTCULLIS_") || k == "DATABASE_URL" || k == "RUST_LOG" {
                c.env_remove(k);
            }
        }
        c.env("PORTCULLIS_PASSWORD_ITERATIONS", "1000")
            .env("PORTCULLIS_SECRET_KEY", SECRET);
        for (k, v) in &self.extra {
            c.env(k, v);
        }
        c.args(args);
        c
    }

    /// Runs a command to the end.
    pub(crate) fn run(&self, args: &[&str]) -> Output {
        self.command(args)
            .stdin(Stdio::null())
            .output()
            .expect("the portcullis binary runs")
    }

    /// Runs a command that must succeed; returns its standard output.
    pub(crate) fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "portcullis {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs a command that must fail; returns its one error line.
    pub(crate) fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(!out.status.success(), "portcullis {args:?} succeeded");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        err.trim().to_owned()
    }

    /// `portcullis serve` on a free port.
    pub(crate) fn serve(&self) -> Server {
        self.serve_on(0)
    }

    /// `portcullis serve` on `port` (0: a free one).
    pub(crate) fn serve_on(&self, port: u16) -> Server {
        Server::spawn(self.command(&["serve", "--bind", &format!("127.0.0.1:{port}")]))
    }
}

/// A running `portcullis serve`, killed when dropped.
pub(crate) struct Server {
    child: Child,
    /// `http://ADDR:PORT`, as the server logged it.
    pub(crate) base: String,
}

impl Server {
    /// Starts `cmd` (a `portcullis serve ...` command) and waits up to a
    /// minute for its "listening on" line.
    pub(crate) fn spawn(mut cmd: Command) -> Server {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        // Drain stderr so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sink = String::new();
            let _ = stderr.read_to_string(&mut sink);
        });
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let base = loop {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => {
                    if let Some(addr) = line.strip_prefix("portcullis listening on ") {
                        break addr.trim().to_owned();
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("serve did not become ready");
                }
            }
        };
        Server { child, base }
    }

    /// The URL of `path` on this server.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
