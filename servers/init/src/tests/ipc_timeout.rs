//! `ipc_timeout`: IPC timeouts and non-blocking IPC.
//!
//! Owns the checks that a `Recv` with a timeout on an endpoint nobody sends to fails with
//! `Timeout` after at least that long (by the kernel's clock), that a `Call` with a timeout fails
//! with `Timeout` both when no receiver takes it and when a waiting server takes it (the direct
//! switch) but never replies, after which the server's reply token is worthless; and that `POLL`
//! receives and sends fail at once with `WouldBlock`. It must never check an upper bound on the
//! elapsed time (emulators are slow).

use super::{Context, TestResult, WAIT, expect_err, fail, owned};
use crate::Env;
use abi::{CapHandle, Error, Timeout};
use core::sync::atomic::{AtomicU64, Ordering};
use rt::syscall::{
    Message, call, clock_nanos, endpoint_create, notification_create, recv, reply, send, signal,
    thread_join, thread_kill, wait,
};

/// The timeout tried: 10 ms.
const TIMEOUT_NANOS: u64 = 10_000_000;

/// The endpoint and the notification of the server that never replies (raw handles in init's
/// table, which its thread shares).
static ENDPOINT: AtomicU64 = AtomicU64::new(0);
static PARKING: AtomicU64 = AtomicU64::new(0);
/// The stack of that server thread (apart from every other test's and the benchmarks').
const SERVER_STACK_VA: u64 = 0x0000_6400_0000_0000;
const SERVER_STACK_PAGES: usize = 16;
/// How long the server is given to reach its `Recv`.
const SETTLE: Timeout = Timeout::from_nanos(20_000_000);

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
fn call_to_a_silent_server(env: &Env, timeout: Timeout) -> TestResult {
    let endpoint = owned("endpoint_create", endpoint_create())?;
    let parking = owned("notification_create", notification_create())?;
    ENDPOINT.store(endpoint.get().into_raw(), Ordering::Relaxed);
    PARKING.store(parking.get().into_raw(), Ordering::Relaxed);
    let server = match rt::thread::spawn_local(
        env.own_space,
        SERVER_STACK_VA,
        SERVER_STACK_PAGES,
        server_that_replies_too_late,
        0,
    ) {
        Ok(thread) => thread,
        Err(error) => fail!("spawn the silent server: {error}"),
    };
    // The server must be waiting in `Recv` before the call, so that the call switches to it.
    let called = expect_err(
        "the silent server waits in recv",
        thread_join(server.thread, SETTLE),
        Error::Timeout,
    )
    .and_then(|()| {
        timed(
            "call with a 10 ms timeout to a server that does not reply",
            || call(endpoint.get(), &Message::new(2, [5, 6, 7, 8]), timeout),
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

/// Runs `op` (which must fail with `Timeout`) and checks it took at least [`TIMEOUT_NANOS`].
fn timed<T: core::fmt::Debug>(what: &str, op: impl FnOnce() -> abi::Result<T>) -> TestResult {
    let before = clock_nanos().context("clock_nanos")?;
    expect_err(what, op(), Error::Timeout)?;
    let elapsed = clock_nanos().context("clock_nanos")?.wrapping_sub(before);
    if elapsed < TIMEOUT_NANOS {
        fail!("{what}: timed out after {elapsed} ns, before the {TIMEOUT_NANOS} ns timeout");
    }
    Ok(())
}

/// Runs the test.
pub fn run(env: &Env) -> TestResult {
    let endpoint = owned("endpoint_create", endpoint_create())?;
    let ep = endpoint.get();
    let timeout = Timeout::from_nanos(TIMEOUT_NANOS);
    timed("recv with a 10 ms timeout", || recv(ep, timeout))?;
    timed("call with a 10 ms timeout and no receiver", || {
        call(ep, &Message::new(1, [1, 2, 3, 4]), timeout)
    })?;
    call_to_a_silent_server(env, timeout)?;
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
