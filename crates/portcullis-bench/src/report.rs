//! Medians, the terminal table, `report.json`, `report.md` and the SVG.

use std::fmt::Write as _;

use serde::Serialize;

/// One measured run of one scenario.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Sample {
    pub(crate) rps: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    /// Server CPU time per request, microseconds.
    pub(crate) cpu_us_per_req: f64,
    /// Responses other than the expected status (2xx unless said).
    pub(crate) unexpected: u64,
    pub(crate) socket_errors: u64,
}

/// A scenario's summary: medians over the runs, and their spread.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Row {
    pub(crate) name: String,
    pub(crate) db: String,
    /// `warm` (caches on, the default) or `caches-off`.
    pub(crate) caches: String,
    pub(crate) path: String,
    pub(crate) rps: f64,
    pub(crate) rps_min: f64,
    pub(crate) rps_max: f64,
    /// (max - min) / median of the runs' throughput.
    pub(crate) rps_spread: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) cpu_us_per_req: f64,
    /// Against `/health/` measured on the same server in the same run: the
    /// median of the ratios of each run to the mean of the baseline runs
    /// just before and just after it (for the flood scenario: against
    /// `/token/` undisturbed's median).
    pub(crate) ratio_to_baseline: f64,
    pub(crate) baseline: String,
    /// The issue's goal for this ratio, if it sets one.
    pub(crate) goal: Option<f64>,
    pub(crate) meets_goal: Option<bool>,
    pub(crate) unexpected_responses: u64,
    pub(crate) socket_errors: u64,
    pub(crate) runs: Vec<Sample>,
}

pub(crate) fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Pairs each scenario run with the baseline runs just before and just
/// after it: its ratio is its requests/s over their mean. On a shared VM
/// the machine's speed drifts within seconds; a baseline on both sides
/// cancels a drift that is steady over the three runs, where one before
/// would count it against the scenario, or for it.
#[derive(Debug, Default)]
pub(crate) struct Brackets {
    /// The last baseline run's requests/s, not yet used as a "before".
    before: Option<f64>,
    /// A scenario run waiting for its "after": its index, its requests/s
    /// and its "before".
    open: Option<(usize, f64, f64)>,
}

impl Brackets {
    /// A baseline run. It closes the scenario run before it, whose index
    /// and ratio it returns, and is the "before" of the next one.
    pub(crate) fn baseline(&mut self, rps: f64) -> Option<(usize, f64)> {
        self.before = Some(rps);
        let (i, s, before) = self.open.take()?;
        let mean = (before + rps) / 2.0;
        (mean > 0.0).then(|| (i, s / mean))
    }

    /// Scenario `i`'s run. Without a baseline run since the last
    /// scenario run, it has no "before" and no ratio.
    pub(crate) fn scenario(&mut self, i: usize, rps: f64) {
        self.open = self.before.take().map(|before| (i, rps, before));
    }
}

impl Row {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        name: &str,
        db: &str,
        caches: &str,
        path: &str,
        runs: Vec<Sample>,
        baseline_rps: f64,
        baseline: &str,
        goal: Option<f64>,
    ) -> Row {
        let col = |f: fn(&Sample) -> f64| median(&runs.iter().map(f).collect::<Vec<_>>());
        let rps = col(|s| s.rps);
        let min = runs.iter().map(|s| s.rps).fold(f64::INFINITY, f64::min);
        let max = runs.iter().map(|s| s.rps).fold(0.0, f64::max);
        let ratio = rps / baseline_rps;
        Row {
            name: name.into(),
            db: db.into(),
            caches: caches.into(),
            path: path.into(),
            rps,
            rps_min: min,
            rps_max: max,
            rps_spread: if rps > 0.0 { (max - min) / rps } else { 0.0 },
            p50_ms: col(|s| s.p50_ms),
            p99_ms: col(|s| s.p99_ms),
            cpu_us_per_req: col(|s| s.cpu_us_per_req),
            ratio_to_baseline: ratio,
            baseline: baseline.into(),
            goal,
            meets_goal: goal.map(|g| ratio >= g),
            unexpected_responses: runs.iter().map(|s| s.unexpected).sum(),
            socket_errors: runs.iter().map(|s| s.socket_errors).sum(),
            runs,
        }
    }
}

impl Row {
    /// Replaces the ratio with the median of per-run ratios, each against
    /// the baseline runs around it (see [`Brackets`]; none given: left as
    /// it is).
    pub(crate) fn with_paired_ratios(mut self, ratios: &[f64]) -> Row {
        if !ratios.is_empty() {
            self.ratio_to_baseline = median(ratios);
            self.meets_goal = self.goal.map(|g| self.ratio_to_baseline >= g);
        }
        self
    }
}

fn goal_text(r: &Row) -> String {
    match (r.goal, r.meets_goal) {
        (Some(g), Some(true)) => format!("≥{g:.2} ok"),
        (Some(g), _) => format!("≥{g:.2} MISSED"),
        _ => String::new(),
    }
}

