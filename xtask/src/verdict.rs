//! The verdict on one boot run: did the serial log and the exit status show what the scenario
//! expects?
//!
//! Owns the rules (see `tests/README.md`): the expected stages each report `ok`, in order, and
//! none reports `FAILED`; the exit status matches the expectation; a pass run reports every
//! expected test (the test catalog's tests for the scenario's `test=` selection) exactly once,
//! `ok` or (where the scenario allows it) `skipped`, no other test, and one `[done]` whose counts
//! equal the `[test]` lines;
//! a crash run has a `[trap]` or `[panic]` report whose kind matches and whose symbolized frames
//! name the expected function; a stage-fails run has the expected stage `FAILED` after the
//! expected `ok` stages, exit status failed and no crash; every `log_must_contain` substring
//! appears. Pure: no I/O.

use crate::console::{ConsoleLog, Line, TestOutcome};
use crate::qemu::{GuestExit, Outcome};
use crate::symbolize::{self, SymbolTable};

/// What a run must show (resolved from a scenario for one architecture).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// Stages that must report `ok`, in this order.
    pub stages: Vec<String>,
    /// Pass, crash or stage failure, with their details.
    pub expect: Expect,
    /// Substrings the log must contain.
    pub log_must_contain: Vec<String>,
}

/// The expected end of the boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// All tests pass.
    Pass {
        /// The tests that must each report exactly once (and no others), in catalog order.
        expected: Vec<ExpectedTest>,
        /// Tests that may report `skipped` instead of `ok` on this machine.
        allow_skips: Vec<String>,
    },
    /// A deliberate trap or panic.
    Crash {
        /// Substring of the `[trap]` KIND or of the `[panic]` message.
        trap: Option<String>,
        /// Substring of a function named by a symbolized frame.
        symbol: Option<String>,
    },
    /// A deliberate stage failure: `[stage] STAGE FAILED reason` after the `ok` of every stage
    /// of [`Check::stages`], exit status failed, no `[trap]` or `[panic]`.
    StageFails {
        /// The stage that must report `FAILED`.
        stage: String,
    },
}

/// A test a pass run must report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedTest {
    /// Its name.
    pub name: String,
    /// Who runs it (where to look when it is missing).
    pub runner: test_catalog::Runner,
}

impl ExpectedTest {
    /// Every test the catalog runs for `selection`.
    pub fn for_selection(selection: test_catalog::Selection<'_>) -> Vec<ExpectedTest> {
        selection
            .tests()
            .map(|t| ExpectedTest {
                name: t.name.to_owned(),
                runner: t.runner,
            })
            .collect()
    }

    /// Where a missing report of this test comes from.
    fn who(&self) -> &'static str {
        match self.runner {
            test_catalog::Runner::Kernel => "a kernel test (boot/src/selftests.rs)",
            test_catalog::Runner::Init => {
                "a user test that init runs and reports with TestReport (servers/init/src/tests)"
            }
            test_catalog::Runner::KernelAfterInit => {
                "a check the kernel makes after init ends (boot/src/main.rs)"
            }
        }
    }
}

/// The judgement on one run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Why the run failed, most telling first; empty when it passed.
    pub failures: Vec<String>,
    /// The stage to print a hint for (the first missing or failed one).
    pub hint_stage: Option<String>,
    /// The guest printed nothing at all.
    pub silent: bool,
}

impl Verdict {
    /// True when nothing failed.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }

    fn fail(&mut self, why: impl Into<String>) {
        self.failures.push(why.into());
    }
}

