//! Object references and capabilities: what one capability-table slot holds.
//!
//! Owns the arch-neutral names of kernel objects ([`ObjectRef`] and the generation-checked IDs
//! it carries) and the rules for deriving one capability from another ([`Capability::derive`]:
//! rights only shrink, a badge is set at most once). It must never look an object up or decide
//! whether it still exists: each object table checks the generation of the IDs given to it.

use crate::thread::ThreadId;
use abi::{Badge, Error, NOTIFICATION_BITS, ObjectType, Rights, UNBADGED};

crate::generational_id!(
    /// The name of one endpoint in the kernel's endpoint table
    /// ([`Endpoints`](crate::ipc::Endpoints)).
    EndpointId
);
crate::generational_id!(
    /// The name of one notification in the kernel's notification table.
    NotificationId
);
crate::generational_id!(
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