/// The table, as Markdown (it reads fine on a terminal too).
pub(crate) fn table(rows: &[Row]) -> String {
    let mut s = String::from(
        "| scenario | db | caches | req/s (median) | spread | p50 ms | p99 ms | CPU µs/req | ratio | goal |\n\
         |---|---|---|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.0} | ±{:.0}% | {:.2} | {:.2} | {:.0} | {:.2}× {} | {}{} |",
            r.name,
            r.db,
            r.caches,
            r.rps,
            r.rps_spread * 50.0,
            r.p50_ms,
            r.p99_ms,
            r.cpu_us_per_req,
            r.ratio_to_baseline,
            r.baseline,
            goal_text(r),
            if r.unexpected_responses + r.socket_errors > 0 {
                format!(
                    " ({} unexpected responses, {} socket errors)",
                    r.unexpected_responses, r.socket_errors
                )
            } else {
                String::new()
            }
        );
    }
    s
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A horizontal bar chart of median throughput per scenario, with the
/// runs' min–max as whiskers and each group's baseline as a dashed line.
pub(crate) fn svg(rows: &[Row], title: &str) -> String {
    let row_h = 22.0;
    let gap = 18.0;
    let left = 330.0;
    let width = 1000.0;
    let plot_w = width - left - 150.0;
    let max = rows.iter().map(|r| r.rps_max).fold(1.0, f64::max) * 1.05;
    let x = |v: f64| left + plot_w * (v / max);
    let mut groups: Vec<(String, Vec<&Row>)> = Vec::new();
    for r in rows {
        let g = format!("{} · {}", r.db, r.caches);
        match groups.last_mut() {
            Some((name, v)) if *name == g => v.push(r),
            _ => groups.push((g, vec![r])),
        }
    }
    let height = 70.0
        + groups
            .iter()
            .map(|(_, v)| v.len() as f64 * row_h + gap + 18.0)
            .sum::<f64>()
        + 30.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        s,
        r#"<rect width="100%" height="100%" fill="white"/><text x="10" y="24" font-size="16" font-weight="bold">{}</text>"#,
        esc(title)
    );
    let mut y = 50.0;
    for (name, rows) in &groups {
        let _ = writeln!(
            s,
            r#"<text x="10" y="{:.1}" font-weight="bold">{}</text>"#,
            y + 12.0,
            esc(name)
        );
        y += 18.0;
        let top = y;
        for r in rows {
            let color = match r.meets_goal {
                Some(true) => "#4c9a2a",
                Some(false) => "#c0392b",
                None => "#5b7db1",
            };
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{} {}</text>"#,
                left - 8.0,
                y + 15.0,
                esc(&r.name),
                esc(&r.path)
            );
            let _ = writeln!(
                s,
                r#"<rect x="{left}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{color}"/>"#,
                y + 3.0,
                (x(r.rps) - left).max(0.5),
                row_h - 6.0
            );
            let _ = writeln!(
                s,
                r#"<line x1="{:.1}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="black"/>"#,
                x(r.rps_min),
                x(r.rps_max),
                y + row_h / 2.0,
                y + row_h / 2.0
            );
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{:.1}">{:.0}/s · {:.2}×</text>"#,
                x(r.rps_max) + 6.0,
                y + 15.0,
                r.rps,
                r.ratio_to_baseline
            );
            y += row_h;
        }
        if let Some(base) = rows.iter().find(|r| r.path == "/health/") {
            let _ = writeln!(
                s,
                r##"<line x1="{0:.1}" x2="{0:.1}" y1="{1:.1}" y2="{2:.1}" stroke="#333" stroke-dasharray="4 3"/>"##,
                x(base.rps),
                top,
                y
            );
        }
        y += gap;
    }
    let _ = writeln!(
        s,
        r##"<text x="10" y="{:.1}" fill="#555">bars: median req/s; whiskers: min–max of the runs; dashed: /health/ baseline; green/red: issue goal met/missed</text>"##,
        y + 10.0
    );
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scenario_run_is_paired_with_the_baseline_runs_around_it() {
        let mut b = Brackets::default();
        assert_eq!(b.baseline(100.0), None);
        b.scenario(1, 45.0);
        // Closed by the next baseline run, which opens the next pair.
        assert_eq!(b.baseline(80.0), Some((1, 0.5)));
        b.scenario(2, 40.0);
        assert_eq!(b.baseline(120.0), Some((2, 0.4)));
        // Two scenario runs with no baseline run between them: the first
        // has no neighbour after it, the second none before it.
        b.scenario(3, 50.0);
        b.scenario(4, 60.0);
        assert_eq!(b.baseline(100.0), None);
        // A zero baseline gives none either.
        let mut z = Brackets::default();
        z.baseline(0.0);
        z.scenario(1, 10.0);
        assert_eq!(z.baseline(0.0), None);
    }
}
