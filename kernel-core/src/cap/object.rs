//! Object references and capabilities: what one capability-table slot holds.
//!
//! Owns the arch-neutral names of kernel objects ([`ObjectRef`] and the generation-checked IDs
//! it carries) and the rules for deriving one capability from another ([`Capability::derive`]:
//! rights only shrink, a badge is set at most once). It must never look an object up or decide
//! whether it still exists: each object table checks the generation of the IDs given to it.

use crate::thread::ThreadId;
use abi::{Badge, Error, NOTIFICATION_BITS, ObjectType, Rights, UNBADGED};
use core::fmt;

/// Declares a generation-checked object ID: slot index + generation in one `u64`, like
/// [`ThreadId`], so that an ID kept after its object was destroyed (and the slot reused) is
/// refused by the object's table instead of naming the new occupant.
macro_rules! object_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(u64);

        impl $name {
            /// The ID of occupancy `generation` of slot `index`.
            #[must_use]
            pub const fn new(index: u32, generation: u32) -> Self {
                Self(((generation as u64) << 32) | index as u64)
            }

            /// The slot index in the object's table.
            #[must_use]
            pub const fn index(self) -> usize {
                (self.0 & 0xffff_ffff) as usize
            }

            /// Which occupancy of the slot this ID names.
            #[must_use]
            pub const fn generation(self) -> u32 {
                (self.0 >> 32) as u32
            }

            /// The packed form: generation in the high 32 bits, index in the low 32 bits.
            #[must_use]
            pub const fn as_u64(self) -> u64 {
                self.0
            }

            /// Unpacks [`as_u64`](Self::as_u64). Any value is accepted; the object's table says
            /// whether it names a live object.
            #[must_use]
            pub const fn from_u64(raw: u64) -> Self {
                Self(raw)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}.{}", self.index(), self.generation())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self)
            }
        }
    };
}

object_id!(
    /// The name of one endpoint in the kernel's endpoint table
    /// ([`Endpoints`](crate::ipc::Endpoints)).
    EndpointId
);
object_id!(
    /// The name of one notification in the kernel's notification table.
    NotificationId
);
object_id!(
    /// The name of one address space (process) in the kernel's address-space table.
    AddressSpaceId
);

/// Which kernel object a capability names: an index (with generation) into the table of that
/// object type, or, for objects that are plain resources, the resource itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectRef {
    /// An IPC endpoint.
    Endpoint(EndpointId),
    /// A notification word.
    Notification(NotificationId),
    /// An address space (a process).
    AddressSpace(AddressSpaceId),
    /// A thread.
    Thread(ThreadId),
    /// `frames` physically contiguous frames starting at physical address `start`.
    FrameRange {
        /// Physical address of the first frame (frame-aligned).
        start: u64,
        /// Number of frames (at least 1).
        frames: u64,
    },
    /// A hardware interrupt line.
    Irq(u32),
}

impl ObjectRef {
    /// The ABI type of the object.
    #[must_use]
    pub const fn object_type(&self) -> ObjectType {
        match self {
            Self::Endpoint(_) => ObjectType::Endpoint,
            Self::Notification(_) => ObjectType::Notification,
            Self::AddressSpace(_) => ObjectType::AddressSpace,
            Self::Thread(_) => ObjectType::Thread,
            Self::FrameRange { .. } => ObjectType::FrameRange,
            Self::Irq(_) => ObjectType::Irq,
        }
    }
}

/// One capability: an object, the rights held on it, and a badge.
///
/// Deliberately `Clone` but not `Copy`: a capability is authority, and every duplicate should be
/// visible in the code (a [`CapTable::derive`](super::CapTable::derive), a lend to a message),
/// never a silent by-value copy. Its fields are private so that rights can only be dropped
/// ([`derive`](Self::derive)), never widened after creation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Capability {
    object: ObjectRef,
    rights: Rights,
    badge: Badge,
}

impl Capability {
    /// A new, unbadged capability to `object` (for the kernel, when it creates the object).
    /// Rights that mean nothing for the object's type are dropped (see
    /// [`ObjectType::rights`]), so a capability never carries a meaningless right.
    #[must_use]
    pub const fn new(object: ObjectRef, rights: Rights) -> Self {
        let allowed = object.object_type().rights();
        Self {
            object,
            rights: rights.intersection(allowed),
            badge: UNBADGED,
        }
    }

    /// A new capability to `object` with every right its type has.
    #[must_use]
    pub const fn full(object: ObjectRef) -> Self {
        Self::new(object, object.object_type().rights())
    }

    /// The object.
    #[must_use]
    pub const fn object(&self) -> ObjectRef {
        self.object
    }

    /// The object's type.
    #[must_use]
    pub const fn object_type(&self) -> ObjectType {
        self.object.object_type()
    }

    /// The rights held.
    #[must_use]
    pub const fn rights(&self) -> Rights {
        self.rights
    }

    /// The badge ([`UNBADGED`] if none).
    #[must_use]
    pub const fn badge(&self) -> Badge {
        self.badge
    }

    /// A capability to the same object with `rights` and, if `badge` is non-zero, that badge
    /// (0 keeps this capability's badge).
    ///
    /// Refused, in this order:
    /// - [`Error::InsufficientRights`] if `rights` is not a subset of this capability's rights;
    /// - [`Error::InvalidArgument`] if a badge is asked for on a type that takes none, on a
    ///   capability that already has one, or (for a notification) outside
    ///   [`NOTIFICATION_BITS`].
    pub fn derive(&self, rights: Rights, badge: Badge) -> Result<Self, Error> {
        if !self.rights.contains(rights) {
            return Err(Error::InsufficientRights);
        }
        let badge = if badge == UNBADGED {
            self.badge
        } else {
            let ty = self.object_type();
            let fits = ty != ObjectType::Notification || badge & !NOTIFICATION_BITS == 0;
            if !ty.takes_badge() || self.badge != UNBADGED || !fits {
                return Err(Error::InvalidArgument);
            }
            badge
        };
        Ok(Self {
            object: self.object,
            rights,
            badge,
        })
    }
}
