//! Spawning `utest` helpers for tests and benchmarks.
//!
//! Owns the spawner side of the [`rt::roles`] protocol: load `utest` with a role, grant it its
//! capabilities, write its bootstrap page, and make sure it is gone when the test is over
//! ([`Spawned`] kills it and deletes init's handles when dropped, also on a failure path, so a
//! failed test never leaves a helper running into the next one). Also [`await_state`]: waiting
//! until the kernel says a thread (a helper's, or one of init's) is blocked where a test needs
//! it, or has ended, so that tests act on the kernel's word rather than on elapsed time.
//!
//! It must never start a helper before its bootstrap page is written, and never decide whether
//! a test passed (it only reports what happened).

use crate::Env;
use crate::tests::{Context, Reason, TestResult, WAIT, fail};
use abi::{CapHandle, Error, Rights, Timeout};
use core::fmt::Display;
use rt::process::{Child, spawn};
use rt::roles::{self, BOOTSTRAP_MAX_HANDLES, role_name};
use rt::syscall::{
    ThreadState, cap_delete, cap_grant, clock_nanos, thread_join, thread_kill, thread_state,
    yield_now,
};

/// A running (or ready) helper process. Dropping it kills its thread (if still running) and
/// deletes init's handles to it.
#[derive(Debug)]
pub struct Spawned {
    /// The address space and thread.
    pub child: Child,
    /// Its role, for messages.
    pub role: u16,
    started: bool,
}

/// Loads `utest` as `role` with `param`, grants it `grants` (each capability with the rights
/// given, in bootstrap order) and writes its bootstrap page. Not started: call
/// [`Spawned::start`] (after setting a pager, if the role needs one).
pub fn spawn_utest(
    env: &Env,
    role: u16,
    param: u64,
    grants: &[(CapHandle, Rights)],
) -> Result<Spawned, Reason> {
    spawn_with(env, role, param, None, grants)
}

/// [`spawn_utest`] for a role whose first handle is its own address space: a capability to it
/// with `own_rights` comes first in the bootstrap page, then `grants`.
pub fn spawn_utest_owning(
    env: &Env,
    role: u16,
    param: u64,
    own_rights: Rights,
    grants: &[(CapHandle, Rights)],
) -> Result<Spawned, Reason> {
    spawn_with(env, role, param, Some(own_rights), grants)
}

fn spawn_with(
    env: &Env,
    role: u16,
    param: u64,
    own_rights: Option<Rights>,
    grants: &[(CapHandle, Rights)],
) -> Result<Spawned, Reason> {
    let name = role_name(role);
    let count = grants.len() + usize::from(own_rights.is_some());
    if count > BOOTSTRAP_MAX_HANDLES {
        fail!("spawn {name}: {count} grants is too many");
    }
    let child = match spawn(env.initrd, "utest", env.own_space, roles::arg(role, param)) {
        Ok(child) => child,
        Err(error) => fail!("spawn utest as {name}: {error}"),
    };
    let spawned = Spawned {
        child,
        role,
        started: false,
    };
    let own = own_rights.map(|rights| (child.space, rights));
    let mut handles = [CapHandle::NULL; BOOTSTRAP_MAX_HANDLES];
    for (i, &(cap, rights)) in own.iter().chain(grants).enumerate() {
        handles[i] = match cap_grant(cap, child.space, rights) {
            Ok(handle) => handle,
            Err(error) => fail!("cap_grant #{i} ({rights:?}) to {name}: {error}"),
        };
    }
    if let Err(error) = child.write_bootstrap(env.own_space, &handles[..count]) {
        fail!("bootstrap page of {name}: {error}");
    }
    Ok(spawned)
}

impl Spawned {
    /// Starts the helper's thread.
    pub fn start(&mut self) -> Result<(), Reason> {
        if let Err(error) = self.child.start() {
            fail!("start {}: {error}", role_name(self.role));
        }
        self.started = true;
        Ok(())
    }

    /// Waits (at most `timeout`) for the helper to end: its exit code, or the join error
    /// (`Killed` if it was killed).
    pub fn join(&self, timeout: Timeout) -> Result<u32, Error> {
        thread_join(self.child.thread, timeout)
    }

    /// Waits (at most `timeout`) for the helper's thread to end and checks it was killed;
    /// `what` names it in the reason.
    pub fn expect_killed(&self, what: impl Display, timeout: Timeout) -> TestResult {
        crate::tests::expect_err(
            format_args!("thread_join {what}"),
            self.join(timeout),
            Error::Killed,
        )
    }

    /// Waits for the helper to end and checks that it exited with 0.
    pub fn expect_clean_exit(&self, timeout: Timeout) -> Result<(), Reason> {
        let name = role_name(self.role);
        match self.join(timeout) {
            Ok(0) => Ok(()),
            Ok(code) => fail!("{name} exited with code {code}, expected 0"),
            Err(error) => fail!("thread_join {name}: {error}, expected exit code 0"),
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        // Harmless if it already ended (the kernel refuses or ignores it). A started thread is
        // then reaped, so that its address space is gone before the next test.
        let _ = thread_kill(self.child.thread);
        if self.started {
            let _ = thread_join(self.child.thread, Timeout::from_nanos(1_000_000_000));
        }
        let _ = cap_delete(self.child.thread);
        let _ = cap_delete(self.child.space);
    }
}

/// For a test that must know, not guess, that a thread has reached a blocking call (or has
/// ended) before it acts: a blocked thread stays blocked until someone moves it, so the answer
/// still holds when the caller acts on it.
///
/// Polls the kernel's report of `thread` (yielding between looks, so that the thread can get
/// there) until `done` accepts it, for at most [`WAIT`], and returns it. Fails with the last
/// report (and `expected`, what `done` accepts) otherwise, and at once if the thread ended in a
/// way `done` refuses.
pub fn poll_state(
    what: impl Display,
    thread: CapHandle,
    expected: impl Display,
    done: impl Fn(&ThreadState) -> bool,
) -> Result<ThreadState, Reason> {
    let deadline = clock_nanos()
        .context("clock_nanos")?
        .saturating_add(WAIT.nanos().unwrap_or(0));
    loop {
        let state = thread_state(thread).context(format_args!("thread_state ({what})"))?;
        if done(&state) {
            return Ok(state);
        }
        let ended = matches!(state, ThreadState::Exited(_) | ThreadState::Killed(_));
        if ended || clock_nanos().context("clock_nanos")? >= deadline {
            fail!("{what}: the kernel reports {state:?}, expected {expected}");
        }
        yield_now().context("yield")?;
    }
}

/// Checks that `thread` is in `want`, by one `ThreadState` (for a thread that is known to be
/// blocked there: it cannot move on by itself).
pub fn expect_state(what: impl Display, thread: CapHandle, want: ThreadState) -> TestResult {
    let state = thread_state(thread).context(format_args!("{what}: thread_state"))?;
    crate::tests::expect_eq(format_args!("{what}: ThreadState"), state, want)
}

/// [`poll_state`] until the kernel reports exactly `want`.
pub fn await_state(what: impl Display, thread: CapHandle, want: ThreadState) -> TestResult {
    poll_state(what, thread, format_args!("{want:?}"), |state| {
        *state == want
    })
    .map(|_| ())
}
