//! `ipc_kill`: a thread blocked in IPC can be killed at every stage, and its partners learn it.
//!
//! Owns the checks that killing a thread (a) queued to send, (b) awaiting a reply, (c) holding a
//! call it has not answered yet and (d) waiting to receive ends it with `Killed`, and that the
//! kill itself withdraws it: right after `ThreadKill` returns (before the victim has run again,
//! which would withdraw it on its own way out) the kernel no longer reports it blocked where it
//! was, the next sender queued behind it is the one a receiver gets (a), its reply token is
//! worthless (b), its caller is released with `Killed` (c), and a sender is not delivered to it
//! (d); and (e) that a thread waiting in a join reads `Joining` and a kill ends that wait too.
//! Every "it is blocked there" is the kernel's own answer (`ThreadState`), never a guess from
//! a timeout. That nothing leaks is checked by the kernel at the end of the boot (every user
//! thread slot and frame must come back). It must never accept a thread that ended on its own:
//! each helper's body only ends by being killed or by an explicit result.

use super::{Context, Reason, TestResult, WAIT, expect_eq, expect_err, fail, owned};
use crate::Env;
use crate::child::await_state;
use abi::{CapHandle, Error, ReplyToken, Timeout};
use core::sync::atomic::{AtomicU64, Ordering};
use rt::syscall::{
    Message, ThreadState, call, endpoint_create, notification_create, recv, reply, send,
    thread_join, thread_kill, thread_state, wait,
};
use rt::thread::{LocalThread, spawn_local};

/// The endpoint and the notification the helper threads use (raw handles; same table as init).
static ENDPOINT: AtomicU64 = AtomicU64::new(0);
static PARKING: AtomicU64 = AtomicU64::new(0);
/// The thread [`joiner`] joins (raw handle).
static JOIN_TARGET: AtomicU64 = AtomicU64::new(0);

/// Stacks of the two helper threads that may live at once.
const STACK_A: u64 = crate::va::IPC_KILL_STACKS;
const STACK_B: u64 = crate::va::IPC_KILL_STACKS + (1 << 32);
const STACK_PAGES: usize = 16;

/// Labels of the calls of [`caller`] threads (its argument) and of the answer it expects.
const LABEL_A: u64 = 0xA;
const LABEL_B: u64 = 0xB;
const ANSWER: u32 = 0x600D;

fn endpoint() -> CapHandle {
    CapHandle::from_raw(ENDPOINT.load(Ordering::Relaxed))
}

/// Calls the endpoint with label `label` and never gets anywhere unless init answers: it is
/// killed while queued or awaiting the reply, or answered with [`ANSWER`] (exit 0; any other
/// outcome is a distinct code).
fn caller(label: u64) -> i64 {
    let request = Message::new(label as u32, [label, 2, 3, 4]);
    match call(endpoint(), &request, Timeout::FOREVER) {
        Ok(answer) if answer.label() == ANSWER && answer.words == [label; 4] => 0,
        Ok(_) => 1,
        Err(_) => 2,
    }
}

/// Calls the endpoint: 0 if the call fails with `Killed` (its server died holding it).
fn caller_expecting_killed(_: u64) -> i64 {
    match call(endpoint(), &Message::new(6, [6, 6, 6, 6]), Timeout::FOREVER) {
        Err(Error::Killed) => 0,
        Ok(_) => 1,
        Err(_) => 2,
    }
}

/// Receives one message, then parks on a notification nobody signals, holding it.
fn server_that_parks(_: u64) -> i64 {
    if recv(endpoint(), Timeout::FOREVER).is_err() {
        return 5;
    }
    let _ = wait(
        CapHandle::from_raw(PARKING.load(Ordering::Relaxed)),
        Timeout::FOREVER,
    );
    4
}

