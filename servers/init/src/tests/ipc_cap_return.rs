//! `ipc_cap_return`: a capability attached to a message that is not delivered comes back to its
//! sender unchanged and usable; one without `GRANT` cannot be sent at all.
//!
//! Owns the failure side of capability transfer (`ipc_cap_transfer` owns the success side):
//! (a) a call or send with a capability attached that times out (or cannot block, `POLL`) on an
//! endpoint nobody receives on; (b) a call queued (its caller reads `Calling`, its capability is
//! lent, `Busy`) whose only receiver process is killed: the call stays queued while the
//! endpoint lives, and fails with `Killed` when the endpoint's last capability goes; in every
//! case the capability is back under its old handle with the same type, rights and badge, and
//! works (a signal through it arrives). (b') The contrast the ABI documents: a capability whose
//! call was delivered belongs to the receiver, and does not come back when the receiver dies
//! holding the call. (c) A capability without `GRANT`, attached to a call, a send or a reply,
//! is refused with `InsufficientRights`: the receiver, waiting in `Recv` (`Receiving`), gets
//! nothing (it counts what it receives), the refused reply leaves the reply token good, and the
//! capability is unchanged and usable.
//!
//! It must never rely on time to know where a thread is blocked (`ThreadState` says) and never
//! leave a helper thread or process running past the test.

use super::{Context, Owned, Reason, TestResult, WAIT, expect_eq, expect_err, fail, owned};
use crate::Env;
use crate::child::{await_state, expect_state, spawn_utest};
use abi::{CapHandle, Error, MessageInfo, Rights, Timeout};
use core::sync::atomic::{AtomicU64, Ordering};
use rt::roles::{HELD, HOLDING_SERVER, PARKED, RECORDER, SHUTDOWN};
use rt::syscall::{
    CapInfo, Message, ThreadState, call, cap_copy, cap_delete, cap_identify, endpoint_create,
    notification_create, recv, reply, send, signal, thread_kill, wait,
};
use rt::thread::{LocalThread, spawn_local};

/// The short timeout of part (a): the timeout itself is the point.
const SHORT: Timeout = Timeout::from_nanos(10_000_000);
/// How long init waits for its caller thread to end: twice the [`WAIT`] of the caller's call.
const JOIN_CALLER: Timeout = Timeout::from_nanos(40_000_000_000);
/// The stack of init's caller thread (apart from every other test's); one lives at a time.
const STACK_VA: u64 = crate::va::CAP_RETURN_STACKS;
const STACK_PAGES: usize = 16;

/// The labels of the messages sent here.
const CARRIER: u32 = 0xCA9;
const PROBE: u32 = 0xCA8;
const ANSWER: u32 = 0xCA7;

/// Exit codes of init's caller thread ([`caller`]).
const CALLER_ANSWERED: i64 = 0x0CA9_A45E;
const CALLER_WRONG_ANSWER: i64 = 0x0CA9_BAD0;
const CALLER_KILLED: i64 = 0x0CA9_4B1D;
const CALLER_TIMED_OUT: i64 = 0x0CA9_0708;
const CALLER_FAILED: i64 = 0x0CA9_FA1D;

/// What init's caller thread calls through, and the capability it attaches (`NULL`: none).
/// Raw handles in init's table, which the thread shares.
static CALLER_ENDPOINT: AtomicU64 = AtomicU64::new(0);
static CALLER_CAP: AtomicU64 = AtomicU64::new(0);

/// Init's caller thread: one call (timeout [`WAIT`]); the exit code says how it ended. A good
/// answer is label [`ANSWER`], no words, no capability.
fn caller(_: u64) -> i64 {
    let endpoint = CapHandle::from_raw(CALLER_ENDPOINT.load(Ordering::Relaxed));
    let cap = CapHandle::from_raw(CALLER_CAP.load(Ordering::Relaxed));
    let mut request = Message::new(CARRIER, [1, 2, 3, 4]);
    if !cap.is_null() {
        request = request.with_cap(cap);
    }
    match call(endpoint, &request, WAIT) {
        Ok(answer) if answer == Message::label_only(ANSWER) => CALLER_ANSWERED,
        Ok(_) => CALLER_WRONG_ANSWER,
        Err(Error::Killed) => CALLER_KILLED,
        Err(Error::Timeout) => CALLER_TIMED_OUT,
        Err(_) => CALLER_FAILED,
    }
}

