//! `cargo xtask bench`: boot the in-guest benchmarks and collect their numbers.
//!
//! Owns the benchmark session: per architecture, build the images (kernel and initrd), boot them
//! headless with the kernel command line `bench` on [`qemu::BENCH_CLOCK`] (1 ns of guest time per
//! instruction, so the numbers count instructions and repeat exactly on any host), parse the
//! guest's lines
//!
//! ```text
//! [bench] NAME VALUE UNIT             NAME [a-z0-9_]+, VALUE an unsigned integer, UNIT a word
//! init: bench NAME failed: REASON     the benchmark (or its self-check) failed
//! [done] N passed, N failed, N skipped
//! ```
//!
//! and judge the run: it passes when QEMU exits by itself with the "passed" status, exactly one
//! `[done]` line reports no failure, no benchmark reported a failure, every `[bench]` line is
//! well-formed and unique, every metric of [`REQUIRED`] is there, and every pair of
//! [`EQUAL_WITHIN`] agrees within its tolerance (the one comparison across metrics, which no single
//! benchmark can check in the guest). The guest checks its own
//! benchmarks (the expected `counter_check` value, the yield partner's alternation, the fault
//! path's method) and reports a failed check as a failed benchmark; this module does not repeat
//! those checks, it makes sure none of their failures is lost. Each metric is printed as
//! `[bench] <arch> NAME VALUE UNIT`; a passing run writes `target/bench/<arch>.json`, a failing one
//! keeps its serial log as `target/bench/<arch>.log`.

use crate::arch::Arch;
use crate::console::{ConsoleLog, Line};
use crate::images::{self, Image};
use crate::install;
use crate::qemu::{self, Console, GuestExit, Machine, Outcome};
use crate::symbolize::{self, SymbolTable};
use crate::workspace;
use anyhow::{Context, Result};
use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;

/// The metrics every benchmark boot must report (`counter_check` first: the guest checks that a
/// tick is one instruction, without which the others do not mean what they say).
pub const REQUIRED: [&str; 12] = [
    "counter_check",
    "null_syscall",
    "ipc_call_reply",
    "ipc_call_reply_same_space",
    "notify_wait",
    "yield_switch",
    "fault_roundtrip",
    "thread_create_join",
    "frame_alloc_empty",
    "frame_alloc_full",
    "frame_alloc_run_empty",
    "frame_alloc_run_full",
];

/// Pairs `(a, b, percent)`: metric `b` may exceed metric `a` by at most `percent`% (and be
/// lower by at most as much), or the run fails. A frame allocation must cost the same with RAM
/// 95% used as with RAM nearly empty, for one frame and for a small run.
pub const EQUAL_WITHIN: [(&str, &str, u64); 2] = [
    ("frame_alloc_empty", "frame_alloc_full", 10),
    ("frame_alloc_run_empty", "frame_alloc_run_full", 10),
];

/// The kernel command line of a benchmark boot.
const APPEND: &str = "bench";

/// What `cargo xtask bench` was asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// Architectures to benchmark, one after another.
    pub arches: Vec<Arch>,
    /// How long one boot may run before QEMU is killed.
    pub timeout: Duration,
}

/// One `[bench]` line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Metric {
    /// `[a-z0-9_]+`.
    pub name: String,
    /// The measurement.
    pub value: u64,
    /// Its unit, e.g. `ticks`.
    pub unit: String,
}

/// `target/bench/<arch>.json`.
#[derive(Debug, Serialize)]
struct Report<'a> {
    arch: &'a str,
    clock: String,
    metrics: &'a [Metric],
}

/// The judgement of one benchmark boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Every well-formed `[bench]` line, in order.
    pub metrics: Vec<Metric>,
    /// Why the run failed; empty when it passed.
    pub failures: Vec<String>,
}

/// Parses one line: `None` when it is not a `[bench]` line, `Some(Err(line))` when it is one
/// without the protocol's form. A trailing `\r` or `\n` is ignored.
pub fn parse_bench_line(raw: &str) -> Option<Result<Metric, String>> {
    let line = raw.trim_end_matches(['\r', '\n']);
    let rest = line.strip_prefix("[bench]")?;
    let malformed = || Err(line.to_owned());
    let Some(rest) = rest.strip_prefix(' ') else {
        return Some(malformed());
    };
    let words: Vec<&str> = rest.split(' ').collect();
    let [name, value, unit] = words[..] else {
        return Some(malformed());
    };
    let name_ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    let unit_ok = !unit.is_empty()
        && unit
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'/');
    let value = value
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| value.parse::<u64>().ok())
        .flatten();
    match value {
        Some(value) if name_ok && unit_ok => Some(Ok(Metric {
            name: name.to_owned(),
            value,
            unit: unit.to_owned(),
        })),
        _ => Some(malformed()),
    }
}