/// Joins the thread in [`JOIN_TARGET`] for ever; it is killed while it waits (any return is a
/// distinct code).
fn joiner(_: u64) -> i64 {
    match thread_join(
        CapHandle::from_raw(JOIN_TARGET.load(Ordering::Relaxed)),
        Timeout::FOREVER,
    ) {
        Ok(_) => 6,
        Err(_) => 7,
    }
}

fn start(
    env: &Env,
    stack: u64,
    body: fn(u64) -> i64,
    arg: u64,
    what: &str,
) -> Result<LocalThread, Reason> {
    spawn_local(env.own_space, stack, STACK_PAGES, body, arg).context(format_args!("spawn {what}"))
}

/// Waits until the kernel reports `thread` as `blocked`, kills it, and checks that the kill
/// itself took it out of there: right after `ThreadKill` it reads `Ready` (withdrawn and woken
/// to end itself), never still `blocked`. Not `Killed` either: on one CPU a kill does not
/// switch to a victim of init's own priority, so the victim has not run between the two calls;
/// had it run, it could have withdrawn itself on its way out, and the kill's own withdraw
/// would go unproven.
fn kill_blocked(thread: &LocalThread, what: &str, blocked: ThreadState) -> TestResult {
    await_state(what, thread.thread, blocked)?;
    thread_kill(thread.thread).context(format_args!("kill {what}"))?;
    match thread_state(thread.thread).context(format_args!("thread_state ({what}, killed)"))? {
        ThreadState::Ready => Ok(()),
        state => fail!(
            "{what}: right after the kill the kernel reports {state:?}, expected Ready (the \
             kill withdraws it; it must not have run yet)"
        ),
    }
}

/// Waits until the kernel reports `thread` killed (no fault), then joins it (`Killed`).
fn reap_killed(thread: LocalThread, what: &str) -> TestResult {
    await_state(what, thread.thread, ThreadState::Killed(None))?;
    match thread.join(WAIT) {
        Err(error) if error.error == Error::Killed => Ok(()),
        Ok(code) => fail!("{what}: exited with {code}, expected to be killed"),
        Err(error) => fail!("{what}: {error}, expected killed"),
    }
}

/// Waits until the kernel reports that `thread` exited with 0, then joins it.
fn reap_exited(thread: LocalThread, what: &str) -> TestResult {
    await_state(what, thread.thread, ThreadState::Exited(0))?;
    match thread.join(WAIT) {
        Ok(0) => Ok(()),
        Ok(code) => fail!("{what}: exited with {code}, expected 0"),
        Err(error) => fail!("{what}: {error}, expected exit code 0"),
    }
}

