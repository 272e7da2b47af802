//! Kernel objects and their lifetimes: the table of everything a capability can name.
//!
//! Owns the storage of endpoints, notifications, processes and frame ranges, the reference
//! counts that keep each alive, and what happens when the last reference goes. It decides; the
//! kernel glue in `boot` carries the decisions out (wakes evicted threads, frees frames, drops
//! retired address spaces, detaches threads) through [`ObjectHost`] and [`Pending`]. No
//! registers, no scheduler, no page tables, no locks: the caller holds the table under its one
//! lock.
//!
//! - `GenSlots`: generation-checked slots, the storage of every named object kind.
//! - `FrameRecords`: the frame ranges handed to user space and their references.
//! - [`ObjectTable`]: all of it, with the reference-counting rules.

mod frames;
mod slots;
mod table;
#[cfg(all(test, not(loom)))]
mod tests;

pub use frames::FrameRange;
pub use table::{
    Evicted, MAX_NOTIFICATIONS, MAX_PROCESSES, ObjectCounts, ObjectHost, ObjectTable, Pending,
    ProcessEntry,
};
