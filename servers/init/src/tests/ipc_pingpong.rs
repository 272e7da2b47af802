//! `ipc_pingpong`: 100,000 calls to an echo server in another address space, every reply checked;
//! then short messages both ways.
//!
//! Owns the basic cross-address-space IPC check: `Call` delivers label, length and all four words;
//! `ReplyRecv` answers the right caller with the right words; a `Send` ends the server; the server
//! exits cleanly. Then a thread of init calls init with messages of every length below four,
//! and init answers the same way, with stale values in the registers past the length: those
//! words must arrive as zeros in both directions (the normal form that the kernel's
//! register-only path must keep, like the full path). It must never accept a reply it did not
//! check word by word.

use super::{Context, Owned, TestResult, WAIT, fail, owned};
use crate::Env;
use crate::child::spawn_utest;
use abi::{CapHandle, MSG_WORDS, MessageInfo, Rights};
use rt::roles::{ECHO_SERVER, SHUTDOWN};
use rt::syscall::{Message, call, endpoint_create, recv, reply, reply_recv, send};

/// Round trips.
const CALLS: u64 = 100_000;

/// The words of call `i`: distinct per word and per iteration, including high bits.
fn words(i: u64) -> [u64; MSG_WORDS] {
    [
        i,
        i.wrapping_mul(0x9e37_79b9_7f4a_7c15),
        !i,
        (i << 40) | 0xabcd,
    ]
}

/// What sits in the registers past a short message's length (must never be delivered).
const STALE: u64 = 0x57a1_e57a_1e57_a1e5;
/// The stack of the short-message caller thread (apart from every other test's).
const SHORT_STACK_VA: u64 = crate::va::PINGPONG_STACK;
const SHORT_STACK_PAGES: usize = 16;

/// A message of `length` words (`first`, `first + 1`, ...) with [`STALE`] in the other registers.
fn short(label: u32, length: usize, first: u64) -> Message {
    let mut words = [STALE; MSG_WORDS];
    for (k, word) in words.iter_mut().enumerate().take(length) {
        *word = first + k as u64;
    }
    Message {
        info: MessageInfo::new(label, length, false).unwrap_or(MessageInfo::EMPTY),
        words,
        cap: CapHandle::NULL,
    }
}

/// Whether `msg` is exactly `short(label, length, first)` as delivered: the words past the
/// length zero.
fn delivered_as(msg: &Message, label: u32, length: usize, first: u64) -> bool {
    let mut want = short(label, length, first);
    want.words[length..].fill(0);
    msg.info == want.info && msg.words == want.words
}

/// Calls init (the endpoint's raw handle is `arg`) with one message of each length below
/// [`MSG_WORDS`] and checks every answer. Exit code 0, or 10 + length for a wrong answer, 20 +
/// length for a failed call.
fn short_caller(arg: u64) -> i64 {
    let endpoint = CapHandle::from_raw(arg);
    for length in 0..MSG_WORDS {
        let label = 0x50 + length as u32;
        match call(endpoint, &short(label, length, 0x100), WAIT) {
            Ok(answer) if delivered_as(&answer, label + 1, length, 0x200) => {}
            Ok(_) => return 10 + length as i64,
            Err(_) => return 20 + length as i64,
        }
    }
    0
}

/// Answers the calls of [`short_caller`] on `endpoint`, checking each.
fn serve_short_calls(endpoint: CapHandle) -> TestResult {
    let mut received = recv(endpoint, WAIT).context("receive the call of length 0")?;
    for length in 0..MSG_WORDS {
        let label = 0x50 + length as u32;
        if !delivered_as(&received.msg, label, length, 0x100) {
            fail!(
                "call of length {length}: received {:?} {:x?}, expected the words past the \
                 length to be 0",
                received.msg.info,
                received.msg.words
            );
        }
        let answer = short(label + 1, length, 0x200);
        if length + 1 == MSG_WORDS {
            return reply(&answer, received.reply).context("reply to the last call");
        }
        received = reply_recv(endpoint, &answer, received.reply, WAIT).context(format_args!(
            "reply, then receive the call of length {}",
            length + 1
        ))?;
    }
    Ok(())
}

/// Init serves [`short_caller`]: receives each call, checks it, answers with a short message.
fn short_messages(env: &Env) -> TestResult {
    let endpoint: Owned = owned("endpoint_create", endpoint_create())?;
    let caller = rt::thread::spawn_local(
        env.own_space,
        SHORT_STACK_VA,
        SHORT_STACK_PAGES,
        short_caller,
        endpoint.get().into_raw(),
    )
    .context("spawn the short-message caller")?;
    // Init waits in `Recv` first, so that the calls take the direct switch.
    let served = serve_short_calls(endpoint.get());
    if served.is_err() {
        let _ = rt::syscall::thread_kill(caller.thread);
    }
    let joined = caller.join(WAIT);
    served?;
    match joined.context("join the short-message caller")? {
        0 => Ok(()),
        code @ 10..=13 => fail!(
            "the answer of length {} arrived with the words past its length not zero",
            code - 10
        ),
        code => fail!("the short-message caller exited with {code}"),
    }
}

/// Runs the test.
pub fn run(env: &Env) -> TestResult {
    let endpoint: Owned = owned("endpoint_create", endpoint_create())?;
    let mut server = spawn_utest(env, ECHO_SERVER, 0, &[(endpoint.get(), Rights::RECEIVE)])?;
    server.start()?;
    for i in 0..CALLS {
        let label = 0x100 + (i % 0x100) as u32;
        let sent = words(i);
        let answer = call(endpoint.get(), &Message::new(label, sent), WAIT)
            .context(format_args!("call #{i}"))?;
        if answer.label() != label || answer.info.length() != MSG_WORDS || answer.info.has_cap() {
            fail!(
                "call #{i}: reply info {:?}, expected label {label:#x}, length 4, no capability",
                answer.info
            );
        }
        let want = sent.map(|word| word.wrapping_add(1));
        if answer.words != want {
            fail!(
                "call #{i}: reply words {:x?}, expected {want:x?}",
                answer.words
            );
        }
    }
    send(endpoint.get(), &Message::label_only(SHUTDOWN), WAIT).context("send shutdown")?;
    server.expect_clean_exit(WAIT)?;
    short_messages(env)
}
