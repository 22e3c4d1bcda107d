//! `portcullis-bench`: what authentication costs, as ratios against the
//! same server's unauthenticated route, measured in one run.
//!
//! Run it through `bench/run` (which installs wrk and builds the release
//! binaries). For each database (SQLite, and PostgreSQL when reachable) it
//! creates a fresh database with a user and credentials for every scheme
//! (64 plain users for Token, Bearer, Session, JWT and OAuth2, whose
//! requests take turns among them, so that requests in flight together are
//! different users'), starts `portcullis serve` pinned to one core, drives each scenario with
//! wrk pinned to the other, warms up, then measures every scenario for a
//! fixed time, several rounds (scenarios interleaved, so drift hits all
//! alike; each run between two baseline runs, against whose mean its
//! ratio is taken), first with the caches on (the default; each run then follows
//! half a second of warm-up of its own, so that no run starts with expired
//! cache entries) and then off. Then it
//! measures `/token/` while `/basic/` is flooded with wrong passwords, and
//! the server's resident memory idle and after 100,000 tokens and sessions
//! exist and have been used. Output: a table on the terminal,
//! `target/bench/report.json`, `report.md` and `throughput.svg`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use base64::Engine;
use clap::Parser;
use serde_json::json;

mod report;
mod seed;
mod server;
mod signed;
mod wrk;

use report::{Brackets, Row, Sample};
use seed::Credentials;
use server::{Pinning, Server};
use signed::Signer;
use wrk::Load;

/// Command line.
#[derive(Parser, Debug)]
#[command(about = "Benchmarks portcullis serve's authentication schemes with wrk")]
struct Args {
    /// Short runs (1 s warm-up, 3 × 2 s), about 13 minutes in all.
    #[arg(long)]
    quick: bool,
    /// Seconds each measured run lasts (default 4, quick 2).
    #[arg(long)]
    duration: Option<f64>,
    /// Measured runs per scenario (at least 3).
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// wrk connections.
    #[arg(long, default_value_t = 32)]
    connections: u32,
    /// The `portcullis` binary (default: next to this one).
    #[arg(long)]
    portcullis: Option<PathBuf>,
    /// PostgreSQL server to create a fresh database on (parameters such as
    /// `?sslmode=disable` apply to every connection to it).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
    postgres: String,
    /// Skip PostgreSQL.
    #[arg(long)]
    no_postgres: bool,
    /// Tokens and sessions for the memory measurement (0 skips it).
    #[arg(long, default_value_t = 100_000)]
    memory_entries: usize,
    /// Only the scenarios whose name contains this (any case; repeatable;
    /// the baseline always runs, the flood only with Token). Default: all.
    #[arg(long, value_name = "NAME")]
    only: Vec<String>,
    /// Where the report goes.
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
}

