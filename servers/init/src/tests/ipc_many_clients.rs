//! `ipc_many_clients`: several client processes call one server at once, each through its own
//! badge, and each gets its own replies; a server killed while holding calls fails every one of
//! them with `Killed`, while a call still queued on the endpoint survives for the next receiver.
//!
//! Owns two checks. (1) [`CLIENTS`] `utest` processes each hold a copy of one endpoint with a
//! distinct badge and make [`ROUNDS`] calls whose words derive from that badge; init serves
//! them in rounds: it receives one call from every client (holding all their reply tokens, so
//! that all the clients are blocked on the one server together, each reading `AwaitingReply`),
//! checks that the badge the kernel delivered matches the words, then answers them in an order
//! unrelated to their arrival with words derived from that badge and the words. Every client
//! checks that every reply is its own and says so in its exit code, which is checked exactly.
//! (2) A `utest` server receives [`HELD_CALLS`] calls, from client processes and a thread of
//! init, each with its own badge, answers none and reports the badges it holds; each caller
//! then reads `AwaitingReply` (`ThreadState`: known to be blocked on the server, not merely
//! given time). Another thread of init then queues a call (it reads `Calling`, and the
//! capability it carries is lent, `Busy`). The server is killed: each held call fails with
//! `Killed` (exit codes checked exactly), while the queued call stays queued, as the ABI says
//! (a caller queued on an endpoint waits for a receiver, and the endpoint outlives any one of
//! them), and is then taken by init with its own badge and capability and answered.
//!
//! It must never judge a client by anything but its exact exit code, and never wait for a
//! client without bound (a client that ended early is noticed and reported by its code).

use super::{Context, Owned, Reason, TestResult, WAIT, expect_eq, expect_err, fail, owned};
use crate::Env;
use crate::child::{Spawned, await_state, expect_state, spawn_utest};
use abi::{CapHandle, Error, MSG_WORDS, MessageInfo, ReplyToken, Rights, Timeout};
use core::sync::atomic::{AtomicU64, Ordering};
use rt::roles::{
    self, HOLDING_SERVER, MANY_CALL, MANY_CLIENT, MANY_EXIT_CALL_FAILED, MANY_EXIT_DONE,
    MANY_EXIT_KILLED, MANY_EXIT_WRONG_REPLY, MANY_REPLY, many_badge, many_exit, many_param,
    many_reply, many_request,
};
use rt::syscall::{
    Message, Received, ThreadState, call, cap_copy, cap_identify, clock_nanos, endpoint_create,
    notification_create, recv, reply, thread_kill,
};
use rt::thread::{LocalThread, spawn_local};

// Part 1 has three client processes; part 2 one server, two client processes and threads of
// init as its other callers (so callers of both kinds are released by the kill).

/// Client processes of the first part.
const CLIENTS: usize = 3;
/// Calls each of them makes (one per round).
const ROUNDS: u64 = 300;
/// Client processes whose calls the killed server holds; init's held caller thread is client
/// number `HELD_PROCESSES`.
const HELD_PROCESSES: usize = 2;
/// Calls the killed server holds: the client processes' and init's held caller's.
const HELD_CALLS: usize = HELD_PROCESSES + 1;
/// The id (and so the badge) of init's queued caller thread: apart from the held callers'.
const LATE_ID: u64 = 7;
/// How long init waits for a call before looking whether a client ended early.
const SLICE: Timeout = Timeout::from_nanos(100_000_000);
/// How long init waits for one of its caller threads to end: twice the [`WAIT`] of their calls,
/// so that a call that wrongly timed out is reported as that, not as a join that gave up.
const JOIN_LOCAL: Timeout = Timeout::from_nanos(40_000_000_000);
/// The stacks of init's caller threads (apart from every other test's).
const HELD_STACK_VA: u64 = crate::va::MANY_CLIENTS_STACKS;
const LATE_STACK_VA: u64 = crate::va::MANY_CLIENTS_STACKS + (1 << 32);
const STACK_PAGES: usize = 16;

/// The handles init's caller threads use (raw; same table as init): their badged endpoint
/// copies and the capability the queued caller attaches.
static HELD_ENDPOINT: AtomicU64 = AtomicU64::new(0);
static LATE_ENDPOINT: AtomicU64 = AtomicU64::new(0);
static LATE_CAP: AtomicU64 = AtomicU64::new(0);

/// What a client's exit code says.
fn outcome(code: u32) -> &'static str {
    match code & 0xffff_0000 {
        MANY_EXIT_DONE => "every reply was its own",
        MANY_EXIT_KILLED => "its call failed with Killed",
        MANY_EXIT_WRONG_REPLY => "it got a reply that was not its own",
        MANY_EXIT_CALL_FAILED => "a call failed",
        _ => "unknown exit code",
    }
}

