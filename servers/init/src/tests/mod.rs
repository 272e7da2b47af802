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
mod fp_state;
mod ipc_cap_transfer;
mod ipc_kill;
mod ipc_pingpong;
mod ipc_timeout;
mod notify;
mod syscall_bad_args;
mod user_fault_kill;
mod user_fault_pager;

use crate::Env;
use crate::cmdline::Cmdline;
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
    /// The name used in `test=` and in the `[test]` line.
    pub name: &'static str,
    /// The test.
    pub run: fn(&Env) -> TestResult,
}

/// Every user test, in the order they run.
pub const TESTS: &[Test] = &[
    Test {
        name: "ipc_pingpong",
        run: ipc_pingpong::run,
    },
    Test {
        name: "ipc_cap_transfer",
        run: ipc_cap_transfer::run,
    },
    Test {
        name: "cap_errors",
        run: cap_errors::run,
    },
    Test {
        name: "notify",
        run: notify::run,
    },
    Test {
        name: "ipc_timeout",
        run: ipc_timeout::run,
    },
    Test {
        name: "user_fault_pager",
        run: user_fault_pager::run,
    },
    Test {
        name: "user_fault_kill",
        run: user_fault_kill::run,
    },
    Test {
        name: "syscall_bad_args",
        run: syscall_bad_args::run,
    },
    Test {
        name: "fp_state",
        run: fp_state::run,
    },
    Test {
        name: "ipc_kill",
        run: ipc_kill::run,
    },
];

/// Runs every test the command line selects, reporting each.
pub fn run_selected(env: &Env, cmdline: &Cmdline<'_>) {
    for test in TESTS.iter().filter(|test| cmdline.selects(test.name)) {
        println!("init: running user test {}", test.name);
        let result = (test.run)(env);
        let reported = match &result {
            Ok(()) => rt::syscall::test_report(test.name, true, ""),
            Err(reason) => rt::syscall::test_report(test.name, false, reason.as_str()),
        };
        if let Err(error) = reported {
            // The kernel refused the report: say so on the console, where the harness will
            // notice the missing `[test]` line.
            println!("init: test_report for {} failed: {error}", test.name);
            if let Err(reason) = result {
                println!("init: {} failed: {reason}", test.name);
            }
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