/// One route to load.
struct Scenario {
    name: &'static str,
    path: &'static str,
    headers: Vec<(String, String)>,
    /// Goal for the ratio with caches on, and with caches off.
    goals: (Option<f64>, Option<f64>),
    /// For a signed-request scheme: how to sign each request.
    signer: Option<Signer>,
    /// A header whose value changes from request to request, taking the
    /// values in turn (one for each of the plain users).
    turns: Option<(&'static str, Vec<String>)>,
}

fn scenarios(c: &Credentials, secret: &str) -> Vec<Scenario> {
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("bench:{}", seed::PASSWORD));
    let h = |k: &str, v: String| vec![(k.to_owned(), v)];
    let each = |name: &'static str, value: &dyn Fn(&seed::UserCredentials) -> String| {
        Some((name, c.users.iter().map(value).collect()))
    };
    vec![
        Scenario {
            name: "baseline",
            path: "/health/",
            headers: vec![],
            signer: None,
            turns: None,
            goals: (None, None),
        },
        Scenario {
            name: "whoami anonymous",
            path: "/api/whoami/",
            headers: vec![],
            signer: None,
            turns: None,
            goals: (Some(0.95), Some(0.95)),
        },
        Scenario {
            name: "throttled anonymous",
            path: "/throttled/",
            headers: vec![],
            signer: None,
            turns: None,
            goals: (Some(0.90), Some(0.90)),
        },
        Scenario {
            name: "Token",
            path: "/token/",
            headers: vec![],
            signer: None,
            turns: each("Authorization", &|u| format!("Token {}", u.token)),
            goals: (Some(0.90), Some(0.60)),
        },
        Scenario {
            name: "Bearer keyword",
            path: "/customkeywordtoken/",
            headers: vec![],
            signer: None,
            turns: each("Authorization", &|u| format!("Bearer {}", u.token)),
            goals: (Some(0.90), Some(0.60)),
        },
        Scenario {
            name: "Session GET",
            path: "/session/",
            headers: vec![],
            signer: None,
            turns: each("Cookie", &|u| format!("sessionid={}", u.session_key)),
            goals: (Some(0.90), Some(0.60)),
        },
        Scenario {
            name: "JWT",
            path: "/jwt/",
            headers: vec![],
            signer: None,
            turns: each("Authorization", &|u| format!("Bearer {}", u.jwt_access)),
            goals: (Some(0.90), Some(0.60)),
        },
        Scenario {
            name: "OAuth2 Bearer",
            path: "/oauth2/",
            headers: vec![],
            signer: None,
            turns: each("Authorization", &|u| format!("Bearer {}", u.oauth2_access)),
            goals: (Some(0.90), Some(0.60)),
        },
        Scenario {
            name: "Digest SHA-256",
            path: "/digest/",
            headers: vec![],
            turns: None,
            signer: Some(Signer::Digest {
                username: "bench".into(),
                password: seed::PASSWORD.into(),
                secret: secret.to_owned(),
            }),
            goals: (None, None),
        },
        Scenario {
            name: "Hawk",
            path: "/hawk/",
            headers: vec![],
            turns: None,
            signer: Some(Signer::Hawk {
                id: c.hawk.0.clone(),
                key: c.hawk.1.clone(),
            }),
            goals: (None, None),
        },
        Scenario {
            name: "HTTP signature, HMAC",
            path: "/httpsig/",
            headers: vec![],
            turns: None,
            signer: Some(Signer::HttpSig {
                key_id: c.httpsig.0.clone(),
                secret: c.httpsig.1.clone(),
            }),
            goals: (None, None),
        },
        Scenario {
            name: "OAuth 1.0a HMAC-SHA1",
            path: "/oauth1/",
            headers: vec![],
            turns: None,
            signer: Some(Signer::OAuth1 {
                consumer_key: c.oauth1[0].clone(),
                consumer_secret: c.oauth1[1].clone(),
                token: c.oauth1[2].clone(),
                token_secret: c.oauth1[3].clone(),
            }),
            goals: (None, None),
        },
        Scenario {
            name: "admin-only, staff token",
            path: "/admin-only/",
            headers: h("Authorization", format!("Token {}", c.staff_token)),
            signer: None,
            turns: None,
            goals: (None, None),
        },
        // Last: with the caches off its hashing may still be finishing when
        // wrk stops.
        Scenario {
            name: "Basic",
            path: "/basic/",
            headers: h("Authorization", format!("Basic {basic}")),
            signer: None,
            turns: None,
            goals: (Some(0.80), None),
        },
    ]
}

/// The warm-up before each measured run with the caches on.
const REWARM: Duration = Duration::from_millis(500);

struct Bench {
    args: Args,
    binary: PathBuf,
    pinning: Pinning,
    script: PathBuf,
    work: PathBuf,
    secret: String,
    duration: Duration,
    warmup: Duration,
}

impl Bench {
    /// Whether `--only` lets scenario `name` run.
    fn selected(&self, name: &str) -> bool {
        let name = name.to_lowercase();
        self.args.only.is_empty()
            || self
                .args
                .only
                .iter()
                .any(|o| name.contains(&o.to_lowercase()))
    }