/// Checks that client `id` ended with exactly `many_exit(base, id)`.
fn expect_client(what: &str, id: u64, joined: Result<u32, Error>, base: u32) -> TestResult {
    let want = many_exit(base, id) as u32;
    match joined {
        Ok(code) if code == want => Ok(()),
        Ok(code) => fail!(
            "{what} {id}: exit code {code:#x} ({}), expected {want:#x} ({})",
            outcome(code),
            outcome(want)
        ),
        Err(error) => fail!("{what} {id}: join: {error}, expected exit code {want:#x}"),
    }
}

/// Spawns (not starting) client `id` with a copy of `endpoint` badged for it; `calls` as in
/// [`rt::roles::MANY_CLIENT`].
fn spawn_client(env: &Env, endpoint: CapHandle, id: u64, calls: u64) -> Result<Spawned, Reason> {
    let badged = owned(
        "cap_copy of the endpoint with a client's badge",
        cap_copy(endpoint, Rights::CALL | Rights::GRANT, many_badge(id)),
    )?;
    // Init's badged copy is deleted when `badged` goes: the client's copy keeps the badge.
    spawn_utest(
        env,
        MANY_CLIENT,
        many_param(id, calls),
        &[(badged.get(), Rights::CALL)],
    )
}

/// Receives the next call on `endpoint`; while none comes, checks that no client has ended
/// (a client that found a wrong reply ends at once, and init would otherwise wait in vain).
fn next_call(
    endpoint: CapHandle,
    clients: &[Option<Spawned>],
    round: u64,
) -> Result<Received, Reason> {
    let start = clock_nanos().context("clock_nanos")?;
    loop {
        match recv(endpoint, SLICE) {
            Ok(received) => return Ok(received),
            Err(Error::Timeout) => {}
            Err(error) => fail!("round {round}: recv: {error}"),
        }
        for (id, client) in clients.iter().enumerate() {
            let Some(client) = client else { continue };
            match client.join(Timeout::POLL) {
                Err(Error::WouldBlock) => {}
                Ok(code) => fail!(
                    "round {round}: client {id} ended early with {code:#x} ({})",
                    outcome(code)
                ),
                Err(error) => fail!("round {round}: poll client {id}: {error}"),
            }
        }
        let waited = clock_nanos().context("clock_nanos")?.wrapping_sub(start);
        if waited > WAIT.nanos().unwrap_or(u64::MAX) {
            fail!("round {round}: no call for {waited} ns, every client still running");
        }
    }
}

/// Serves [`ROUNDS`] rounds: one call from every client, then the answers in another order.
fn serve_rounds(endpoint: CapHandle, clients: &[Option<Spawned>]) -> TestResult {
    for round in 0..ROUNDS {
        let mut held: [Option<([u64; MSG_WORDS], ReplyToken)>; CLIENTS] = [None; CLIENTS];
        for _ in 0..CLIENTS {
            let received = next_call(endpoint, clients, round)?;
            let Some(id) = (0..CLIENTS).find(|&id| many_badge(id as u64) == received.badge) else {
                fail!(
                    "round {round}: a call with badge {:#x}, which no client was given",
                    received.badge
                );
            };
            if held[id].is_some() {
                fail!(
                    "round {round}: a second call under client {id}'s badge, its first unanswered"
                );
            }
            let want = Message::new(MANY_CALL, many_request(received.badge, round));
            if received.msg != want {
                fail!(
                    "round {round}: under client {id}'s badge came {:?} {:x?}, expected {:x?}",
                    received.msg.info,
                    received.msg.words,
                    want.words
                );
            }
            held[id] = Some((received.msg.words, received.reply));
        }
        // Every client is now blocked on this server, as the kernel must say. Answer them
        // backwards from a point that moves each round, so that no answer goes to the most
        // recent caller by accident.
        for (id, client) in clients.iter().enumerate() {
            if let Some(client) = client {
                expect_state(
                    format_args!("round {round}: client {id}, its call held"),
                    client.child.thread,
                    ThreadState::AwaitingReply,
                )?;
            }
        }
        for k in 0..CLIENTS {
            let id = (round as usize + CLIENTS - k) % CLIENTS;
            let Some((words, token)) = held[id] else {
                fail!("round {round}: no call held for client {id}");
            };
            let answer = Message::new(MANY_REPLY, many_reply(many_badge(id as u64), words));
            reply(&answer, token).context(format_args!("round {round}: reply to client {id}"))?;
        }
    }
    Ok(())
}

