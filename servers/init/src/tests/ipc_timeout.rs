//! `ipc_timeout`: IPC timeouts and non-blocking IPC.
//!
//! Owns the checks that a `Recv` with a timeout on an endpoint nobody sends to fails with
//! `Timeout` after at least that long (by the kernel's clock), that a `Call` with a timeout fails
//! with `Timeout` both when no receiver takes it and when a waiting server takes it (the direct
//! switch) but never replies, after which the server's reply token is worthless; and that `POLL`
//! receives and sends fail at once with `WouldBlock`. Upper bounds on the elapsed time (a tick
//! past the timeout) are checked only under the exact clock: on the host's clock an emulator can
//! be stalled for any time.

use super::notify::{LATE_BOUND_NANOS, clocked};
use super::{Context, TestResult, WAIT, expect_err, fail, owned};
use crate::Env;
use abi::{CapHandle, Error, Timeout};
use core::sync::atomic::{AtomicU64, Ordering};
use rt::syscall::{
    Message, call, endpoint_create, notification_create, recv, reply, send, signal, thread_join,
    thread_kill, wait,
};

/// The timeout tried: 10 ms.
const TIMEOUT_NANOS: u64 = 10_000_000;

/// The endpoint and the notification of the server that never replies (raw handles in init's
/// table, which its thread shares).
static ENDPOINT: AtomicU64 = AtomicU64::new(0);
static PARKING: AtomicU64 = AtomicU64::new(0);
/// The stack of that server thread (apart from every other test's and the benchmarks').
const SERVER_STACK_VA: u64 = crate::va::IPC_TIMEOUT_STACK;
const SERVER_STACK_PAGES: usize = 16;
/// How long the server is given to reach its `Recv`.
const SETTLE_NANOS: u64 = 20_000_000;

/// Takes one call and does not reply until init signals (after the caller timed out); then its
/// reply must be refused. Exit codes: 0 refused as `InvalidReply`, 1 the reply went through, 2
/// another error, 5 the receive failed, 6 the wait failed.
fn server_that_replies_too_late(_: u64) -> i64 {
    let endpoint = CapHandle::from_raw(ENDPOINT.load(Ordering::Relaxed));
    let Ok(received) = recv(endpoint, Timeout::FOREVER) else {
        return 5;
    };
    let parking = CapHandle::from_raw(PARKING.load(Ordering::Relaxed));
    if wait(parking, Timeout::FOREVER).is_err() {
        return 6;
    }
    match reply(&Message::new(0, [9, 9, 9, 9]), received.reply) {
        Err(Error::InvalidReply) => 0,
        Ok(()) => 1,
        Err(_) => 2,
    }
}

/// A call delivered straight to a waiting server (the direct switch) that does not reply times
/// out, and the server's late reply is refused.
fn call_to_a_silent_server(env: &Env) -> TestResult {
    let endpoint = owned("endpoint_create", endpoint_create())?;
    let parking = owned("notification_create", notification_create())?;
    ENDPOINT.store(endpoint.get().into_raw(), Ordering::Relaxed);
    PARKING.store(parking.get().into_raw(), Ordering::Relaxed);
    let server = rt::thread::spawn_local(
        env.own_space,
        SERVER_STACK_VA,
        SERVER_STACK_PAGES,
        server_that_replies_too_late,
        0,
    )
    .context("spawn the silent server")?;
    // The server must be waiting in `Recv` before the call, so that the call switches to it:
    // a timed join lets it get there (and checks the join's own timeout), and the kernel must
    // then report it receiving (on a slow host the join alone could end before it got there).
    let called = timed(
        env,
        "the silent server waits in recv",
        SETTLE_NANOS,
        |timeout| thread_join(server.thread, timeout),
    )
    .and_then(|()| {
        crate::child::await_state(
            "the silent server",
            server.thread,
            rt::syscall::ThreadState::Receiving,
        )
    })
    .and_then(|()| {
        timed(
            env,
            "call with a 10 ms timeout to a server that does not reply",
            TIMEOUT_NANOS,
            |timeout| call(endpoint.get(), &Message::new(2, [5, 6, 7, 8]), timeout),
        )
    });
    if let Err(reason) = called {
        let _ = thread_kill(server.thread);
        let _ = server.join(WAIT);
        return Err(reason);
    }
    signal(parking.get(), 1).context("signal the silent server")?;
    match server.join(WAIT).context("join the silent server")? {
        0 => Ok(()),
        1 => fail!("the server's reply reached a caller that had timed out"),
        code => fail!("the silent server exited with {code}"),
    }
}

/// Runs `op` with a timeout of `nanos` (it must fail with `Timeout`) and checks it took at
/// least that long, and under the exact clock at most [`LATE_BOUND_NANOS`] (a tick and the
/// system call's path) longer.
fn timed<T: core::fmt::Debug>(
    env: &Env,
    what: &str,
    nanos: u64,
    op: impl FnOnce(Timeout) -> abi::Result<T>,
) -> TestResult {
    let (result, elapsed) = clocked(|| op(Timeout::from_nanos(nanos)))?;
    expect_err(what, result, Error::Timeout)?;
    if elapsed < nanos {
        fail!("{what}: timed out after {elapsed} ns, before the {nanos} ns timeout");
    }
    if env.exact_clock && elapsed > nanos + LATE_BOUND_NANOS {
        fail!("{what}: timed out after {elapsed} ns, bound {nanos} + {LATE_BOUND_NANOS} ns");
    }
    rt::println!("[ipc_timeout] {what}: {elapsed} ns");
    Ok(())
}

/// Runs the test.
pub fn run(env: &Env) -> TestResult {
    let endpoint = owned("endpoint_create", endpoint_create())?;
    let ep = endpoint.get();
    timed(env, "recv with a 10 ms timeout", TIMEOUT_NANOS, |timeout| {
        recv(ep, timeout)
    })?;
    timed(
        env,
        "call with a 10 ms timeout and no receiver",
        TIMEOUT_NANOS,
        |timeout| call(ep, &Message::new(1, [1, 2, 3, 4]), timeout),
    )?;
    call_to_a_silent_server(env)?;
    expect_err("recv POLL", recv(ep, Timeout::POLL), Error::WouldBlock)?;
    expect_err(
        "send POLL with no receiver",
        send(ep, &Message::label_only(1), Timeout::POLL),
        Error::WouldBlock,
    )?;
    expect_err(
        "call POLL with no receiver",
        call(ep, &Message::label_only(1), Timeout::POLL),
        Error::WouldBlock,
    )?;
    // Nothing of the failed sends may have stayed queued.
    expect_err(
        "recv POLL after the failed sends",
        recv(ep, Timeout::POLL),
        Error::WouldBlock,
    )
}
