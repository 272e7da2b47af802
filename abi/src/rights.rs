//! Capability rights: what holding a capability allows.
//!
//! Owns the bit of every right and its meaning per object type (the table below; the exact set a
//! type can carry is [`ObjectType::rights`](crate::ObjectType::rights)). It must never renumber a
//! bit (they are ABI) and never define how rights are enforced: the kernel checks them on every
//! call, and a copy can only drop rights, never add them.

use crate::error::{Error, Result};
use bitflags::bitflags;

bitflags! {
    /// The rights a capability carries, by object type:
    ///
    /// | right     | meaning                                                                      |
    /// |-----------|------------------------------------------------------------------------------|
    /// | `READ`    | frame range: mappings of it may be read                                       |
    /// | `WRITE`   | frame range: mappings of it may be written                                    |
    /// | `EXECUTE` | frame range: mappings of it may be executed                                   |
    /// | `MAP`     | frame range: may be mapped; address space: pages may be mapped and unmapped   |
    /// | `GRANT`   | any type: the capability may leave the process (IPC transfer, `CapGrant`)     |
    /// | `SEND`    | endpoint: `Send`; notification: `Signal`                                      |
    /// | `CALL`    | endpoint: `Call`                                                              |
    /// | `RECEIVE` | endpoint: `Recv`, `ReplyRecv`; notification: `Wait`, `Poll`                   |
    /// | `CONTROL` | address space: create threads in it, give capabilities into it, set its pager; thread: start, kill; IRQ: bind, acknowledge |
    ///
    /// A right that means nothing for a type is never set on a capability of that type (the set
    /// per type is [`ObjectType::rights`](crate::ObjectType::rights)). Replying needs no right:
    /// the reply token is the authority (see [`ReplyToken`](crate::ReplyToken)).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct Rights: u32 {
        /// Memory mapped from a frame range may be read.
        const READ = 1 << 0;
        /// Memory mapped from a frame range may be written.
        const WRITE = 1 << 1;
        /// Memory mapped from a frame range may be executed (never together with `WRITE` in one
        /// mapping: the kernel enforces W^X).
        const EXECUTE = 1 << 2;
        /// A frame range may be mapped; pages of an address space may be mapped and unmapped.
        const MAP = 1 << 3;
        /// The capability may be given to another process: attached to an IPC message or copied
        /// with `CapGrant`.
        const GRANT = 1 << 4;
        /// Messages may be sent on the endpoint (`Send`); the notification may be signalled.
        const SEND = 1 << 5;
        /// The endpoint may be called (`Call`: send and wait for the reply).
        const CALL = 1 << 6;
        /// Messages may be received from the endpoint (`Recv`, `ReplyRecv`); the notification may
        /// be waited on and polled.
        const RECEIVE = 1 << 7;
        /// The object may be managed: threads started and killed; threads created in an address
        /// space, capabilities given into it and its pager set; an IRQ bound and acknowledged.
        const CONTROL = 1 << 8;
    }
}

impl Rights {
    /// Decodes a register value; unknown bits are [`Error::InvalidArgument`] (they may mean
    /// something to a newer kernel, so they are refused rather than ignored).
    pub const fn from_raw(raw: u64) -> Result<Self> {
        if raw > u32::MAX as u64 {
            return Err(Error::InvalidArgument);
        }
        match Self::from_bits(raw as u32) {
            Some(rights) => Ok(rights),
            None => Err(Error::InvalidArgument),
        }
    }

    /// The register value.
    #[must_use]
    pub const fn into_raw(self) -> u64 {
        self.bits() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_combination_round_trips() {
        for bits in 0..=Rights::all().bits() {
            let rights = Rights::from_bits_truncate(bits);
            assert_eq!(Rights::from_raw(rights.into_raw()), Ok(rights));
        }
    }

    #[test]
    fn unknown_bits_are_refused() {
        assert_eq!(Rights::from_raw(1 << 9), Err(Error::InvalidArgument));
        assert_eq!(Rights::from_raw(1 << 31), Err(Error::InvalidArgument));
        assert_eq!(Rights::from_raw(1 << 32), Err(Error::InvalidArgument));
        assert_eq!(Rights::from_raw(u64::MAX), Err(Error::InvalidArgument));
        assert_eq!(Rights::from_raw(0), Ok(Rights::empty()));
    }
}