/// Part 1: every client gets its own replies.
fn own_replies(env: &Env) -> TestResult {
    let endpoint = owned("endpoint_create", endpoint_create())?;
    let mut clients: [Option<Spawned>; CLIENTS] = [const { None }; CLIENTS];
    for (id, slot) in clients.iter_mut().enumerate() {
        *slot = Some(spawn_client(env, endpoint.get(), id as u64, ROUNDS)?);
    }
    for client in clients.iter_mut().flatten() {
        client.start()?;
    }
    serve_rounds(endpoint.get(), &clients)?;
    for (id, client) in clients.iter().enumerate() {
        if let Some(client) = client {
            expect_client("client", id as u64, client.join(WAIT), MANY_EXIT_DONE)?;
        }
    }
    Ok(())
}

/// A thread of init that is killed and joined if the test leaves early: it never outlives the
/// test, whichever step fails.
struct Local(Option<LocalThread>);

impl Local {
    /// Starts `body(id)` on the stack at `stack_va`.
    fn start(env: &Env, stack_va: u64, body: fn(u64) -> i64, id: u64) -> Result<Self, Reason> {
        spawn_local(env.own_space, stack_va, STACK_PAGES, body, id)
            .context(format_args!("spawn init's caller thread {id}"))
            .map(|thread| Self(Some(thread)))
    }

    fn handle(&self) -> CapHandle {
        self.0
            .as_ref()
            .map_or(CapHandle::NULL, |thread| thread.thread)
    }

    /// Waits for the thread to end: its exit code, or the join error.
    fn join(mut self) -> Result<u32, Error> {
        match self.0.take() {
            Some(thread) => thread.join(JOIN_LOCAL).map_err(|error| error.error),
            None => Err(Error::InvalidCapability),
        }
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        if let Some(thread) = self.0.take() {
            let _ = thread_kill(thread.thread);
            let _ = thread.join(WAIT);
        }
    }
}

/// Init's held caller (client `id`): one call, which the server holds until it is killed.
fn held_caller(id: u64) -> i64 {
    let endpoint = CapHandle::from_raw(HELD_ENDPOINT.load(Ordering::Relaxed));
    let words = many_request(many_badge(id), 0);
    match call(endpoint, &Message::new(MANY_CALL, words), WAIT) {
        Err(Error::Killed) => many_exit(MANY_EXIT_KILLED, id),
        Ok(_) => many_exit(MANY_EXIT_WRONG_REPLY, id),
        Err(_) => many_exit(MANY_EXIT_CALL_FAILED, id),
    }
}

/// Init's queued caller (client `id`): one call with a capability attached; the exit code says
/// whether the reply was its own.
fn late_caller(id: u64) -> i64 {
    let endpoint = CapHandle::from_raw(LATE_ENDPOINT.load(Ordering::Relaxed));
    let cap = CapHandle::from_raw(LATE_CAP.load(Ordering::Relaxed));
    let badge = many_badge(id);
    let words = many_request(badge, 0);
    match call(
        endpoint,
        &Message::new(MANY_CALL, words).with_cap(cap),
        WAIT,
    ) {
        Ok(answer) if answer == Message::new(MANY_REPLY, many_reply(badge, words)) => {
            many_exit(MANY_EXIT_DONE, id)
        }
        Ok(_) => many_exit(MANY_EXIT_WRONG_REPLY, id),
        Err(_) => many_exit(MANY_EXIT_CALL_FAILED, id),
    }
}

/// Receives the holding server's report and checks that it holds one call of each held client
/// (`0..HELD_CALLS`), whatever the order; returns the report's reply token (never used to answer).
fn held_report(report: CapHandle) -> Result<ReplyToken, Reason> {
    let held = recv(report, WAIT).context("receive the server's report")?;
    let want_info = MessageInfo::new(roles::HELD, HELD_CALLS, false).unwrap_or(MessageInfo::EMPTY);
    expect_eq("the server's report", held.msg.info, want_info)?;
    let mut reported = [false; HELD_CALLS];
    for &badge in &held.msg.words[..HELD_CALLS] {
        match (0..HELD_CALLS).find(|&id| many_badge(id as u64) == badge) {
            Some(id) if !reported[id] => reported[id] = true,
            _ => fail!(
                "the server holds calls with badges {:x?}, expected each held client's once",
                &held.msg.words[..HELD_CALLS]
            ),
        }
    }
    Ok(held.reply)
}

