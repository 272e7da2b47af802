//! Memory-map arithmetic: from the firmware's map to the list of frames the kernel may hand out.
//!
//! Owns the rule "usable RAM, minus everything reserved, shrunk inward to whole frames, sorted,
//! merged". It only computes ranges; it must never allocate from them or touch memory.

use crate::boot_info::{MAX_MEMORY_REGIONS, MemoryRegion, PhysRange, RegionKind, ReservedRange};
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
    ///
    /// Entries with `end <= start` are ignored, whatever their kind. A frame is kept only when it
    /// lies wholly below `limit`, so an unaligned `limit` acts as `limit` rounded down to a frame.
    /// `dropped_bytes` counts whole frames only: `total_bytes() + dropped_bytes()` is what would
    /// be free with no limit and no capacity bound. When there are more than [`MAX_FREE_RANGES`]
    /// ranges the lowest ones are kept.
    pub fn compute(memory: &[MemoryRegion], reserved: &[ReservedRange], limit: u64) -> Self {
        let sweep = Sweep { memory, reserved };
        let limit = align_down(limit, FRAME_SIZE);
        let mut out = Self::default();
        let mut cursor = 0;
        // The free set is produced in address order one maximal range at a time, straight from
        // the inputs: no intermediate list means no capacity to overflow, whatever the firmware
        // sends, at O((regions + reserved)^2) cost, which is nothing at these sizes.
        while let Some(free_start) = sweep.next_free(cursor) {
            let free_end = sweep.free_end(free_start);
            cursor = free_end;
            let Some(start) = align_up(free_start, FRAME_SIZE) else {
                continue;
            };
            let end = align_down(free_end, FRAME_SIZE);
            if start >= end {
                continue;
            }
            let kept_end = end.min(limit.max(start));
            out.dropped_bytes = out.dropped_bytes.saturating_add(end - kept_end);
            if start < kept_end {
                let range = PhysRange {
                    start,
                    end: kept_end,
                };
                if out.ranges.try_push(range).is_err() {
                    out.dropped_bytes = out.dropped_bytes.saturating_add(range.len());
                }
            }
        }
        out
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
    ///
    /// Also `None` for `bytes == 0` (there is no sensible address for nothing) and for an
    /// `align` that is not a power of two; an `align` below [`FRAME_SIZE`] (including 0) means
    /// [`FRAME_SIZE`]. When the carve splits a range in two and the list is already full, the
    /// smaller leftover piece is given up and counted in [`dropped_bytes`](Self::dropped_bytes).
    pub fn take(&mut self, bytes: u64, align: u64) -> Option<PhysRange> {
        let align = align.max(FRAME_SIZE);
        if bytes == 0 || !align.is_power_of_two() {
            return None;
        }
        let size = align_up(bytes, FRAME_SIZE)?;
        let (index, taken) = self.ranges.iter().enumerate().find_map(|(i, r)| {
            let start = align_up(r.start, align)?;
            let end = start.checked_add(size)?;
            (end <= r.end).then_some((i, PhysRange { start, end }))
        })?;
        let range = self.ranges[index];
        let below = PhysRange {
            start: range.start,
            end: taken.start,
        };
        let above = PhysRange {
            start: taken.end,
            end: range.end,
        };
        match (below.is_empty(), above.is_empty()) {
            (true, true) => {
                self.ranges.remove(index);
            }
            (false, true) => self.ranges[index] = below,
            (true, false) => self.ranges[index] = above,
            (false, false) => {
                self.ranges[index] = below;
                if self.ranges.try_insert(index + 1, above).is_err() {
                    let (keep, lose) = if below.len() >= above.len() {
                        (below, above)
                    } else {
                        (above, below)
                    };
                    self.ranges[index] = keep;
                    self.dropped_bytes = self.dropped_bytes.saturating_add(lose.len());
                }
            }
        }
        Some(taken)
    }
}