    fn load(&self, base: &str, s: &Scenario, duration: Duration) -> anyhow::Result<Load> {
        // Signed scenarios get a fresh file of distinct signed requests.
        let name = s.name.replace(' ', "-");
        let script = match (&s.signer, &s.turns) {
            (Some(signer), _) => signer.script(
                &self.work,
                &name,
                base.trim_start_matches("http://"),
                s.path,
                duration,
            )?,
            (None, Some((header, values))) => {
                let data = self.work.join(format!("{name}.requests"));
                let lines: String = values.iter().map(|v| format!("{header}: {v}\n")).collect();
                std::fs::write(&data, lines)?;
                wrk::script_of_requests(&self.work, &name, s.path, &data)?
            }
            (None, None) => self.script.clone(),
        };
        Ok(Load {
            url: format!("{base}{}", s.path),
            headers: s.headers.clone(),
            connections: self.args.connections,
            duration,
            script,
        })
    }

    fn measure(&self, server: &Server, load: &Load) -> anyhow::Result<Sample> {
        let cpu0 = server.cpu_time()?;
        let r = wrk::run(&self.pinning, load)?;
        let cpu = server.cpu_time()? - cpu0;
        Ok(Sample {
            rps: r.rps(),
            p50_ms: r.p50_us as f64 / 1000.0,
            p99_ms: r.p99_us as f64 / 1000.0,
            cpu_us_per_req: cpu.as_secs_f64() * 1e6 / r.requests.max(1) as f64,
            unexpected: r.status_errors,
            socket_errors: r.socket_errors(),
        })
    }

    fn server(&self, url: &str, caches_on: bool, extra: &[(&str, &str)]) -> anyhow::Result<Server> {
        let mut env = vec![
            ("PORTCULLIS_SECRET_KEY".to_owned(), self.secret.clone()),
            // High enough that /throttled/ never answers 429 here (a server on
            // one core answers ~150,000 requests a second at most): the
            // scenario measures what the throttle check costs.
            (
                "PORTCULLIS_THROTTLE_RATES".to_owned(),
                "anon=1000000/sec,user=1000000/sec,burst=1000000/sec".to_owned(),
            ),
        ];
        if !caches_on {
            env.push(("PORTCULLIS_CACHE_TTL_MS".into(), "0".into()));
            env.push(("PORTCULLIS_BASIC_CACHE".into(), "off".into()));
        }
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Server::start(&self.pinning, &self.binary, url, &env)
    }