/// Judges `log` and `outcome` against `check`. `symbols` is the kernel's symbol table (needed
/// only for a crash check with a `symbol`).
pub fn judge(
    check: &Check,
    log: &ConsoleLog,
    outcome: &Outcome,
    symbols: Option<&SymbolTable>,
) -> Verdict {
    let mut v = Verdict::default();
    if log.is_silent() {
        v.silent = true;
        v.fail("no output on the serial console");
    }
    let failing = match &check.expect {
        Expect::StageFails { stage } => Some(stage.as_str()),
        Expect::Pass { .. } | Expect::Crash { .. } => None,
    };
    check_stages(&check.stages, failing, log, &mut v);

    match outcome {
        Outcome::TimedOut(after) => v.fail(format!("timed out after {}s", after.as_secs())),
        Outcome::Exited(exit) => {
            let wanted = match check.expect {
                Expect::Pass { .. } => GuestExit::Passed,
                Expect::Crash { .. } => GuestExit::Crashed,
                Expect::StageFails { .. } => GuestExit::Failed,
            };
            if *exit != wanted {
                v.fail(format!("exit status {exit}, expected {wanted}"));
            }
        }
    }

    if v.silent {
        // Everything below would only restate that nothing was printed.
        return v;
    }
    let timed_out = matches!(outcome, Outcome::TimedOut(_));
    match &check.expect {
        Expect::Pass {
            expected,
            allow_skips,
        } => check_pass(expected, allow_skips, log, timed_out, &mut v),
        Expect::Crash { trap, symbol } => {
            check_crash(trap.as_deref(), symbol.as_deref(), log, symbols, &mut v);
        }
        Expect::StageFails { .. } => check_no_crash_or_failed_test(log, &mut v),
    }

    for line in log.malformed() {
        v.fail(format!("malformed protocol line `{line}`"));
    }
    for needle in &check.log_must_contain {
        if !log.text.contains(needle.as_str()) {
            v.fail(format!("log lacks `{needle}`"));
        }
    }
    v
}

/// Every expected stage `ok`, in order; no stage `FAILED` except `failing`, which must report
/// `FAILED` (and not `ok`) after all of them.
fn check_stages(expected: &[String], failing: Option<&str>, log: &ConsoleLog, v: &mut Verdict) {
    let seen: Vec<(&str, &Result<(), String>)> = log.stages().collect();
    let mut failed: Vec<&str> = Vec::new();
    // Index in `seen` of the expected failure.
    let mut expected_failure = None;
    for (i, &(name, result)) in seen.iter().enumerate() {
        match result {
            Err(_) if Some(name) == failing && expected_failure.is_none() => {
                expected_failure = Some(i);
            }
            Err(reason) => {
                failed.push(name);
                v.fail(format!("stage {name} FAILED: {reason}"));
                v.hint_stage.get_or_insert_with(|| name.to_owned());
            }
            Ok(()) if Some(name) == failing => {
                // No hint: the stage's hint explains a stage that did not report ok.
                v.fail(format!("stage {name} reported ok, expected it to FAIL"));
            }
            Ok(()) => {}
        }
    }
    let ok_at = |stage: &str| {
        seen.iter()
            .position(|&(name, result)| name == stage && result.is_ok())
    };
    if let Some(missing) = expected.iter().find(|s| ok_at(s).is_none()) {
        if !v.silent && !failed.contains(&missing.as_str()) {
            v.fail(format!("missing stage {missing}"));
        }
        v.hint_stage.get_or_insert_with(|| missing.clone());
        return;
    }
    if let Some(failing) = failing
        && expected_failure.is_none()
    {
        // A stage that reported ok instead was reported above.
        let passed = seen.iter().any(|&(n, r)| n == failing && r.is_ok());
        if !passed {
            if !v.silent {
                v.fail(format!("no [stage] {failing} FAILED line"));
            }
            v.hint_stage.get_or_insert_with(|| failing.to_owned());
        }
        return;
    }
    let positions: Vec<usize> = expected
        .iter()
        .filter_map(|s| ok_at(s))
        .chain(expected_failure)
        .collect();
    if positions.windows(2).any(|w| w[0] >= w[1]) {
        let mut want: Vec<String> = expected.to_vec();
        want.extend(failing.map(|f| format!("{f} FAILED")));
        let saw: Vec<String> = seen
            .iter()
            .map(|&(name, result)| match result {
                Ok(()) => name.to_owned(),
                Err(_) => format!("{name} FAILED"),
            })
            .collect();
        v.fail(format!(
            "stages out of order: expected {}, saw {}",
            want.join(", "),
            saw.join(", ")
        ));
    }
}

