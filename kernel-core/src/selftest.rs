//! The in-kernel test runner selected by `test=` on the command line.
//!
//! Owns the order of a test boot's kernel part: run each selected kernel test of the test
//! catalog (`test_catalog`), print its `[test]` line, count, and report names that match no test
//! as failures (a typo must never look like a pass). It also owns the tally every `[test]` line
//! of the boot goes through ([`Summary::report`]), so the closing `[done]` line counts exactly
//! what was printed. The tests themselves live where the code they exercise lives; this module
//! must never know what they do.

use crate::cmdline::TestSelection;
use crate::console;
use alloc::string::String;
use core::fmt::Write;
use test_catalog::Runner;

/// One in-kernel test. `C` is whatever context the tests need (allocators, platform handles,
/// the kind of clock). Whether it ends the boot comes from the test catalog.
pub struct KernelTest<C> {
    /// Name used on the command line and in the `[test]` line (a kernel test of the catalog).
    pub name: &'static str,
    /// The test body: `Err` carries the failure reason.
    pub run: fn(&mut C) -> Result<(), String>,
    /// Why this machine cannot run the test (`None`: it can). Asked before the test runs; a
    /// reason makes the test report `skipped` instead of running.
    pub skip: fn(&C) -> Option<&'static str>,
}

fn runs_everywhere<C>(_: &C) -> Option<&'static str> {
    None
}

impl<C> KernelTest<C> {
    /// A test that runs on every machine.
    pub const fn new(name: &'static str, run: fn(&mut C) -> Result<(), String>) -> Self {
        Self {
            name,
            run,
            skip: runs_everywhere::<C>,
        }
    }

    /// The same test, skipped where `skip` gives a reason.
    pub const fn skip_when(self, skip: fn(&C) -> Option<&'static str>) -> Self {
        Self { skip, ..self }
    }
}

impl<C> core::fmt::Debug for KernelTest<C> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("KernelTest")
            .field("name", &self.name)
            .finish()
    }
}

/// How one test ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<'a> {
    /// It passed.
    Passed,
    /// It failed, for this reason.
    Failed(&'a str),
    /// This machine cannot run it, for this reason.
    Skipped(&'a str),
}

/// Passed, failed and skipped counts of a test boot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Tests that passed.
    pub passed: usize,
    /// Tests that failed, plus selected names that match no test.
    pub failed: usize,
    /// Tests that reported `skipped`.
    pub skipped: usize,
}

impl Summary {
    /// Prints the `[test]` line of `outcome` for test `name` and counts it. Console write
    /// errors are ignored: there is nowhere else to report them.
    pub fn report(&mut self, out: &mut dyn Write, name: &str, outcome: &Outcome<'_>) {
        match outcome {
            Outcome::Passed => {
                let _ = console::test(out, name, Ok(()));
                self.passed += 1;
            }
            Outcome::Failed(reason) => {
                let _ = console::test(out, name, Err(reason));
                self.failed += 1;
            }
            Outcome::Skipped(reason) => {
                let _ = console::skipped(out, name, reason);
                self.skipped += 1;
            }
        }
    }

    /// Adds the counts of `other` (a part of the boot tallied on its own).
    pub fn add(&mut self, other: Summary) {
        self.passed += other.passed;
        self.failed += other.failed;
        self.skipped += other.skipped;
    }

    /// Prints the closing `[done]` line with these counts.
    pub fn done(&self, out: &mut dyn Write) {
        let _ = console::done(out, self.passed, self.failed, self.skipped);
    }
}

/// True when `tests` are exactly the catalog's kernel tests, in catalog order (for a `const`
/// check where the table is defined).
pub const fn matches_catalog<C, const N: usize>(tests: &[KernelTest<C>; N]) -> bool {
    let mut names = [""; N];
    let mut i = 0;
    while i < N {
        names[i] = tests[i].name;
        i += 1;
    }
    test_catalog::matches(Runner::Kernel, &names)
}

/// Runs every kernel test of the catalog that `selection` runs, in catalog order, printing one
/// `[test]` line each into `out` and counting it in `summary`. A selected name that is no test
/// of the catalog fails as "no such test"; a catalog test missing from `tests` fails as well
/// (the `const` check of [`matches_catalog`] keeps that from being built).
pub fn run_selected<C>(
    tests: &[KernelTest<C>],
    selection: &TestSelection<'_>,
    context: &mut C,
    out: &mut dyn Write,
    summary: &mut Summary,
) {
    for name in selection.unknown() {
        summary.report(out, name, &Outcome::Failed("no such test"));
    }
    for spec in test_catalog::of(Runner::Kernel).filter(|t| selection.runs(t)) {
        let Some(test) = tests.iter().find(|t| t.name == spec.name) else {
            summary.report(
                out,
                spec.name,
                &Outcome::Failed("in the test catalog but not in the kernel's table"),
            );
            continue;
        };
        if let Some(reason) = (test.skip)(context) {
            summary.report(out, test.name, &Outcome::Skipped(reason));
            continue;
        }
        match (test.run)(context) {
            Ok(()) => summary.report(out, test.name, &Outcome::Passed),
            Err(reason) => summary.report(out, test.name, &Outcome::Failed(&reason)),
        }
    }
}

/// Why a user test report was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportRefusal {
    /// The name is no init test of the catalog.
    NotAUserTest,
    /// The boot's selection does not run that test.
    NotSelected,
    /// The test has already reported.
    Duplicate,
}

/// Which of init's tests have reported in this boot: each selected one exactly once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UserReports {
    /// Bit i: the i-th init test of the catalog has reported.
    reported: u64,
}

