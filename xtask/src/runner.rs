//! `cargo xtask test`: host tests, image builds, and every scenario booted headless.
//!
//! Owns the order of a test session (host tests, builds, U-Boot's flash bank when a scenario
//! boots through it, boots), the job list (scenario x arch x
//! repeat), running up to `--jobs` QEMUs at once (each in its own temporary directory, with its
//! scenario's timeout), what is printed per run (`[i/N] label ...` on stderr when it starts;
//! `PASS label (Xs)` / `FAIL label: reason` and, on failure, the kept log, the hint and the
//! symbolized report), and the closing `N passed, N failed` line.

use crate::arch::Arch;
use crate::console::ConsoleLog;
use crate::host_tests;
use crate::images;
use crate::install;
use crate::qemu::{self, Console, Firmware};
use crate::scenario::{Plan, Scenario};
use crate::stages::Stages;
use crate::symbolize::{self, SymbolTable};
use crate::uboot;
use crate::verdict;
use crate::workspace;
use anyhow::{Result, bail};
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

/// What `cargo xtask test` was asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// Architectures to boot.
    pub arches: Vec<Arch>,
    /// Scenario names to run; empty means all.
    pub scenarios: Vec<String>,
    /// Boots per scenario and architecture.
    pub repeat: u32,
    /// Overrides every scenario's CPU count.
    pub smp: Option<u32>,
    /// QEMUs running at once.
    pub jobs: usize,
    /// Run `cargo test -p strait-kernel-core` first.
    pub host_tests: bool,
}

/// Passed and failed items.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    passed: usize,
    failed: usize,
}

impl Tally {
    fn add(&mut self, passed: bool, text: &str) {
        print!("{text}");
        if passed {
            self.passed += 1;
        } else {
            self.failed += 1;
        }
    }
}

/// One boot to run.
#[derive(Debug)]
struct Job {
    plan: Plan,
    /// Repeat index, from 0.
    index: u32,
    label: String,
    image: images::Image,
    symbols: Arc<Option<SymbolTable>>,
}