/// A stage-fails run: no `[trap]` or `[panic]`, no `[test] ... FAILED`.
fn check_no_crash_or_failed_test(log: &ConsoleLog, v: &mut Verdict) {
    for (name, outcome) in log.tests() {
        if let TestOutcome::Failed(reason) = outcome {
            v.fail(format!("test {name} FAILED: {reason}"));
        }
    }
    for report in log.reports() {
        v.fail(format!("unexpected {}", describe(report)));
    }
}

/// A pass run: every expected test exactly once, `ok` or an allowed skip; nothing unexpected;
/// one `[done]` line that counts the `[test]` lines. `timed_out`: a missing `[done]` or test is
/// then no news and not reported again.
fn check_pass(
    expected: &[ExpectedTest],
    allow_skips: &[String],
    log: &ConsoleLog,
    timed_out: bool,
    v: &mut Verdict,
) {
    let (mut ok, mut failed, mut skipped) = (0u64, 0u64, 0u64);
    for (name, outcome) in log.tests() {
        if !expected.iter().any(|t| t.name == name) {
            v.fail(format!(
                "unexpected test {name}: the test catalog (tests/catalog) does not run it for \
                 this command line"
            ));
        }
        match outcome {
            TestOutcome::Passed => ok += 1,
            TestOutcome::Failed(reason) => {
                failed += 1;
                v.fail(format!("test {name} FAILED: {reason}"));
            }
            TestOutcome::Skipped(reason) => {
                skipped += 1;
                if !allow_skips.iter().any(|s| s == name) {
                    v.fail(format!(
                        "test {name} skipped ({reason}), and the scenario does not allow that \
                         skip (allow_skips)"
                    ));
                }
            }
        }
    }
    let mut crashed = false;
    for report in log.reports() {
        crashed = true;
        v.fail(format!("unexpected {}", describe(report)));
    }
    for test in expected {
        match log.tests().filter(|(name, _)| *name == test.name).count() {
            0 if timed_out || crashed => {}
            0 => v.fail(format!("test {} never reported: {}", test.name, test.who())),
            1 => {}
            n => v.fail(format!("test {} reported {n} times", test.name)),
        }
    }
    match log.done_counts()[..] {
        [] if timed_out || crashed => {}
        [] => v.fail("no [done] line"),
        [done] => {
            if done.failed != 0 {
                v.fail(format!("[done] reports {} failed", done.failed));
            }
            if (done.passed, done.failed, done.skipped) != (ok, failed, skipped) {
                v.fail(format!(
                    "[done] says {} passed, {} failed, {} skipped but the log has {ok} ok, \
                     {failed} FAILED and {skipped} skipped [test] lines",
                    done.passed, done.failed, done.skipped
                ));
            }
        }
        ref several => v.fail(format!("{} [done] lines", several.len())),
    }
}

fn check_crash(
    trap: Option<&str>,
    symbol: Option<&str>,
    log: &ConsoleLog,
    symbols: Option<&SymbolTable>,
    v: &mut Verdict,
) {
    let reports: Vec<&Line> = log.reports().collect();
    if reports.is_empty() {
        v.fail("no [trap] or [panic] report");
        return;
    }
    if let Some(trap) = trap {
        let matched = reports.iter().any(|r| match r {
            Line::Trap { kind, .. } => kind.contains(trap),
            Line::Panic { message } => message.contains(trap),
            _ => false,
        });
        if !matched {
            let seen: Vec<String> = reports.iter().map(|r| describe(r)).collect();
            v.fail(format!(
                "expected a `{trap}` report, saw {}",
                seen.join("; ")
            ));
        }
    }
    if let Some(symbol) = symbol {
        match symbols {
            None => v.fail(format!(
                "cannot look for `{symbol}` in the frames: no kernel symbol table"
            )),
            Some(table) => {
                let names = symbolize::frame_functions(&log.lines, table);
                if !names.iter().any(|n| n.contains(symbol)) {
                    let shown = if names.is_empty() {
                        "none resolved".to_owned()
                    } else {
                        names.join(", ")
                    };
                    v.fail(format!("no frame in `{symbol}` (frames: {shown})"));
                }
            }
        }
    }
}

