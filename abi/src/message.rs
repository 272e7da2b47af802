//! What travels in the IPC registers: the message descriptor, reply tokens, timeouts, badges and
//! the notification word.
//!
//! Owns the bit layout of [`MessageInfo`] and the encodings of [`ReplyToken`] and [`Timeout`]. It
//! must never change a layout (they are ABI, pinned by the crate's tests) and never give a
//! meaning to a reserved bit without a new syscall: decoders reject reserved bits today, so that
//! a program written today cannot depend on them being ignored.
//!
//! # A message
//!
//! An IPC message is at most [`MSG_WORDS`] data words, a [`MessageInfo`] that says how many of
//! them are meaningful and under which label, and at most one capability. All of it travels in
//! registers (see [`crate::regs`]): there is no message buffer in memory, so a message is copied
//! from the sender's saved registers to the receiver's without touching user memory. Words past
//! `length` are delivered as 0 (never as the sender's stale register contents).

use crate::error::{Error, Result};
use core::fmt;

/// Data words per message, all in registers on both architectures.
pub const MSG_WORDS: usize = 4;

/// The descriptor of an IPC message: label, length and capability flag, packed in one word.
///
/// | bits   | field                                                                      |
/// |--------|----------------------------------------------------------------------------|
/// | 0..3   | length: data words that are meaningful, `0..=`[`MSG_WORDS`]                |
/// | 3      | capability flag: the message carries one capability                        |
/// | 4..32  | reserved, must be 0                                                        |
/// | 32..64 | label: a protocol-defined tag (operation code, reply status, ...)          |
///
/// The kernel interprets only the length (which words to copy) and the capability flag (whether
/// the capability register names a capability to transfer); the label is passed through untouched.
/// A value of this type is always valid: [`from_raw`](Self::from_raw) and [`new`](Self::new)
/// refuse anything else.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MessageInfo(u64);

impl MessageInfo {
    const LENGTH_MASK: u64 = 0b111;
    const CAP: u64 = 1 << 3;
    const RESERVED: u64 = 0xffff_fff0;
    const LABEL_SHIFT: u32 = 32;

    /// Label 0, no words, no capability.
    pub const EMPTY: Self = Self(0);

    /// A descriptor for `length` words under `label`, carrying a capability if `cap`.
    /// [`Error::InvalidArgument`] if `length` exceeds [`MSG_WORDS`].
    pub const fn new(label: u32, length: usize, cap: bool) -> Result<Self> {
        if length > MSG_WORDS {
            return Err(Error::InvalidArgument);
        }
        let cap_bit = if cap { Self::CAP } else { 0 };
        Ok(Self(
            ((label as u64) << Self::LABEL_SHIFT) | cap_bit | length as u64,
        ))
    }

    /// Decodes a register value. [`Error::InvalidArgument`] if a reserved bit is set or the
    /// length exceeds [`MSG_WORDS`].
    pub const fn from_raw(raw: u64) -> Result<Self> {
        if raw & Self::RESERVED != 0 || (raw & Self::LENGTH_MASK) as usize > MSG_WORDS {
            return Err(Error::InvalidArgument);
        }
        Ok(Self(raw))
    }

    /// The register value.
    #[must_use]
    pub const fn into_raw(self) -> u64 {
        self.0
    }

    /// The protocol-defined label.
    #[must_use]
    pub const fn label(self) -> u32 {
        (self.0 >> Self::LABEL_SHIFT) as u32
    }

    /// How many data words are meaningful (`0..=MSG_WORDS`).
    #[must_use]
    pub const fn length(self) -> usize {
        (self.0 & Self::LENGTH_MASK) as usize
    }

    /// Whether the message carries a capability.
    #[must_use]
    pub const fn has_cap(self) -> bool {
        self.0 & Self::CAP != 0
    }