/// Runs the whole test session; returns true when everything passed. The summary line is
/// printed last.
pub fn run(opts: &Options) -> Result<bool> {
    let stages = Stages::load(&workspace::stages_file())?;
    let mut scenarios = Scenario::load_all(&workspace::scenarios_dir(), &stages)?;
    if !opts.scenarios.is_empty() {
        for name in &opts.scenarios {
            if !scenarios.iter().any(|s| &s.name == name) {
                let known: Vec<&str> = scenarios.iter().map(|s| s.name.as_str()).collect();
                bail!("no scenario `{name}` (known: {})", known.join(", "));
            }
        }
        scenarios.retain(|s| opts.scenarios.contains(&s.name));
    }
    install::ensure_qemu(&opts.arches)?;
    let needs_uboot = scenarios.iter().any(|s| {
        opts.arches.iter().any(|&arch| {
            s.plan(arch, opts.smp)
                .is_some_and(|p| p.machine.firmware == Firmware::UBoot)
        })
    });
    if needs_uboot {
        install::ensure_uboot()?;
    }

    let mut tally = Tally::default();
    if opts.host_tests {
        for (passed, text) in host_tests::run() {
            tally.add(passed, &text);
        }
    }

    let mut jobs = Vec::new();
    for &arch in &opts.arches {
        let plans: Vec<Plan> = scenarios
            .iter()
            .filter_map(|s| s.plan(arch, opts.smp))
            .collect();
        if plans.is_empty() {
            continue;
        }
        let image = match images::build_test(arch) {
            Ok(image) => image,
            Err(e) => {
                eprintln!("error: {e:#}");
                for plan in &plans {
                    for index in 0..opts.repeat {
                        let label = label(plan, index, opts.repeat);
                        tally.add(
                            false,
                            &format!("FAIL {label}: the {arch} image did not build\n"),
                        );
                    }
                }
                continue;
            }
        };
        let symbols = match SymbolTable::load(&image.elf) {
            Ok(table) if table.is_empty() => {
                eprintln!("warning: {arch} kernel ELF has no function symbols");
                None
            }
            Ok(table) => Some(table),
            Err(e) => {
                eprintln!("warning: no symbols for {arch}: {e:#}");
                None
            }
        };
        let symbols = Arc::new(symbols);
        for plan in plans {
            for index in 0..opts.repeat {
                jobs.push(Job {
                    label: label(&plan, index, opts.repeat),
                    plan: plan.clone(),
                    index,
                    image: image.clone(),
                    symbols: Arc::clone(&symbols),
                });
            }
        }
    }

    if needs_uboot {
        uboot::write_flash(&workspace::uboot_flash())?;
    }
    for job in &jobs {
        // A log left by an earlier session must not pass for this one's.
        let _ = std::fs::remove_file(kept_log(job));
    }
    let workers = opts.jobs.clamp(1, jobs.len().max(1));
    let total = jobs.len();
    let queue = Mutex::new(jobs.into_iter().enumerate());
    let (tx, rx) = mpsc::channel();
    std::thread::scope(|s| {
        for _ in 0..workers {
            let tx = tx.clone();
            let (queue, stages) = (&queue, &stages);
            s.spawn(move || {
                loop {
                    let next = queue.lock().map(|mut q| q.next()).unwrap_or(None);
                    let Some((at, job)) = next else { break };
                    eprintln!("{}", progress_line(at, total, &job.label));
                    if tx.send(boot(&job, stages)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        for (passed, text) in rx {
            tally.add(passed, &text);
        }
    });

    println!("{} passed, {} failed", tally.passed, tally.failed);
    Ok(tally.failed == 0)
}

/// The line printed (on stderr) when the boot at index `at` of `total` starts:
/// `[3/36] x86_64/boot_all ...`.
fn progress_line(at: usize, total: usize, label: &str) -> String {
    format!("[{}/{total}] {label} ...", at + 1)
}

/// `arch/scenario`, with `#i` when a scenario runs more than once.
fn label(plan: &Plan, index: u32, repeat: u32) -> String {
    if repeat > 1 {
        format!("{}/{}#{index}", plan.arch, plan.scenario)
    } else {
        format!("{}/{}", plan.arch, plan.scenario)
    }
}

/// `target/test-logs/<arch>-<scenario>-<i>.log`.
fn kept_log(job: &Job) -> PathBuf {
    workspace::test_logs_dir().join(format!(
        "{}-{}-{}.log",
        job.plan.arch, job.plan.scenario, job.index
    ))
}

/// Boots one job and returns whether it passed and the text to print.
fn boot(job: &Job, stages: &Stages) -> (bool, String) {
    let plan = &job.plan;
    let dir = match tempfile::Builder::new().prefix("strait-qemu-").tempdir() {
        Ok(dir) => dir,
        Err(e) => {
            return (
                false,
                format!("FAIL {}: no temporary directory: {e}\n", job.label),
            );
        }
    };
    let serial = dir.path().join("serial.log");
    let args = qemu::command_line(
        plan.arch,
        &job.image,
        &plan.append,
        &plan.machine,
        &Console::File(serial.clone()),
        Some(qemu::TEST_CLOCK),
    );
    let run = match qemu::run_headless(plan.arch, &args, dir.path(), &serial, plan.timeout) {
        Ok(run) => run,
        Err(e) => return (false, format!("FAIL {}: {e:#}\n", job.label)),
    };
    let log = ConsoleLog::parse(&run.serial);
    let symbols = job.symbols.as_ref().as_ref();
    let verdict = verdict::judge(&plan.check, &log, &run.outcome, symbols);
    if verdict.passed() {
        let secs = run.elapsed.as_secs_f64();
        return (true, format!("PASS {} ({secs:.1}s)\n", job.label));
    }

    let mut text = format!("FAIL {}: {}\n", job.label, verdict.failures.join("; "));
    text.push_str(&format!("  scenario: {}\n", plan.description));
    let kept = kept_log(job);
    let saved = std::fs::create_dir_all(workspace::test_logs_dir())
        .and_then(|()| std::fs::write(&kept, &run.serial));
    qemu::append_boot_details(&mut text, &kept, saved, &args, &run.qemu_output);
    let hint = if verdict.silent {
        Some(stages.explain_silence())
    } else {
        verdict
            .hint_stage
            .as_deref()
            .map(|s| stages.explain_stage(s))
    };
    if let Some(hint) = hint {
        text.push_str(&indent(&hint, "  "));
    }
    let report = symbolize::crash_report(&log, symbols);
    if !report.is_empty() {
        text.push_str("  report:\n");
        for line in report {
            text.push_str(&format!("    {line}\n"));
        }
    }
    (false, text)
}

fn indent(text: &str, prefix: &str) -> String {
    text.lines().map(|l| format!("{prefix}{l}\n")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_counts_from_one() {
        assert_eq!(
            progress_line(0, 36, "x86_64/boot_all"),
            "[1/36] x86_64/boot_all ..."
        );
        assert_eq!(
            progress_line(35, 36, "aarch64/smp4#2"),
            "[36/36] aarch64/smp4#2 ..."
        );
    }
}
