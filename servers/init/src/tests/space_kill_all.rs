//! `space_kill_all`: `SpaceKill` ends every thread of an address space at once, wherever each
//! one waits, and the process goes with them.
//!
//! Owns the checks, on helpers whose threads the kernel reports blocked where the test needs
//! them (`ThreadState`, never a guess from elapsed time):
//!
//! - a victim ([`rt::roles::SPACE_KILL_VICTIM`]) with threads it made itself: one holding a call
//!   of init's (and receiving again), one waiting on a notification, one spinning in user mode,
//!   one joining the spinner, one in a fault call init's pager holds, one never started, and its
//!   first thread in a call init holds; after `SpaceKill` each reads `Killed` with no fault and
//!   its join says `Killed`; init's held call ends with `Killed`; the two tokens init held are
//!   worthless (`InvalidReply`); a second `SpaceKill` right away is harmless, and once the
//!   threads are joined the space is gone (`StaleCapability` for `SpaceKill` and for
//!   `ThreadCreate` in it);
//! - a helper that kills its own space ([`rt::roles::SPACE_KILL_SELF`]): it and its waiter end
//!   `Killed`;
//! - a space that never had a thread goes at once; the rights and type checks refuse without
//!   effect.
//!
//! That every thread slot, kernel stack, frame and object of the victims comes back is the
//! end-of-boot census's check (`user_resources`). It must never leave a helper running (the
//! `Spawned` guards kill them on a failure path).

use super::{Context, Owned, Reason, TestResult, WAIT, expect_eq, expect_err, fail, owned};
use crate::Env;
use crate::child::{await_state, poll_state, spawn_utest_owning};
use abi::fault::FAULT_LABEL;
use abi::{CapHandle, Error, Rights, Timeout};
use core::sync::atomic::{AtomicU64, Ordering};
use rt::roles::{
    SPACE_KILL_SELF, SPACE_KILL_VICTIM, VICTIM_FAULT_VA, VICTIM_FAULTER, VICTIM_JOINER,
    VICTIM_READY, VICTIM_RECEIVER, VICTIM_SPINNER, VICTIM_THREAD, VICTIM_THREADS, VICTIM_UNSTARTED,
    VICTIM_WAITER,
};
use rt::syscall::{
    Message, ThreadState, address_space_create, call, cap_copy, endpoint_create,
    notification_create, recv, reply, set_pager, space_kill, thread_create, thread_join,
    thread_state,
};
use rt::thread::spawn_local;

/// The endpoint init's caller thread calls (raw handle; same table as init).
static TARGET: AtomicU64 = AtomicU64::new(0);
/// Exit code of [`caller`] when its call failed with `Killed`.
const CALL_KILLED: i64 = 0x4B;

/// Calls the victim's receiver, which holds the call until it is killed.
fn caller(_: u64) -> i64 {
    let endpoint = CapHandle::from_raw(TARGET.load(Ordering::Relaxed));
    match call(endpoint, &Message::label_only(7), Timeout::FOREVER) {
        Err(Error::Killed) => CALL_KILLED,
        Ok(_) => 1,
        Err(_) => 2,
    }
}

/// Receives one thread capability of a helper: message `index` of its `VICTIM_THREAD` sends.
fn recv_thread(report: CapHandle, index: u64) -> Result<Owned, Reason> {
    let got = recv(report, WAIT).context(format_args!("recv thread #{index}"))?;
    let thread = Owned(got.msg.cap);
    expect_eq("label of a thread message", got.msg.label(), VICTIM_THREAD)?;
    expect_eq("index of a thread message", got.msg.words[0], index)?;
    if !got.msg.info.has_cap() || got.msg.cap.is_null() {
        fail!("thread #{index} came without its capability");
    }
    Ok(thread)
}