/// Starts [`caller`] on `endpoint`, attaching `cap` (or nothing for `NULL`).
fn start_caller(env: &Env, endpoint: CapHandle, cap: CapHandle) -> Result<LocalThread, Reason> {
    CALLER_ENDPOINT.store(endpoint.into_raw(), Ordering::Relaxed);
    CALLER_CAP.store(cap.into_raw(), Ordering::Relaxed);
    spawn_local(env.own_space, STACK_VA, STACK_PAGES, caller, 0)
        .context("spawn init's caller thread")
}

/// Runs `steps` while init's caller thread runs (killing it if they fail), then checks that it
/// ended with exactly `want`.
fn with_caller(caller: LocalThread, want: i64, steps: impl FnOnce() -> TestResult) -> TestResult {
    let result = steps();
    if result.is_err() {
        let _ = thread_kill(caller.thread);
    }
    // Longer than the caller's own timeout, so that a call that wrongly timed out is reported
    // as that, not as a join that gave up at the same moment.
    let joined = caller.join(JOIN_CALLER);
    result?;
    let name = |code: u32| match i64::from(code) {
        CALLER_ANSWERED => "answered",
        CALLER_WRONG_ANSWER => "wrong answer",
        CALLER_KILLED => "Killed",
        CALLER_TIMED_OUT => "timed out",
        CALLER_FAILED => "another error",
        _ => "unknown",
    };
    match joined {
        Ok(code) if i64::from(code) == want => Ok(()),
        Ok(code) => fail!(
            "init's caller thread: its call ended {} ({code:#x}), expected {}",
            name(code),
            name(want as u32)
        ),
        Err(error) => fail!("init's caller thread: {error}"),
    }
}

/// A notification to send, with a copy init keeps to see signals arrive.
struct Sendable {
    /// The capability that travels (or fails to).
    cap: Owned,
    /// What `CapIdentify` said about it before anything was tried.
    before: CapInfo,
    /// Init's receive copy.
    own: Owned,
    /// The notification itself.
    _object: Owned,
}

impl Sendable {
    /// A notification and a copy of it with `rights` and `badge`, to be sent.
    fn new(rights: Rights, badge: u64) -> Result<Self, Reason> {
        let object = owned("notification_create", notification_create())?;
        let own = owned(
            "cap_copy notification RECEIVE",
            cap_copy(object.get(), Rights::RECEIVE, 0),
        )?;
        let cap = owned(
            "cap_copy of the notification to send",
            cap_copy(object.get(), rights, badge),
        )?;
        let before = cap_identify(cap.get()).context("cap_identify before sending")?;
        Ok(Self {
            cap,
            before,
            own,
            _object: object,
        })
    }

    fn get(&self) -> CapHandle {
        self.cap.get()
    }

    /// Checks that the capability is back: same type, rights and badge as before, and a signal
    /// through it arrives (with its badge).
    fn is_back(&self, after: &str) -> TestResult {
        let now = cap_identify(self.get()).context(format_args!("cap_identify after {after}"))?;
        expect_eq(
            format_args!("the capability after {after}"),
            now,
            self.before,
        )?;
        let bit = 1 << 5;
        signal(self.get(), bit)
            .context(format_args!("signal through the capability after {after}"))?;
        let bits = wait(self.own.get(), WAIT).context(format_args!("wait after {after}"))?;
        expect_eq(
            format_args!("bits signalled through the capability after {after}"),
            bits,
            bit | self.before.badge,
        )
    }
}

