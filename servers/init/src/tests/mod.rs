//! The user tests: the table, the runner, and the helpers every test uses to say what failed.
//!
//! Owns the list of user tests ([`TESTS`]) and the reporting rule: each selected test runs once
//! and reports exactly one result with `TestReport`: passed, or failed with a [`Reason`] that
//! names the step and the error (at most 200 bytes, the ABI's limit). A test is a plain function
//! returning [`TestResult`]; it must clean up what it created on every path (handles are deleted
//! by [`Owned`] and [`crate::child::Spawned`] guards) so that later tests start from a clean
//! table.
//!
//! It must never report for a test that was not selected, never abort the run because one test
//! failed, and never judge a result by anything but the exact values the ABI documents.

mod cap_errors;
mod exception_forwarding;
mod fp_state;
mod ipc_cap_return;
mod ipc_cap_transfer;
mod ipc_kill;
mod ipc_many_clients;
mod ipc_pingpong;
mod ipc_timeout;
mod notify;
mod space_kill_all;
mod syscall_bad_args;
mod thread_exit_codes;
mod thread_slot_dos;
mod user_fault_kill;
mod user_fault_pager;
mod usercopy_demand_fault;

use crate::Env;
use crate::cmdline::Cmdline;
use abi::syscall::TestStatus;
use abi::{CapHandle, Error};
use core::fmt::{Debug, Display};
use rt::println;
use rt::text::Text;

/// Most bytes of a failure reason (the ABI's `TestReport` limit).
pub const REASON_BYTES: usize = 200;

/// Why a test failed: one line naming the step and the error.
pub type Reason = Text<REASON_BYTES>;

/// What a test returns.
pub type TestResult = Result<(), Reason>;

/// Generous bound for anything that should happen promptly (a child's progress, a reply): long
/// enough for a slow emulator, short enough that a hang is reported as a failure rather than
/// stalling the run.
pub const WAIT: abi::Timeout = abi::Timeout::from_nanos(20_000_000_000);

/// One user test.
pub struct Test {
    /// The name used in `test=` and in the `[test]` line (an init test of the test catalog).
    pub name: &'static str,
    /// The test.
    pub run: fn(&Env) -> TestResult,
    /// Why this machine cannot run the test (`None`: it can); asked before it runs, a reason
    /// is reported as `skipped`.
    pub skip: fn(&Env) -> Option<&'static str>,
}

fn runs_everywhere(_: &Env) -> Option<&'static str> {
    None
}

impl Test {
    /// A test that runs on every machine.
    pub const fn new(name: &'static str, run: fn(&Env) -> TestResult) -> Self {
        Self {
            name,
            run,
            skip: runs_everywhere,
        }
    }

    /// The same test, skipped where `skip` gives a reason.
    #[allow(dead_code)] // No user test needs a skip yet; SMP-only tests will.
    pub const fn skip_when(self, skip: fn(&Env) -> Option<&'static str>) -> Self {
        Self { skip, ..self }
    }
}

/// Every user test, in the test catalog's order (checked when this is compiled: a test added
/// here and not to `tests/catalog`, or the other way round, does not build).
pub const TESTS: [Test; 17] = [
    Test::new("ipc_pingpong", ipc_pingpong::run),
    Test::new("ipc_cap_transfer", ipc_cap_transfer::run),
    Test::new("cap_errors", cap_errors::run),
    Test::new("notify", notify::run),
    Test::new("ipc_timeout", ipc_timeout::run),
    Test::new("user_fault_pager", user_fault_pager::run),
    Test::new("user_fault_kill", user_fault_kill::run),
    Test::new("syscall_bad_args", syscall_bad_args::run),
    Test::new("fp_state", fp_state::run),
    Test::new("ipc_kill", ipc_kill::run),
    Test::new("thread_exit_codes", thread_exit_codes::run),
    Test::new("ipc_many_clients", ipc_many_clients::run),
    Test::new("ipc_cap_return", ipc_cap_return::run),
    Test::new("thread_slot_dos", thread_slot_dos::run),
    Test::new("usercopy_demand_fault", usercopy_demand_fault::run),
    Test::new("exception_forwarding", exception_forwarding::run),
    Test::new("space_kill_all", space_kill_all::run),
];