/// The prefix of the guest's line for a failed benchmark: `init: bench NAME failed: REASON`.
const FAILED_PREFIX: &str = "init: bench ";

/// Parses one line: `None` when it is not a benchmark failure report, otherwise the benchmark's
/// name and the reason (`(None, line)` when the line starts like one but does not have the
/// form, which is still a failure). A trailing `\r` or `\n` is ignored.
pub fn parse_failed_line(raw: &str) -> Option<(Option<&str>, &str)> {
    let line = raw.trim_end_matches(['\r', '\n']);
    let rest = line.strip_prefix(FAILED_PREFIX)?;
    Some(match rest.split_once(" failed: ") {
        Some((name, reason))
            if !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') =>
        {
            (Some(name), reason)
        }
        _ => (None, line),
    })
}

/// Judges a benchmark boot from how it ended and its serial log.
pub fn judge(outcome: &Outcome, serial: &str) -> Verdict {
    let mut metrics: Vec<Metric> = Vec::new();
    let mut failures = Vec::new();
    let mut failed: Vec<&str> = Vec::new();
    for raw in serial.lines() {
        match parse_bench_line(raw) {
            None => {}
            Some(Ok(metric)) => metrics.push(metric),
            Some(Err(line)) => failures.push(format!("malformed bench line `{line}`")),
        }
        match parse_failed_line(raw) {
            None => {}
            Some((Some(name), reason)) => {
                failed.push(name);
                failures.push(format!("benchmark {name} failed in the guest: {reason}"));
            }
            Some((None, line)) => {
                failures.push(format!("benchmark failure in the guest: `{line}`"))
            }
        }
    }

    match outcome {
        Outcome::TimedOut(after) => failures.push(format!(
            "timed out after {}s (QEMU was killed)",
            after.as_secs()
        )),
        Outcome::Exited(GuestExit::Passed) => {}
        Outcome::Exited(exit) => failures.push(format!("the guest {exit}")),
    }

    let log = ConsoleLog::parse(serial);
    for report in log.reports() {
        match report {
            Line::Panic { message } => failures.push(format!("the guest panicked: {message}")),
            Line::Trap { kind, pc, .. } => {
                failures.push(format!("the guest trapped: {kind} at pc={pc:#x}"));
            }
            _ => {}
        }
    }
    match log.done()[..] {
        [] => failures.push("no [done] line: the benchmarks did not finish".to_owned()),
        [(_, 0)] => {}
        [(passed, failed)] => failures.push(format!(
            "[done] reports failures ({passed} passed, {failed} failed)"
        )),
        ref many => failures.push(format!("{} [done] lines, expected one", many.len())),
    }

    let mut seen: Vec<&str> = Vec::new();
    for metric in &metrics {
        let count = metrics.iter().filter(|m| m.name == metric.name).count();
        if count > 1 && !seen.contains(&metric.name.as_str()) {
            seen.push(&metric.name);
            failures.push(format!("metric {} printed {count} times", metric.name));
        }
    }
    if serial
        .lines()
        .any(|l| l.starts_with(&format!("[cmdline] ignored {APPEND:?}")))
    {
        failures.push(format!(
            "the kernel ignored the command line option `{APPEND}` (no benchmarks in this kernel?)"
        ));
    }
    // A benchmark that reported its failure prints no metric: it is not listed again as missing.
    let missing: Vec<&str> = REQUIRED
        .into_iter()
        .filter(|r| !metrics.iter().any(|m| m.name == *r) && !failed.contains(r))
        .collect();
    if !missing.is_empty() {
        failures.push(format!("missing metrics: {}", missing.join(", ")));
    }
    for (a, b, percent) in EQUAL_WITHIN {
        let value = |name| metrics.iter().find(|m| m.name == name).map(|m| m.value);
        if let (Some(x), Some(y)) = (value(a), value(b))
            && x.abs_diff(y) * 100 > x * percent
        {
            failures.push(format!("{b} ({y}) is not within {percent}% of {a} ({x})"));
        }
    }
    Verdict { metrics, failures }
}

