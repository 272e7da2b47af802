//! Spawning `utest` helpers for tests and benchmarks.
//!
//! Owns the spawner side of the [`rt::roles`] protocol: load `utest` with a role, grant it its
//! capabilities, write its bootstrap page, and make sure it is gone when the test is over
//! ([`Spawned`] kills it and deletes init's handles when dropped, also on a failure path, so a
//! failed test never leaves a helper running into the next one).
//!
//! It must never start a helper before its bootstrap page is written, and never decide whether
//! a test passed (it only reports what happened).

use crate::Env;
use crate::tests::{Reason, fail};
use abi::{CapHandle, Error, Rights, Timeout};
use rt::process::{Child, spawn};
use rt::roles::{self, BOOTSTRAP_MAX_HANDLES, role_name};
use rt::syscall::{cap_delete, cap_grant, thread_join, thread_kill};

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
    let name = role_name(role);
    if grants.len() > BOOTSTRAP_MAX_HANDLES {
        fail!("spawn {name}: {} grants is too many", grants.len());
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
    let mut handles = [CapHandle::NULL; BOOTSTRAP_MAX_HANDLES];
    for (i, &(cap, rights)) in grants.iter().enumerate() {
        handles[i] = match cap_grant(cap, child.space, rights) {
            Ok(handle) => handle,
            Err(error) => fail!("cap_grant #{i} ({rights:?}) to {name}: {error}"),
        };
    }
    if let Err(error) = child.write_bootstrap(env.own_space, &handles[..grants.len()]) {
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
