//! Running wrk and reading its results (a Lua `done` hook prints them as
//! one JSON line).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use serde::Deserialize;

use crate::server::Pinning;

/// Prints wrk's summary as one JSON line. Only `done` is defined: a Lua
/// `request` or `response` hook runs per request and would make wrk, not
/// the server, the bottleneck.
pub(crate) const SCRIPT: &str = r#"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"mean_us":%.1f,' ..
    '"status_errors":%d,"connect_errors":%d,"read_errors":%d,"write_errors":%d,"timeouts":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.mean, e.status, e.connect, e.read, e.write, e.timeout))
end
"#;

/// Writes a Lua script that sends, in turn, one request for each line of
/// the file `data` (each line: tab-separated `Name: value` headers) to
/// `path`; returns the script's path. The requests are prepared in `init`,
/// so the per-request hook only indexes a table.
pub(crate) fn script_of_requests(
    work: &std::path::Path,
    name: &str,
    path: &str,
    data: &std::path::Path,
) -> anyhow::Result<PathBuf> {
    let script = work.join(format!("{name}.lua"));
    let lua = format!(
        r#"local reqs = {{}}
local i = 0
init = function(args)
  for line in io.lines("{data}") do
    local headers = {{}}
    for pair in string.gmatch(line, "[^\t]+") do
      local k, v = string.match(pair, "^([^:]+): (.*)$")
      headers[k] = v
    end
    reqs[#reqs + 1] = wrk.format("GET", "{path}", headers)
  end
end
request = function()
  i = i + 1
  if i > #reqs then i = 1 end
  return reqs[i]
end
{done}"#,
        data = data.display(),
        done = SCRIPT,
    );
    std::fs::write(&script, lua)?;
    Ok(script)
}

/// One wrk run's results.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct WrkResult {
    pub(crate) requests: u64,
    pub(crate) duration_us: u64,
    pub(crate) p50_us: u64,
    pub(crate) p99_us: u64,
    #[allow(dead_code)]
    pub(crate) mean_us: f64,
    /// Responses other than 2xx and 3xx.
    pub(crate) status_errors: u64,
    pub(crate) connect_errors: u64,
    pub(crate) read_errors: u64,
    pub(crate) write_errors: u64,
    pub(crate) timeouts: u64,
}

impl WrkResult {
    pub(crate) fn rps(&self) -> f64 {
        self.requests as f64 / (self.duration_us as f64 / 1e6)
    }

    pub(crate) fn socket_errors(&self) -> u64 {
        self.connect_errors + self.read_errors + self.write_errors + self.timeouts
    }
}

/// What to load.
#[derive(Clone, Debug)]
pub(crate) struct Load {
    pub(crate) url: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) connections: u32,
    pub(crate) duration: Duration,
    pub(crate) script: PathBuf,
}

fn command(pinning: &Pinning, load: &Load) -> Command {
    let mut c = pinning.command("wrk", false);
    c.arg("-t1")
        .arg(format!("-c{}", load.connections))
        .arg(format!(
            "-d{}s",
            load.duration.as_secs_f64().ceil().max(1.0) as u64
        ))
        .arg("--timeout")
        .arg("30s")
        .arg("-s")
        .arg(&load.script);
    for (k, v) in &load.headers {
        c.arg("-H").arg(format!("{k}: {v}"));
    }
    c.arg(&load.url).stdin(Stdio::null());
    c
}

/// Runs wrk to the end.
pub(crate) fn run(pinning: &Pinning, load: &Load) -> anyhow::Result<WrkResult> {
    let out = command(pinning, load)
        .output()
        .context("cannot run wrk (bench/run installs it)")?;
    parse(&out.stdout, &out.stderr, out.status.success())
}

/// Starts wrk in the background (for the flood), its output piped.
pub(crate) fn spawn(pinning: &Pinning, load: &Load) -> anyhow::Result<Child> {
    command(pinning, load)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot run wrk")
}

/// Waits for a background wrk.
pub(crate) fn finish(child: Child) -> anyhow::Result<WrkResult> {
    let out = child.wait_with_output()?;
    parse(&out.stdout, &out.stderr, out.status.success())
}

fn parse(stdout: &[u8], stderr: &[u8], ok: bool) -> anyhow::Result<WrkResult> {
    let text = String::from_utf8_lossy(stdout);
    if !ok {
        bail!(
            "wrk failed: {}{}",
            text.trim(),
            String::from_utf8_lossy(stderr).trim()
        );
    }
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("BENCH_JSON "))
        .ok_or_else(|| anyhow!("no result line from wrk: {text}"))?;
    Ok(serde_json::from_str(line)?)
}

/// Whether wrk is installed.
pub(crate) fn available() -> bool {
    Command::new("wrk")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}
