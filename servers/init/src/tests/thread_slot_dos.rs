//! `thread_slot_dos`: creating threads and deleting their only capability before starting them,
//! in a loop, exhausts nothing.
//!
//! Owns the check of the kernel's rule for a thread nobody can start any more (its last
//! capability went before `ThreadStart`): the kernel ends it at once instead of keeping its
//! slot, kernel stack and process forever. Before that rule, 253 rounds of this loop filled the
//! thread table for everyone. The loop runs several times the table's size without yielding;
//! the threads it leaves behind only need the CPU once to end, so a `ThreadCreate` may be
//! refused within one time slice, but never again after a yield. The end-of-boot census
//! (`user_resources`) checks that every slot, stack and frame came back. It must never start a
//! thread it creates (that is the point), and never leave a capability behind.

use super::{Context, TestResult, fail, owned};
use crate::Env;
use crate::child::spawn_utest;
use abi::{CapHandle, Error, Rights};
use rt::roles::PARKED;
use rt::syscall::{cap_delete, notification_create, thread_create, yield_now};

/// Rounds: several times the kernel's thread table (256 slots).
const ROUNDS: usize = 1000;
/// An entry point and stack inside user space (the threads never run user code: they are
/// ended before they would enter user mode, in a parked helper's address space).
const ENTRY: u64 = 0x40_0000;
const STACK: u64 = 0x10_0000;

/// A thread of `space` that would start at [`ENTRY`], not started.
fn create(space: CapHandle) -> abi::Result<CapHandle> {
    // SAFETY: `space` is a helper's address space, not init's: whatever the thread would run,
    // it cannot touch init's memory (and it is never started).
    unsafe { thread_create(space, ENTRY, STACK, 0) }
}

/// Runs the test.
pub fn run(env: &Env) -> TestResult {
    // The threads live in a parked helper's process: a process ends with its last thread, and
    // the parked one keeps it (and the handle to it) alive through the loop.
    let parking = owned("notification_create", notification_create())?;
    let mut parked = spawn_utest(env, PARKED, 0, &[(parking.get(), Rights::RECEIVE)])?;
    parked.start()?;
    let space = parked.child.space;
    let mut refused_once = 0usize;
    for round in 0..ROUNDS {
        let thread = match create(space) {
            Ok(thread) => thread,
            Err(Error::OutOfMemory) => {
                // The threads deleted so far in this slice have not run to their end yet: a
                // yield lets them. After it the table must have room again.
                refused_once += 1;
                yield_now().context("yield")?;
                match create(space) {
                    Ok(thread) => thread,
                    Err(error) => fail!(
                        "round {round}: thread_create still fails after a yield ({error}): \
                         deleted unstarted threads are not reclaimed"
                    ),
                }
            }
            Err(error) => fail!("round {round}: thread_create: {error}"),
        };
        cap_delete(thread).context(format_args!("round {round}: cap_delete"))?;
    }
    // Let the last ones end before the next test counts on free slots.
    yield_now().context("yield")?;
    rt::println!("init: thread_slot_dos: {ROUNDS} rounds, {refused_once} refusals within a slice");
    Ok(())
}