/// The RAM the kernel's direct map (HHDM) must cover: every usable or ACPI region, widened
/// outward to whole frames, sorted and merged where they overlap or touch. Unlike
/// [`FreeRanges`], reservations stay in (the kernel image, modules and the DTB are RAM the
/// kernel reads), and MMIO holes stay out.
pub fn ram_ranges(memory: &[MemoryRegion]) -> ArrayVec<PhysRange, MAX_MEMORY_REGIONS> {
    let mut ranges: ArrayVec<PhysRange, MAX_MEMORY_REGIONS> = ArrayVec::new();
    for region in memory {
        let is_ram = matches!(
            region.kind,
            RegionKind::Usable | RegionKind::AcpiReclaimable | RegionKind::AcpiNvs
        );
        let start = align_down(region.range.start, FRAME_SIZE);
        let end =
            align_up(region.range.end, FRAME_SIZE).unwrap_or(align_down(u64::MAX, FRAME_SIZE));
        if is_ram && start < end {
            // Capacity equals the input's bound, so this never fails for a BootInfo map.
            let _ = ranges.try_push(PhysRange { start, end });
        }
    }
    ranges.sort_unstable_by_key(|r| r.start);
    let mut merged: ArrayVec<PhysRange, MAX_MEMORY_REGIONS> = ArrayVec::new();
    for range in ranges {
        match merged.last_mut() {
            Some(last) if range.start <= last.end => last.end = last.end.max(range.end),
            _ => merged.push(range),
        }
    }
    merged
}

/// `x` rounded up to `align` (a power of two), or `None` past the top of the address space.
fn align_up(x: u64, align: u64) -> Option<u64> {
    x.checked_add(align - 1).map(|v| v & !(align - 1))
}

/// `x` rounded down to `align` (a power of two).
fn align_down(x: u64, align: u64) -> u64 {
    x & !(align - 1)
}

/// The firmware map and the reserved list, read as "usable" and "blocking" interval sets.
struct Sweep<'m> {
    memory: &'m [MemoryRegion],
    reserved: &'m [ReservedRange],
}

impl Sweep<'_> {
    fn usable(&self) -> impl Iterator<Item = PhysRange> + '_ {
        self.memory
            .iter()
            .filter(|r| r.kind == RegionKind::Usable && !r.range.is_empty())
            .map(|r| r.range)
    }

    fn blocking(&self) -> impl Iterator<Item = PhysRange> + '_ {
        let firmware = self
            .memory
            .iter()
            .filter(|r| r.kind != RegionKind::Usable)
            .map(|r| r.range);
        let reserved = self.reserved.iter().map(|r| r.range);
        firmware.chain(reserved).filter(|r| !r.is_empty())
    }

    /// The lowest free address at or above `from`. Every step moves to an endpoint of some
    /// input range, strictly upwards, so this terminates without overflow even at `u64::MAX`.
    fn next_free(&self, from: u64) -> Option<u64> {
        let mut at = from;
        loop {
            if !self.usable().any(|r| contains(r, at)) {
                at = self.usable().map(|r| r.start).filter(|&s| s > at).min()?;
            }
            match self
                .blocking()
                .filter(|r| contains(*r, at))
                .map(|r| r.end)
                .max()
            {
                Some(end) => at = end,
                None => return Some(at),
            }
        }
    }

    /// The end of the maximal free range that starts at the free address `start`.
    fn free_end(&self, start: u64) -> u64 {
        let mut end = start;
        // Chaining through overlapping or touching usable regions is what merges them.
        while let Some(next) = self
            .usable()
            .filter(|r| contains(*r, end))
            .map(|r| r.end)
            .max()
        {
            end = next;
        }
        // `start` is free, so no blocking range covers it: the first one above cuts the run.
        self.blocking()
            .map(|r| r.start)
            .filter(|&s| s > start)
            .fold(end, u64::min)
    }
}