/// `target/bench/<arch>.json`.
fn report_path(arch: Arch) -> PathBuf {
    workspace::bench_dir().join(format!("{arch}.json"))
}

/// `target/bench/<arch>.log`.
fn log_path(arch: Arch) -> PathBuf {
    workspace::bench_dir().join(format!("{arch}.log"))
}

/// The JSON of `target/bench/<arch>.json`.
fn report_json(arch: Arch, metrics: &[Metric]) -> String {
    let report = Report {
        arch: arch.name(),
        clock: qemu::BENCH_CLOCK.to_string(),
        metrics,
    };
    let mut json = serde_json::to_string_pretty(&report).expect("a report always serializes");
    json.push('\n');
    json
}

/// Runs the benchmarks of every architecture of `opts`, one after another; returns the
/// architectures that failed (empty when all passed).
pub fn run(opts: &Options) -> Result<Vec<Arch>> {
    install::ensure_qemu(&opts.arches)?;
    let dir = workspace::bench_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut failed = Vec::new();
    for &arch in &opts.arches {
        // Results of an earlier session must not pass for this one's.
        let _ = std::fs::remove_file(report_path(arch));
        let _ = std::fs::remove_file(log_path(arch));
        let image = match images::build(arch) {
            Ok(image) => image,
            Err(e) => {
                eprintln!("error: {e:#}");
                eprintln!("FAIL {arch} bench: the {arch} images did not build");
                failed.push(arch);
                continue;
            }
        };
        if !bench_one(arch, &image, opts.timeout)? {
            failed.push(arch);
        }
    }
    Ok(failed)
}