/// (a) Timeouts and `POLL` on an endpoint nobody receives on.
fn timed_out() -> TestResult {
    let nobody = owned("endpoint_create", endpoint_create())?;
    let sendable = Sendable::new(Rights::SEND | Rights::GRANT, 0x40)?;
    let msg = Message::new(CARRIER, [1, 2, 3, 4]).with_cap(sendable.get());
    expect_err(
        "call with a capability, 10 ms timeout, nobody receiving",
        call(nobody.get(), &msg, SHORT),
        Error::Timeout,
    )?;
    sendable.is_back("a call that timed out")?;
    expect_err(
        "send with a capability, 10 ms timeout, nobody receiving",
        send(nobody.get(), &msg, SHORT),
        Error::Timeout,
    )?;
    sendable.is_back("a send that timed out")?;
    expect_err(
        "call(POLL) with a capability, nobody receiving",
        call(nobody.get(), &msg, Timeout::POLL),
        Error::WouldBlock,
    )?;
    sendable.is_back("a call(POLL) that would have blocked")?;
    expect_err(
        "recv(POLL) after the failed calls",
        recv(nobody.get(), Timeout::POLL),
        Error::WouldBlock,
    )
}

/// (b) A queued call whose only receiver dies: it stays queued while the endpoint lives, and
/// fails with `Killed` when the endpoint's last capability is deleted; its capability comes back.
fn receiver_killed(env: &Env) -> TestResult {
    let endpoint = owned("endpoint_create", endpoint_create())?;
    let parking = owned("notification_create", notification_create())?;
    let mut receiver = spawn_utest(
        env,
        PARKED,
        0,
        &[
            (parking.get(), Rights::RECEIVE),
            (endpoint.get(), Rights::RECEIVE),
        ],
    )?;
    receiver.start()?;
    // Init keeps only a CALL copy: with the receiver gone, it is the endpoint's last capability.
    let call_copy = owned(
        "cap_copy endpoint CALL",
        cap_copy(endpoint.get(), Rights::CALL, 0),
    )?;
    cap_delete(endpoint.get()).context("cap_delete of the endpoint's first handle")?;
    let sendable = Sendable::new(Rights::SEND | Rights::GRANT, 0x80)?;
    let thread = start_caller(env, call_copy.get(), sendable.get())?;
    let handle = thread.thread;
    with_caller(thread, CALLER_KILLED, || {
        // Queued, its capability lent, and the receiver waiting elsewhere (on its notification).
        await_state("the caller", handle, ThreadState::Calling)?;
        expect_err(
            "cap_identify of the queued capability",
            cap_identify(sendable.get()),
            Error::Busy,
        )?;
        await_state("the receiver", receiver.child.thread, ThreadState::Waiting)?;
        thread_kill(receiver.child.thread).context("kill the receiver")?;
        receiver.expect_killed("the parked receiver", WAIT)?;
        expect_state(
            "the caller after its receiver died",
            handle,
            ThreadState::Calling,
        )?;
        expect_err(
            "cap_identify of the queued capability after its receiver died",
            cap_identify(sendable.get()),
            Error::Busy,
        )?;
        cap_delete(call_copy.get()).context("cap_delete of the endpoint's last capability")
    })?;
    sendable.is_back("a call whose receiver died and whose endpoint went away")
}

