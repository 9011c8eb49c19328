//! `agentwire probe URL --monitor [--interval-secs N] [--duration-secs D]`: probes again and
//! again, every N seconds for D seconds (or `--count` probes), and prints one line per probe as
//! it ends (`--json`: one JSON object per line), then a summary: availability (the share of
//! probes that passed every step), handshake and run time percentiles, and the failed probes by
//! the step that failed and its likely cause. Exit 1 when availability is below
//! `--min-availability` percent. Ctrl-C ends the monitor early, with the summary of the probes
//! done so far.
//!
//! The probes follow a fixed schedule: probe k starts `k * interval` after the first. One that
//! takes longer than the interval delays the next, which then starts at once; missed starts are
//! not made up in a burst.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use agentwire_events::Timestamp;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::super::{ms, percentiles_ms, round};
use super::{Outcome, ProbeArgs, Report, Status, probe_once};
use agentwire_client::transport::Target;

/// When to probe and what counts as good enough, checked.
pub(super) struct Plan {
    interval: Duration,
    duration: Duration,
    count: Option<u64>,
    min_availability: f64,
}

impl Plan {
    pub(super) fn from_args(args: &ProbeArgs) -> Result<Plan, String> {
        let seconds = |flag: &str, value: f64| {
            Duration::try_from_secs_f64(value)
                .map_err(|_| format!("--{flag}: {value} is not a number of seconds"))
        };
        let interval = seconds("interval-secs", args.interval_secs)?;
        if interval.is_zero() {
            return Err("--interval-secs must be more than 0".to_owned());
        }
        let duration = seconds("duration-secs", args.duration_secs)?;
        if args.count == Some(0) {
            return Err("--count must be at least 1".to_owned());
        }
        if !(0.0..=100.0).contains(&args.min_availability) {
            return Err(format!(
                "--min-availability: {} is not a percentage (0 to 100)",
                args.min_availability
            ));
        }
        Ok(Plan {
            interval,
            duration,
            count: args.count,
            min_availability: args.min_availability,
        })
    }
}

/// One probe's line in `--json` mode: the probe's report with its number, time and timings.
#[derive(Serialize)]
struct ProbeLine<'a> {
    record: &'static str,
    probe: u64,
    time: String,
    handshake_ms: Option<f64>,
    run_ms: Option<f64>,
    #[serde(flatten)]
    report: &'a Report,
}

/// What the probes so far add up to.
#[derive(Default)]
struct Tally {
    probes: u64,
    passed: u64,
    /// Microseconds, of the probes that got that far.
    handshakes: Vec<u32>,
    runs: Vec<u32>,
    /// Failed probes by their first failing step and its likely cause.
    failures: BTreeMap<(&'static str, String), u64>,
}

impl Tally {
    fn add(&mut self, outcome: &Outcome) {
        let micros = |d: Duration| u32::try_from(d.as_micros()).unwrap_or(u32::MAX);
        self.probes += 1;
        if outcome.report.ok {
            self.passed += 1;
        }
        self.handshakes.extend(outcome.handshake.map(micros));
        self.runs.extend(outcome.run.map(micros));
        if let Some(step) = outcome.report.failed_step {
            let cause = outcome.report.cause.clone().unwrap_or_default();
            *self.failures.entry((step, cause)).or_default() += 1;
        }
    }

    /// Passed probes in percent of all; 0 when there was none.
    fn availability(&self) -> f64 {
        if self.probes == 0 {
            return 0.0;
        }
        self.passed as f64 * 100.0 / self.probes as f64
    }