    /// Every scenario on one server: checked once, warmed up, then
    /// measured round-robin (with the caches on, each run after a short
    /// warm-up of its own).
    async fn suite(
        &self,
        db: &str,
        url: &str,
        creds: &Credentials,
        caches_on: bool,
    ) -> anyhow::Result<Vec<Row>> {
        let mode = if caches_on { "warm" } else { "caches-off" };
        eprintln!("== {db}, caches {mode}");
        let server = self.server(url, caches_on, &[])?;
        let mut list = scenarios(creds, &self.secret);
        list.retain(|s| s.name == "baseline" || self.selected(s.name));
        let client = reqwest::Client::new();
        for s in &list {
            // Every user's credentials, when the scenario takes turns.
            let turns: Vec<Option<(&str, &String)>> = match &s.turns {
                Some((header, values)) => values.iter().map(|v| Some((*header, v))).collect(),
                None => vec![None],
            };
            for turn in turns {
                let mut req = client.get(format!("{}{}", server.base, s.path));
                for (k, v) in s.headers.iter().map(|(k, v)| (k.as_str(), v)).chain(turn) {
                    req = req.header(k, v);
                }
                if let Some(signer) = &s.signer {
                    let line =
                        signer.lines(server.base.trim_start_matches("http://"), s.path, 1)?;
                    for pair in line.trim_end().split('\t') {
                        let (k, v) = pair.split_once(": ").context("a signed header")?;
                        req = req.header(k, v);
                    }
                }
                let res = req.send().await?;
                if res.status() != 200 {
                    bail!(
                        "{} {} answered {} before the run: {}",
                        s.name,
                        s.path,
                        res.status(),
                        res.text().await.unwrap_or_default()
                    );
                }
            }
        }
        for s in &list {
            wrk::run(&self.pinning, &self.load(&server.base, s, self.warmup)?)?;
        }
        let mut samples: Vec<Vec<Sample>> = list.iter().map(|_| Vec::new()).collect();
        // Each scenario's run sits between two baseline runs, one just
        // before it and one just after (the next scenario's "before", or
        // the round's last run): on a shared machine the capacity drifts
        // within seconds, and a ratio of runs taken side by side drifts
        // much less than one of runs taken half a minute apart.
        let mut paired: Vec<Vec<f64>> = list.iter().map(|_| Vec::new()).collect();
        let mut brackets = Brackets::default();
        let baseline = &list[0];
        // Half as long as a scenario's run: a baseline run between two
        // only has to say how fast the machine is right now.
        let half = (self.duration / 2).max(Duration::from_secs(1));
        let between = |samples: &mut Vec<Vec<Sample>>,
                       brackets: &mut Brackets,
                       paired: &mut Vec<Vec<f64>>|
         -> anyhow::Result<()> {
            let b = self.measure(&server, &self.load(&server.base, baseline, half)?)?;
            if let Some((i, ratio)) = brackets.baseline(b.rps) {
                paired[i].push(ratio);
            }
            samples[0].push(b);
            Ok(())
        };
        for rep in 0..self.args.reps {
            for (i, s) in list.iter().enumerate() {
                if i != 0 {
                    between(&mut samples, &mut brackets, &mut paired)?;
                }
                // With the caches on, every measured run starts warm: a
                // scenario idle for a round may have outlived its cache
                // entries (Basic's remembered credentials last 60 s, and a
                // round takes longer than that).
                if caches_on && i != 0 {
                    let rewarm = self.warmup.min(REWARM);
                    wrk::run(&self.pinning, &self.load(&server.base, s, rewarm)?)?;
                }
                let sample = self.measure(&server, &self.load(&server.base, s, self.duration)?)?;
                eprintln!(
                    "   run {}/{} {:<24} {:>8.0} req/s  p50 {:>7.2} ms  p99 {:>8.2} ms  {:>6.0} µs CPU/req",
                    rep + 1,
                    self.args.reps,
                    s.name,
                    sample.rps,
                    sample.p50_ms,
                    sample.p99_ms,
                    sample.cpu_us_per_req
                );
                if i != 0 {
                    brackets.scenario(i, sample.rps);
                }
                samples[i].push(sample);
                std::thread::sleep(Duration::from_millis(200));
            }
            // Let hashing queued by a caches-off Basic run drain: it runs
            // on the server's core and would slow the baseline run that
            // closes the round, and the next round.
            if !caches_on {
                server.wait_idle(Duration::from_secs(60))?;
            }
            if list.len() > 1 {
                between(&mut samples, &mut brackets, &mut paired)?;
            }
        }
        server.stop();
        let base = report::median(&samples[0].iter().map(|s| s.rps).collect::<Vec<_>>());
        Ok(list
            .iter()
            .zip(samples)
            .zip(paired)
            .map(|((s, runs), ratios)| {
                let goal = if caches_on { s.goals.0 } else { s.goals.1 };
                Row::new(s.name, db, mode, s.path, runs, base, "/health/", goal)
                    .with_paired_ratios(&ratios)
            })
            .collect())
    }

