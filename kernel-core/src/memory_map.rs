//! Memory-map arithmetic: from the firmware's map to the list of frames the kernel may hand out.
//!
//! Owns the rule "usable RAM, minus everything reserved, shrunk inward to whole frames, sorted,
//! merged". It only computes ranges; it must never allocate from them or touch memory.

use crate::boot_info::{MemoryRegion, PhysRange, ReservedRange};
use arrayvec::ArrayVec;

/// Size of one physical frame (4 KiB on both architectures).
pub const FRAME_SIZE: u64 = 4096;

/// How many disjoint free ranges [`FreeRanges`] can hold; more are dropped and reported.
pub const MAX_FREE_RANGES: usize = 256;

/// Sorted, disjoint, frame-aligned, non-empty ranges of free physical memory.
#[derive(Debug, Clone, Default)]
pub struct FreeRanges {
    ranges: ArrayVec<PhysRange, MAX_FREE_RANGES>,
    dropped_bytes: u64,
}

impl FreeRanges {
    /// Computes the free frames of a machine.
    ///
    /// Rules: only `RegionKind::Usable` memory is free; where a usable region overlaps any
    /// non-usable region or any `reserved` range, the overlap is not free (non-usable wins);
    /// overlapping or touching usable regions merge; each resulting range is shrunk inward to
    /// whole frames and dropped if nothing is left; anything at or above `limit` (exclusive upper
    /// bound, e.g. what the early page tables can reach) is cut off and counted in
    /// [`dropped_bytes`](Self::dropped_bytes), as are ranges past [`MAX_FREE_RANGES`].
    pub fn compute(memory: &[MemoryRegion], reserved: &[ReservedRange], limit: u64) -> Self {
        let _ = (memory, reserved, limit);
        unimplemented!("memory_map::FreeRanges::compute")
    }

    /// The ranges, sorted by address.
    pub fn as_slice(&self) -> &[PhysRange] {
        &self.ranges
    }

    /// Total free bytes (a multiple of [`FRAME_SIZE`]).
    pub fn total_bytes(&self) -> u64 {
        self.ranges.iter().map(PhysRange::len).sum()
    }

    /// Usable bytes that were cut off by `limit` or by the range capacity.
    pub fn dropped_bytes(&self) -> u64 {
        self.dropped_bytes
    }

    /// Carves `bytes` (rounded up to whole frames) aligned to `align` (a power of two, at least
    /// [`FRAME_SIZE`]) out of the lowest range that fits, removes it from the free set and returns
    /// it. Used at boot to place the frame bitmap and the kernel heap. `None` when nothing fits.
    pub fn take(&mut self, bytes: u64, align: u64) -> Option<PhysRange> {
        let _ = (bytes, align);
        unimplemented!("memory_map::FreeRanges::take")
    }
}
