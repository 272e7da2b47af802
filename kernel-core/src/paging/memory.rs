//! What the page-table layer needs from physical memory: table access and frames.
//!
//! Owns two small traits. [`TableMemory`] reads and writes page-table entries by the table's
//! physical address (the arch crates go through the HHDM; the host tests through
//! [`EmulatedMemory`](super::emulated::EmulatedMemory)). [`FrameSource`] hands out and takes
//! back 4 KiB frames for tables. Implementations must never interpret entries: meaning belongs
//! to [`PageTableFormat`](super::PageTableFormat), policy to the [`Mapper`](super::Mapper).

use crate::frame_alloc::FrameAllocator;

/// Access to page tables by physical address.
///
/// `table` is always the 4 KiB-aligned physical address of a table and `index` is below
/// [`ENTRIES`](super::ENTRIES).
///
/// Ordering contract for real hardware: every store made by `zero` or `write` must be visible
/// to the hardware table walker before any later `write` is (the walker must never see a link
/// to a table whose zeroing it cannot see yet), and each `write` must be visible to the walker
/// by the time the mapper returns. x86 gets this from its store ordering; AArch64 needs a
/// `dsb ishst` before and after the store of `write`.
pub trait TableMemory {
    /// Reads entry `index` of the table at physical address `table`.
    fn read(&self, table: u64, index: usize) -> u64;

    /// Writes entry `index` of the table at physical address `table`.
    fn write(&mut self, table: u64, index: usize, value: u64);

    /// Fills the table at physical address `table` with zeros (empty entries).
    fn zero(&mut self, table: u64);
}

/// Where page-table frames come from and go back to.
///
/// The caller holds whatever lock guards the real allocator for the whole page-table
/// operation, so a frame the mapper frees cannot be handed to anyone else before the caller has
/// flushed the TLB entries that may still point at it.
pub trait FrameSource {
    /// Takes one 4 KiB frame, or `None` when there is none left.
    fn allocate(&mut self) -> Option<u64>;

    /// Gives back a frame this source handed out. Freeing anything else is a kernel bug.
    fn free(&mut self, frame: u64);
}

impl FrameSource for FrameAllocator<'_> {
    fn allocate(&mut self) -> Option<u64> {
        FrameAllocator::allocate(self)
    }

    fn free(&mut self, frame: u64) {
        // The mapper only frees tables it allocated from this very source, so a refusal means
        // the page tables are corrupt. Releasing nothing is the safe reaction in a release
        // build (a leaked frame, not a double allocation); debug builds stop at the bug.
        let result = FrameAllocator::free(self, frame);
        debug_assert!(
            result.is_ok(),
            "page-table frame {frame:#x} refused by the frame allocator: {result:?}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot_info::{MemoryRegion, PhysRange, RegionKind};
    use crate::memory_map::FreeRanges;
    use std::vec;

    #[test]
    fn the_frame_allocator_is_a_frame_source() {
        let memory = [MemoryRegion {
            range: PhysRange {
                start: 0x10_0000,
                end: 0x10_0000 + 8 * 4096,
            },
            kind: RegionKind::Usable,
        }];
        let free = FreeRanges::compute(&memory, &[], u64::MAX);
        let mut bitmap = vec![0; FrameAllocator::bitmap_words(&free)];
        let mut alloc = FrameAllocator::new(&free, &mut bitmap).unwrap();
        let source: &mut dyn FrameSource = &mut alloc;
        let frame = source.allocate().unwrap();
        assert_eq!(frame, 0x10_0000);
        source.free(frame);
        assert_eq!(alloc.free_frames(), 8);
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "refused by the frame allocator")]
    fn a_refused_free_is_a_bug_in_debug_builds() {
        let memory = [MemoryRegion {
            range: PhysRange {
                start: 0x10_0000,
                end: 0x10_0000 + 8 * 4096,
            },
            kind: RegionKind::Usable,
        }];
        let free = FreeRanges::compute(&memory, &[], u64::MAX);
        let mut bitmap = vec![0; FrameAllocator::bitmap_words(&free)];
        let mut alloc = FrameAllocator::new(&free, &mut bitmap).unwrap();
        FrameSource::free(&mut alloc, 0x10_0000);
    }
}