/// Part 2: a server killed while it holds calls.
fn killed_server(env: &Env) -> TestResult {
    let endpoint = owned("endpoint_create", endpoint_create())?;
    let report = owned("endpoint_create (report)", endpoint_create())?;
    let mut server = spawn_utest(
        env,
        HOLDING_SERVER,
        HELD_CALLS as u64,
        &[
            (endpoint.get(), Rights::RECEIVE),
            (report.get(), Rights::CALL),
        ],
    )?;
    server.start()?;
    let mut clients: [Option<Spawned>; HELD_PROCESSES] = [const { None }; HELD_PROCESSES];
    for (id, slot) in clients.iter_mut().enumerate() {
        let mut client = spawn_client(env, endpoint.get(), id as u64, 0)?;
        client.start()?;
        *slot = Some(client);
    }
    let held_id = HELD_PROCESSES as u64;
    let held_endpoint = owned(
        "cap_copy of the endpoint with init's held caller's badge",
        cap_copy(endpoint.get(), Rights::CALL, many_badge(held_id)),
    )?;
    HELD_ENDPOINT.store(held_endpoint.get().into_raw(), Ordering::Relaxed);
    let held_local = Local::start(env, HELD_STACK_VA, held_caller, held_id)?;

    // Every held caller's call was delivered to the server and not answered: each is blocked on
    // the server, which is blocked on init and receives nothing more.
    let report_token = held_report(report.get())?;
    for (id, client) in clients.iter().enumerate() {
        if let Some(client) = client {
            expect_state(
                format_args!("held client {id}"),
                client.child.thread,
                ThreadState::AwaitingReply,
            )?;
        }
    }
    expect_state(
        "init's held caller",
        held_local.handle(),
        ThreadState::AwaitingReply,
    )?;
    expect_state(
        "the holding server, its report held",
        server.child.thread,
        ThreadState::AwaitingReply,
    )?;

    // A call that is queued, not held: its capability is lent while the server takes nothing.
    let late_endpoint = owned(
        "cap_copy of the endpoint with the queued caller's badge",
        cap_copy(endpoint.get(), Rights::CALL, many_badge(LATE_ID)),
    )?;
    let notification = owned("notification_create", notification_create())?;
    let attached = owned(
        "cap_copy notification SEND|GRANT",
        cap_copy(notification.get(), Rights::SEND | Rights::GRANT, 0),
    )?;
    LATE_ENDPOINT.store(late_endpoint.get().into_raw(), Ordering::Relaxed);
    LATE_CAP.store(attached.get().into_raw(), Ordering::Relaxed);
    let late = Local::start(env, LATE_STACK_VA, late_caller, LATE_ID)?;
    await_state("init's queued caller", late.handle(), ThreadState::Calling)?;
    expect_err(
        "cap_identify of the queued call's capability",
        cap_identify(attached.get()),
        Error::Busy,
    )?;

    thread_kill(server.child.thread).context("kill the holding server")?;
    server.expect_killed("the holding server", WAIT)?;
    for (id, client) in clients.iter().enumerate() {
        if let Some(client) = client {
            expect_client(
                "held client",
                id as u64,
                client.join(WAIT),
                MANY_EXIT_KILLED,
            )?;
        }
    }
    expect_client(
        "init's held caller",
        held_id,
        held_local.join(),
        MANY_EXIT_KILLED,
    )?;
    expect_err(
        "reply to the killed server's report",
        reply(&Message::label_only(0), report_token),
        Error::InvalidReply,
    )?;

    // The queued call is still queued (not failed, its capability still lent), and the next
    // receiver gets it, with its badge and its capability.
    expect_state(
        "init's queued caller after the kill",
        late.handle(),
        ThreadState::Calling,
    )?;
    expect_err(
        "cap_identify of the queued call's capability after the kill",
        cap_identify(attached.get()),
        Error::Busy,
    )?;
    let queued = recv(endpoint.get(), WAIT).context("receive the queued call after the kill")?;
    let received_cap = Owned(queued.msg.cap);
    expect_eq(
        "badge of the queued call",
        queued.badge,
        many_badge(LATE_ID),
    )?;
    let want = Message::new(MANY_CALL, many_request(queued.badge, 0));
    expect_eq("words of the queued call", queued.msg.words, want.words)?;
    expect_eq(
        "info of the queued call",
        queued.msg.info,
        want.info.with_cap(true),
    )?;
    let info =
        cap_identify(received_cap.get()).context("cap_identify of the received capability")?;
    expect_eq(
        "rights of the capability the queued call carried",
        info.rights,
        Rights::SEND | Rights::GRANT,
    )?;
    expect_err(
        "cap_identify of the queued call's capability once delivered",
        cap_identify(attached.get()),
        Error::StaleCapability,
    )?;
    let answer = Message::new(MANY_REPLY, many_reply(queued.badge, queued.msg.words));
    reply(&answer, queued.reply).context("reply to the queued call")?;
    expect_client("init's queued caller", LATE_ID, late.join(), MANY_EXIT_DONE)?;
    expect_err(
        "recv(POLL) once every call is accounted for",
        recv(endpoint.get(), Timeout::POLL),
        Error::WouldBlock,
    )
}

/// Runs the test.
pub fn run(env: &Env) -> TestResult {
    own_replies(env)?;
    killed_server(env)
}