    /// `/token/` undisturbed and while `/basic/` is flooded with wrong
    /// passwords (login lockout off, as if the flood came from everywhere).
    fn flood(&self, url: &str, creds: &Credentials) -> anyhow::Result<Vec<Row>> {
        eprintln!("== sqlite, /token/ under a /basic/ flood of wrong passwords");
        let server = self.server(url, true, &[("PORTCULLIS_LOGIN_THROTTLE", "off")])?;
        let list = scenarios(creds, &self.secret);
        let token = list.iter().find(|s| s.path == "/token/").expect("listed");
        let flood = Scenario {
            name: "Basic, wrong password",
            path: "/basic/",
            headers: Vec::new(),
            turns: None,
            signer: Some(signed::Signer::WrongBasic {
                username: "bench".into(),
            }),
            goals: (None, None),
        };
        wrk::run(&self.pinning, &self.load(&server.base, token, self.warmup)?)?;
        let (mut quiet, mut loud, mut attacks) = (Vec::new(), Vec::new(), Vec::new());
        for rep in 0..self.args.reps {
            quiet.push(self.measure(&server, &self.load(&server.base, token, self.duration)?)?);
            let lead = Duration::from_secs(1);
            let flooder = wrk::spawn(
                &self.pinning,
                &self.load(&server.base, &flood, self.duration + lead * 2)?,
            )?;
            std::thread::sleep(lead);
            let mut s = self.measure(&server, &self.load(&server.base, token, self.duration)?)?;
            let f = wrk::finish(flooder)?;
            // The flood's CPU is in the server's total: report /token/'s
            // requests only, so this is CPU per token request with the flood.
            s.cpu_us_per_req = f64::NAN;
            eprintln!(
                "   run {}/{} token quiet {:>8.0} req/s, under flood {:>8.0} req/s (flood: {:.1} wrong-password checks/s, {} answered non-401)",
                rep + 1,
                self.args.reps,
                quiet.last().map_or(0.0, |q| q.rps),
                s.rps,
                f.rps(),
                f.requests - f.status_errors
            );
            attacks.push(Sample {
                rps: f.rps(),
                p50_ms: f.p50_us as f64 / 1000.0,
                p99_ms: f.p99_us as f64 / 1000.0,
                cpu_us_per_req: f64::NAN,
                // Every flood response should be a 401.
                unexpected: f.requests - f.status_errors,
                socket_errors: f.socket_errors(),
            });
            loud.push(s);
            std::thread::sleep(Duration::from_millis(1500));
        }
        server.stop();
        let q = report::median(&quiet.iter().map(|s| s.rps).collect::<Vec<_>>());
        Ok(vec![
            Row::new(
                "Token undisturbed",
                "sqlite",
                "warm",
                "/token/",
                quiet,
                q,
                "/token/ undisturbed",
                None,
            ),
            Row::new(
                "Token under Basic flood",
                "sqlite",
                "warm",
                "/token/",
                loud,
                q,
                "/token/ undisturbed",
                Some(0.70),
            ),
            Row::new(
                "the flood: Basic, wrong password",
                "sqlite",
                "warm",
                "/basic/",
                attacks,
                q,
                "/token/ undisturbed",
                None,
            ),
        ])
    }

    /// Resident memory idle, after `n` tokens and sessions exist, and after
    /// each has been used once.
    async fn memory(&self, n: usize) -> anyhow::Result<serde_json::Value> {
        eprintln!("== memory: {n} tokens and {n} sessions");
        let url = format!("sqlite://{}", self.work.join("memory.db").display());
        seed::prepare(&self.binary, &url, &self.secret).await?;
        let server = self.server(&url, true, &[])?;
        std::thread::sleep(Duration::from_secs(1));
        let idle = server.rss_kib()?;
        let t0 = Instant::now();
        let (tokens, cookies) = seed::bulk(&url, &self.secret, n).await?;
        let seeded_in = t0.elapsed();
        std::thread::sleep(Duration::from_millis(500));
        let after_create = server.rss_kib()?;
        let mut used = Vec::new();
        for (what, lines, header, path) in [
            ("tokens", &tokens, "Authorization", "/token/"),
            ("sessions", &cookies, "Cookie", "/session/"),
        ] {
            let t = Instant::now();
            let (ok, other) = use_each(&server.base, path, header, lines, 32).await?;
            eprintln!(
                "   used each of {n} {what} once: {ok} answered 200, {other} otherwise, in {:.1} s",
                t.elapsed().as_secs_f64(),
            );
            used.push(json!({"what": what, "ok": ok, "other": other, "seconds": t.elapsed().as_secs_f64()}));
        }
        let after_use = server.rss_kib()?;
        std::thread::sleep(Duration::from_secs(2));
        let after_expiry = server.rss_kib()?;
        server.stop();
        eprintln!(
            "   RSS idle {} MiB, after creating {} MiB, after using them {} MiB, 2 s later {} MiB",
            idle / 1024,
            after_create / 1024,
            after_use / 1024,
            after_expiry / 1024
        );
        Ok(json!({
            "entries": n,
            "seeded_in_s": seeded_in.as_secs_f64(),
            "rss_idle_kib": idle,
            "rss_after_create_kib": after_create,
            "rss_after_use_kib": after_use,
            "rss_after_use_plus_2s_kib": after_expiry,
            "use": used,
        }))
    }
}

