//! `ipc_pingpong`: 100,000 calls to an echo server in another address space, every reply checked.
//!
//! Owns the basic cross-address-space IPC check: `Call` delivers label, length and all four words;
//! `ReplyRecv` answers the right caller with the right words; a `Send` ends the server; the server
//! exits cleanly. It must never accept a reply it did not check word by word.

use super::{Context, Owned, TestResult, WAIT, fail, owned};
use crate::Env;
use crate::child::spawn_utest;
use abi::{MSG_WORDS, Rights};
use rt::roles::{ECHO_SERVER, SHUTDOWN};
use rt::syscall::{Message, call, endpoint_create, send};

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
    server.expect_clean_exit(WAIT)
}
