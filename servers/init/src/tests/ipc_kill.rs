//! `ipc_kill`: a thread blocked in IPC can be killed at every stage, and its partners learn it.
//!
//! Owns the checks that killing a thread (a) queued to send, (b) awaiting a reply, (c) holding a
//! call it has not answered yet and (d) waiting to receive ends it with `Killed`, takes it out of
//! every queue (the endpoint is empty afterwards), makes its reply token worthless (b) and fails
//! its caller with `Killed` (c). That nothing leaks is checked by the kernel at the end of the
//! boot (every user thread slot and frame must come back). It must never accept a thread that
//! ended on its own: each helper's body only ends by being killed or by an explicit result.

use super::{Context, TestResult, WAIT, expect_eq, expect_err, fail, owned};
use crate::Env;
use abi::{CapHandle, Error, ReplyToken, Timeout};
use core::sync::atomic::{AtomicU64, Ordering};
use rt::syscall::{
    Message, call, endpoint_create, notification_create, recv, reply, thread_join, thread_kill,
    wait,
};
use rt::thread::{LocalThread, spawn_local};

/// The endpoint and the notification the helper threads use (raw handles; same table as init).
static ENDPOINT: AtomicU64 = AtomicU64::new(0);
static PARKING: AtomicU64 = AtomicU64::new(0);

/// Stacks of the two helper threads that may live at once.
const STACK_A: u64 = 0x0000_6300_0000_0000;
const STACK_B: u64 = 0x0000_6301_0000_0000;
const STACK_PAGES: usize = 16;
/// How long a helper is given to reach its blocking call.
const SETTLE: Timeout = Timeout::from_nanos(20_000_000);

fn endpoint() -> CapHandle {
    CapHandle::from_raw(ENDPOINT.load(Ordering::Relaxed))
}

/// Calls the endpoint and never gets anywhere: it is killed while queued or awaiting the reply.
fn blocked_caller(_: u64) -> i64 {
    let _ = call(endpoint(), &Message::new(5, [1, 2, 3, 4]), Timeout::FOREVER);
    3
}

/// Calls the endpoint: 0 if the call fails with `Killed` (its server died holding it).
fn caller_expecting_killed(_: u64) -> i64 {
    match call(endpoint(), &Message::new(6, [6, 6, 6, 6]), Timeout::FOREVER) {
        Err(Error::Killed) => 0,
        Ok(_) => 1,
        Err(_) => 2,
    }
}

/// Receives one call, then parks on a notification nobody signals, holding the call.
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

fn start(
    env: &Env,
    stack: u64,
    body: fn(u64) -> i64,
    what: &str,
) -> Result<LocalThread, super::Reason> {
    match spawn_local(env.own_space, stack, STACK_PAGES, body, 0) {
        Ok(thread) => Ok(thread),
        Err(error) => fail!("spawn {what}: {error}"),
    }
}

/// Checks that `thread` is still blocked (a short join times out), kills it and joins it.
fn kill_blocked(thread: LocalThread, what: &str) -> TestResult {
    expect_err(
        format_args!("{what} is blocked"),
        thread_join(thread.thread, SETTLE),
        Error::Timeout,
    )?;
    thread_kill(thread.thread).context(format_args!("kill {what}"))?;
    match thread.join(WAIT) {
        Err(error) if error.error == Error::Killed => Ok(()),
        Ok(code) => fail!("{what}: exited with {code}, expected to be killed"),
        Err(error) => fail!("{what}: {error}, expected killed"),
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

    // (a) Queued to send: nobody receives.
    kill_blocked(
        start(env, STACK_A, blocked_caller, "queued caller")?,
        "queued caller",
    )?;
    nobody_queued("the queued caller")?;

    // (b) Awaiting the reply: init takes the call, the caller dies, the token is worthless.
    let waiting = start(env, STACK_A, blocked_caller, "waiting caller")?;
    let received = recv(ep.get(), WAIT).context("recv the call")?;
    expect_eq("label of the call", received.msg.info.label(), 5)?;
    let token: ReplyToken = received.reply;
    kill_blocked(waiting, "caller awaiting its reply")?;
    expect_err(
        "reply to a killed caller",
        reply(&Message::new(0, [0; 4]), token),
        Error::InvalidReply,
    )?;

    // (c) A server killed while it holds a call: its caller gets `Killed`.
    let server = start(env, STACK_A, server_that_parks, "parking server")?;
    expect_err(
        "the parking server waits in recv",
        thread_join(server.thread, SETTLE),
        Error::Timeout,
    )?;
    let caller = start(
        env,
        STACK_B,
        caller_expecting_killed,
        "caller of the parking server",
    )?;
    kill_blocked(server, "server holding a call")?;
    match caller.join(WAIT) {
        Ok(0) => {}
        Ok(code) => fail!("the caller of a killed server ended with {code}, expected 0 (Killed)"),
        Err(error) => fail!("caller of the killed server: {error}"),
    }

    // (d) Waiting to receive.
    let receiver = start(env, STACK_A, server_that_parks, "waiting receiver")?;
    kill_blocked(receiver, "waiting receiver")?;
    expect_err(
        "call(POLL) after killing the only receiver",
        call(ep.get(), &Message::new(7, [0; 4]), Timeout::POLL),
        Error::WouldBlock,
    )?;
    Ok(())
}
