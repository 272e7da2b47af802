//! Capability handles: how a program names one of its capabilities in a register.
//!
//! Owns the one-word encoding of a [`CapHandle`]. It must never decide whether a handle is valid:
//! only the kernel can, by comparing the handle's generation with the slot's in the caller's
//! capability table.

use core::fmt;

/// A program's name for one capability in its capability table: slot index and generation, packed
/// in one word.
///
/// Layout: generation in bits 32..64, slot index in bits 0..32.
///
/// Every time a slot's capability is deleted (or moved to another table) the slot's generation
/// moves on, so a handle kept from before names the old generation and is refused with
/// [`Error::StaleCapability`](crate::Error::StaleCapability), even after the slot holds a new
/// capability. Generation 0 is never handed out, so the raw value 0 ([`CapHandle::NULL`]) and, more
/// generally, every raw value below 2^32 is never a valid handle: a small integer or a zeroed
/// register passed as a handle is refused with
/// [`Error::InvalidCapability`](crate::Error::InvalidCapability).
///
/// Building a handle proves nothing; user space normally only stores the handles the kernel
/// returned.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[repr(transparent)]
pub struct CapHandle(u64);

impl CapHandle {
    /// The handle that names nothing (raw 0). The kernel writes it where a call has no handle to
    /// return, for example in the capability register of a message that carried none.
    pub const NULL: Self = Self(0);

    /// The handle of generation `generation` of slot `index`.
    #[must_use]
    pub const fn new(index: u32, generation: u32) -> Self {
        Self(((generation as u64) << 32) | index as u64)
    }

    /// The slot index in the capability table.
    #[must_use]
    pub const fn index(self) -> u32 {
        self.0 as u32
    }

    /// The generation of the slot this handle was issued for.
    #[must_use]
    pub const fn generation(self) -> u32 {
        (self.0 >> 32) as u32
    }

    /// True for [`CapHandle::NULL`].
    #[must_use]
    pub const fn is_null(self) -> bool {
        self.0 == 0
    }

    /// Decodes a register value. Any value is accepted; whether it names a capability is for the
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
}

impl fmt::Display for CapHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.index(), self.generation())
    }
}

impl fmt::Debug for CapHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CapHandle({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;

    #[test]
    fn packs_index_and_generation() {
        let handle = CapHandle::new(7, 3);
        assert_eq!((handle.index(), handle.generation()), (7, 3));
        assert_eq!(handle.into_raw(), (3 << 32) | 7);
        assert_eq!(CapHandle::from_raw(handle.into_raw()), handle);
        assert_eq!(std::format!("{handle}"), "7.3");
        assert_eq!(std::format!("{handle:?}"), "CapHandle(7.3)");
    }

    #[test]
    fn round_trips_extremes() {
        for (index, generation) in [(0, 0), (0, 1), (u32::MAX, u32::MAX), (65535, 1), (1, 0)] {
            let handle = CapHandle::new(index, generation);
            assert_eq!((handle.index(), handle.generation()), (index, generation));
            assert_eq!(CapHandle::from_raw(handle.into_raw()), handle);
        }
    }

    #[test]
    fn null_is_zero_and_small_integers_have_generation_zero() {
        assert_eq!(CapHandle::NULL.into_raw(), 0);
        assert!(CapHandle::NULL.is_null());
        assert_eq!(CapHandle::default(), CapHandle::NULL);
        assert!(!CapHandle::new(0, 1).is_null());
        for raw in [1, 2, 255, u32::MAX as u64] {
            assert_eq!(CapHandle::from_raw(raw).generation(), 0);
        }
    }
}