const _: () = {
    let mut names = [""; TESTS.len()];
    let mut i = 0;
    while i < TESTS.len() {
        names[i] = TESTS[i].name;
        i += 1;
    }
    assert!(
        test_catalog::matches(test_catalog::Runner::Init, &names),
        "servers/init/src/tests/mod.rs TESTS and the init tests of tests/catalog differ"
    );
};

/// Runs every test the command line selects, reporting each exactly once; then checks that the
/// kernel refuses a second report. Returns false when that check failed (init then exits with
/// a non-zero code, which fails the boot's `init_exit`).
pub fn run_selected(env: &Env, cmdline: &Cmdline<'_>) -> bool {
    let mut reported = None;
    for test in TESTS.iter().filter(|test| cmdline.selects(test.name)) {
        println!("init: running user test {}", test.name);
        let (status, reason) = match (test.skip)(env) {
            Some(why) => (TestStatus::Skipped, Reason::format(format_args!("{why}"))),
            None => match (test.run)(env) {
                Ok(()) => (TestStatus::Passed, Reason::default()),
                Err(reason) => (TestStatus::Failed, reason),
            },
        };
        match rt::syscall::test_report(test.name, status, reason.as_str()) {
            Ok(()) => {
                reported.get_or_insert(test.name);
            }
            // The kernel refused the report, so this test has no `[test]` line: the kernel
            // fails it as never reported, and the harness names it. Say why here.
            Err(error) => println!(
                "init: TestReport for {} refused: {error} ({status:?} {reason})",
                test.name
            ),
        }
    }
    // Each test reports once: a second report of one that already reported must be refused
    // with `Busy`. It says FAILED, so a kernel that printed it would fail the boot twice over
    // (a FAILED line, and a test reported twice).
    let Some(name) = reported else { return true };
    match rt::syscall::test_report(name, TestStatus::Failed, "second report, must be refused") {
        Err(Error::Busy) => true,
        other => {
            println!("init: a second TestReport for {name} gave {other:?}, expected Busy");
            false
        }
    }
}

/// Returns from the test with a failure reason formatted like `format!`.
macro_rules! fail {
    ($($arg:tt)*) => {
        return Err($crate::tests::Reason::format(format_args!($($arg)*)))
    };
}
pub(crate) use fail;

/// Attaches the step to an error: `endpoint_create().context("endpoint_create")?` fails the test
/// with `"endpoint_create: <error>"`.
pub trait Context<T> {
    /// The value, or a [`Reason`] `"{step}: {error}"`.
    fn context(self, step: impl Display) -> Result<T, Reason>;
}

impl<T, E: Display> Context<T> for Result<T, E> {
    fn context(self, step: impl Display) -> Result<T, Reason> {
        self.map_err(|error| Reason::format(format_args!("{step}: {error}")))
    }
}

/// Checks that `result` is exactly `Err(want)`; the reason names `what`, the expected and the
/// actual outcome.
pub fn expect_err<T: Debug>(what: impl Display, result: abi::Result<T>, want: Error) -> TestResult {
    match result {
        Err(got) if got == want => Ok(()),
        Err(got) => fail!("{what}: expected {want}, got {got}"),
        Ok(value) => fail!("{what}: expected {want}, got Ok({value:?})"),
    }
}

/// Checks that `got == want`; the reason names `what` and both values.
pub fn expect_eq<T: PartialEq + Debug>(what: impl Display, got: T, want: T) -> TestResult {
    if got == want {
        Ok(())
    } else {
        fail!("{what}: expected {want:?}, got {got:?}")
    }
}

/// A capability this test created: deleted when the guard goes out of scope (also on failure).
#[derive(Debug)]
pub struct Owned(pub CapHandle);

impl Owned {
    /// The handle.
    pub fn get(&self) -> CapHandle {
        self.0
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        // Best effort: the capability may have been moved away on purpose (then it is stale).
        let _ = rt::syscall::cap_delete(self.0);
    }
}

/// `create()` with the step named, wrapped in an [`Owned`] guard.
pub fn owned(step: &str, create: abi::Result<CapHandle>) -> Result<Owned, Reason> {
    create.map(Owned).context(step)
}
