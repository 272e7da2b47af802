//! Generation-checked IDs: the one encoding every kernel object table names its slots with.
//!
//! Owns the [`generational_id!`](crate::generational_id) macro that threads, endpoints,
//! notifications and address spaces share. It must never decide whether an ID is live: only the
//! owning table can, by comparing the generation with the slot's.

/// Declares a generation-checked ID: slot index (low 32 bits) + generation (high 32 bits) in one
/// `u64`, so that an ID kept after its object was destroyed (and the slot reused) is
/// refused by the object's table instead of naming the new occupant.
#[macro_export]
macro_rules! generational_id {
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

        impl core::fmt::Display for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                write!(f, "{}.{}", self.index(), self.generation())
            }
        }

        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self)
            }
        }
    };
}
