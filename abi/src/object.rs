//! Kernel object types: what a capability can name.
//!
//! Owns the numeric value of every [`ObjectType`] (returned by `CapIdentify`) and which rights
//! and badges each type can carry. It must never describe how the kernel stores an object: that
//! is the kernel's business, and user space only ever sees handles.

use crate::rights::Rights;

/// The kind of kernel object a capability names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ObjectType {
    /// A synchronous IPC rendezvous point (`Send`, `Call`, `Recv`, `ReplyRecv`).
    Endpoint = 1,
    /// An asynchronous word of event bits (`Signal`, `Wait`, `Poll`).
    Notification = 2,
    /// A process: page tables, a capability table, and a pager endpoint for its faults.
    AddressSpace = 3,
    /// One thread of execution.
    Thread = 4,
    /// A run of contiguous physical frames that may be mapped.
    FrameRange = 5,
    /// A hardware interrupt line, delivered to user space through a notification.
    Irq = 6,
}

impl ObjectType {
    /// Every object type, in numeric order.
    pub const ALL: [ObjectType; 6] = [
        ObjectType::Endpoint,
        ObjectType::Notification,
        ObjectType::AddressSpace,
        ObjectType::Thread,
        ObjectType::FrameRange,
        ObjectType::Irq,
    ];

    /// Decodes a register value; `None` for any value that is not a type (0 included).
    #[must_use]
    pub const fn from_raw(raw: u64) -> Option<Self> {
        Some(match raw {
            1 => Self::Endpoint,
            2 => Self::Notification,
            3 => Self::AddressSpace,
            4 => Self::Thread,
            5 => Self::FrameRange,
            6 => Self::Irq,
            _ => return None,
        })
    }

    /// The register value.
    #[must_use]
    pub const fn into_raw(self) -> u64 {
        self as u64
    }

    /// Every right that means something for this type (see the table on [`Rights`]); a
    /// capability of this type carries a subset of these. A newly created object's first
    /// capability carries all of them.
    #[must_use]
    pub const fn rights(self) -> Rights {
        match self {
            Self::Endpoint => Rights::SEND
                .union(Rights::CALL)
                .union(Rights::RECEIVE)
                .union(Rights::GRANT),
            Self::Notification => Rights::SEND.union(Rights::RECEIVE).union(Rights::GRANT),
            Self::AddressSpace => Rights::MAP.union(Rights::CONTROL).union(Rights::GRANT),
            Self::Thread | Self::Irq => Rights::CONTROL.union(Rights::GRANT),
            Self::FrameRange => Rights::READ
                .union(Rights::WRITE)
                .union(Rights::EXECUTE)
                .union(Rights::MAP)
                .union(Rights::GRANT),
        }
    }

    /// Whether capabilities of this type can carry a [`Badge`](crate::Badge). An endpoint badge is
    /// delivered to the receiver of every message sent through the capability; a notification
    /// badge is OR-ed into the bits of every signal through it. Either way, the receiver can tell
    /// its clients apart without trusting what they write in their messages.
    #[must_use]
    pub const fn takes_badge(self) -> bool {
        matches!(self, Self::Endpoint | Self::Notification)
    }

    /// A short lower-case name, for logs.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Endpoint => "endpoint",
            Self::Notification => "notification",
            Self::AddressSpace => "address space",
            Self::Thread => "thread",
            Self::FrameRange => "frame range",
            Self::Irq => "irq",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_round_trips() {
        for ty in ObjectType::ALL {
            assert_eq!(ObjectType::from_raw(ty.into_raw()), Some(ty));
        }
        assert_eq!(ObjectType::from_raw(0), None);
        assert_eq!(ObjectType::from_raw(7), None);
        assert_eq!(ObjectType::from_raw(u64::MAX), None);
        assert_eq!(ObjectType::from_raw(1 << 32 | 1), None);
    }

    #[test]
    fn every_type_can_be_granted_and_rights_are_never_empty() {
        for ty in ObjectType::ALL {
            assert!(ty.rights().contains(Rights::GRANT), "{ty:?}");
            assert!(ty.rights() != Rights::GRANT, "{ty:?}");
        }
        assert!(ObjectType::Endpoint.takes_badge());
        assert!(ObjectType::Notification.takes_badge());
        assert!(!ObjectType::FrameRange.takes_badge());
    }
}
