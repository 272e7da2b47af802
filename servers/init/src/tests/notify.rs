//! `notify`: the semantics of notifications.
//!
//! Owns the checks of `Signal`, `Wait` and `Poll`: an empty word polls as 0; signals merge; a
//! badge is OR-ed in; `Wait` returns the bits and clears them; a `POLL` wait on an empty word is
//! `WouldBlock` at once, a short one `Timeout` no earlier than asked (and, under the exact
//! clock, within a tick of it); signalling no bits or the reserved bit 63 is
//! `InvalidArgument`; and a signaller in another process wakes a waiting init without losing a
//! bit. It must never assume more ordering than the ABI gives (signals may merge).

use super::{Context, TestResult, WAIT, expect_eq, expect_err, fail, owned};
use crate::Env;
use crate::child::spawn_utest;
use abi::{Error, Rights, Timeout};
use rt::roles::NOTIFY_SIGNALER;
use rt::syscall::{cap_copy, clock_nanos, notification_create, poll, signal, wait};

/// Bits the child signals: `1 << 1 ..= 1 << SIGNALS`.
const SIGNALS: u64 = 20;

/// The kernel's timer tick (`boot/src/sched.rs`, `TICK_HZ` = 1000). Timed waits are only looked
/// at by the tick, so a wait ends at the first tick at or past its deadline: up to one tick late.
const KERNEL_TICK_NANOS: u64 = 1_000_000;

/// Guest nanoseconds per executed instruction under the exact clock (`-icount shift=3`).
const NANOS_PER_INSTRUCTION: u64 = 8;

/// What a timed operation costs besides the wait itself: the two `ClockNanos` calls around it,
/// the system call's entry and exit, the tick handler that wakes the waiter and the switch back
/// to it. A few thousand instructions (a `POLL` wait, all of it but the wake, measures 4 us);
/// bounded by 6,250 instructions, 50 us.
const SYSCALL_PATH_NANOS: u64 = 6_250 * NANOS_PER_INSTRUCTION;

/// How much later than its timeout a timed operation may end under the exact clock: the
/// deadline is seen at the first tick at or past it, then the caller runs again after the
/// system call's path. A wait that ends a tick later than the kernel should fails it.
pub(super) const LATE_BOUND_NANOS: u64 = KERNEL_TICK_NANOS + SYSCALL_PATH_NANOS;

/// The timed wait tried on an empty notification.
const SHORT_WAIT_NANOS: u64 = 1_000_000;

/// Runs `op` between two reads of the kernel's clock; returns its result and the nanoseconds
/// it took.
pub(super) fn clocked<T>(op: impl FnOnce() -> T) -> Result<(T, u64), super::Reason> {
    let before = clock_nanos().context("clock_nanos")?;
    let result = op();
    let after = clock_nanos().context("clock_nanos")?;
    Ok((result, after.wrapping_sub(before)))
}

/// Runs the test.
pub fn run(env: &Env) -> TestResult {
    let n = owned("notification_create", notification_create())?;
    expect_eq(
        "poll on a new notification",
        poll(n.get()).context("poll")?,
        0,
    )?;

    signal(n.get(), 0b01).context("signal 0b01")?;
    signal(n.get(), 0b10).context("signal 0b10")?;
    signal(n.get(), 0b01).context("signal 0b01 again")?;
    expect_eq(
        "poll after three signals",
        poll(n.get()).context("poll")?,
        0b11,
    )?;
    expect_eq("poll after poll", poll(n.get()).context("poll")?, 0)?;

    signal(n.get(), 1 << 40).context("signal bit 40")?;
    expect_eq("wait", wait(n.get(), WAIT).context("wait")?, 1 << 40)?;
    expect_eq("poll after wait", poll(n.get()).context("poll")?, 0)?;

    let (polled, poll_took) = clocked(|| wait(n.get(), Timeout::POLL))?;
    expect_err("wait POLL on empty", polled, Error::WouldBlock)?;
    // A poll never blocks: under the exact clock it cannot have waited for a tick.
    if env.exact_clock && poll_took > SYSCALL_PATH_NANOS {
        fail!("wait POLL on empty took {poll_took} ns, bound {SYSCALL_PATH_NANOS} ns");
    }
    let (waited, took) = clocked(|| wait(n.get(), Timeout::from_nanos(SHORT_WAIT_NANOS)))?;
    expect_err("wait 1 ms on empty", waited, Error::Timeout)?;
    if took < SHORT_WAIT_NANOS {
        fail!("wait 1 ms on empty timed out after {took} ns, early");
    }
    if env.exact_clock && took > SHORT_WAIT_NANOS + LATE_BOUND_NANOS {
        fail!(
            "wait 1 ms on empty timed out after {took} ns, bound {SHORT_WAIT_NANOS} + {LATE_BOUND_NANOS} ns"
        );
    }
    rt::println!("[notify] POLL wait {poll_took} ns, 1 ms wait {took} ns");
    expect_err("signal 0 bits", signal(n.get(), 0), Error::InvalidArgument)?;
    expect_err(
        "signal bit 63",
        signal(n.get(), 1 << 63),
        Error::InvalidArgument,
    )?;
    expect_eq(
        "poll after refused signals",
        poll(n.get()).context("poll")?,
        0,
    )?;

    let badged = owned(
        "cap_copy SEND with badge 1<<5",
        cap_copy(n.get(), Rights::SEND, 1 << 5),
    )?;
    signal(badged.get(), 1 << 1).context("signal through badged copy")?;
    expect_eq(
        "poll after badged signal",
        poll(n.get()).context("poll")?,
        (1 << 1) | (1 << 5),
    )?;

    // A signaller in another process while init waits.
    let mut signaller = spawn_utest(env, NOTIFY_SIGNALER, SIGNALS, &[(n.get(), Rights::SEND)])?;
    signaller.start()?;
    let all: u64 = ((1 << (SIGNALS + 1)) - 1) & !1;
    let mut seen = 0u64;
    while seen != all {
        let bits = wait(n.get(), WAIT).context(format_args!("wait (seen {seen:#x} so far)"))?;
        if bits & !all != 0 {
            fail!("wait returned {bits:#x}: bits outside the signalled {all:#x}");
        }
        seen |= bits;
    }
    signaller.expect_clean_exit(WAIT)?;
    expect_eq(
        "poll after the signaller exited",
        poll(n.get()).context("poll")?,
        0,
    )
}