const _: () = {
    let mut count = 0;
    let mut i = 0;
    while i < test_catalog::TESTS.len() {
        if matches!(test_catalog::TESTS[i].runner, Runner::Init) {
            count += 1;
        }
        i += 1;
    }
    assert!(count <= 64, "UserReports keeps one bit per init test");
};

impl UserReports {
    /// Nothing reported yet.
    pub const EMPTY: UserReports = UserReports { reported: 0 };

    /// Records a report for `name`, or says why it must be refused (then nothing is recorded).
    pub fn accept(
        &mut self,
        selection: &TestSelection<'_>,
        name: &str,
    ) -> Result<(), ReportRefusal> {
        let (index, spec) = test_catalog::of(Runner::Init)
            .enumerate()
            .find(|(_, t)| t.name == name)
            .ok_or(ReportRefusal::NotAUserTest)?;
        if !selection.runs(spec) {
            return Err(ReportRefusal::NotSelected);
        }
        let bit = 1u64 << index;
        if self.reported & bit != 0 {
            return Err(ReportRefusal::Duplicate);
        }
        self.reported |= bit;
        Ok(())
    }

    /// The init tests `selection` runs that have not reported, in catalog order.
    pub fn missing<'s>(
        &'s self,
        selection: &'s TestSelection<'_>,
    ) -> impl Iterator<Item = &'static str> + 's {
        test_catalog::of(Runner::Init)
            .enumerate()
            .filter(move |(i, t)| selection.runs(t) && self.reported & (1u64 << i) == 0)
            .map(|(_, t)| t.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use std::string::String;
    use std::vec::Vec;

    /// A table standing in for the kernel's: three catalog names, one that fails, one skipped.
    fn tests() -> [KernelTest<u32>; 4] {
        [
            KernelTest::new("frames_alloc_free", |c| {
                *c += 1;
                Ok(())
            }),
            KernelTest::new("heap_alloc", |_| Err("broken".to_string())),
            KernelTest::new("mm_asid_rollover", |_| Err("must not run".to_string()))
                .skip_when(|_| Some("no tags")),
            KernelTest::new("panic", |_| Err("deliberate".to_string())),
        ]
    }

    fn run(selection: TestSelection<'_>) -> (Summary, String, u32) {
        let (mut out, mut ran, mut summary) = (String::new(), 0, Summary::default());
        run_selected(&tests(), &selection, &mut ran, &mut out, &mut summary);
        (summary, out, ran)
    }

    #[test]
    fn all_runs_every_kernel_test_of_the_catalog_except_boot_ending_ones() {
        let (s, out, ran) = run(TestSelection::All);
        assert_eq!(ran, 1);
        assert!(out.starts_with(
            "[test] frames_alloc_free ok\n\
             [test] frames_exhaust FAILED in the test catalog but not in the kernel's table\n\
             [test] heap_alloc FAILED broken\n"
        ));
        assert!(out.contains("[test] mm_asid_rollover skipped no tags\n"));
        assert!(!out.contains("panic"));
        let kernel_tests = test_catalog::of(Runner::Kernel)
            .filter(|t| !t.ends_boot)
            .count();
        assert_eq!(
            s,
            Summary {
                passed: 1,
                failed: kernel_tests - 2,
                skipped: 1
            }
        );
    }

    #[test]
    fn unknown_names_fail_and_named_boot_ending_tests_run() {
        let (s, out, _) = run(TestSelection::Named("nope,frames_alloc_free,panic,notify"));
        assert_eq!(
            s,
            Summary {
                passed: 1,
                failed: 2,
                skipped: 0
            }
        );
        // `notify` is init's: the kernel neither runs it nor calls it unknown.
        assert_eq!(
            out,
            "[test] nope FAILED no such test\n[test] frames_alloc_free ok\n\
             [test] panic FAILED deliberate\n"
        );
    }

    #[test]
    fn no_selection_runs_nothing() {
        let (s, out, _) = run(TestSelection::None);
        assert_eq!(s, Summary::default());
        assert!(out.is_empty());
    }

    #[test]
    fn each_selected_user_test_reports_exactly_once() {
        let selection = TestSelection::Named("notify,ipc_kill,heap_alloc");
        let mut book = UserReports::default();
        assert_eq!(
            book.missing(&selection).collect::<Vec<_>>(),
            ["notify", "ipc_kill"]
        );
        assert_eq!(book.accept(&selection, "notify"), Ok(()));
        assert_eq!(
            book.accept(&selection, "notify"),
            Err(ReportRefusal::Duplicate)
        );
        assert_eq!(
            book.accept(&selection, "fp_state"),
            Err(ReportRefusal::NotSelected)
        );
        assert_eq!(
            book.accept(&selection, "heap_alloc"),
            Err(ReportRefusal::NotAUserTest)
        );
        assert_eq!(
            book.accept(&selection, "user_resources"),
            Err(ReportRefusal::NotAUserTest)
        );
        assert_eq!(book.missing(&selection).collect::<Vec<_>>(), ["ipc_kill"]);
        let all = TestSelection::All;
        let mut book = UserReports::default();
        for t in test_catalog::of(Runner::Init) {
            assert_eq!(book.accept(&all, t.name), Ok(()));
        }
        assert_eq!(book.missing(&all).count(), 0);
    }

    #[test]
    fn the_catalog_check_needs_every_kernel_test_in_order() {
        assert!(!matches_catalog(&tests()));
        let mut done = String::new();
        let mut total = Summary {
            passed: 2,
            failed: 1,
            skipped: 0,
        };
        total.add(Summary {
            passed: 1,
            failed: 0,
            skipped: 2,
        });
        total.done(&mut done);
        assert_eq!(done, "[done] 3 passed, 1 failed, 2 skipped\n");
    }
}