    fn summary(&mut self, plan: &Plan, url: &str, elapsed: Duration, interrupted: bool) -> Value {
        self.handshakes.sort_unstable();
        self.runs.sort_unstable();
        let mut by_step: BTreeMap<&str, u64> = BTreeMap::new();
        for ((step, _), count) in &self.failures {
            *by_step.entry(step).or_default() += count;
        }
        let mut failures: Vec<(&(&str, String), &u64)> = self.failures.iter().collect();
        failures.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
        let availability = self.availability();
        json!({
            "record": "summary",
            "url": url,
            "ok": self.probes > 0 && availability >= plan.min_availability,
            "probes": self.probes,
            "passed": self.passed,
            "failed": self.probes - self.passed,
            "availability_pct": round(availability, 2),
            "min_availability_pct": plan.min_availability,
            "handshake_ms": percentiles_ms(&self.handshakes),
            "run_ms": percentiles_ms(&self.runs),
            "failures_by_step": by_step,
            "failures": failures
                .iter()
                .map(|((step, cause), count)| json!({ "step": step, "cause": cause, "count": count }))
                .collect::<Vec<_>>(),
            "interval_s": plan.interval.as_secs_f64(),
            "elapsed_s": round(elapsed.as_secs_f64(), 1),
            "interrupted": interrupted,
        })
    }
}

/// Probes on the plan's schedule, printing as it goes; the exit code follows availability.
pub(super) async fn run(
    args: &ProbeArgs,
    plan: &Plan,
    target: &Target,
    token: &str,
) -> Result<ExitCode, String> {
    if !args.json {
        let count = plan
            .count
            .map(|c| format!(" (at most {c} probes)"))
            .unwrap_or_default();
        emit(&format!(
            "agentwire probe --monitor {}: a probe every {} s for {} s{count}",
            target.url(),
            plan.interval.as_secs_f64(),
            plan.duration.as_secs_f64()
        ));
    }
    let started = Instant::now();
    let deadline = started + plan.duration;
    let mut tally = Tally::default();
    let mut next = started;
    let mut interrupted = false;
    let stop = tokio::signal::ctrl_c();
    tokio::pin!(stop);
    loop {
        let time = Timestamp::now().to_string();
        let outcome = tokio::select! {
            outcome = probe_once(args, target, token) => outcome,
            _ = &mut stop => {
                interrupted = true;
                break;
            }
        };
        tally.add(&outcome);
        emit(&probe_line(args.json, tally.probes, &time, &outcome)?);
        if plan.count.is_some_and(|count| tally.probes >= count) {
            break;
        }
        next += plan.interval;
        let now = Instant::now();
        if next < now {
            next = now;
        }
        if next >= deadline {
            break;
        }
        tokio::select! {
            () = tokio::time::sleep_until(next) => {}
            _ = &mut stop => {
                interrupted = true;
                break;
            }
        }
    }
    let summary = tally.summary(plan, target.url(), started.elapsed(), interrupted);
    if args.json {
        emit(&summary.to_string());
    } else {
        emit(human_summary(&summary).trim_end());
    }
    Ok(if summary["ok"] == true {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Prints a line at once, so a reader sees each probe as it ends. A closed stdout is ignored.
fn emit(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn probe_line(json: bool, number: u64, time: &str, outcome: &Outcome) -> Result<String, String> {
    let millis = |d: Option<Duration>| d.map(|d| round(ms(d), 3));
    let report = &outcome.report;
    if json {
        let line = ProbeLine {
            record: "probe",
            probe: number,
            time: time.to_owned(),
            handshake_ms: millis(outcome.handshake),
            run_ms: millis(outcome.run),
            report,
        };
        return serde_json::to_string(&line).map_err(|e| e.to_string());
    }
    let show = |d: Option<Duration>| d.map_or("-".to_owned(), |d| format!("{:.2} ms", ms(d)));
    let mut line = format!("#{number:<5} {time}  ");
    match report.failed_step {
        None => {
            let _ = write!(
                line,
                "PASS  handshake {}, run {}",
                show(outcome.handshake),
                show(outcome.run)
            );
        }
        Some(step) => {
            let _ = write!(
                line,
                "FAIL  {step}: {}",
                report.cause.as_deref().unwrap_or("")
            );
        }
    }
    let warnings: Vec<&str> = report
        .steps
        .iter()
        .filter(|s| s.status == Status::Warn)
        .map(|s| s.name)
        .collect();
    if !warnings.is_empty() {
        let _ = write!(line, "  (warnings: {})", warnings.join(", "));
    }
    Ok(line)
}

fn human_summary(summary: &Value) -> String {
    let mut out = String::new();
    let min = summary["min_availability_pct"].as_f64().unwrap_or(100.0);
    let _ = writeln!(
        out,
        "summary: {} probes in {} s, {} passed: availability {:.2} % (minimum {} %){}",
        summary["probes"],
        summary["elapsed_s"],
        summary["passed"],
        summary["availability_pct"].as_f64().unwrap_or(0.0),
        min,
        if summary["interrupted"] == true {
            " (interrupted)"
        } else {
            ""
        }
    );
    for (label, key) in [("handshake", "handshake_ms"), ("run", "run_ms")] {
        let v = &summary[key];
        if v["samples"] == 0 {
            let _ = writeln!(out, "  {label:<10} no samples");
        } else {
            let _ = writeln!(
                out,
                "  {label:<10} p50 {} ms, p99 {} ms, max {} ms ({} samples)",
                v["p50"], v["p99"], v["max"], v["samples"]
            );
        }
    }
    let failures = summary["failures"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    if !failures.is_empty() {
        out.push_str("  failed probes by step and likely cause:\n");
        for failure in failures {
            let _ = writeln!(
                out,
                "    {:>5}  {:<24}{}",
                failure["count"],
                failure["step"].as_str().unwrap_or("?"),
                failure["cause"].as_str().unwrap_or("")
            );
        }
    }
    if summary["ok"] == true {
        out.push_str("PASS\n");
    } else {
        let _ = writeln!(
            out,
            "FAIL: availability {:.2} % is below the minimum {min} %",
            summary["availability_pct"].as_f64().unwrap_or(0.0),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(failed: Option<(&'static str, &str)>, handshake_ms: Option<u64>) -> Outcome {
        Outcome {
            report: Report {
                url: "ws://127.0.0.1:1/ws".to_owned(),
                ok: failed.is_none(),
                failed_step: failed.map(|(step, _)| step),
                cause: failed.map(|(_, cause)| cause.to_owned()),
                steps: Vec::new(),
            },
            handshake: handshake_ms.map(Duration::from_millis),
            run: None,
        }
    }

    #[test]
    fn tally_counts_availability_and_failures_by_step_and_cause() {
        let plan = Plan {
            interval: Duration::from_secs(1),
            duration: Duration::from_secs(10),
            count: None,
            min_availability: 50.0,
        };
        let mut tally = Tally::default();
        tally.add(&outcome(None, Some(2)));
        tally.add(&outcome(Some(("tcp_connect", "nothing listens")), None));
        tally.add(&outcome(Some(("tcp_connect", "nothing listens")), None));
        tally.add(&outcome(Some(("agent_run", "the agent is stuck")), Some(4)));
        let summary = tally.summary(&plan, "ws://x/ws", Duration::from_secs(3), false);
        assert_eq!(summary["probes"], 4);
        assert_eq!(summary["passed"], 1);
        assert_eq!(summary["availability_pct"], 25.0);
        assert_eq!(summary["ok"], false, "25 % is below the 50 % minimum");
        assert_eq!(
            summary["failures_by_step"],
            json!({ "agent_run": 1, "tcp_connect": 2 })
        );
        assert_eq!(
            summary["failures"][0],
            json!({ "step": "tcp_connect", "cause": "nothing listens", "count": 2 })
        );
        assert_eq!(summary["handshake_ms"]["samples"], 2);
        assert_eq!(summary["handshake_ms"]["p50"], 2.0);
        assert_eq!(summary["handshake_ms"]["p99"], 4.0);
        assert_eq!(summary["run_ms"]["samples"], 0);
        let text = human_summary(&summary);
        assert!(text.contains("availability 25.00 %"), "{text}");
        assert!(
            text.trim_end().ends_with("is below the minimum 50 %"),
            "{text}"
        );
    }

    #[test]
    fn no_probe_is_no_availability() {
        let plan = Plan {
            interval: Duration::from_secs(1),
            duration: Duration::ZERO,
            count: None,
            min_availability: 0.0,
        };
        let summary = Tally::default().summary(&plan, "ws://x/ws", Duration::ZERO, true);
        assert_eq!(summary["availability_pct"], 0.0);
        assert_eq!(summary["ok"], false);
    }
}