/// Sends one GET to `path` with each value of `header`, `parallel` at a
/// time; returns how many answered 200 and how many did not.
async fn use_each(
    base: &str,
    path: &str,
    header: &'static str,
    values: &[String],
    parallel: usize,
) -> anyhow::Result<(u64, u64)> {
    let client = reqwest::Client::new();
    let url = format!("{base}{path}");
    let chunk = values.len().div_ceil(parallel).max(1);
    let mut tasks = tokio::task::JoinSet::new();
    for part in values.chunks(chunk) {
        let (client, url, part) = (client.clone(), url.clone(), part.to_vec());
        tasks.spawn(async move {
            let (mut ok, mut other) = (0u64, 0u64);
            for v in part {
                match client.get(&url).header(header, v).send().await {
                    Ok(r) if r.status() == 200 => ok += 1,
                    _ => other += 1,
                }
            }
            (ok, other)
        });
    }
    let (mut ok, mut other) = (0, 0);
    while let Some(r) = tasks.join_next().await {
        let (a, b) = r?;
        ok += a;
        other += b;
    }
    Ok((ok, other))
}

fn machine() -> serde_json::Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_default();
    let mem_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .unwrap_or(0);
    json!({
        "cores": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "cpu": cpu,
        "memory_gib": (mem_kib as f64 / 1048576.0 * 10.0).round() / 10.0,
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
    })
}