/// Runs the test.
pub fn run(env: &Env) -> TestResult {
    let ep = owned("endpoint_create", endpoint_create())?;
    let parking = owned("notification_create", notification_create())?;
    ENDPOINT.store(ep.get().into_raw(), Ordering::Relaxed);
    PARKING.store(parking.get().into_raw(), Ordering::Relaxed);
    let nobody_queued = |what: &str| {
        expect_err(
            format_args!("recv(POLL) after killing {what}"),
            recv(ep.get(), Timeout::POLL),
            Error::WouldBlock,
        )
    };

    // (a) Queued to send, with another caller queued behind it: the kill takes it out of the
    // queue, so a receiver gets the second caller's call, answered normally.
    let first = start(env, STACK_A, caller, LABEL_A, "first queued caller")?;
    await_state("first queued caller", first.thread, ThreadState::Calling)?;
    let second = start(env, STACK_B, caller, LABEL_B, "second queued caller")?;
    await_state("second queued caller", second.thread, ThreadState::Calling)?;
    kill_blocked(&first, "first queued caller", ThreadState::Calling)?;
    let received = recv(ep.get(), Timeout::POLL).context("recv(POLL) after the kill")?;
    expect_eq(
        "label of the call a receiver gets after the first caller was killed",
        u64::from(received.msg.label()),
        LABEL_B,
    )?;
    reply(&Message::new(ANSWER, [LABEL_B; 4]), received.reply).context("reply to the second")?;
    reap_exited(second, "second queued caller")?;
    reap_killed(first, "first queued caller")?;
    nobody_queued("the queued caller")?;

    // (b) Awaiting the reply: init takes the call, the caller dies, the token is worthless at
    // once (not only after the caller ran again).
    let waiting = start(env, STACK_A, caller, LABEL_A, "waiting caller")?;
    await_state(
        "caller before its call is taken",
        waiting.thread,
        ThreadState::Calling,
    )?;
    let received = recv(ep.get(), Timeout::POLL).context("recv the call")?;
    expect_eq(
        "label of the call",
        u64::from(received.msg.label()),
        LABEL_A,
    )?;
    let token: ReplyToken = received.reply;
    kill_blocked(
        &waiting,
        "caller awaiting its reply",
        ThreadState::AwaitingReply,
    )?;
    expect_err(
        "reply to a killed caller",
        reply(&Message::new(ANSWER, [LABEL_A; 4]), token),
        Error::InvalidReply,
    )?;
    reap_killed(waiting, "caller awaiting its reply")?;

    // (c) A server killed while it holds a call: its caller is released with `Killed` by the
    // kill itself (it no longer awaits the reply right after it).
    let server = start(env, STACK_A, server_that_parks, 0, "parking server")?;
    await_state(
        "parking server in recv",
        server.thread,
        ThreadState::Receiving,
    )?;
    let caller_b = start(
        env,
        STACK_B,
        caller_expecting_killed,
        0,
        "caller of the parking server",
    )?;
    await_state(
        "caller of the parking server",
        caller_b.thread,
        ThreadState::AwaitingReply,
    )?;
    kill_blocked(&server, "server holding a call", ThreadState::Waiting)?;
    match thread_state(caller_b.thread).context("thread_state (caller of the killed server)")? {
        // Released by the kill of its server (with `Killed` in its registers), not run yet: see
        // `kill_blocked`.
        ThreadState::Ready => {}
        state => fail!(
            "caller of the killed server: right after the kill the kernel reports {state:?}, \
             expected Ready (released with Killed, not run yet)"
        ),
    }
    reap_exited(caller_b, "caller of the killed server")?;
    reap_killed(server, "server holding a call")?;

    // (d) Waiting to receive: after the kill a sender finds no receiver (the message is not
    // delivered to the dead thread), and a new receiver is served normally.
    let receiver = start(env, STACK_A, server_that_parks, 0, "waiting receiver")?;
    kill_blocked(&receiver, "waiting receiver", ThreadState::Receiving)?;
    expect_err(
        "call(POLL) after killing the only receiver",
        call(ep.get(), &Message::new(7, [0; 4]), Timeout::POLL),
        Error::WouldBlock,
    )?;
    reap_killed(receiver, "waiting receiver")?;
    let fresh = start(env, STACK_A, server_that_parks, 0, "new receiver")?;
    await_state("new receiver", fresh.thread, ThreadState::Receiving)?;
    send(ep.get(), &Message::new(8, [0; 4]), Timeout::POLL).context("send to the new receiver")?;
    kill_blocked(
        &fresh,
        "new receiver, holding the message",
        ThreadState::Waiting,
    )?;
    reap_killed(fresh, "new receiver")?;

    // (e) Not IPC: a thread waiting in a join reads `Joining`, and a kill ends the wait.
    let target = start(env, STACK_A, server_that_parks, 0, "join target")?;
    await_state("join target", target.thread, ThreadState::Receiving)?;
    JOIN_TARGET.store(target.thread.into_raw(), Ordering::Relaxed);
    let joining = start(env, STACK_B, joiner, 0, "joiner")?;
    kill_blocked(&joining, "joiner", ThreadState::Joining)?;
    reap_killed(joining, "joiner")?;
    kill_blocked(&target, "join target", ThreadState::Receiving)?;
    reap_killed(target, "join target")?;
    nobody_queued("every helper")
}