/// Waits until `thread` reads `Killed` with no fault, then joins it (`Killed`).
fn expect_killed(what: &str, thread: CapHandle) -> TestResult {
    let state = poll_state(what, thread, "Killed(None)", |state| {
        matches!(state, ThreadState::Killed(_) | ThreadState::Exited(_))
    })?;
    expect_eq(
        format_args!("{what}: state after SpaceKill"),
        state,
        ThreadState::Killed(None),
    )?;
    expect_err(
        format_args!("{what}: thread_join"),
        thread_join(thread, WAIT),
        Error::Killed,
    )
}

/// The victim with threads blocked everywhere.
fn victim(env: &Env) -> TestResult {
    let endpoint = owned("endpoint_create (victim's)", endpoint_create())?;
    let notification = owned("notification_create", notification_create())?;
    let report = owned("endpoint_create (reports)", endpoint_create())?;
    let pager = owned("endpoint_create (pager)", endpoint_create())?;
    let pager_cap = owned(
        "cap_copy pager SEND|CALL",
        cap_copy(pager.get(), Rights::SEND | Rights::CALL, 0),
    )?;
    let mut victim = spawn_utest_owning(
        env,
        SPACE_KILL_VICTIM,
        0,
        Rights::MAP | Rights::CONTROL,
        &[
            (endpoint.get(), Rights::RECEIVE),
            (notification.get(), Rights::RECEIVE),
            (report.get(), Rights::SEND | Rights::CALL),
        ],
    )?;
    let space = victim.child.space;
    set_pager(space, pager_cap.get()).context("set_pager (victim)")?;
    victim.start()?;

    let mut threads = [const { Owned(CapHandle::NULL) }; VICTIM_THREADS.len()];
    for (index, slot) in (0u64..).zip(threads.iter_mut()) {
        *slot = recv_thread(report.get(), index)?;
    }
    let ready = recv(report.get(), WAIT).context("recv the victim's ready call")?;
    expect_eq("label of the ready call", ready.msg.label(), VICTIM_READY)?;
    let fault = recv(pager.get(), WAIT).context("recv the faulter's fault")?;
    expect_eq(
        "label of the faulter's fault",
        fault.msg.label(),
        FAULT_LABEL,
    )?;
    expect_eq(
        "address of the faulter's fault",
        fault.msg.words[1],
        VICTIM_FAULT_VA,
    )?;

    // Init's own thread, calling the victim's receiver.
    TARGET.store(endpoint.get().into_raw(), Ordering::Relaxed);
    let local = spawn_local(env.own_space, crate::va::SPACE_KILL_STACK, 4, caller, 0)
        .context("spawn_local (caller)")?;
    await_state("init's caller", local.thread, ThreadState::AwaitingReply)?;

    let thread = |index: u64| threads[index as usize].get();
    let blocked = [
        (VICTIM_RECEIVER, ThreadState::Receiving),
        (VICTIM_WAITER, ThreadState::Waiting),
        (VICTIM_JOINER, ThreadState::Joining),
        (VICTIM_UNSTARTED, ThreadState::NotStarted),
    ];
    for (index, want) in blocked {
        await_state(VICTIM_THREADS[index as usize], thread(index), want)?;
    }
    let faulted = rt::syscall::FaultWords::from_words(fault.msg.words).map(ThreadState::Faulted);
    let state = thread_state(thread(VICTIM_FAULTER)).context("thread_state (faulter)")?;
    if Some(state) != faulted {
        fail!("faulter: the kernel reports {state:?}, expected {faulted:?}");
    }
    match thread_state(thread(VICTIM_SPINNER)).context("thread_state (spinner)")? {
        ThreadState::Ready | ThreadState::Running => {}
        other => fail!("spinner: the kernel reports {other:?}, expected Ready or Running"),
    }
    await_state(
        "the victim's first thread",
        victim.child.thread,
        ThreadState::AwaitingReply,
    )?;

    space_kill(space).context("space_kill")?;
    // While its threads are still ending (none has run since: they have init's priority), the
    // space takes no new thread: the kernel marked it dying.
    // SAFETY: the call must fail; were it accepted, the thread would be in the victim's address
    // space and never started.
    let created = unsafe { thread_create(space, 0x40_0000, 0, 0) };
    expect_err(
        "thread_create in the dying space",
        created,
        Error::StaleCapability,
    )?;
    // Right away again: harmless, whether the last thread has ended yet (the space is then
    // gone) or not.
    match space_kill(space) {
        Ok(()) | Err(Error::StaleCapability) => {}
        Err(error) => fail!("a second space_kill right away: {error}, expected Ok or stale"),
    }
    for (index, name) in (0u64..).zip(VICTIM_THREADS) {
        expect_killed(name, thread(index))?;
    }
    expect_killed("the victim's first thread", victim.child.thread)?;
    match local.join(WAIT) {
        Ok(code) if i64::from(code) == CALL_KILLED => {}
        Ok(code) => fail!("init's caller ended with {code}, expected its call to fail Killed"),
        Err(error) => fail!("{error}"),
    }
    expect_err(
        "reply to the faulter's held fault",
        reply(&Message::label_only(0), fault.reply),
        Error::InvalidReply,
    )?;
    expect_err(
        "reply to the victim's held call",
        reply(&Message::label_only(0), ready.reply),
        Error::InvalidReply,
    )?;
    // Every thread has ended: the space is gone.
    expect_err(
        "space_kill once it is gone",
        space_kill(space),
        Error::StaleCapability,
    )?;
    // SAFETY: the call must fail (the space is gone); were it wrongly accepted, the thread would
    // be in another address space and never started.
    let created = unsafe { thread_create(space, 0x40_0000, 0, 0) };
    expect_err(
        "thread_create in the killed space",
        created,
        Error::StaleCapability,
    )?;
    expect_err(
        "recv POLL on the pager",
        recv(pager.get(), Timeout::POLL),
        Error::WouldBlock,
    )?;
    Ok(())
}

