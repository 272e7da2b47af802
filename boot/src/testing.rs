//! Test boots (`test=` on a kernel built with the `testing` feature): the tally behind the
//! `[test]` and `[done]` lines, init's reports, and the checks made after init has ended.
//!
//! Owns the rule that every selected test of the catalog (`test_catalog`) reports exactly once,
//! from the runner the catalog names: the kernel's own tests through [`run_kernel_tests`],
//! init's through the `TestReport` system call ([`user_report`], accepted only from the init
//! process, only for a selected init test, only once), and the after-init checks through
//! [`finish`], which also fails every selected init test that never reported. The `[done]` line
//! counts exactly the `[test]` lines printed through here.
//!
//! It must never be built into a normal kernel (the `testing` feature keeps `TestReport` and the
//! test hooks out of it), and never print a `[test]` line for a name the catalog does not list
//! for its runner.

use crate::console::Console;
use crate::ktrace::KLock;
use crate::selftests;
use abi::Error;
use kernel_core::cap::AddressSpaceId;
use kernel_core::cmdline::TestSelection;
use kernel_core::hal::ExitStatus;
use kernel_core::selftest::{self, Outcome, ReportRefusal, Summary, UserReports};
use test_catalog::Runner;

/// What the kernel's tests are given.
#[derive(Debug, Clone, Copy)]
pub struct TestEnv {
    /// Guest time is an instruction count (`clock=icount`: the harness booted QEMU with a fixed
    /// `-icount` shift), so timing bounds are exact and repeatable. Without it a test checks
    /// correctness only, never time: a host under load can stretch anything.
    pub exact_clock: bool,
}

struct Tally {
    selection: TestSelection<'static>,
    summary: Summary,
    reports: UserReports,
    /// The one process allowed to report user tests.
    init: Option<AddressSpaceId>,
}

/// Everything a test boot has reported so far. Taken for a line's worth of printing only.
static TALLY: KLock<Tally> = KLock::new(
    "test tally",
    Tally {
        selection: TestSelection::None,
        summary: Summary {
            passed: 0,
            failed: 0,
            skipped: 0,
        },
        reports: UserReports::EMPTY,
        init: None,
    },
);

/// Starts the tally of a test boot that runs `selection`.
pub fn begin(selection: TestSelection<'static>) {
    TALLY.lock_irqsave().selection = selection;
}

/// Runs the selected kernel tests (catalog order), each printing its `[test]` line.
pub fn run_kernel_tests(env: TestEnv) {
    let selection = TALLY.lock_irqsave().selection;
    let mut env = env;
    let mut summary = Summary::default();
    // Not under the tally's lock: the tests take other locks and run for seconds.
    selftest::run_selected(
        &selftests::ALL,
        &selection,
        &mut env,
        &mut Console::new(),
        &mut summary,
    );
    let mut tally = TALLY.lock_irqsave();
    tally.summary.add(summary);
}

/// Names the init process: from now on only it may report user tests.
pub fn set_init(process: AddressSpaceId) {
    TALLY.lock_irqsave().init = Some(process);
}

/// `TestReport` from process `caller`: prints and counts the report, or refuses it with
/// `InsufficientRights` (not init), `InvalidArgument` (not an init test of the catalog, or not
/// selected in this boot) or `Busy` (already reported). A refused report prints nothing.
pub fn user_report(caller: AddressSpaceId, name: &str, outcome: &Outcome<'_>) -> Result<(), Error> {
    let mut tally = TALLY.lock_irqsave();
    if tally.init != Some(caller) {
        return Err(Error::InsufficientRights);
    }
    let selection = tally.selection;
    tally
        .reports
        .accept(&selection, name)
        .map_err(|r| match r {
            ReportRefusal::NotAUserTest | ReportRefusal::NotSelected => Error::InvalidArgument,
            ReportRefusal::Duplicate => Error::Busy,
        })?;
    tally.summary.report(&mut Console::new(), name, outcome);
    Ok(())
}

/// Ends a test boot after init: fails each selected init test that never reported, reports the
/// after-init checks (`checks` gives each one's result, by catalog name), prints `[done]` and
/// returns the exit status it stands for.
pub fn finish(checks: impl Fn(&str) -> Result<(), alloc::string::String>) -> ExitStatus {
    let (selection, reports) = {
        let tally = TALLY.lock_irqsave();
        (tally.selection, tally.reports)
    };
    let mut summary = Summary::default();
    let mut out = Console::new();
    for name in reports.missing(&selection) {
        summary.report(
            &mut out,
            name,
            &Outcome::Failed("init never reported this test"),
        );
    }
    for spec in test_catalog::of(Runner::KernelAfterInit).filter(|t| selection.runs(t)) {
        match checks(spec.name) {
            Ok(()) => summary.report(&mut out, spec.name, &Outcome::Passed),
            Err(reason) => summary.report(&mut out, spec.name, &Outcome::Failed(&reason)),
        }
    }
    let mut tally = TALLY.lock_irqsave();
    tally.summary.add(summary);
    let total = tally.summary;
    drop(tally);
    total.done(&mut out);
    if total.failed == 0 {
        ExitStatus::Passed
    } else {
        ExitStatus::Failed
    }
}