fn describe(report: &Line) -> String {
    match report {
        Line::Trap { kind, pc, .. } => format!("trap `{kind}` at {pc:#x}"),
        Line::Panic { message } => format!("panic `{message}`"),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::symbolize::tests::table;
    use std::time::Duration;

    const STAGES: &str = "[stage] serial ok\n[stage] bootinfo ok\n[stage] frames ok\n\
                          [stage] heap ok\n[stage] traps ok\n";

    fn check(expect: Expect) -> Check {
        Check {
            stages: ["serial", "bootinfo", "frames", "heap", "traps"]
                .map(String::from)
                .to_vec(),
            expect,
            log_must_contain: Vec::new(),
        }
    }

    fn expected(names: &[&str]) -> Vec<ExpectedTest> {
        names
            .iter()
            .map(|n| ExpectedTest {
                name: (*n).to_owned(),
                runner: test_catalog::Runner::Kernel,
            })
            .collect()
    }

    fn pass() -> Check {
        check(Expect::Pass {
            expected: expected(&["a", "b"]),
            allow_skips: Vec::new(),
        })
    }

    fn crash() -> Check {
        check(Expect::Crash {
            trap: Some("page fault".into()),
            symbol: Some("deliberate_unmapped_read".into()),
        })
    }

    fn exited(e: GuestExit) -> Outcome {
        Outcome::Exited(e)
    }

    fn run(check: &Check, log: &str, outcome: Outcome) -> Verdict {
        judge(check, &ConsoleLog::parse(log), &outcome, Some(&table()))
    }

    #[test]
    fn a_clean_test_boot_passes() {
        let log = format!(
            "[bootinfo] 2 ranges\r\n{STAGES}[test] a ok\r\n[test] b ok\n[done] 2 passed, 0 failed, 0 skipped\n"
        );
        let v = run(&pass(), &log, exited(GuestExit::Passed));
        assert!(v.passed(), "{v:?}");
    }

    #[test]
    fn a_failed_test_fails_with_its_reason() {
        let log = format!(
            "{STAGES}[test] a ok\n[test] b FAILED got 3\n[test] c ok\n[done] 2 passed, 1 failed, 0 skipped\n"
        );
        let v = run(&pass(), &log, exited(GuestExit::Failed));
        assert!(!v.passed());
        assert!(v.failures.iter().any(|f| f == "test b FAILED: got 3"));
        assert!(v.failures.iter().any(|f| f.contains("exit status failed")));
        assert!(v.failures.iter().any(|f| f == "[done] reports 1 failed"));
    }

    #[test]
    fn done_counts_must_match_the_test_lines() {
        let log =
            format!("{STAGES}[test] a ok\n[test] b ok\n[done] 3 passed, 0 failed, 0 skipped\n");
        let v = run(&pass(), &log, exited(GuestExit::Passed));
        assert_eq!(v.failures.len(), 1, "{v:?}");
        assert!(v.failures[0].contains("[done] says 3 passed"));
        let none = run(
            &pass(),
            &format!("{STAGES}[test] a ok\n[test] b ok\n"),
            exited(GuestExit::Passed),
        );
        assert_eq!(none.failures, ["no [done] line"]);
    }

    #[test]
    fn a_missing_test_fails_by_name() {
        let log = format!("{STAGES}[test] a ok\n[done] 1 passed, 0 failed, 0 skipped\n");
        let v = run(&pass(), &log, exited(GuestExit::Passed));
        assert_eq!(v.failures.len(), 1, "{v:?}");
        assert!(v.failures[0].starts_with("test b never reported: a kernel test"));
    }

    #[test]
    fn duplicate_and_unexpected_tests_fail_by_name() {
        let log = format!(
            "{STAGES}[test] a ok\n[test] b ok\n[test] a ok\n[test] zz ok\n\
             [done] 4 passed, 0 failed, 0 skipped\n"
        );
        let v = run(&pass(), &log, exited(GuestExit::Passed));
        assert_eq!(v.failures.len(), 2, "{v:?}");
        assert!(v.failures[0].starts_with("unexpected test zz"));
        assert_eq!(v.failures[1], "test a reported 2 times");
    }

    #[test]
    fn a_skip_passes_only_where_the_scenario_allows_it() {
        let log = format!(
            "{STAGES}[test] a ok\n[test] b skipped no PCID\n\
             [done] 1 passed, 0 failed, 1 skipped\n"
        );
        let v = run(&pass(), &log, exited(GuestExit::Passed));
        assert_eq!(v.failures.len(), 1, "{v:?}");
        assert!(v.failures[0].starts_with("test b skipped (no PCID), and the scenario"));
        let allowing = check(Expect::Pass {
            expected: expected(&["a", "b"]),
            allow_skips: vec!["b".into()],
        });
        let v = run(&allowing, &log, exited(GuestExit::Passed));
        assert!(v.passed(), "{v:?}");
        // The skip still counts in [done].
        let miscounted = log.replace("1 skipped", "0 skipped");
        let v = run(&allowing, &miscounted, exited(GuestExit::Passed));
        assert_eq!(v.failures.len(), 1, "{v:?}");
        assert!(v.failures[0].contains("[done] says 1 passed, 0 failed, 0 skipped"));
    }

    #[test]
    fn a_missing_stage_names_the_stage_and_wants_a_hint() {
        let log = "[stage] serial ok\n[stage] bootinfo ok\n[stage] frames ok\n";
        let v = run(&pass(), log, Outcome::TimedOut(Duration::from_secs(60)));
        assert_eq!(v.failures, ["missing stage heap", "timed out after 60s"]);
        assert_eq!(v.hint_stage.as_deref(), Some("heap"));
        assert!(!v.silent);
    }

    #[test]
    fn a_failed_stage_fails_and_wants_its_hint() {
        let log = "[stage] serial ok\n[stage] bootinfo FAILED no memory map\n";
        let v = run(&pass(), log, exited(GuestExit::Crashed));
        assert_eq!(v.failures[0], "stage bootinfo FAILED: no memory map");
        assert!(!v.failures.iter().any(|f| f.starts_with("missing stage")));
        assert_eq!(v.hint_stage.as_deref(), Some("bootinfo"));
    }

    #[test]
    fn stages_out_of_order_fail() {
        let log = "[stage] bootinfo ok\n[stage] serial ok\n[stage] frames ok\n[stage] heap ok\n\
                   [stage] traps ok\n[test] a ok\n[test] b ok\n[done] 2 passed, 0 failed, 0 skipped\n";
        let v = run(&pass(), log, exited(GuestExit::Passed));
        assert_eq!(v.failures.len(), 1);
        assert!(v.failures[0].starts_with("stages out of order"));
    }

    #[test]
    fn silence_is_reported_once_with_the_first_stage_as_hint() {
        let v = run(&pass(), "", Outcome::TimedOut(Duration::from_secs(5)));
        assert!(v.silent);
        assert_eq!(
            v.failures,
            ["no output on the serial console", "timed out after 5s"]
        );
        assert_eq!(v.hint_stage.as_deref(), Some("serial"));
    }

    #[test]
    fn an_unexpected_reset_fails_a_pass_run() {
        let log =
            format!("{STAGES}[test] a ok\n[test] b ok\n[done] 2 passed, 0 failed, 0 skipped\n");
        let v = run(
            &pass(),
            &log,
            exited(GuestExit::from_code(crate::arch::Arch::X86_64, Some(0))),
        );
        assert_eq!(v.failures.len(), 1);
        assert!(v.failures[0].contains("unexpected exit"));
    }

    #[test]
    fn a_trap_in_a_pass_run_fails() {
        let log = format!("{STAGES}[test] a ok\n[trap] page fault at pc=0x1010 (x)\n");
        let v = run(&pass(), &log, exited(GuestExit::Crashed));
        assert_eq!(
            v.failures,
            [
                "exit status crashed, expected passed",
                "unexpected trap `page fault` at 0x1010"
            ]
        );
    }

    #[test]
    fn the_expected_crash_passes() {
        let log = format!(
            "{STAGES}[trap] page fault at pc=0x1010 addr=0xdead0000 (vector 14)\n\
             [backtrace] #0 0x1080\n[backtrace] end\n"
        );
        let v = run(&crash(), &log, exited(GuestExit::Crashed));
        assert!(v.passed(), "{v:?}");
    }

    #[test]
    fn the_expected_function_may_be_a_caller_frame() {
        // pc in main, return address right after deliberate_unmapped_read's last instruction.
        let log =
            format!("{STAGES}[trap] page fault at pc=0x1050 (vector 14)\n[backtrace] #0 0x1040\n");
        assert!(run(&crash(), &log, exited(GuestExit::Crashed)).passed());
    }

    #[test]
    fn a_crash_in_the_wrong_place_or_of_the_wrong_kind_fails() {
        let log = format!("{STAGES}[trap] invalid opcode at pc=0x1050 (vector 6)\n");
        let v = run(&crash(), &log, exited(GuestExit::Crashed));
        assert_eq!(v.failures.len(), 2, "{v:?}");
        assert!(v.failures[0].starts_with("expected a `page fault` report"));
        assert_eq!(
            v.failures[1],
            "no frame in `deliberate_unmapped_read` (frames: kernel::main)"
        );
    }

    #[test]
    fn a_crash_run_without_report_or_with_the_wrong_exit_fails() {
        let log =
            format!("{STAGES}[test] fault_unmapped ok\n[done] 1 passed, 0 failed, 0 skipped\n");
        let v = run(&crash(), &log, exited(GuestExit::Passed));
        assert!(
            v.failures
                .contains(&"exit status passed, expected crashed".to_owned())
        );
        assert!(
            v.failures
                .contains(&"no [trap] or [panic] report".to_owned())
        );
    }

    #[test]
    fn a_panic_matches_on_its_message() {
        let c = check(Expect::Crash {
            trap: Some("deliberate panic".into()),
            symbol: Some("kernel::main".into()),
        });
        let log = format!(
            "{STAGES}[panic] deliberate panic at kernel-core/src/selftest.rs:9:5\n\
             [backtrace] #0 0x1044\n[backtrace] end\n"
        );
        assert!(run(&c, &log, exited(GuestExit::Crashed)).passed());
        let no_symbols = judge(
            &c,
            &ConsoleLog::parse(&log),
            &exited(GuestExit::Crashed),
            None,
        );
        assert_eq!(no_symbols.failures.len(), 1);
        assert!(no_symbols.failures[0].contains("no kernel symbol table"));
    }

    fn stage_fails() -> Check {
        let mut c = check(Expect::StageFails {
            stage: "init".into(),
        });
        c.log_must_contain = vec!["bad_init_magic: ELF: bad magic".into()];
        c
    }

    const INIT_FAILED: &str =
        "[stage] init FAILED bad_init_magic: ELF: bad magic [00, 45, 4c, 46]\n";

    #[test]
    fn the_expected_stage_failure_passes() {
        let log = format!("{STAGES}[stage] paging ok\r\n{INIT_FAILED}");
        let v = run(&stage_fails(), &log, exited(GuestExit::Failed));
        assert!(v.passed(), "{v:?}");
        assert_eq!(v.hint_stage, None);
    }

    #[test]
    fn a_stage_that_should_fail_but_passes_fails() {
        let log =
            format!("{STAGES}[stage] init ok\n[test] a ok\n[done] 1 passed, 0 failed, 0 skipped\n");
        let v = run(&stage_fails(), &log, exited(GuestExit::Passed));
        assert_eq!(
            v.failures,
            [
                "stage init reported ok, expected it to FAIL",
                "exit status passed, expected failed",
                "log lacks `bad_init_magic: ELF: bad magic`",
            ]
        );
        assert_eq!(v.hint_stage, None);
    }

    #[test]
    fn a_crash_instead_of_or_after_the_stage_failure_fails() {
        let log = format!("{STAGES}[trap] page fault at pc=0x1010 (vector 14)\n");
        let v = run(&stage_fails(), &log, exited(GuestExit::Crashed));
        assert_eq!(
            v.failures,
            [
                "no [stage] init FAILED line",
                "exit status crashed, expected failed",
                "unexpected trap `page fault` at 0x1010",
                "log lacks `bad_init_magic: ELF: bad magic`",
            ]
        );
        assert_eq!(v.hint_stage.as_deref(), Some("init"));
        let log = format!("{STAGES}{INIT_FAILED}[panic] oops at boot/src/main.rs:1:1\n");
        let v = run(&stage_fails(), &log, exited(GuestExit::Crashed));
        assert_eq!(
            v.failures,
            [
                "exit status crashed, expected failed",
                "unexpected panic `oops at boot/src/main.rs:1:1`",
            ]
        );
    }

    #[test]
    fn a_stage_failure_needs_every_earlier_stage_the_failed_exit_and_no_timeout() {
        // An earlier stage failed instead.
        let log = "[stage] serial ok\n[stage] bootinfo ok\n[stage] frames ok\n\
                   [stage] heap FAILED no heap\n";
        let v = run(&stage_fails(), log, exited(GuestExit::Failed));
        assert_eq!(
            v.failures,
            [
                "stage heap FAILED: no heap",
                "log lacks `bad_init_magic: ELF: bad magic`"
            ]
        );
        assert_eq!(v.hint_stage.as_deref(), Some("heap"));
        // An earlier stage is missing.
        let log = format!("[stage] serial ok\n{INIT_FAILED}");
        let v = run(&stage_fails(), &log, exited(GuestExit::Failed));
        assert_eq!(v.failures, ["missing stage bootinfo"]);
        // The failure came before a stage that must precede it.
        let log = format!(
            "[stage] serial ok\n{INIT_FAILED}[stage] bootinfo ok\n[stage] frames ok\n\
                           [stage] heap ok\n[stage] traps ok\n"
        );
        let v = run(&stage_fails(), &log, exited(GuestExit::Failed));
        assert_eq!(v.failures.len(), 1, "{v:?}");
        assert!(v.failures[0].starts_with(
            "stages out of order: expected serial, bootinfo, frames, heap, traps, init FAILED, \
             saw serial, init FAILED, bootinfo"
        ));
        // Right log, but the guest hung or exited as passed or with a failed test.
        let log = format!("{STAGES}{INIT_FAILED}");
        let v = run(
            &stage_fails(),
            &log,
            Outcome::TimedOut(Duration::from_secs(60)),
        );
        assert_eq!(v.failures, ["timed out after 60s"]);
        let v = run(&stage_fails(), &log, exited(GuestExit::Passed));
        assert_eq!(v.failures, ["exit status passed, expected failed"]);
        let log = format!("{STAGES}[test] early FAILED no\n{INIT_FAILED}");
        let v = run(&stage_fails(), &log, exited(GuestExit::Failed));
        assert_eq!(v.failures, ["test early FAILED: no"]);
        // A silent boot.
        let v = run(&stage_fails(), "", exited(GuestExit::Failed));
        assert!(v.silent);
        assert_eq!(v.failures, ["no output on the serial console"]);
    }

    #[test]
    fn must_contain_and_malformed_lines() {
        let mut c = pass();
        c.log_must_contain = vec!["[cmdline] ignored".into()];
        let log = format!(
            "{STAGES}[test] a ok\n[test] b ok\n[test] c\n[done] 2 passed, 0 failed, 0 skipped\n"
        );
        let v = run(&c, &log, exited(GuestExit::Passed));
        assert_eq!(
            v.failures,
            [
                "malformed protocol line `[test] c`",
                "log lacks `[cmdline] ignored`"
            ]
        );
        let log = format!(
            "{STAGES}[cmdline] ignored 'foo=bar'\n[test] a ok\n[test] b ok\n[done] 2 passed, 0 failed, 0 skipped\n"
        );
        assert!(run(&c, &log, exited(GuestExit::Passed)).passed());
    }
}