fn contains(range: PhysRange, addr: u64) -> bool {
    range.start <= addr && addr < range.end
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot_info::ReservedKind;
    use std::vec::Vec;

    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * KIB;
    const GIB: u64 = 1024 * MIB;
    const TIB: u64 = 1024 * GIB;
    const TOP_FRAME: u64 = u64::MAX - (FRAME_SIZE - 1);

    fn r(start: u64, end: u64) -> PhysRange {
        PhysRange { start, end }
    }

    fn mem(start: u64, end: u64, kind: RegionKind) -> MemoryRegion {
        MemoryRegion {
            range: r(start, end),
            kind,
        }
    }

    fn ram(start: u64, end: u64) -> MemoryRegion {
        mem(start, end, RegionKind::Usable)
    }

    fn res(start: u64, end: u64) -> ReservedRange {
        ReservedRange {
            range: r(start, end),
            kind: ReservedKind::KernelImage,
        }
    }

    /// The invariants every `FreeRanges` must keep, whatever the input.
    fn check(free: &FreeRanges) {
        for range in free.as_slice() {
            assert!(range.start < range.end, "empty range {range}");
            assert_eq!(range.start % FRAME_SIZE, 0, "unaligned start {range}");
            assert_eq!(range.end % FRAME_SIZE, 0, "unaligned end {range}");
        }
        for pair in free.as_slice().windows(2) {
            assert!(pair[0].end < pair[1].start, "{} and {}", pair[0], pair[1]);
        }
        assert_eq!(free.total_bytes() % FRAME_SIZE, 0);
    }

    fn compute(memory: &[MemoryRegion], reserved: &[ReservedRange]) -> FreeRanges {
        let free = FreeRanges::compute(memory, reserved, u64::MAX);
        check(&free);
        assert_eq!(free.dropped_bytes(), 0);
        free
    }

    #[test]
    fn no_regions_means_no_free_memory() {
        let free = compute(&[], &[]);
        assert!(free.as_slice().is_empty());
        assert_eq!(free.total_bytes(), 0);
        let free = compute(&[], &[res(0, GIB)]);
        assert!(free.as_slice().is_empty());
    }

    #[test]
    fn less_than_one_whole_frame_is_nothing() {
        assert!(compute(&[ram(0x1001, 0x2000)], &[]).as_slice().is_empty());
        assert!(compute(&[ram(0x1000, 0x1fff)], &[]).as_slice().is_empty());
        // Two pages' worth of bytes, but straddling so that no whole frame fits.
        assert!(compute(&[ram(0x1800, 0x2fff)], &[]).as_slice().is_empty());
        assert!(compute(&[ram(0, 1)], &[]).as_slice().is_empty());
    }

    #[test]
    fn ranges_shrink_inward_to_frames() {
        let free = compute(&[ram(0x800, 0x3800)], &[]);
        assert_eq!(free.as_slice(), &[r(0x1000, 0x3000)]);
        let free = compute(&[ram(0x1000, 0x3000)], &[]);
        assert_eq!(free.as_slice(), &[r(0x1000, 0x3000)]);
    }

    #[test]
    fn unsorted_overlapping_usable_regions_merge() {
        let memory = [
            ram(0x10_0000, 0x20_0000),
            ram(0x1000, 0x5000),
            ram(0x18_0000, 0x30_0000),
            ram(0x3000, 0x8000),
            ram(0x20_0000, 0x21_0000), // inside an earlier one
        ];
        let free = compute(&memory, &[]);
        assert_eq!(
            free.as_slice(),
            &[r(0x1000, 0x8000), r(0x10_0000, 0x30_0000)]
        );
    }

    #[test]
    fn touching_regions_merge_even_mid_frame() {
        // Neither half holds the frame at 0x1000 alone; together they do.
        let free = compute(&[ram(0x1800, 0x3000), ram(0, 0x1800)], &[]);
        assert_eq!(free.as_slice(), &[r(0, 0x3000)]);
    }

    #[test]
    fn empty_and_inverted_entries_are_ignored() {
        let memory = [
            ram(0x5000, 0x1000), // inverted usable
            ram(0x9000, 0x9000),
            ram(0x10000, 0x20000),
            mem(0x18000, 0x14000, RegionKind::Reserved), // inverted blocker
            mem(0x15000, 0x15000, RegionKind::Defective),
        ];
        let reserved = [res(0x16000, 0x16000), res(0x1_8000, 0x1_0000)];
        let free = compute(&memory, &reserved);
        assert_eq!(free.as_slice(), &[r(0x10000, 0x20000)]);
    }

    #[test]
    fn non_usable_wins_over_usable() {
        for kind in [
            RegionKind::Reserved,
            RegionKind::AcpiReclaimable,
            RegionKind::AcpiNvs,
            RegionKind::Defective,
        ] {
            // The blocker listed before and after the RAM it overlaps.
            let blocker = mem(0x4800, 0x6000, kind);
            for memory in [[ram(0, 0x10000), blocker], [blocker, ram(0, 0x10000)]] {
                let free = compute(&memory, &[]);
                assert_eq!(free.as_slice(), &[r(0, 0x4000), r(0x6000, 0x10000)]);
            }
        }
        // A usable region entirely inside a non-usable one is not free.
        let memory = [mem(0, MIB, RegionKind::Reserved), ram(0x1000, 0x2000)];
        assert!(compute(&memory, &[]).as_slice().is_empty());
        // Same range reported as both: non-usable wins.
        let memory = [ram(0, MIB), mem(0, MIB, RegionKind::AcpiNvs)];
        assert!(compute(&memory, &[]).as_slice().is_empty());
    }

    #[test]
    fn reserved_ranges_are_carved_out() {
        let memory = [ram(0x10_0000, 0x20_0000)];
        // At the low edge, partly below RAM.
        let free = compute(&memory, &[res(0xf_0000, 0x10_3000)]);
        assert_eq!(free.as_slice(), &[r(0x10_3000, 0x20_0000)]);
        // At the high edge, partly above RAM.
        let free = compute(&memory, &[res(0x1f_f000, 0x30_0000)]);
        assert_eq!(free.as_slice(), &[r(0x10_0000, 0x1f_f000)]);
        // In the middle: splits the range.
        let free = compute(&memory, &[res(0x14_0000, 0x15_0000)]);
        assert_eq!(
            free.as_slice(),
            &[r(0x10_0000, 0x14_0000), r(0x15_0000, 0x20_0000)]
        );
        // Entirely outside RAM: no effect.
        let free = compute(&memory, &[res(0, 0x1000), res(GIB, 2 * GIB)]);
        assert_eq!(free.as_slice(), &[r(0x10_0000, 0x20_0000)]);
        // Covering all of RAM.
        assert!(compute(&memory, &[res(0, u64::MAX)]).as_slice().is_empty());
    }

    #[test]
    fn unaligned_reservations_take_whole_frames() {
        // A frame that is reserved even by one byte is not free.
        let memory = [ram(0, 0x10000)];
        let free = compute(&memory, &[res(0x4fff, 0x5001)]);
        assert_eq!(free.as_slice(), &[r(0, 0x4000), r(0x6000, 0x10000)]);
        let free = compute(&memory, &[res(0x5000, 0x5001)]);
        assert_eq!(free.as_slice(), &[r(0, 0x5000), r(0x6000, 0x10000)]);
    }

    #[test]
    fn overlapping_reservations_and_typical_pc_map() {
        let memory = [
            ram(0, 0x9_fc00),
            mem(0x9_fc00, 0xa_0000, RegionKind::Reserved),
            mem(0xf_0000, 0x10_0000, RegionKind::Reserved),
            ram(0x10_0000, 0x7ffe_0000),
            mem(0x7ffe_0000, 0x8000_0000, RegionKind::Reserved),
            mem(0xfeff_c000, 0xff00_0000, RegionKind::Reserved),
            ram(0x1_0000_0000, 0x1_8000_0000),
        ];
        let reserved = [
            res(0, 0x10_0000),             // real-mode area
            res(0x10_0000, 0x40_0000),     // kernel
            res(0x30_0000, 0x50_0000),     // initrd overlapping the kernel
            res(0x7f00_0000, 0x7f00_0100), // boot data
        ];
        let free = compute(&memory, &reserved);
        assert_eq!(
            free.as_slice(),
            &[
                r(0x50_0000, 0x7f00_0000),
                r(0x7f00_1000, 0x7ffe_0000),
                r(0x1_0000_0000, 0x1_8000_0000)
            ]
        );
    }

    #[test]
    fn limit_cuts_and_counts() {
        let memory = [ram(0, 4 * MIB), ram(8 * MIB, 12 * MIB)];
        let free = FreeRanges::compute(&memory, &[], 10 * MIB);
        check(&free);
        assert_eq!(free.as_slice(), &[r(0, 4 * MIB), r(8 * MIB, 10 * MIB)]);
        assert_eq!(free.dropped_bytes(), 2 * MIB);
        // An unaligned limit keeps only frames wholly below it.
        let free = FreeRanges::compute(&memory, &[], 0x2fff);
        assert_eq!(free.as_slice(), &[r(0, 0x2000)]);
        assert_eq!(free.total_bytes() + free.dropped_bytes(), 8 * MIB);
        // Limit at a range start drops the whole range.
        let free = FreeRanges::compute(&memory, &[], 8 * MIB);
        assert_eq!(free.as_slice(), &[r(0, 4 * MIB)]);
        assert_eq!(free.dropped_bytes(), 4 * MIB);
        // Limit 0: everything dropped.
        let free = FreeRanges::compute(&memory, &[], 0);
        assert!(free.as_slice().is_empty());
        assert_eq!(free.dropped_bytes(), 8 * MIB);
        // Reserved memory above the limit is not "dropped": it was never free.
        let free = FreeRanges::compute(&memory, &[res(8 * MIB, 12 * MIB)], 6 * MIB);
        assert_eq!(free.dropped_bytes(), 0);
    }

    #[test]
    fn huge_regions() {
        let memory = [ram(GIB, 4 * GIB), ram(4 * GIB, 4 * GIB + TIB)];
        let free = compute(&memory, &[res(2 * GIB, 2 * GIB + 0x1000)]);
        assert_eq!(
            free.as_slice(),
            &[r(GIB, 2 * GIB), r(2 * GIB + 0x1000, 4 * GIB + TIB)]
        );
        assert_eq!(free.total_bytes(), 3 * GIB + TIB - 0x1000);

        let free = FreeRanges::compute(&memory, &[], 4 * GIB);
        assert_eq!(free.as_slice(), &[r(GIB, 4 * GIB)]);
        assert_eq!(free.dropped_bytes(), TIB);
    }

    #[test]
    fn regions_at_the_top_of_the_address_space() {
        // Ends at u64::MAX: the last partial frame is lost, nothing overflows.
        let free = compute(&[ram(u64::MAX - 3 * FRAME_SIZE, u64::MAX)], &[]);
        assert_eq!(free.as_slice(), &[r(TOP_FRAME - 2 * FRAME_SIZE, TOP_FRAME)]);
        // Less than a frame below u64::MAX: nothing.
        assert!(
            compute(&[ram(TOP_FRAME + 1, u64::MAX)], &[])
                .as_slice()
                .is_empty()
        );
        assert!(
            compute(&[ram(TOP_FRAME, u64::MAX)], &[])
                .as_slice()
                .is_empty()
        );
        // The whole address space minus blockers that reach the top.
        let memory = [ram(0, u64::MAX), mem(MIB, u64::MAX, RegionKind::Reserved)];
        assert_eq!(compute(&memory, &[]).as_slice(), &[r(0, MIB)]);
        let free = compute(
            &[ram(0, u64::MAX)],
            &[res(TOP_FRAME - FRAME_SIZE, u64::MAX)],
        );
        assert_eq!(free.as_slice(), &[r(0, TOP_FRAME - FRAME_SIZE)]);
        assert_eq!(free.total_bytes(), TOP_FRAME - FRAME_SIZE);
        // Everything, with the limit at the very top.
        let free = compute(&[ram(0, u64::MAX), ram(u64::MAX - 5, u64::MAX)], &[]);
        assert_eq!(free.as_slice(), &[r(0, TOP_FRAME)]);
        let free = FreeRanges::compute(&[ram(0, u64::MAX)], &[], 4 * GIB);
        assert_eq!(free.as_slice(), &[r(0, 4 * GIB)]);
        assert_eq!(free.dropped_bytes(), TOP_FRAME - 4 * GIB);
    }

    #[test]
    fn capacity_overflow_keeps_the_lowest_and_counts_the_rest() {
        let extra = 44;
        let memory: Vec<MemoryRegion> = (0..(MAX_FREE_RANGES as u64 + extra))
            .map(|i| ram(i * 2 * FRAME_SIZE, (i * 2 + 1) * FRAME_SIZE))
            .rev()
            .collect();
        let free = FreeRanges::compute(&memory, &[], u64::MAX);
        check(&free);
        assert_eq!(free.as_slice().len(), MAX_FREE_RANGES);
        assert_eq!(free.as_slice()[0], r(0, FRAME_SIZE));
        assert_eq!(free.dropped_bytes(), extra * FRAME_SIZE);
        assert_eq!(free.total_bytes(), MAX_FREE_RANGES as u64 * FRAME_SIZE);
    }

    #[test]
    fn many_reservations_split_one_region_past_capacity() {
        // 300 one-frame holes in one region: more pieces than the list holds.
        let reserved: Vec<ReservedRange> = (0..300u64)
            .map(|i| res((2 * i + 1) * FRAME_SIZE, (2 * i + 2) * FRAME_SIZE))
            .collect();
        let free = FreeRanges::compute(&[ram(0, 601 * FRAME_SIZE)], &reserved, u64::MAX);
        check(&free);
        assert_eq!(free.as_slice().len(), MAX_FREE_RANGES);
        assert_eq!(free.total_bytes() + free.dropped_bytes(), 301 * FRAME_SIZE);
    }

    #[test]
    fn take_aligns_and_splits() {
        let mut free = compute(&[ram(0x1000, 8 * MIB)], &[]);
        let taken = free.take(MIB, 2 * MIB).unwrap();
        assert_eq!(taken, r(2 * MIB, 3 * MIB));
        check(&free);
        assert_eq!(free.as_slice(), &[r(0x1000, 2 * MIB), r(3 * MIB, 8 * MIB)]);
        assert_eq!(free.total_bytes(), 8 * MIB - 0x1000 - MIB);
    }

    #[test]
    fn take_rounds_up_to_frames_and_picks_the_lowest_fit() {
        let mut free = compute(&[ram(0, 0x2000), ram(MIB, 2 * MIB)], &[]);
        // Does not fit the first range: comes from the second.
        assert_eq!(free.take(0x2001, FRAME_SIZE), Some(r(MIB, MIB + 0x3000)));
        // Fits the first exactly: the range disappears.
        assert_eq!(free.take(1, FRAME_SIZE), Some(r(0, 0x1000)));
        assert_eq!(free.take(0x1000, 0), Some(r(0x1000, 0x2000)));
        assert_eq!(free.as_slice(), &[r(MIB + 0x3000, 2 * MIB)]);
        check(&free);
    }

    #[test]
    fn take_refuses_bad_requests() {
        let mut free = compute(&[ram(0, MIB)], &[]);
        assert_eq!(free.take(0, FRAME_SIZE), None);
        assert_eq!(free.take(FRAME_SIZE, 3 * FRAME_SIZE), None);
        assert_eq!(free.take(u64::MAX, FRAME_SIZE), None);
        assert_eq!(free.take(MIB + 1, FRAME_SIZE), None);
        assert_eq!(free.take(FRAME_SIZE, 1 << 63), Some(r(0, FRAME_SIZE)));
        assert_eq!(free.take(FRAME_SIZE, 1 << 63), None);
        assert_eq!(free.as_slice(), &[r(FRAME_SIZE, MIB)]);
    }

    #[test]
    fn take_until_exhausted() {
        let mut free = compute(
            &[ram(0, 16 * FRAME_SIZE), ram(MIB, MIB + 8 * FRAME_SIZE)],
            &[],
        );
        let mut taken = 0;
        while let Some(range) = free.take(3 * FRAME_SIZE, FRAME_SIZE) {
            assert_eq!(range.len(), 3 * FRAME_SIZE);
            taken += 1;
            check(&free);
        }
        // 5 from the first range, 2 from the second; one frame left in each.
        assert_eq!(taken, 7);
        assert_eq!(free.total_bytes(), 3 * FRAME_SIZE);
        assert!(free.take(FRAME_SIZE, FRAME_SIZE).is_some());
        assert!(free.take(FRAME_SIZE, FRAME_SIZE).is_some());
        assert!(free.take(FRAME_SIZE, FRAME_SIZE).is_some());
        assert_eq!(free.take(FRAME_SIZE, FRAME_SIZE), None);
        assert!(free.as_slice().is_empty());
    }

    #[test]
    fn take_at_the_top_does_not_overflow() {
        let mut free = compute(&[ram(TOP_FRAME - 4 * FRAME_SIZE, u64::MAX)], &[]);
        assert_eq!(free.take(8 * FRAME_SIZE, FRAME_SIZE), None);
        assert_eq!(free.take(FRAME_SIZE, 4 * GIB), None);
        assert_eq!(
            free.take(4 * FRAME_SIZE, FRAME_SIZE),
            Some(r(TOP_FRAME - 4 * FRAME_SIZE, TOP_FRAME))
        );
        assert!(free.as_slice().is_empty());
    }

    #[test]
    fn take_on_a_full_list_drops_the_smaller_leftover() {
        let memory: Vec<MemoryRegion> = (0..MAX_FREE_RANGES as u64)
            .map(|i| ram(i * 64 * MIB + FRAME_SIZE, i * 64 * MIB + 8 * MIB))
            .collect();
        let mut free = compute(&memory, &[]);
        assert_eq!(free.as_slice().len(), MAX_FREE_RANGES);
        let before = free.total_bytes();
        // Splits [4K, 8M) around [2M, 4M): the list is full, so the smaller [4K, 2M) goes.
        assert_eq!(free.take(2 * MIB, 2 * MIB), Some(r(2 * MIB, 4 * MIB)));
        check(&free);
        assert_eq!(free.as_slice().len(), MAX_FREE_RANGES);
        assert_eq!(free.as_slice()[0], r(4 * MIB, 8 * MIB));
        assert_eq!(free.dropped_bytes(), 2 * MIB - FRAME_SIZE);
        assert_eq!(free.total_bytes(), before - 4 * MIB + FRAME_SIZE);
        // When the upper piece is the smaller one, it is the one given up.
        let mut memory = std::vec![ram(FRAME_SIZE, 2 * MIB + MIB / 2)];
        memory.extend((1..MAX_FREE_RANGES as u64).map(|i| ram(i * GIB, i * GIB + FRAME_SIZE)));
        let mut free = compute(&memory, &[]);
        assert_eq!(free.as_slice().len(), MAX_FREE_RANGES);
        assert_eq!(free.take(MIB, MIB), Some(r(MIB, 2 * MIB)));
        check(&free);
        assert_eq!(free.as_slice()[0], r(FRAME_SIZE, MIB));
        assert_eq!(free.as_slice()[1], r(GIB, GIB + FRAME_SIZE));
        assert_eq!(free.dropped_bytes(), MIB / 2);
    }

    /// Deterministic xorshift64 so failures reproduce.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// True when every byte of `range` is covered by the union of `cover`.
    fn covered(range: PhysRange, cover: &[PhysRange]) -> bool {
        let mut at = range.start;
        while at < range.end {
            match cover
                .iter()
                .filter(|c| contains(**c, at))
                .map(|c| c.end)
                .max()
            {
                Some(end) => at = end,
                None => return false,
            }
        }
        true
    }

    #[test]
    fn random_maps_match_a_frame_by_frame_model() {
        const FRAMES: u64 = 48;
        // Endpoints on a 1 KiB grid, so partial frames are common.
        let grid = KIB;
        let mut rng = Rng(0x5eed_1234_abcd_0001);
        let (mut listed_total, mut dropped_total) = (0, 0);
        for _ in 0..2000 {
            let mut memory = Vec::new();
            for _ in 0..rng.below(8) {
                let start = rng.below(FRAMES * FRAME_SIZE / grid) * grid;
                let len = rng.below(16 * FRAME_SIZE / grid) * grid;
                let kind = match rng.below(6) {
                    0 => RegionKind::Reserved,
                    1 => RegionKind::AcpiReclaimable,
                    _ => RegionKind::Usable,
                };
                // Occasionally inverted.
                let (s, e) = if rng.below(10) == 0 {
                    (start + len, start)
                } else {
                    (start, start + len)
                };
                memory.push(mem(s, e, kind));
            }
            let reserved: Vec<ReservedRange> = (0..rng.below(4))
                .map(|_| {
                    let start = rng.below(FRAMES * FRAME_SIZE / grid) * grid;
                    res(start, start + rng.below(4 * FRAME_SIZE / grid) * grid)
                })
                .collect();
            let limit = rng.below(FRAMES * FRAME_SIZE / grid + 8) * grid;
            let free = FreeRanges::compute(&memory, &reserved, limit);
            check(&free);

            let usable: Vec<PhysRange> = memory
                .iter()
                .filter(|m| m.kind == RegionKind::Usable && m.range.start < m.range.end)
                .map(|m| m.range)
                .collect();
            let blocking: Vec<PhysRange> = memory
                .iter()
                .filter(|m| m.kind != RegionKind::Usable)
                .map(|m| m.range)
                .chain(reserved.iter().map(|r| r.range))
                .filter(|b| b.start < b.end)
                .collect();
            let mut dropped = 0;
            for frame in 0..FRAMES + 16 {
                let f = r(frame * FRAME_SIZE, (frame + 1) * FRAME_SIZE);
                let is_free = covered(f, &usable)
                    && !blocking.iter().any(|b| b.start < f.end && f.start < b.end);
                let listed = free
                    .as_slice()
                    .iter()
                    .any(|x| x.start <= f.start && f.end <= x.end);
                assert_eq!(
                    listed,
                    is_free && f.end <= limit,
                    "frame {frame:#x}: memory {memory:?} reserved {reserved:?} limit {limit:#x}"
                );
                if is_free && f.end > limit {
                    dropped += FRAME_SIZE;
                }
            }
            assert_eq!(free.dropped_bytes(), dropped);
            listed_total += free.as_slice().len();
            dropped_total += dropped;
        }
        // The generator must actually produce free memory on both sides of the limit.
        assert!(listed_total > 1000 && dropped_total > 0);
    }

    #[test]
    fn ram_ranges_merge_ram_widen_to_frames_and_skip_holes() {
        let region = |start, end, kind| MemoryRegion {
            range: PhysRange { start, end },
            kind,
        };
        let map = [
            region(0x10_0000, 0x20_0800, RegionKind::Usable),
            region(0x0, 0x9fc00, RegionKind::Usable),
            region(0x9fc00, 0xa0000, RegionKind::Reserved),
            region(0x20_0000, 0x30_0000, RegionKind::AcpiReclaimable),
            region(0xfee0_0000, 0xfee0_1000, RegionKind::Reserved),
            region(0x1_0000_0000, 0x1_4000_0000, RegionKind::Usable),
        ];
        let ranges = ram_ranges(&map);
        assert_eq!(
            ranges.as_slice(),
            [
                PhysRange {
                    start: 0,
                    end: 0xa0000
                },
                PhysRange {
                    start: 0x10_0000,
                    end: 0x30_0000
                },
                PhysRange {
                    start: 0x1_0000_0000,
                    end: 0x1_4000_0000
                },
            ]
        );
    }
}
