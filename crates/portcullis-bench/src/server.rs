//! Starting `portcullis serve`, pinned to a core, and reading its CPU time
//! and resident memory from `/proc`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};

/// A running `portcullis serve`.
pub(crate) struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub(crate) base: String,
}

/// How to run a command pinned to a core, when the machine allows.
#[derive(Clone, Debug)]
pub(crate) struct Pinning {
    /// Core for the server, core for the load generator; `None` when not
    /// pinned (one core, or no `taskset`).
    pub(crate) cores: Option<(usize, usize)>,
}

impl Pinning {
    pub(crate) fn detect() -> Pinning {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let taskset = Command::new("taskset")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        Pinning {
            cores: (cores >= 2 && taskset).then_some((0, 1)),
        }
    }

    /// A command for `program`, pinned to the server's (`server`) or the
    /// load generator's core.
    pub(crate) fn command(&self, program: impl AsRef<Path>, server: bool) -> Command {
        match self.cores {
            Some((s, l)) => {
                let mut c = Command::new("taskset");
                c.arg("-c")
                    .arg((if server { s } else { l }).to_string())
                    .arg(program.as_ref());
                c
            }
            None => Command::new(program.as_ref()),
        }
    }

    pub(crate) fn describe(&self) -> String {
        match self.cores {
            Some((s, l)) => format!("server on core {s}, load generator on core {l} (taskset)"),
            None => "not pinned (fewer than 2 cores or no taskset)".into(),
        }
    }
}

impl Server {
    /// Starts `serve` on a free loopback port with `env` and waits for its
    /// ready line.
    pub(crate) fn start(
        pinning: &Pinning,
        binary: &Path,
        database_url: &str,
        env: &[(String, String)],
    ) -> anyhow::Result<Server> {
        let mut cmd = pinning.command(binary, true);
        cmd.arg("serve")
            .arg("--bind")
            .arg("127.0.0.1:0")
            .env("PORTCULLIS_DATABASE_URL", database_url)
            // One log line per request would measure the logger.
            .env("PORTCULLIS_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().context("cannot start portcullis serve")?;
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            // Keep draining so the server never blocks on a full pipe.
            for _ in lines {}
        });
        let line = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                bail!("portcullis serve did not say it was ready within 60 s");
            }
        };
        let base = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .ok_or_else(|| anyhow!("unexpected ready line from serve: {line:?}"))?
            .trim_end_matches('/')
            .to_owned();
        Ok(Server { child, base })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// User plus system CPU time the server has used so far.
    pub(crate) fn cpu_time(&self) -> anyhow::Result<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))?;
        // Fields after the command name (which may hold spaces): state is
        // field 3, utime 14, stime 15.
        let rest = stat
            .rsplit_once(')')
            .map(|(_, r)| r)
            .ok_or_else(|| anyhow!("odd /proc stat"))?;
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = f[11].parse::<u64>()? + f[12].parse::<u64>()?;
        Ok(Duration::from_secs_f64(ticks as f64 / clock_ticks() as f64))
    }

    /// Waits until the server has been (nearly) idle for a quarter of a
    /// second, or `limit` has passed: hashing queued by a run of Basic
    /// with the caches off goes on after wrk stops, on the server's core.
    pub(crate) fn wait_idle(&self, limit: Duration) -> anyhow::Result<()> {
        let step = Duration::from_millis(250);
        let start = std::time::Instant::now();
        let mut before = self.cpu_time()?;
        while start.elapsed() < limit {
            std::thread::sleep(step);
            let now = self.cpu_time()?;
            // Under 5% of one core.
            if now.saturating_sub(before) <= step / 20 {
                return Ok(());
            }
            before = now;
        }
        Ok(())
    }

    /// Resident memory, in KiB.
    pub(crate) fn rss_kib(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| anyhow!("no VmRSS in /proc status"))
    }

    /// SIGTERM, then wait (SIGKILL after 15 s).
    pub(crate) fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The kernel's clock ticks per second (`getconf CLK_TCK`, else 100).
pub(crate) fn clock_ticks() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100)
    })
}

/// The `portcullis` binary next to this one (both are built by
/// `cargo build --release`).
pub(crate) fn default_binary() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("portcullis")))
        .unwrap_or_else(|| PathBuf::from("target/release/portcullis"))
}
