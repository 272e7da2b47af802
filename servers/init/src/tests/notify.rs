//! `notify`: the semantics of notifications.
//!
//! Owns the checks of `Signal`, `Wait` and `Poll`: an empty word polls as 0; signals merge; a
//! badge is OR-ed in; `Wait` returns the bits and clears them; a `POLL` wait on an empty word is
//! `WouldBlock`, a short one `Timeout`; signalling no bits or the reserved bit 63 is
//! `InvalidArgument`; and a signaller in another process wakes a waiting init without losing a
//! bit. It must never assume more ordering than the ABI gives (signals may merge).

use super::{Context, TestResult, WAIT, expect_eq, expect_err, fail, owned};
use crate::Env;
use crate::child::spawn_utest;
use abi::{Error, Rights, Timeout};
use rt::roles::NOTIFY_SIGNALER;
use rt::syscall::{cap_copy, notification_create, poll, signal, wait};

/// Bits the child signals: `1 << 1 ..= 1 << SIGNALS`.
const SIGNALS: u64 = 20;

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

    expect_err(
        "wait POLL on empty",
        wait(n.get(), Timeout::POLL),
        Error::WouldBlock,
    )?;
    expect_err(
        "wait 1 ms on empty",
        wait(n.get(), Timeout::from_nanos(1_000_000)),
        Error::Timeout,
    )?;
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