/// (b') A delivered call whose receiver dies holding it: `Killed`, and the capability, which
/// moved on delivery, stays gone (stale in init).
fn delivered_then_killed(env: &Env) -> TestResult {
    let endpoint = owned("endpoint_create", endpoint_create())?;
    let report = owned("endpoint_create (report)", endpoint_create())?;
    let mut server = spawn_utest(
        env,
        HOLDING_SERVER,
        1,
        &[
            (endpoint.get(), Rights::RECEIVE),
            (report.get(), Rights::CALL),
        ],
    )?;
    server.start()?;
    let sendable = Sendable::new(Rights::SEND | Rights::GRANT, 0)?;
    let thread = start_caller(env, endpoint.get(), sendable.get())?;
    let handle = thread.thread;
    with_caller(thread, CALLER_KILLED, || {
        let held = recv(report.get(), WAIT).context("receive the server's report")?;
        let want = MessageInfo::new(HELD, 1, false).unwrap_or(MessageInfo::EMPTY);
        expect_eq("the server's report", held.msg.info, want)?;
        expect_state(
            "the caller, its call held",
            handle,
            ThreadState::AwaitingReply,
        )?;
        expect_err(
            "cap_identify of a capability whose call was delivered",
            cap_identify(sendable.get()),
            Error::StaleCapability,
        )?;
        thread_kill(server.child.thread).context("kill the holding server")?;
        server.expect_killed("the holding server", WAIT)
    })?;
    expect_err(
        "cap_identify of the delivered capability after its receiver died",
        cap_identify(sendable.get()),
        Error::StaleCapability,
    )
}

/// Calls the recorder with a probe; checks that it is message number `count` it received and
/// that it arrived as sent (no capability, no badge).
fn probe(recorder: CapHandle, count: u32) -> TestResult {
    let msg = Message::label_only(PROBE);
    let answer = call(recorder, &msg, WAIT).context(format_args!("probe call #{count}"))?;
    if answer.label() != count || answer.words != [msg.info.into_raw(), 0, 0, 0] {
        fail!(
            "probe #{count}: the recorder answered message number {} with {:x?}, expected \
             number {count} with [{:#x}, 0, 0, 0] (a refused message reached it?)",
            answer.label(),
            answer.words,
            msg.info.into_raw()
        );
    }
    Ok(())
}

/// (c) A capability without `GRANT` cannot be sent, in a call, a send or a reply.
fn without_grant(env: &Env) -> TestResult {
    let endpoint = owned("endpoint_create", endpoint_create())?;
    let mut recorder = spawn_utest(env, RECORDER, 0, &[(endpoint.get(), Rights::RECEIVE)])?;
    recorder.start()?;
    probe(endpoint.get(), 1)?;
    let sendable = Sendable::new(Rights::SEND, 0)?;
    // The recorder waits in `Recv`: a message the kernel wrongly let through would reach it.
    await_state(
        "the recorder",
        recorder.child.thread,
        ThreadState::Receiving,
    )?;
    let msg = Message::new(CARRIER, [1, 2, 3, 4]).with_cap(sendable.get());
    expect_err(
        "call with a capability lacking GRANT",
        call(endpoint.get(), &msg, WAIT),
        Error::InsufficientRights,
    )?;
    sendable.is_back("a call refused for lack of GRANT")?;
    expect_err(
        "send with a capability lacking GRANT",
        send(endpoint.get(), &msg, WAIT),
        Error::InsufficientRights,
    )?;
    sendable.is_back("a send refused for lack of GRANT")?;
    // Nothing reached the recorder: this is only its second message.
    probe(endpoint.get(), 2)?;
    send(endpoint.get(), &Message::label_only(SHUTDOWN), WAIT).context("send shutdown")?;
    recorder.expect_clean_exit(WAIT)?;

    // A reply: init serves its caller thread and first tries to answer with the capability.
    let served = owned("endpoint_create (served)", endpoint_create())?;
    let thread = start_caller(env, served.get(), CapHandle::NULL)?;
    with_caller(thread, CALLER_ANSWERED, || {
        let received = recv(served.get(), WAIT).context("receive the caller's call")?;
        expect_err(
            "reply with a capability lacking GRANT",
            reply(
                &Message::label_only(ANSWER).with_cap(sendable.get()),
                received.reply,
            ),
            Error::InsufficientRights,
        )?;
        sendable.is_back("a reply refused for lack of GRANT")?;
        // The refused reply did nothing: the token still answers the call.
        reply(&Message::label_only(ANSWER), received.reply).context("reply after the refused reply")
    })
}

/// Runs the test.
pub fn run(env: &Env) -> TestResult {
    timed_out()?;
    receiver_killed(env)?;
    delivered_then_killed(env)?;
    without_grant(env)
}
