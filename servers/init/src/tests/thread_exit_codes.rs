//! `thread_exit_codes`: a thread's exit code reaches its joiner exactly as `ThreadJoin` documents,
//! and a killed thread's join is `Killed`, whatever codes other threads exit with.
//!
//! Owns the check that other tests rely on when they fail through a helper's exit code: helpers
//! in other processes and threads in init's own space end with known 64-bit codes
//! ([`EXIT_CODES`]: 0, 1, both sides of bit 31, all ones, the low half of an error code, values
//! with bits above 32) and each join returns exactly the low 32 bits, zero-extended, as a value
//! (never an error, even when those bits spell one), and `ThreadState` says `Exited` with that
//! same value before the join; a thread killed while blocked (seen `Waiting` first) reads
//! `Killed` and joins as `Killed`. The helpers run several at a time and are joined out of
//! order, so that codes cannot be taken from the wrong thread. It must never derive the expected values from the codes with
//! the same arithmetic the kernel uses: they are written out in [`JOINED`].

use super::{Context, TestResult, WAIT, fail, owned};
use crate::Env;
use crate::child::{Spawned, await_state, poll_state, spawn_utest};
use abi::{CapHandle, Error, Rights, Timeout};
use core::sync::atomic::{AtomicU64, Ordering};
use rt::roles::{EXIT_CODES, EXIT_WITH, PARKED};
use rt::syscall::{ThreadState, notification_create, thread_kill, wait};
use rt::thread::spawn_local;

/// What a joiner must see for each of [`EXIT_CODES`] (by index): `ThreadJoin` returns the low 32
/// bits of the code, zero-extended.
const JOINED: [u32; EXIT_CODES.len()] = [
    0,
    1,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_fffe,
    0xffff_ffff,
    // -1: all 64 bits set.
    0xffff_ffff,
    // -10, `Killed`'s code: a value here, not the error.
    0xffff_fff6,
    // 1 << 32: nothing in the low half.
    0,
    0x9abc_def0,
    // i64::MIN: only bit 63 (a value a kernel might use to mark a killed thread: it must not
    // turn into `Killed`).
    0,
];

/// Helper processes alive at once (joined in reverse order, so slots and handles are reused
/// while others still run).
const BATCH: usize = 3;
/// The stack of the local helper threads (apart from every other test's); one lives at a time.
const STACK_VA: u64 = crate::va::EXIT_CODES_STACKS;
const STACK_PAGES: usize = 16;

/// The notification the parked local thread waits on (raw handle; same table as init).
static PARKING: AtomicU64 = AtomicU64::new(0);

/// A local thread's body: ends with `EXIT_CODES[index]`.
fn exit_with(index: u64) -> i64 {
    EXIT_CODES[index as usize % EXIT_CODES.len()]
}

/// A local thread's body: waits on a notification nobody signals; it must be killed.
fn parked(_: u64) -> i64 {
    let _ = wait(
        CapHandle::from_raw(PARKING.load(Ordering::Relaxed)),
        Timeout::FOREVER,
    );
    0x5a5a
}

/// Whether a thread has ended, by `ThreadState`.
fn ended(state: &ThreadState) -> bool {
    matches!(state, ThreadState::Exited(_) | ThreadState::Killed(_))
}

/// Checks that `thread` ended with exit code `want`, as `ThreadState` says before the join and
/// as the join (`join`, which reclaims it and runs whatever the state said) returns.
fn expect_code(
    what: impl core::fmt::Display,
    thread: CapHandle,
    join: impl FnOnce() -> Result<u32, Error>,
    want: u32,
) -> TestResult {
    let state = poll_state("a helper ending", thread, "ended", ended);
    let joined = join();
    match state? {
        ThreadState::Exited(code) if code == want => {}
        other => {
            fail!("{what}: ThreadState says {other:?} before the join, expected Exited({want:#x})")
        }
    }
    match joined {
        Ok(code) if code == want => Ok(()),
        Ok(code) => fail!("{what}: joined with {code:#x}, expected {want:#x}"),
        Err(error) => fail!("{what}: join failed with {error}, expected exit code {want:#x}"),
    }
}

/// Checks that `thread` is blocked waiting on its notification (by `ThreadState`), kills it and
/// checks that it then reads `Killed` and joins as `Killed`. `join` is the join that reclaims
/// it; it runs whatever the checks before it found, so that the thread never outlives the test.
fn kill_and_join(
    what: &str,
    thread: CapHandle,
    join: impl FnOnce() -> Result<u32, Error>,
) -> TestResult {
    let blocked = await_state(what, thread, ThreadState::Waiting);
    let kill = thread_kill(thread);
    let state = poll_state(what, thread, "ended", ended);
    let joined = join();
    blocked?;
    if let Err(error) = kill {
        fail!("kill {what}: {error}");
    }
    if state? != ThreadState::Killed(None) {
        fail!("{what}: ThreadState after the kill is not Killed(None)");
    }
    match joined {
        Err(Error::Killed) => Ok(()),
        Ok(code) => fail!("{what}: joined with exit code {code:#x} after a kill, expected Killed"),
        Err(error) => fail!("{what}: join after a kill: {error}, expected Killed"),
    }
}

/// Helper processes: started [`BATCH`] at a time, each batch joined in reverse order.
fn processes(env: &Env) -> TestResult {
    for first in (0..EXIT_CODES.len()).step_by(BATCH) {
        let mut helpers: [Option<Spawned>; BATCH] = [const { None }; BATCH];
        for (k, slot) in helpers.iter_mut().enumerate() {
            let index = first + k;
            if index < EXIT_CODES.len() {
                let mut helper = spawn_utest(env, EXIT_WITH, index as u64, &[])?;
                helper.start()?;
                *slot = Some(helper);
            }
        }
        for (k, helper) in helpers.iter().enumerate().rev() {
            if let Some(helper) = helper {
                let index = first + k;
                expect_code(
                    format_args!("process exiting with {:#x}", EXIT_CODES[index]),
                    helper.child.thread,
                    || helper.join(WAIT),
                    JOINED[index],
                )?;
            }
        }
    }
    // A killed process, next to those exit codes (`Killed`'s own code among them).
    let parking = owned("notification_create", notification_create())?;
    let mut parked = spawn_utest(env, PARKED, 0, &[(parking.get(), Rights::RECEIVE)])?;
    parked.start()?;
    kill_and_join("parked process", parked.child.thread, || parked.join(WAIT))
}

/// Threads in init's own address space, one at a time.
fn local_threads(env: &Env) -> TestResult {
    for (index, &want) in JOINED.iter().enumerate() {
        let thread = spawn_local(
            env.own_space,
            STACK_VA,
            STACK_PAGES,
            exit_with,
            index as u64,
        )
        .context(format_args!("spawn local thread #{index}"))?;
        expect_code(
            format_args!("local thread exiting with {:#x}", EXIT_CODES[index]),
            thread.thread,
            || thread.join(WAIT).map_err(|error| error.error),
            want,
        )?;
    }
    let parking = owned("notification_create", notification_create())?;
    PARKING.store(parking.get().into_raw(), Ordering::Relaxed);
    let thread = spawn_local(env.own_space, STACK_VA, STACK_PAGES, parked, 0)
        .context("spawn the parked local thread")?;
    kill_and_join("parked local thread", thread.thread, || {
        thread.join(WAIT).map_err(|error| error.error)
    })
}

/// Runs the test.
pub fn run(env: &Env) -> TestResult {
    processes(env)?;
    local_threads(env)
}
