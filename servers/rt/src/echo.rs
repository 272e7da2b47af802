//! The echo server loop, shared by `utest` (roles `ECHO_SERVER` and `BENCH_SERVER`) and by init's
//! same-address-space benchmark thread.
//!
//! Owns the server side of the echo protocol (see [`crate::roles::ECHO_SERVER`]). It must never
//! print (it runs inside benchmarks) and never block without being able to end: a message labelled
//! [`SHUTDOWN`] always ends it.

use crate::roles::SHUTDOWN;
use crate::syscall::{Message, Received, StepError, recv, reply, reply_recv, step};
use abi::{CapHandle, Timeout};

/// Serves echo calls on `endpoint` (`RECEIVE`) until a [`SHUTDOWN`] message: each call is
/// answered with the same info (label and length, no capability) and every word plus `delta`
/// (wrapping). Returns the number of calls answered, the shutdown excluded; on failure, the
/// step (`"recv"`, `"reply_recv"` or `"reply"`) and its error.
pub fn serve(endpoint: CapHandle, delta: u64) -> Result<u64, StepError> {
    let mut received: Received = recv(endpoint, Timeout::FOREVER).map_err(step("recv"))?;
    let mut answered = 0;
    loop {
        let msg = received.msg;
        if msg.label() == SHUTDOWN {
            if !received.reply.is_none() {
                reply(&Message::label_only(SHUTDOWN), received.reply).map_err(step("reply"))?;
            }
            return Ok(answered);
        }
        let answer = Message {
            info: msg.info.with_cap(false),
            words: msg.words.map(|word| word.wrapping_add(delta)),
            cap: CapHandle::NULL,
        };
        if received.reply.is_none() {
            // A `Send` expects no answer.
            received = recv(endpoint, Timeout::FOREVER).map_err(step("recv"))?;
        } else {
            received = reply_recv(endpoint, &answer, received.reply, Timeout::FOREVER)
                .map_err(step("reply_recv"))?;
            answered += 1;
        }
    }
}
