//! `ipc_timeout`: IPC timeouts and non-blocking IPC.
//!
//! Owns the checks that a `Recv` with a timeout on an endpoint nobody sends to fails with
//! `Timeout` after at least that long (by the kernel's clock), that a `Call` with a timeout and
//! no receiver fails with `Timeout`, and that `POLL` receives and sends fail at once with
//! `WouldBlock`. It must never check an upper bound on the elapsed time (emulators are slow).

use super::{Context, TestResult, expect_err, fail, owned};
use crate::Env;
use abi::{Error, Timeout};
use rt::syscall::{Message, call, clock_nanos, endpoint_create, recv, send};

/// The timeout tried: 10 ms.
const TIMEOUT_NANOS: u64 = 10_000_000;

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
pub fn run(_env: &Env) -> TestResult {
    let endpoint = owned("endpoint_create", endpoint_create())?;
    let ep = endpoint.get();
    let timeout = Timeout::from_nanos(TIMEOUT_NANOS);
    timed("recv with a 10 ms timeout", || recv(ep, timeout))?;
    timed("call with a 10 ms timeout and no receiver", || {
        call(ep, &Message::new(1, [1, 2, 3, 4]), timeout)
    })?;
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
