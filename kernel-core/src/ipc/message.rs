//! Messages: what one IPC transfer carries.
//!
//! Owns the normal form of a message: words past the descriptor's length are zero (they would
//! otherwise carry the sender's stale register contents to the receiver), and the descriptor's
//! capability flag says exactly whether a capability travels. It must never interpret the label
//! or the words: they belong to the protocol between the two programs.

use crate::cap::Capability;
use abi::{Badge, MSG_WORDS, MessageInfo, ReplyToken};

/// One message: descriptor, data words and at most one capability, in normal form.
///
/// Not `Clone`: a message may carry a capability, and a capability in flight must be delivered
/// or given back exactly once.
#[derive(Debug, PartialEq, Eq)]
pub struct Message {
    info: MessageInfo,
    words: [u64; MSG_WORDS],
    cap: Option<Capability>,
}

impl Message {
    /// A message in normal form: the words past `info.length()` are zeroed and the capability
    /// flag of `info` is set exactly when `cap` is `Some`.
    #[must_use]
    pub fn new(info: MessageInfo, mut words: [u64; MSG_WORDS], cap: Option<Capability>) -> Self {
        for word in &mut words[info.length()..] {
            *word = 0;
        }
        Self {
            info: info.with_cap(cap.is_some()),
            words,
            cap,
        }
    }

    /// An empty message (label 0, no words, no capability).
    #[must_use]
    pub const fn empty() -> Self {
        Self {
            info: MessageInfo::EMPTY,
            words: [0; MSG_WORDS],
            cap: None,
        }
    }

    /// The descriptor.
    #[must_use]
    pub const fn info(&self) -> MessageInfo {
        self.info
    }

    /// The data words (0 past the descriptor's length).
    #[must_use]
    pub const fn words(&self) -> &[u64; MSG_WORDS] {
        &self.words
    }

    /// The capability in flight, if any.
    #[must_use]
    pub const fn cap(&self) -> Option<&Capability> {
        self.cap.as_ref()
    }

    /// Takes the message apart (to write it into registers and insert its capability).
    #[must_use]
    pub fn into_parts(self) -> (MessageInfo, [u64; MSG_WORDS], Option<Capability>) {
        (self.info, self.words, self.cap)
    }
}

/// A message as a receiver gets it: with the badge of the capability it was sent through and,
/// if the sender is waiting in `call`, the token to reply with.
#[derive(Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The badge of the sender's endpoint capability ([`abi::UNBADGED`] if none).
    pub badge: Badge,
    /// The message.
    pub msg: Message,
    /// The token to answer the call with; [`ReplyToken::NONE`] for a `send`.
    pub reply: ReplyToken,
}
