//! The portable page-table layer: entry formats, the walker, TLB tags and address spaces.
//!
//! Owns everything about page tables that does not depend on the machine, so that all of it is
//! tested on the host. The layers, bottom up:
//!
//! - [`MapFlags`]: what a mapping may do.
//! - [`PageTableFormat`]: how one architecture encodes entries (implemented in
//!   `strait-arch-paging`, never here).
//! - [`TableMemory`] and [`FrameSource`]: reaching tables and getting frames
//!   ([`emulated`] has the host doubles).
//! - [`Mapper`]: map, unmap, protect, translate and tear down one tree serving one [`Half`],
//!   with W^X and every error path leak-free. It never flushes a TLB.
//! - [`AsidAllocator`]: PCID/ASID tags with generation rollover.
//! - [`AddressSpace`]: a locked user address space on top, flushing through
//!   [`AddressSpaceHal`], which each arch crate implements.
//!
//! Nothing here may contain unsafe code, assembly, or `cfg(target_arch)`: the hardware (HHDM
//! access, TLB maintenance, CR3/TTBR writes) comes in through the traits.

pub mod asid;
pub mod emulated;
pub mod flags;
pub mod format;
pub mod mapper;
pub mod memory;
pub mod space;

pub use asid::{AsidAllocator, AsidOutcome, AsidTag};
pub use flags::MapFlags;
pub use format::{ENTRIES, PAGE_SIZE, PageTableFormat, ROOT_LEVEL, level_size};
pub use mapper::{Half, MapError, Mapper, Translation};
pub use memory::{FrameSource, TableMemory};
pub use space::{AddressSpace, AddressSpaceHal, Shootdown};