    /// The same descriptor with the capability flag set to `cap`.
    #[must_use]
    pub const fn with_cap(self, cap: bool) -> Self {
        if cap {
            Self(self.0 | Self::CAP)
        } else {
            Self(self.0 & !Self::CAP)
        }
    }
}

impl fmt::Debug for MessageInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageInfo")
            .field("label", &self.label())
            .field("length", &self.length())
            .field("cap", &self.has_cap())
            .finish()
    }
}

/// The authority to answer one particular `Call`.
///
/// `Recv` and `ReplyRecv` return a token with every message that came from a `Call`
/// ([`ReplyToken::NONE`] for one that came from a `Send`); `Reply` and `ReplyRecv` take it back to
/// say which call they answer. A server may keep several tokens and answer their calls in any
/// order (a deferred reply), but only the thread that received the call can use its token. A token
/// is good for exactly one reply: a token that was already used, that belongs to another thread,
/// whose caller gave up (timeout) or was killed, or that was never issued is refused with
/// [`Error::InvalidReply`], and nothing is delivered.
///
/// The encoding is the kernel's business: user space must treat a token as opaque, store it and
/// pass it back unchanged.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ReplyToken(u64);

impl ReplyToken {
    /// No call to reply to (raw 0): what a message from a `Send` carries.
    pub const NONE: Self = Self(0);

    /// Decodes a register value. Any value is accepted; whether it answers a call is for the
    /// kernel to say.
    #[must_use]
    pub const fn from_raw(raw: u64) -> Self {
        Self(raw)
    }

    /// The register value.
    #[must_use]
    pub const fn into_raw(self) -> u64 {
        self.0
    }

