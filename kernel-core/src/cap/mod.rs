//! Capabilities: what a process may name, and with which rights.
//!
//! Owns the per-process [`CapTable`] (fixed capacity, generation-checked [`CapHandle`]s) and what
//! a slot holds: a [`Capability`], which is an [`ObjectRef`] (an arch-neutral reference into one of
//! the kernel's object tables) with [`Rights`] and a [`Badge`]. Every user-supplied handle goes
//! through [`CapTable::lookup`] (or one of the operations built on the same check), which tells a
//! forged handle from a stale one, then checks type and rights, and answers with an
//! [`abi::Error`]: bad input from user space is an error code, never a panic.
//!
//! The rules this module exists to enforce:
//!
//! - A handle is good for exactly one occupancy of its slot. Deleting or moving a capability
//!   moves the slot's generation on, so every copy of the old handle goes stale for good (a slot
//!   whose generation would wrap is retired instead of reused).
//! - Rights only shrink: [`CapTable::derive`] and [`CapTable::grant`] refuse to add a right the
//!   source lacks, and a badge, once set, never changes.
//! - A capability leaves its process only with [`Rights::GRANT`].
//! - A failed operation changes nothing, in either table.
//!
//! It must never allocate after construction (tables are fixed arrays built by a `const fn`),
//! never block, and never know how an object is implemented or whether it is still alive: an
//! [`ObjectRef`] carries the generation-checked ID of its object, and the object's own table
//! refuses a stale one. Locking is the caller's: a table is `&mut self` throughout, held under the
//! owning process's lock.
//!
//! [`CapHandle`]: abi::CapHandle
//! [`Rights`]: abi::Rights
//! [`Rights::GRANT`]: abi::Rights::GRANT
//! [`Badge`]: abi::Badge

mod object;
mod table;

#[cfg(all(test, not(loom)))]
mod tests;

pub use object::{AddressSpaceId, Capability, EndpointId, NotificationId, ObjectRef};
pub use table::CapTable;

/// Slots in a process's capability table.
pub const MAX_CAPS: usize = 256;