/// A helper that kills its own space, a waiter with it.
fn suicide(env: &Env) -> TestResult {
    let notification = owned("notification_create", notification_create())?;
    let report = owned("endpoint_create (reports)", endpoint_create())?;
    let mut helper = spawn_utest_owning(
        env,
        SPACE_KILL_SELF,
        0,
        Rights::MAP | Rights::CONTROL,
        &[
            (notification.get(), Rights::RECEIVE),
            (report.get(), Rights::SEND),
        ],
    )?;
    let space = helper.child.space;
    helper.start()?;
    let waiter = recv_thread(report.get(), 0)?;
    expect_killed("the suicide's first thread", helper.child.thread)?;
    expect_killed("the suicide's waiter", waiter.get())?;
    expect_err(
        "space_kill of the suicide's space",
        space_kill(space),
        Error::StaleCapability,
    )
}

/// A space that never had a thread, and the argument checks.
fn empty_and_bad_args() -> TestResult {
    let space = owned("address_space_create", address_space_create())?;
    let weak = owned(
        "cap_copy space MAP|GRANT",
        cap_copy(space.get(), Rights::MAP | Rights::GRANT, 0),
    )?;
    expect_err(
        "space_kill without CONTROL",
        space_kill(weak.get()),
        Error::InsufficientRights,
    )?;
    let endpoint = owned("endpoint_create", endpoint_create())?;
    expect_err(
        "space_kill of an endpoint",
        space_kill(endpoint.get()),
        Error::WrongType,
    )?;
    expect_err(
        "space_kill(NULL)",
        space_kill(CapHandle::NULL),
        Error::InvalidCapability,
    )?;
    space_kill(space.get()).context("space_kill of a space without threads")?;
    expect_err(
        "space_kill of it again",
        space_kill(space.get()),
        Error::StaleCapability,
    )?;
    // SAFETY: the call must fail (the space is gone); were it wrongly accepted, the thread would
    // be in another address space and never started.
    let created = unsafe { thread_create(space.get(), 0x40_0000, 0, 0) };
    expect_err("thread_create in it", created, Error::StaleCapability)
}

/// Runs the test.
pub fn run(env: &Env) -> TestResult {
    empty_and_bad_args()?;
    victim(env)?;
    suicide(env)
}