    /// True for [`ReplyToken::NONE`].
    #[must_use]
    pub const fn is_none(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Debug for ReplyToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReplyToken({:#x})", self.0)
    }
}

/// How long a blocking call may wait, in nanoseconds of the kernel's monotonic clock, counted
/// from the moment of the call.
///
/// [`Timeout::POLL`] (0) means "do not block": a call that would have to wait fails at once with
/// [`Error::WouldBlock`]. [`Timeout::FOREVER`] (`u64::MAX`) never expires.
/// Any other value is a relative timeout; when it expires the call fails with
/// [`Error::Timeout`] and whatever it had queued is withdrawn. Every value
/// is valid.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Timeout(u64);

impl Timeout {
    /// Do not block.
    pub const POLL: Self = Self(0);
    /// Wait as long as it takes.
    pub const FOREVER: Self = Self(u64::MAX);

    /// A relative timeout of `nanos` nanoseconds (0 is [`POLL`](Self::POLL), `u64::MAX` is
    /// [`FOREVER`](Self::FOREVER)).
    #[must_use]
    pub const fn from_nanos(nanos: u64) -> Self {
        Self(nanos)
    }

    /// Decodes a register value (every value is valid).
    #[must_use]
    pub const fn from_raw(raw: u64) -> Self {
        Self(raw)
    }

    /// The register value.
    #[must_use]
    pub const fn into_raw(self) -> u64 {
        self.0
    }

    /// False for [`POLL`](Self::POLL): the call must not block.
    #[must_use]
    pub const fn may_block(self) -> bool {
        self.0 != 0
    }

    /// The timeout in nanoseconds; `None` for [`FOREVER`](Self::FOREVER).
    #[must_use]
    pub const fn nanos(self) -> Option<u64> {
        if self.0 == u64::MAX {
            None
        } else {
            Some(self.0)
        }
    }

    /// The absolute deadline for a call made at `now` (same clock and unit): `None` when the
    /// timeout never expires. Saturates rather than wrapping, so a huge timeout is "very late",
    /// never "already past".
    #[must_use]
    pub const fn deadline(self, now: u64) -> Option<u64> {
        match self.nanos() {
            None => None,
            Some(nanos) => Some(now.saturating_add(nanos)),
        }
    }
}

/// A value the kernel attaches to what is sent through one particular capability, so the
/// receiver can tell senders apart: delivered with every message sent through a badged endpoint
/// capability, OR-ed into the bits of every signal through a badged notification capability.
///
/// A badge is set when a capability is copied (`CapCopy`) from an unbadged one and can never be
/// changed afterwards, so a client cannot pose as another. [`UNBADGED`] (0) means none.
pub type Badge = u64;

/// The badge of a capability that has none.
pub const UNBADGED: Badge = 0;

/// The bits of a notification word that can be signalled: all but bit 63, which the kernel
/// reserves. `Signal` with a bit outside this mask, or with no bit at all, is
/// [`Error::InvalidArgument`]; a notification badge must lie
/// inside it too.
pub const NOTIFICATION_BITS: u64 = !(1 << 63);

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;

    #[test]
    fn info_round_trips_every_length_and_flag() {
        for label in [0, 1, 0x1234_5678, u32::MAX] {
            for length in 0..=MSG_WORDS {
                for cap in [false, true] {
                    let info = MessageInfo::new(label, length, cap).unwrap();
                    assert_eq!(
                        (info.label(), info.length(), info.has_cap()),
                        (label, length, cap)
                    );
                    assert_eq!(MessageInfo::from_raw(info.into_raw()), Ok(info));
                    assert_eq!(info.with_cap(!cap).has_cap(), !cap);
                    assert_eq!(info.with_cap(!cap).with_cap(cap), info);
                }
            }
        }
    }

    #[test]
    fn info_refuses_bad_lengths_and_reserved_bits() {
        assert_eq!(
            MessageInfo::new(0, MSG_WORDS + 1, false),
            Err(Error::InvalidArgument)
        );
        assert_eq!(
            MessageInfo::new(0, usize::MAX, false),
            Err(Error::InvalidArgument)
        );
        for length in 5..=7 {
            assert_eq!(MessageInfo::from_raw(length), Err(Error::InvalidArgument));
        }
        for bit in 4..32 {
            assert_eq!(
                MessageInfo::from_raw(1 << bit),
                Err(Error::InvalidArgument),
                "bit {bit}"
            );
        }
        assert_eq!(MessageInfo::from_raw(u64::MAX), Err(Error::InvalidArgument));
        assert_eq!(MessageInfo::from_raw(0), Ok(MessageInfo::EMPTY));
    }

    #[test]
    fn info_layout() {
        let info = MessageInfo::new(0xabcd, 3, true).unwrap();
        assert_eq!(info.into_raw(), 0xabcd_0000_000b);
        assert_eq!(
            std::format!("{info:?}"),
            "MessageInfo { label: 43981, length: 3, cap: true }"
        );
    }

    #[test]
    fn reply_token_and_timeout_round_trip() {
        for raw in [0, 1, 1 << 32, u64::MAX] {
            assert_eq!(ReplyToken::from_raw(raw).into_raw(), raw);
            assert_eq!(Timeout::from_raw(raw).into_raw(), raw);
        }
        assert!(ReplyToken::NONE.is_none());
        assert!(!ReplyToken::from_raw(1).is_none());
    }

    #[test]
    fn timeout_meanings() {
        assert!(!Timeout::POLL.may_block());
        assert!(Timeout::FOREVER.may_block());
        assert_eq!(Timeout::FOREVER.nanos(), None);
        assert_eq!(Timeout::from_nanos(5).nanos(), Some(5));
        assert_eq!(Timeout::POLL.nanos(), Some(0));
        assert_eq!(Timeout::from_nanos(5).deadline(100), Some(105));
        assert_eq!(Timeout::FOREVER.deadline(100), None);
        assert_eq!(
            Timeout::from_nanos(u64::MAX - 1).deadline(100),
            Some(u64::MAX)
        );
    }

    #[test]
    fn notification_mask_reserves_only_the_top_bit() {
        assert_eq!(NOTIFICATION_BITS.count_ones(), 63);
        assert_eq!(NOTIFICATION_BITS & (1 << 63), 0);
    }
}