/// Boots the benchmarks of `arch` once; prints the metrics and either writes the report or keeps
/// the log and explains the failure. Returns true when the run passed.
fn bench_one(arch: Arch, image: &Image, timeout: Duration) -> Result<bool> {
    let tmp = tempfile::Builder::new()
        .prefix("strait-bench-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let serial = tmp.path().join("serial.log");
    let args = qemu::command_line(
        arch,
        image,
        APPEND,
        &Machine::default_for(arch),
        &Console::File(serial.clone()),
        Some(qemu::BENCH_CLOCK),
    );
    eprintln!(
        "booting the {arch} benchmarks ({}, timeout {}s)",
        qemu::BENCH_CLOCK,
        timeout.as_secs()
    );
    let run = qemu::run_headless(arch, &args, tmp.path(), &serial, timeout)?;
    let verdict = judge(&run.outcome, &run.serial);
    for m in &verdict.metrics {
        println!("[bench] {arch} {} {} {}", m.name, m.value, m.unit);
    }

    if verdict.failures.is_empty() {
        let path = report_path(arch);
        std::fs::write(&path, report_json(arch, &verdict.metrics))
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!(
            "PASS {arch} bench ({:.1}s): {}",
            run.elapsed.as_secs_f64(),
            workspace::display(&path)
        );
        return Ok(true);
    }

    let mut text = format!("FAIL {arch} bench: {}\n", verdict.failures.join("; "));
    let kept = log_path(arch);
    let saved = std::fs::write(&kept, &run.serial);
    qemu::append_boot_details(&mut text, &kept, saved, &args, &run.qemu_output);
    let log = ConsoleLog::parse(&run.serial);
    if log.reports().next().is_some() {
        let symbols = SymbolTable::load(&image.elf).ok();
        text.push_str("  report:\n");
        for line in symbolize::crash_report(&log, symbols.as_ref()) {
            text.push_str(&format!("    {line}\n"));
        }
    }
    eprint!("{text}");
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metric(name: &str, value: u64, unit: &str) -> Metric {
        Metric {
            name: name.into(),
            value,
            unit: unit.into(),
        }
    }

    fn all_required() -> String {
        REQUIRED
            .iter()
            .enumerate()
            .map(|(i, name)| format!("[bench] {name} {} ticks\r\n", 100 + i))
            .collect()
    }

    const PASSED: Outcome = Outcome::Exited(GuestExit::Passed);

    #[test]
    fn bench_lines() {
        assert_eq!(
            parse_bench_line("[bench] null_syscall 123 ticks\r"),
            Some(Ok(metric("null_syscall", 123, "ticks")))
        );
        assert_eq!(
            parse_bench_line("[bench] ipc2 18446744073709551615 ns/op"),
            Some(Ok(metric("ipc2", u64::MAX, "ns/op")))
        );
        assert_eq!(parse_bench_line("[stage] serial ok"), None);
        assert_eq!(parse_bench_line("bench 1 2"), None);
        for bad in [
            "[bench]",
            "[bench] ",
            "[bench]x 1 ticks",
            "[bench] null_syscall 123",
            "[bench] null_syscall 123 ticks extra",
            "[bench] Null 1 ticks",
            "[bench] a-b 1 ticks",
            "[bench] a -1 ticks",
            "[bench] a +1 ticks",
            "[bench] a 1.5 ticks",
            "[bench] a 18446744073709551616 ticks",
            "[bench] a 1 ",
            "[bench] a  1 ticks",
        ] {
            assert_eq!(parse_bench_line(bad), Some(Err(bad.to_owned())), "{bad:?}");
        }
    }

    #[test]
    fn a_complete_run_passes() {
        let serial = format!(
            "Strait booting\r\n[stage] serial ok\r\n{}[done] 6 passed, 0 failed, 0 skipped\r\n",
            all_required()
        );
        let verdict = judge(&PASSED, &serial);
        assert_eq!(verdict.failures, Vec::<String>::new());
        assert_eq!(verdict.metrics.len(), REQUIRED.len());
        assert_eq!(verdict.metrics[0], metric("counter_check", 100, "ticks"));
        assert_eq!(verdict.metrics[1], metric("null_syscall", 101, "ticks"));
    }

    #[test]
    fn missing_metrics_are_listed() {
        let serial = "[bench] null_syscall 5 ticks\n[bench] extra 1 ticks\n[done] 2 passed, 0 failed, 0 skipped\n";
        let verdict = judge(&PASSED, serial);
        assert_eq!(
            verdict.failures,
            [
                "missing metrics: counter_check, ipc_call_reply, ipc_call_reply_same_space, \
                 notify_wait, yield_switch, fault_roundtrip, thread_create_join, frame_alloc_empty, \
                 frame_alloc_full, frame_alloc_run_empty, frame_alloc_run_full"
            ]
        );
        assert_eq!(verdict.metrics.len(), 2);
    }

    #[test]
    fn a_silent_timeout_fails_without_done() {
        let verdict = judge(
            &Outcome::TimedOut(Duration::from_secs(30)),
            "[cmdline] ignored \"bench\": not a known option\n",
        );
        assert_eq!(verdict.failures[0], "timed out after 30s (QEMU was killed)");
        assert_eq!(
            verdict.failures[1],
            "no [done] line: the benchmarks did not finish"
        );
        assert_eq!(
            verdict.failures[2],
            "the kernel ignored the command line option `bench` (no benchmarks in this kernel?)"
        );
        assert!(verdict.failures[3].starts_with("missing metrics: counter_check, null_syscall, "));
        assert_eq!(verdict.failures.len(), 4);
    }

    #[test]
    fn failures_crashes_and_bad_lines_fail() {
        let serial = format!(
            "{}[bench] bad\n[bench] null_syscall 7 ticks\n[done] 5 passed, 1 failed, 0 skipped\n",
            all_required()
        );
        let verdict = judge(&Outcome::Exited(GuestExit::Failed), &serial);
        assert_eq!(
            verdict.failures,
            [
                "malformed bench line `[bench] bad`",
                "the guest failed",
                "[done] reports failures (5 passed, 1 failed)",
                "metric null_syscall printed 2 times",
            ]
        );

        let serial = format!(
            "{}[panic] boom\n[backtrace] #0 0x10\n[backtrace] end\n",
            all_required()
        );
        let verdict = judge(&Outcome::Exited(GuestExit::Crashed), &serial);
        assert_eq!(
            verdict.failures,
            [
                "the guest crashed",
                "the guest panicked: boom",
                "no [done] line: the benchmarks did not finish",
            ]
        );

        let serial = format!(
            "{}[done] 6 passed, 0 failed, 0 skipped\n[done] 6 passed, 0 failed, 0 skipped\n",
            all_required()
        );
        assert_eq!(
            judge(&PASSED, &serial).failures,
            ["2 [done] lines, expected one"]
        );
    }

    #[test]
    fn failed_lines() {
        assert_eq!(
            parse_failed_line("init: bench counter_check failed: median 2004 ticks\r"),
            Some((Some("counter_check"), "median 2004 ticks"))
        );
        assert_eq!(
            parse_failed_line("init: bench yield_switch failed: a: b failed: c"),
            Some((Some("yield_switch"), "a: b failed: c"))
        );
        for odd in [
            "init: bench fault_roundtrip: shared frame refused (busy), using a fresh frame",
            "init: bench  failed: no name",
            "init: bench Yield failed: capital",
        ] {
            assert_eq!(parse_failed_line(odd), Some((None, odd)), "{odd:?}");
        }
        for other in [
            "init: started, initrd 4096 bytes, cmdline \"bench\"",
            "init: benchmarks",
            "[bench] counter_check 2005 ticks",
            "utest[yield_partner]: exiting with code 2",
        ] {
            assert_eq!(parse_failed_line(other), None, "{other:?}");
        }
    }

    #[test]
    fn a_failed_benchmark_fails_the_run() {
        // Everything else passes: the guest exited "passed" and [done] counts no failure (init
        // reports benchmarks on the console only), so the failure line alone must fail the run.
        let serial = format!(
            "{}init: bench yield_switch failed: partner turn count 7 after init's yield #8, \
             expected 8 (one turn per yield); the partner exited with code 2\r\n\
             [done] 0 passed, 0 failed, 0 skipped\r\n",
            all_required()
                .lines()
                .filter(|l| !l.contains("yield_switch"))
                .map(|l| format!("{l}\n"))
                .collect::<String>()
        );
        let verdict = judge(&PASSED, &serial);
        assert_eq!(
            verdict.failures,
            [
                "benchmark yield_switch failed in the guest: partner turn count 7 after init's \
                 yield #8, expected 8 (one turn per yield); the partner exited with code 2"
            ]
        );
        assert_eq!(verdict.metrics.len(), REQUIRED.len() - 1);

        // A failure line that does not have the form still fails the run, even with every metric
        // present (an older guest that silently changed method said so only in such a line).
        let serial = format!(
            "{}init: bench fault_roundtrip: shared frame refused (busy)\n\
             [done] 0 passed, 0 failed, 0 skipped\n",
            all_required()
        );
        assert_eq!(
            judge(&PASSED, &serial).failures,
            ["benchmark failure in the guest: \
                 `init: bench fault_roundtrip: shared frame refused (busy)`"]
        );

        // A required benchmark that neither printed its metric nor failed is still missing.
        let serial = "init: bench counter_check failed: median 0 ticks\n\
                      [done] 0 passed, 0 failed, 0 skipped\n";
        let verdict = judge(&PASSED, serial);
        assert_eq!(
            verdict.failures[0],
            "benchmark counter_check failed in the guest: median 0 ticks"
        );
        assert!(verdict.failures[1].starts_with("missing metrics: null_syscall, "));
        assert_eq!(verdict.failures.len(), 2);
    }

    #[test]
    fn frame_alloc_full_must_be_within_ten_percent_of_empty() {
        let with = |empty: u64, full: u64| {
            let serial = all_required()
                .replace(
                    "frame_alloc_empty 108 ",
                    &format!("frame_alloc_empty {empty} "),
                )
                .replace(
                    "frame_alloc_full 109 ",
                    &format!("frame_alloc_full {full} "),
                )
                + "[done] 5 passed, 0 failed, 0 skipped\n";
            judge(&PASSED, &serial).failures
        };
        assert!(with(1000, 1100).is_empty());
        assert!(with(1000, 900).is_empty());
        assert_eq!(
            with(1000, 1101),
            ["frame_alloc_full (1101) is not within 10% of frame_alloc_empty (1000)"]
        );
        assert_eq!(with(1000, 899).len(), 1);
    }

    #[test]
    fn report_json_has_the_documented_shape() {
        let json = report_json(Arch::X86_64, &[metric("null_syscall", 42, "ticks")]);
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(
            value,
            serde_json::json!({
                "arch": "x86_64",
                "clock": "icount shift=0,sleep=off",
                "metrics": [{"name": "null_syscall", "value": 42, "unit": "ticks"}]
            })
        );
        assert!(json.ends_with("}\n"));
    }
}
