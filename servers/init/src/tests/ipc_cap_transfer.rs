//! `ipc_cap_transfer`: a capability attached to a call moves to the receiver.
//!
//! Owns the check of capability transfer through IPC: the receiver gets a working capability of
//! the right type and rights, and the sender's handle goes stale on delivery, while the sender's
//! other copies of the same object keep working. It must never check more than the ABI promises
//! (for example the received handle's value).

use super::{Context, Owned, TestResult, WAIT, expect_eq, expect_err, fail, owned};
use crate::Env;
use crate::child::spawn_utest;
use abi::{CapHandle, Error, Rights};
use rt::roles::{CAP_ENDPOINT, CAP_NOTIFICATION, CAP_OK, CAP_RECEIVER, SHUTDOWN};
use rt::syscall::{
    Message, call, cap_copy, cap_identify, endpoint_create, notification_create, send, wait,
};

/// The bits the receiver is asked to signal.
const BITS: u64 = 0b1010_0000;

/// Calls the receiver with `cap` attached under `label`; checks the reply is [`CAP_OK`] and that
/// `cap` went stale in init's table. Returns the reply.
fn transfer(
    endpoint: CapHandle,
    label: u32,
    cap: CapHandle,
    word: u64,
) -> Result<Message, super::Reason> {
    let request = Message::new(label, [word, 0, 0, 0]).with_cap(cap);
    let answer = call(endpoint, &request, WAIT)
        .context(format_args!("call with capability (label {label})"))?;
    if answer.label() != CAP_OK {
        fail!(
            "receiver answered label {:#x} (0x10 no cap, 0x11 wrong type, 0x12 use failed), detail {:#x} {:#x}",
            answer.label(),
            answer.words[0],
            answer.words[1]
        );
    }
    expect_err(
        "cap_identify of the sent handle after delivery",
        cap_identify(cap),
        Error::StaleCapability,
    )?;
    Ok(answer)
}

/// Runs the test.
pub fn run(env: &Env) -> TestResult {
    let endpoint: Owned = owned("endpoint_create", endpoint_create())?;
    let mut receiver = spawn_utest(env, CAP_RECEIVER, 0, &[(endpoint.get(), Rights::RECEIVE)])?;
    receiver.start()?;

    // A notification: keep a RECEIVE copy, send a SEND|GRANT copy; the receiver signals it.
    let notification = owned("notification_create", notification_create())?;
    let own_copy = owned(
        "cap_copy notification RECEIVE",
        cap_copy(notification.get(), Rights::RECEIVE, 0),
    )?;
    let sent = owned(
        "cap_copy notification SEND|GRANT",
        cap_copy(notification.get(), Rights::SEND | Rights::GRANT, 0),
    )?;
    transfer(endpoint.get(), CAP_NOTIFICATION, sent.get(), BITS)?;
    let bits = wait(own_copy.get(), WAIT).context("wait for the receiver's signal")?;
    expect_eq("bits signalled through the moved capability", bits, BITS)?;

    // An endpoint: the receiver identifies it and reports the rights it sees.
    let other = owned("endpoint_create (second)", endpoint_create())?;
    let sent = owned(
        "cap_copy endpoint SEND|GRANT",
        cap_copy(other.get(), Rights::SEND | Rights::GRANT, 0),
    )?;
    let answer = transfer(endpoint.get(), CAP_ENDPOINT, sent.get(), 0)?;
    expect_eq(
        "rights of the endpoint as the receiver sees them",
        answer.words[0],
        (Rights::SEND | Rights::GRANT).into_raw(),
    )?;

    send(endpoint.get(), &Message::label_only(SHUTDOWN), WAIT).context("send shutdown")?;
    receiver.expect_clean_exit(WAIT)
}