/// All CPU time and the part of it the hypervisor gave to others
/// (`steal`), in ticks since boot, from `/proc/stat`; `None` off Linux.
fn cpu_steal() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let f: Vec<u64> = line
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let steal = *f.get(7)?;
    Some((f.iter().take(8).sum(), steal))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.reps < 3 {
        bail!("--reps must be at least 3");
    }
    if !wrk::available() {
        bail!("wrk is not installed: run bench/run, or apt-get install -y wrk");
    }
    let binary = args
        .portcullis
        .clone()
        .unwrap_or_else(server::default_binary);
    if !binary.exists() {
        bail!(
            "{} does not exist: cargo build --release -p portcullis-cli",
            binary.display()
        );
    }
    let duration =
        Duration::from_secs_f64(args.duration.unwrap_or(if args.quick { 2.0 } else { 4.0 }));
    let warmup = Duration::from_secs(if args.quick { 1 } else { 2 });
    let work = args.out.join("work");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
    let script = work.join("report.lua");
    std::fs::write(&script, wrk::SCRIPT)?;
    let pinning = Pinning::detect();
    let bench = Bench {
        secret: portcullis::SecretKey::generate_text(),
        args,
        binary,
        pinning,
        script,
        work: work.clone(),
        duration,
        warmup,
    };
    let started = Instant::now();
    let steal_before = cpu_steal();
    eprintln!(
        "portcullis-bench: {}; {} connections; {} × {:.0?} per scenario after {:.0?} warm-up",
        bench.pinning.describe(),
        bench.args.connections,
        bench.args.reps,
        duration,
        warmup
    );

    let mut rows = Vec::new();
    let mut notes = Vec::new();
    // SQLite.
    let sqlite = format!("sqlite://{}", work.join("bench.db").display());
    let creds = seed::prepare(&bench.binary, &sqlite, &bench.secret).await?;
    rows.extend(bench.suite("sqlite", &sqlite, &creds, true).await?);
    rows.extend(bench.suite("sqlite", &sqlite, &creds, false).await?);
    // PostgreSQL.
    if !bench.args.no_postgres {
        let name = format!("portcullis_bench_{}", std::process::id());
        match seed::create_postgres_db(&bench.args.postgres, &name) {
            Ok(pg) => {
                let result = async {
                    let creds = seed::prepare(&bench.binary, &pg, &bench.secret).await?;
                    let mut r = bench.suite("postgres", &pg, &creds, true).await?;
                    r.extend(bench.suite("postgres", &pg, &creds, false).await?);
                    anyhow::Ok(r)
                }
                .await;
                seed::drop_postgres_db(&bench.args.postgres, &name);
                rows.extend(result?);
            }
            Err(e) => {
                eprintln!("PostgreSQL skipped: {e}");
                notes.push(format!("PostgreSQL skipped: {e}"));
            }
        }
    }
    if bench.selected("Token") {
        rows.extend(bench.flood(&sqlite, &creds)?);
    }
    let memory = if bench.args.memory_entries > 0 {
        bench.memory(bench.args.memory_entries).await?
    } else {
        serde_json::Value::Null
    };

    let steal = match (steal_before, cpu_steal()) {
        (Some((t0, s0)), Some((t1, s1))) if t1 > t0 => Some((s1 - s0) as f64 / (t1 - t0) as f64),
        _ => None,
    };
    if let Some(st) = steal {
        let pct = st * 100.0;
        notes.push(format!(
            "CPU time stolen by the hypervisor during the run: {pct:.1}% (above a few per cent, ratios are noisy)"
        ));
    }
    let table = report::table(&rows);
    println!("\n{table}");
    for n in &notes {
        println!("{n}");
    }
    if let Some(m) = memory.as_object() {
        println!(
            "Memory (RSS of serve): idle {:.1} MiB; after {} tokens and {} sessions exist {:.1} MiB; after each was used once {:.1} MiB",
            m["rss_idle_kib"].as_f64().unwrap_or(0.0) / 1024.0,
            m["entries"],
            m["entries"],
            m["rss_after_create_kib"].as_f64().unwrap_or(0.0) / 1024.0,
            m["rss_after_use_kib"].as_f64().unwrap_or(0.0) / 1024.0,
        );
    }
    let out = &bench.args.out;
    let date = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string();
    let report = json!({
        "date": date,
        "machine": machine(),
        "pinning": bench.pinning.describe(),
        "load_generator": format!("wrk -t1 -c{}", bench.args.connections),
        "duration_s": duration.as_secs_f64(),
        "warmup_s": warmup.as_secs_f64(),
        "reps": bench.args.reps,
        "scenarios": rows,
        "memory": memory,
        "cpu_steal_fraction": steal,
        "notes": notes,
        "elapsed_s": started.elapsed().as_secs_f64(),
    });
    write(
        &out.join("report.json"),
        &serde_json::to_string_pretty(&report)?,
    )?;
    write(&out.join("report.md"), &table)?;
    let title = format!(
        "portcullis serve, req/s per scenario ({} cores, {date})",
        report["machine"]["cores"]
    );
    write(&out.join("throughput.svg"), &report::svg(&rows, &title))?;
    eprintln!(
        "wrote {0}/report.json, {0}/report.md, {0}/throughput.svg in {1:.0} s",
        out.display(),
        started.elapsed().as_secs_f64()
    );
    let missed: Vec<String> = rows
        .iter()
        .filter(|r| r.meets_goal == Some(false))
        .map(|r| format!("{} ({}, {})", r.name, r.db, r.caches))
        .collect();
    if !missed.is_empty() {
        eprintln!("goals missed: {}", missed.join("; "));
    }
    Ok(())
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}
