//! The physical frame allocator: one bit per frame over the free ranges of the boot memory map.
//!
//! Owns which frames are free. It is given its bitmap storage by the caller (boot places it in
//! RAM through the HHDM), so it never allocates and never touches the frames it manages. It must
//! never hand out a frame outside the free ranges it was built from, nor accept a free of a
//! frame it does not own or that is already free.

use crate::boot_info::PhysRange;
use crate::memory_map::{FRAME_SIZE, FreeRanges, MAX_FREE_RANGES};
use arrayvec::ArrayVec;

/// Why a frame operation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// The bitmap storage given to [`FrameAllocator::new`] is too small for the ranges.
    BitmapTooSmall {
        /// Words the ranges need.
        needed: usize,
    },
    /// The address is not a multiple of [`FRAME_SIZE`].
    Unaligned,
    /// The frame is not one this allocator manages.
    NotManaged,
    /// The frame is already free.
    DoubleFree,
}

/// Bits per bitmap word.
const WORD_BITS: usize = u64::BITS as usize;

/// A bitmap frame allocator (bit set = frame free).
#[derive(Debug)]
pub struct FrameAllocator<'a> {
    bitmap: &'a mut [u64],
    /// Physical address of the frame that bit 0 describes.
    base: u64,
    /// Number of frames the bitmap spans (free or not).
    span_frames: usize,
    /// Frames currently free.
    free_frames: usize,
    /// Frames that were free at construction.
    managed_frames: usize,
    /// Word index where the next search starts (keeps allocation O(1) amortised).
    next_word: usize,
    /// The ranges the allocator was built from. A clear bit means either "allocated" or "never
    /// ours" (a hole, or a frame taken before construction); these tell the two apart on free,
    /// and let searches skip holes instead of scanning their all-zero words.
    ranges: ArrayVec<PhysRange, MAX_FREE_RANGES>,
    /// `(limit, count)` while frames at or above `limit` are withheld.
    withheld: Option<(u64, usize)>,
}

impl<'a> FrameAllocator<'a> {
    /// Number of `u64` words of bitmap storage needed for `ranges` (one bit per frame from the
    /// lowest to the highest free frame).
    pub fn bitmap_words(ranges: &FreeRanges) -> usize {
        span(ranges).1.div_ceil(WORD_BITS)
    }

    /// Builds the allocator with every frame of `ranges` free. `bitmap` may be larger than
    /// needed; its contents are overwritten.
    ///
    /// Only the first [`bitmap_words`](Self::bitmap_words) words are used afterwards; the rest
    /// are zeroed and left alone.
    pub fn new(ranges: &FreeRanges, bitmap: &'a mut [u64]) -> Result<Self, FrameError> {
        let (base, span_frames) = span(ranges);
        let needed = span_frames.div_ceil(WORD_BITS);
        if bitmap.len() < needed {
            return Err(FrameError::BitmapTooSmall { needed });
        }
        bitmap.fill(0);
        let mut this = Self {
            bitmap: &mut bitmap[..needed],
            base,
            span_frames,
            free_frames: 0,
            managed_frames: 0,
            next_word: 0,
            ranges: ranges.as_slice().iter().copied().collect(),
            withheld: None,
        };
        for i in 0..this.ranges.len() {
            let (first, end) = this.frame_span(this.ranges[i]);
            this.fill(first, end, true);
            this.managed_frames += end - first;
        }
        this.free_frames = this.managed_frames;
        Ok(this)
    }

    /// Takes one free frame and returns its physical address.
    ///
    /// The search resumes where the previous one stopped and wraps around once, so a run of
    /// allocations walks the bitmap once instead of rescanning the allocated prefix each time.
    pub fn allocate(&mut self) -> Option<u64> {
        if self.free_frames == 0 {
            return None;
        }
        let word = self
            .find_free_word(self.next_word, self.bitmap.len())
            .or_else(|| self.find_free_word(0, self.next_word))?;
        let bit = self.bitmap[word].trailing_zeros() as usize;
        self.bitmap[word] &= !(1 << bit);
        self.free_frames -= 1;
        self.next_word = word;
        Some(self.address(word * WORD_BITS + bit))
    }

    /// Takes `count` physically contiguous frames whose first address is aligned to
    /// `align_frames` frames (a power of two).
    ///
    /// Returns the lowest such run. `None` when no run fits, when `count` is 0, or when
    /// `align_frames` is not a power of two (0 included). The alignment is of the physical
    /// address, not of the position in the bitmap.
    pub fn allocate_contiguous(&mut self, count: usize, align_frames: usize) -> Option<PhysRange> {
        if count == 0 || !align_frames.is_power_of_two() || count > self.free_frames {
            return None;
        }
        for i in 0..self.ranges.len() {
            let (first, end) = self.frame_span(self.ranges[i]);
            let mut candidate = self.align_index(first, align_frames);
            while let Some(start) = candidate {
                let Some(stop) = start.checked_add(count).filter(|&stop| stop <= end) else {
                    break;
                };
                match self.first_clear(start, stop) {
                    None => {
                        self.fill(start, stop, false);
                        self.free_frames -= count;
                        return Some(PhysRange {
                            start: self.address(start),
                            end: self.address(stop),
                        });
                    }
                    // No run starting at or before the used frame can fit: jump past it.
                    Some(used) => candidate = self.align_index(used + 1, align_frames),
                }
            }
        }
        None
    }

    /// Returns one frame. Refuses unaligned, unmanaged and already-free frames.
    ///
    /// Checks in that order: [`FrameError::Unaligned`], then [`FrameError::NotManaged`] (outside
    /// every range the allocator was built from, including holes between them), then
    /// [`FrameError::DoubleFree`]. A refused free changes nothing.
    pub fn free(&mut self, addr: u64) -> Result<(), FrameError> {
        if !addr.is_multiple_of(FRAME_SIZE) {
            return Err(FrameError::Unaligned);
        }
        if !self.manages(addr) {
            return Err(FrameError::NotManaged);
        }
        let index = self.index(addr);
        let (word, mask) = (index / WORD_BITS, 1 << (index % WORD_BITS));
        if self.bitmap[word] & mask != 0 {
            return Err(FrameError::DoubleFree);
        }
        self.bitmap[word] |= mask;
        self.free_frames += 1;
        Ok(())
    }

    /// Takes every free frame at or above `limit` out of circulation until
    /// [`release_withheld`](Self::release_withheld), and returns how many.
    ///
    /// Boot uses this for RAM its early page tables cannot reach yet: the bitmap covers all of
    /// RAM from the start, but frames the kernel cannot touch must not be handed out. Call it
    /// once, right after [`new`](Self::new), before anything is allocated above `limit`.
    pub fn withhold_from(&mut self, limit: u64) -> usize {
        let count = self.set_free_at_or_above(limit, false);
        self.withheld = Some((limit, count));
        self.free_frames -= count;
        count
    }

    /// Returns the frames [`withhold_from`](Self::withhold_from) took out (once the kernel can
    /// reach them) and reports how many.
    pub fn release_withheld(&mut self) -> usize {
        let Some((limit, count)) = self.withheld.take() else {
            return 0;
        };
        let released = self.set_free_at_or_above(limit, true);
        debug_assert_eq!(
            released, count,
            "withheld frames changed state while withheld"
        );
        self.free_frames += released;
        released
    }

    /// Frames currently withheld.
    pub fn withheld_frames(&self) -> usize {
        self.withheld.map_or(0, |(_, count)| count)
    }

    /// Flips every managed frame at or above `limit` whose bit is `!free` to `free`; returns how
    /// many changed.
    fn set_free_at_or_above(&mut self, limit: u64, free: bool) -> usize {
        let mut changed = 0;
        for i in 0..self.ranges.len() {
            let range = self.ranges[i];
            if range.end <= limit {
                continue;
            }
            let start = range.start.max(limit.next_multiple_of(FRAME_SIZE));
            for index in self.index(start)..self.index(range.end) {
                let (word, mask) = (index / WORD_BITS, 1u64 << (index % WORD_BITS));
                if (self.bitmap[word] & mask != 0) != free {
                    self.bitmap[word] ^= mask;
                    changed += 1;
                }
            }
        }
        changed
    }

    /// Frames free right now.
    pub fn free_frames(&self) -> usize {
        self.free_frames
    }

    /// Frames the allocator manages (free at construction).
    pub fn managed_frames(&self) -> usize {
        self.managed_frames
    }

    /// True when the frame containing `addr` is one this allocator manages (free or allocated).
    pub fn manages(&self, addr: u64) -> bool {
        let i = self.ranges.partition_point(|r| r.end <= addr);
        self.ranges.get(i).is_some_and(|r| r.start <= addr)
    }

    /// True when the frame at the frame-aligned `addr` is managed and currently free.
    pub fn is_free(&self, addr: u64) -> bool {
        if !addr.is_multiple_of(FRAME_SIZE) || !self.manages(addr) {
            return false;
        }
        let index = self.index(addr);
        self.bitmap[index / WORD_BITS] & (1 << (index % WORD_BITS)) != 0
    }

    /// Bit index of a managed address.
    fn index(&self, addr: u64) -> usize {
        // In range by construction: `addr` lies inside one of `ranges`, which the span covers.
        ((addr - self.base) / FRAME_SIZE) as usize
    }

    /// Physical address of bit `index`.
    fn address(&self, index: usize) -> u64 {
        self.base + index as u64 * FRAME_SIZE
    }

    /// Bit indices `[first, end)` of a range.
    fn frame_span(&self, range: PhysRange) -> (usize, usize) {
        (self.index(range.start), self.index(range.end))
    }

    /// The lowest bit index at or above `index` whose physical frame number is a multiple of
    /// `align` (a power of two), or `None` when that lies beyond the address space.
    fn align_index(&self, index: usize, align: usize) -> Option<usize> {
        let base_frame = self.base / FRAME_SIZE;
        let frame = base_frame.checked_add(u64::try_from(index).ok()?)?;
        let align = u64::try_from(align).ok()?;
        let aligned = frame.checked_add(align - 1)? & !(align - 1);
        usize::try_from(aligned - base_frame).ok()
    }

    /// The first word in `[lo, hi)` with a free frame, visiting only words that cover a range.
    fn find_free_word(&self, lo: usize, hi: usize) -> Option<usize> {
        let first = self
            .ranges
            .partition_point(|r| self.index(r.end).div_ceil(WORD_BITS) <= lo);
        for &range in &self.ranges[first..] {
            let (start, end) = self.frame_span(range);
            let from = (start / WORD_BITS).max(lo);
            let to = end.div_ceil(WORD_BITS).min(hi);
            if from >= hi {
                break;
            }
            if let Some(offset) = self.bitmap[from..to.max(from)].iter().position(|&w| w != 0) {
                return Some(from + offset);
            }
        }
        None
    }

    /// The first clear bit in `[from, to)`, a word at a time.
    fn first_clear(&self, from: usize, to: usize) -> Option<usize> {
        let mut at = from;
        while at < to {
            let (word, bit) = (at / WORD_BITS, at % WORD_BITS);
            let n = (WORD_BITS - bit).min(to - at);
            let clear = !self.bitmap[word] & mask(bit, n);
            if clear != 0 {
                return Some(word * WORD_BITS + clear.trailing_zeros() as usize);
            }
            at += n;
        }
        None
    }

    /// Sets (`free`) or clears bits `[from, to)`, a word at a time.
    fn fill(&mut self, from: usize, to: usize, free: bool) {
        debug_assert!(to <= self.span_frames);
        let mut at = from;
        while at < to {
            let (word, bit) = (at / WORD_BITS, at % WORD_BITS);
            let n = (WORD_BITS - bit).min(to - at);
            if free {
                self.bitmap[word] |= mask(bit, n);
            } else {
                self.bitmap[word] &= !mask(bit, n);
            }
            at += n;
        }
    }
}

/// `n` (1..=64) set bits starting at bit `shift`, with `shift + n <= 64`.
fn mask(shift: usize, n: usize) -> u64 {
    (u64::MAX >> (WORD_BITS - n)) << shift
}

/// Physical address of the first free frame and the number of frames up to the last one.
fn span(ranges: &FreeRanges) -> (u64, usize) {
    match (ranges.as_slice().first(), ranges.as_slice().last()) {
        (Some(first), Some(last)) => {
            let frames = (last.end - first.start) / FRAME_SIZE;
            // Only a 32-bit host could fail this; then no storage can be big enough anyway.
            (first.start, usize::try_from(frames).unwrap_or(usize::MAX))
        }
        _ => (0, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot_info::{MemoryRegion, RegionKind, ReservedKind, ReservedRange};
    use std::collections::BTreeSet;
    use std::vec;
    use std::vec::Vec;

    const MIB: u64 = 1024 * 1024;
    const GIB: u64 = 1024 * MIB;
    const TIB: u64 = 1024 * GIB;

    fn r(start: u64, end: u64) -> PhysRange {
        PhysRange { start, end }
    }

    fn ram(start: u64, end: u64) -> MemoryRegion {
        MemoryRegion {
            range: r(start, end),
            kind: RegionKind::Usable,
        }
    }

    fn res(start: u64, end: u64) -> ReservedRange {
        ReservedRange {
            range: r(start, end),
            kind: ReservedKind::BootModule,
        }
    }

    fn ranges(memory: &[MemoryRegion], reserved: &[ReservedRange]) -> FreeRanges {
        FreeRanges::compute(memory, reserved, u64::MAX)
    }

    fn storage(free: &FreeRanges) -> Vec<u64> {
        vec![0; FrameAllocator::bitmap_words(free)]
    }

    fn in_ranges(free: &FreeRanges, addr: u64) -> bool {
        free.as_slice()
            .iter()
            .any(|r| r.start <= addr && addr + FRAME_SIZE <= r.end)
    }

    /// Allocates every frame one at a time, checking each, and returns them in order.
    fn drain(alloc: &mut FrameAllocator<'_>, free: &FreeRanges) -> Vec<u64> {
        let mut seen = BTreeSet::new();
        let mut order = Vec::new();
        let start = alloc.free_frames();
        while let Some(addr) = alloc.allocate() {
            assert_eq!(addr % FRAME_SIZE, 0);
            assert!(in_ranges(free, addr), "{addr:#x} is not free memory");
            assert!(seen.insert(addr), "{addr:#x} handed out twice");
            order.push(addr);
            assert_eq!(alloc.free_frames(), start - order.len());
        }
        assert_eq!(alloc.free_frames(), 0);
        order
    }

    #[test]
    fn bitmap_words_covers_the_span_including_holes() {
        assert_eq!(FrameAllocator::bitmap_words(&FreeRanges::default()), 0);
        let one = ranges(&[ram(0x5000, 0x6000)], &[]);
        assert_eq!(FrameAllocator::bitmap_words(&one), 1);
        let sixty_four = ranges(&[ram(0, 64 * FRAME_SIZE)], &[]);
        assert_eq!(FrameAllocator::bitmap_words(&sixty_four), 1);
        let sixty_five = ranges(&[ram(0, 65 * FRAME_SIZE)], &[]);
        assert_eq!(FrameAllocator::bitmap_words(&sixty_five), 2);
        // Two frames 129 frames apart: the hole is in the span.
        let holes = ranges(
            &[
                ram(MIB, MIB + FRAME_SIZE),
                ram(MIB + 129 * FRAME_SIZE, MIB + 130 * FRAME_SIZE),
            ],
            &[],
        );
        assert_eq!(FrameAllocator::bitmap_words(&holes), 3);
        // 3 GiB: 786432 frames.
        let big = ranges(&[ram(GIB, 4 * GIB)], &[]);
        assert_eq!(FrameAllocator::bitmap_words(&big), 786_432 / 64);
    }

    #[test]
    fn storage_must_be_big_enough() {
        let free = ranges(&[ram(0, 65 * FRAME_SIZE)], &[]);
        let mut small = [0u64; 1];
        assert_eq!(
            FrameAllocator::new(&free, &mut small).unwrap_err(),
            FrameError::BitmapTooSmall { needed: 2 }
        );
        let mut none: [u64; 0] = [];
        assert!(FrameAllocator::new(&free, &mut none).is_err());
        // Nothing to manage needs no storage.
        let mut alloc = FrameAllocator::new(&FreeRanges::default(), &mut none).unwrap();
        assert_eq!(alloc.managed_frames(), 0);
        assert_eq!(alloc.allocate(), None);
        assert_eq!(alloc.allocate_contiguous(1, 1), None);
        assert_eq!(alloc.free(0), Err(FrameError::NotManaged));
    }

    #[test]
    fn oversized_dirty_storage_is_overwritten() {
        let free = ranges(&[ram(MIB, MIB + 10 * FRAME_SIZE)], &[]);
        let mut bitmap = [u64::MAX; 8];
        let mut alloc = FrameAllocator::new(&free, &mut bitmap).unwrap();
        assert_eq!(alloc.managed_frames(), 10);
        assert_eq!(drain(&mut alloc, &free).len(), 10);
        drop(alloc);
        // Words past the span were cleared too and are no longer ours.
        assert!(bitmap[1..].iter().all(|&w| w == 0));
    }

    #[test]
    fn allocate_everything_then_free_everything() {
        let memory = [
            ram(0, 640 * 1024),
            ram(MIB, 64 * MIB),
            ram(4 * GIB, 4 * GIB + MIB),
        ];
        let free = ranges(&memory, &[res(0, MIB), res(2 * MIB, 4 * MIB)]);
        let mut bitmap = storage(&free);
        let mut alloc = FrameAllocator::new(&free, &mut bitmap).unwrap();
        let start = alloc.free_frames();
        assert_eq!(start as u64 * FRAME_SIZE, free.total_bytes());
        assert_eq!(alloc.managed_frames(), start);

        let frames = drain(&mut alloc, &free);
        assert_eq!(frames.len(), start);
        assert_eq!(alloc.allocate(), None);
        assert_eq!(alloc.allocate_contiguous(1, 1), None);
        for &addr in frames.iter().rev() {
            assert!(!alloc.is_free(addr));
            alloc.free(addr).unwrap();
            assert!(alloc.is_free(addr));
        }
        assert_eq!(alloc.free_frames(), start);
        // And the whole set is available again.
        assert_eq!(drain(&mut alloc, &free).len(), start);
    }

    #[test]
    fn reserved_and_hole_frames_are_never_handed_out() {
        let memory = [
            ram(0, 32 * MIB),
            MemoryRegion {
                range: r(8 * MIB, 9 * MIB),
                kind: RegionKind::AcpiNvs,
            },
            ram(40 * MIB, 48 * MIB),
        ];
        let reserved = [res(MIB, 2 * MIB + 1), res(47 * MIB, 50 * MIB)];
        let free = ranges(&memory, &reserved);
        let mut bitmap = storage(&free);
        let mut alloc = FrameAllocator::new(&free, &mut bitmap).unwrap();
        for addr in drain(&mut alloc, &free) {
            assert!(!(MIB..2 * MIB + FRAME_SIZE).contains(&addr));
            assert!(!(8 * MIB..9 * MIB).contains(&addr));
            assert!(!(32 * MIB..40 * MIB).contains(&addr));
            assert!(addr < 47 * MIB);
        }
    }

    #[test]
    fn allocation_ascends_and_wraps_around() {
        let free = ranges(&[ram(0x10000, 0x10000 + 200 * FRAME_SIZE)], &[]);
        let mut bitmap = storage(&free);
        let mut alloc = FrameAllocator::new(&free, &mut bitmap).unwrap();
        let first: Vec<u64> = (0..100).map(|_| alloc.allocate().unwrap()).collect();
        for (i, addr) in first.iter().enumerate() {
            assert_eq!(*addr, 0x10000 + i as u64 * FRAME_SIZE);
        }
        // A frame freed behind the search position comes back only after the rest are used.
        alloc.free(first[3]).unwrap();
        let rest: Vec<u64> = (0..100).map(|_| alloc.allocate().unwrap()).collect();
        assert!(!rest.contains(&first[3]));
        assert_eq!(alloc.allocate(), Some(first[3]));
        assert_eq!(alloc.allocate(), None);
    }

    #[test]
    fn free_refuses_every_bad_frame() {
        let memory = [ram(MIB, 2 * MIB), ram(3 * MIB, 4 * MIB)];
        let mut free = ranges(&memory, &[]);
        // Taken before construction (like the bitmap itself): never the allocator's.
        let taken = free.take(FRAME_SIZE, FRAME_SIZE).unwrap();
        assert_eq!(taken.start, MIB);
        let mut bitmap = storage(&free);
        let mut alloc = FrameAllocator::new(&free, &mut bitmap).unwrap();
        let managed = alloc.managed_frames();
        assert_eq!(managed, 511);

        let frame = alloc.allocate().unwrap();
        let check = |alloc: &mut FrameAllocator<'_>, addr, err| {
            let before = alloc.free_frames();
            assert_eq!(alloc.free(addr), Err(err), "{addr:#x}");
            assert_eq!(alloc.free_frames(), before);
        };
        check(&mut alloc, frame + 1, FrameError::Unaligned);
        check(&mut alloc, frame + FRAME_SIZE / 2, FrameError::Unaligned);
        check(&mut alloc, u64::MAX, FrameError::Unaligned);
        check(&mut alloc, taken.start, FrameError::NotManaged);
        check(&mut alloc, 0, FrameError::NotManaged);
        check(&mut alloc, MIB - FRAME_SIZE, FrameError::NotManaged);
        check(&mut alloc, 2 * MIB, FrameError::NotManaged); // first frame of the hole
        check(&mut alloc, 3 * MIB - FRAME_SIZE, FrameError::NotManaged); // last of the hole
        check(&mut alloc, 4 * MIB, FrameError::NotManaged);
        check(
            &mut alloc,
            u64::MAX - (FRAME_SIZE - 1),
            FrameError::NotManaged,
        );
        // Never allocated.
        check(&mut alloc, 3 * MIB, FrameError::DoubleFree);
        check(&mut alloc, 4 * MIB - FRAME_SIZE, FrameError::DoubleFree);
        // Freed twice.
        assert_eq!(alloc.free(frame), Ok(()));
        check(&mut alloc, frame, FrameError::DoubleFree);
        assert_eq!(alloc.free_frames(), managed);
        assert!(alloc.manages(frame) && !alloc.manages(taken.start));
    }

    #[test]
    fn contiguous_allocation_aligns_the_physical_address() {
        // The bitmap starts at 0x3000, so bit alignment is not address alignment.
        let free = ranges(&[ram(0x3000, 0x3000 + 64 * FRAME_SIZE)], &[]);
        let mut bitmap = storage(&free);
        let mut alloc = FrameAllocator::new(&free, &mut bitmap).unwrap();
        let a = alloc.allocate_contiguous(3, 4).unwrap();
        assert_eq!(a, r(0x4000, 0x7000));
        let b = alloc.allocate_contiguous(2, 4).unwrap();
        assert_eq!(b, r(0x8000, 0xa000));
        // Unaligned requests fill the gaps.
        assert_eq!(alloc.allocate_contiguous(1, 1), Some(r(0x3000, 0x4000)));
        assert_eq!(alloc.allocate_contiguous(2, 1), Some(r(0xa000, 0xc000)));
        assert_eq!(alloc.allocate_contiguous(1, 1), Some(r(0x7000, 0x8000)));
        assert_eq!(alloc.free_frames(), 64 - 9);
        for range in [a, b] {
            for addr in (range.start..range.end).step_by(FRAME_SIZE as usize) {
                assert!(!alloc.is_free(addr));
                alloc.free(addr).unwrap();
            }
        }
        assert_eq!(alloc.free_frames(), 64 - 4);
    }

    #[test]
    fn contiguous_allocation_skips_used_frames_and_holes() {
        // Two 8-frame ranges with a hole between them.
        let memory = [ram(0, 8 * FRAME_SIZE), ram(9 * FRAME_SIZE, 17 * FRAME_SIZE)];
        let free = ranges(&memory, &[]);
        let mut bitmap = storage(&free);
        let mut alloc = FrameAllocator::new(&free, &mut bitmap).unwrap();
        assert_eq!(alloc.managed_frames(), 16);
        // 9 frames would fit only across the hole.
        assert_eq!(alloc.allocate_contiguous(9, 1), None);
        assert_eq!(alloc.allocate_contiguous(17, 1), None);
        // Punch a used frame into the first range: a run of 5 must go past it.
        alloc.allocate_contiguous(1, 1).unwrap(); // frame 0
        alloc.allocate_contiguous(1, 1).unwrap(); // frame 1
        alloc.free(0).unwrap();
        assert_eq!(
            alloc.allocate_contiguous(5, 1),
            Some(r(2 * FRAME_SIZE, 7 * FRAME_SIZE))
        );
        assert_eq!(
            alloc.allocate_contiguous(2, 1),
            Some(r(9 * FRAME_SIZE, 11 * FRAME_SIZE))
        );
        // Two frames aligned to 8: frame 1 is used, frame 8 is the hole, frame 16 is the last.
        assert_eq!(alloc.allocate_contiguous(2, 8), None);
        assert_eq!(alloc.allocate_contiguous(1, 8), Some(r(0, FRAME_SIZE)));
        assert_eq!(
            alloc.allocate_contiguous(1, 8),
            Some(r(16 * FRAME_SIZE, 17 * FRAME_SIZE))
        );
        // The whole second range's remainder.
        assert_eq!(
            alloc.allocate_contiguous(5, 1),
            Some(r(11 * FRAME_SIZE, 16 * FRAME_SIZE))
        );
        assert_eq!(alloc.free_frames(), 1); // frame 7
        assert_eq!(alloc.allocate_contiguous(2, 1), None);
        assert_eq!(alloc.allocate_contiguous(1, 2), None);
        assert_eq!(alloc.allocate(), Some(7 * FRAME_SIZE));
    }

    #[test]
    fn contiguous_allocation_refuses_bad_requests() {
        let free = ranges(&[ram(0, 64 * FRAME_SIZE)], &[]);
        let mut bitmap = storage(&free);
        let mut alloc = FrameAllocator::new(&free, &mut bitmap).unwrap();
        assert_eq!(alloc.allocate_contiguous(0, 1), None);
        assert_eq!(alloc.allocate_contiguous(1, 0), None);
        assert_eq!(alloc.allocate_contiguous(1, 3), None);
        assert_eq!(alloc.allocate_contiguous(65, 1), None);
        assert_eq!(alloc.allocate_contiguous(usize::MAX, 1), None);
        assert_eq!(alloc.allocate_contiguous(1, 128), Some(r(0, FRAME_SIZE)));
        assert_eq!(alloc.allocate_contiguous(1, 128), None);
        assert_eq!(alloc.allocate_contiguous(1, 1 << (usize::BITS - 1)), None);
        assert_eq!(alloc.free_frames(), 63);
        assert_eq!(
            alloc.allocate_contiguous(63, 1),
            Some(r(FRAME_SIZE, 64 * FRAME_SIZE))
        );
        assert_eq!(alloc.free_frames(), 0);
    }

    #[test]
    fn three_gib_of_ram() {
        let memory = [ram(0, 640 * 1024), ram(MIB, 3 * GIB)];
        let free = ranges(&memory, &[res(MIB, 5 * MIB)]);
        let mut bitmap = storage(&free);
        let mut alloc = FrameAllocator::new(&free, &mut bitmap).unwrap();
        let start = alloc.free_frames();
        assert_eq!(start as u64, (640 * 1024 + 3 * GIB - 5 * MIB) / FRAME_SIZE);
        // A 1 GiB-aligned 1 GiB block and a few 2 MiB blocks.
        let huge = alloc.allocate_contiguous(262_144, 262_144).unwrap();
        assert_eq!(huge, r(GIB, 2 * GIB));
        let mid = alloc.allocate_contiguous(512, 512).unwrap();
        assert_eq!(mid, r(6 * MIB, 8 * MIB));
        assert_eq!(alloc.free_frames(), start - 262_144 - 512);
        let frames = drain(&mut alloc, &free);
        for range in [huge, mid] {
            for addr in (range.start..range.end).step_by(FRAME_SIZE as usize) {
                alloc.free(addr).unwrap();
            }
        }
        for addr in frames {
            alloc.free(addr).unwrap();
        }
        assert_eq!(alloc.free_frames(), start);
    }

    #[test]
    fn a_terabyte_hole_is_skipped() {
        let memory = [ram(MIB, 2 * MIB), ram(TIB, TIB + MIB)];
        let free = ranges(&memory, &[]);
        // One bit per frame from 1 MiB up to 1 TiB + 1 MiB.
        assert_eq!(
            FrameAllocator::bitmap_words(&free),
            (TIB / FRAME_SIZE / 64) as usize
        );
        let mut bitmap = storage(&free);
        let mut alloc = FrameAllocator::new(&free, &mut bitmap).unwrap();
        assert_eq!(alloc.managed_frames(), 512);
        let frames = drain(&mut alloc, &free);
        assert_eq!(frames.len(), 512);
        assert_eq!(frames[256], TIB);
        assert_eq!(alloc.free(TIB / 2), Err(FrameError::NotManaged));
        // The search stopped in the top range; it wraps across the hole to the bottom one.
        alloc.free(frames[0]).unwrap();
        assert_eq!(alloc.allocate(), Some(frames[0]));
        alloc.free(frames[511]).unwrap();
        assert_eq!(
            alloc.allocate_contiguous(1, 1),
            Some(r(frames[511], TIB + MIB))
        );
    }

    #[test]
    fn a_terabyte_of_ram() {
        let free = ranges(&[ram(0, TIB)], &[]);
        let mut bitmap = storage(&free);
        assert_eq!(bitmap.len(), 1 << 22);
        let mut alloc = FrameAllocator::new(&free, &mut bitmap).unwrap();
        assert_eq!(alloc.managed_frames(), 1 << 28);
        let block = alloc.allocate_contiguous(1 << 18, 1 << 18).unwrap();
        assert_eq!(block, r(0, GIB));
        assert_eq!(alloc.allocate(), Some(GIB));
        assert_eq!(alloc.free_frames(), (1 << 28) - (1 << 18) - 1);
    }

    #[test]
    fn frames_at_the_top_of_the_address_space() {
        let top = u64::MAX - (FRAME_SIZE - 1);
        let free = ranges(&[ram(top - 100 * FRAME_SIZE, u64::MAX)], &[]);
        let mut bitmap = storage(&free);
        let mut alloc = FrameAllocator::new(&free, &mut bitmap).unwrap();
        assert_eq!(alloc.managed_frames(), 100);
        assert_eq!(alloc.allocate_contiguous(1, 1 << 40), None);
        let frames = drain(&mut alloc, &free);
        assert_eq!(*frames.last().unwrap(), top - FRAME_SIZE);
        assert_eq!(alloc.free(top), Err(FrameError::NotManaged));
        for addr in frames {
            alloc.free(addr).unwrap();
        }
        assert_eq!(
            alloc.allocate_contiguous(100, 1),
            Some(r(top - 100 * FRAME_SIZE, top))
        );

        // A span from 0 to the top cannot be given storage, and says how much it needs.
        let free = ranges(&[ram(0, FRAME_SIZE), ram(top - FRAME_SIZE, u64::MAX)], &[]);
        let needed = FrameAllocator::bitmap_words(&free);
        assert_eq!(needed as u64, (top / FRAME_SIZE).div_ceil(64));
        let mut small = [0u64; 4];
        assert_eq!(
            FrameAllocator::new(&free, &mut small).unwrap_err(),
            FrameError::BitmapTooSmall { needed }
        );
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

    #[test]
    fn random_operations_match_a_simple_model() {
        let memory = [
            ram(0x3000, 0x3000 + 70 * FRAME_SIZE),
            ram(0x10_0000, 0x10_0000 + 130 * FRAME_SIZE),
            ram(0x20_0000, 0x20_0000 + 3 * FRAME_SIZE),
        ];
        let mut free = ranges(&memory, &[res(0x10_8000, 0x10_a800)]);
        free.take(FRAME_SIZE, 0x10_0000).unwrap();
        let managed: BTreeSet<u64> = free
            .as_slice()
            .iter()
            .flat_map(|r| (r.start..r.end).step_by(FRAME_SIZE as usize))
            .collect();
        let lowest = *managed.first().unwrap();
        let highest = *managed.last().unwrap();
        let mut rng = Rng(0x0123_4567_89ab_cdef);
        for _ in 0..20 {
            let mut bitmap = storage(&free);
            let mut alloc = FrameAllocator::new(&free, &mut bitmap).unwrap();
            assert_eq!(alloc.managed_frames(), managed.len());
            let mut used: BTreeSet<u64> = BTreeSet::new();
            for _ in 0..3000 {
                match rng.below(10) {
                    0..=3 => match alloc.allocate() {
                        Some(addr) => {
                            assert!(managed.contains(&addr));
                            assert!(used.insert(addr), "{addr:#x} handed out twice");
                        }
                        None => assert_eq!(used.len(), managed.len()),
                    },
                    4 | 5 => {
                        let count = 1 + rng.below(6) as usize;
                        let align = 1 << rng.below(4);
                        match alloc.allocate_contiguous(count, align) {
                            Some(range) => {
                                assert_eq!(range.len(), count as u64 * FRAME_SIZE);
                                assert_eq!(range.start % (align as u64 * FRAME_SIZE), 0);
                                for addr in (range.start..range.end).step_by(FRAME_SIZE as usize) {
                                    assert!(managed.contains(&addr));
                                    assert!(used.insert(addr), "{addr:#x} handed out twice");
                                }
                            }
                            None => {
                                // The model agrees that no aligned run of free frames exists.
                                let fits = managed.iter().any(|&s| {
                                    (s / FRAME_SIZE).is_multiple_of(align as u64)
                                        && (0..count as u64).all(|i| {
                                            let a = s + i * FRAME_SIZE;
                                            managed.contains(&a) && !used.contains(&a)
                                        })
                                });
                                assert!(!fits, "missed a run of {count} aligned {align}");
                            }
                        }
                    }
                    6..=8 => {
                        if let Some(&addr) =
                            used.iter().nth(rng.below(used.len() as u64 + 1) as usize)
                        {
                            assert_eq!(alloc.free(addr), Ok(()));
                            used.remove(&addr);
                        }
                    }
                    _ => {
                        // Any frame-or-not address near the managed span.
                        let addr = lowest - 2 * FRAME_SIZE
                            + rng.below((highest - lowest + 4 * FRAME_SIZE) / 512) * 512;
                        let expected = if !addr.is_multiple_of(FRAME_SIZE) {
                            Err(FrameError::Unaligned)
                        } else if !managed.contains(&addr) {
                            Err(FrameError::NotManaged)
                        } else if !used.contains(&addr) {
                            Err(FrameError::DoubleFree)
                        } else {
                            used.remove(&addr);
                            Ok(())
                        };
                        assert_eq!(alloc.free(addr), expected, "{addr:#x}");
                    }
                }
                assert_eq!(alloc.free_frames(), managed.len() - used.len());
            }
            for &addr in &used {
                alloc.free(addr).unwrap();
            }
            assert_eq!(alloc.free_frames(), managed.len());
        }
    }

    #[test]
    fn withheld_frames_are_never_handed_out_until_released() {
        let ranges = FreeRanges::compute(
            &[MemoryRegion {
                range: PhysRange {
                    start: 0x1000,
                    end: 0x9000,
                },
                kind: RegionKind::Usable,
            }],
            &[],
            u64::MAX,
        );
        let mut storage = [0u64; 4];
        let mut frames = FrameAllocator::new(&ranges, &mut storage).unwrap();
        assert_eq!(frames.withhold_from(0x5800), 3); // 0x6000, 0x7000, 0x8000
        assert_eq!(frames.free_frames(), 5);
        let mut taken = std::vec::Vec::new();
        while let Some(frame) = frames.allocate() {
            assert!(frame < 0x6000, "withheld frame {frame:#x} handed out");
            taken.push(frame);
        }
        assert_eq!(taken.len(), 5);
        assert_eq!(frames.release_withheld(), 3);
        assert_eq!(frames.withheld_frames(), 0);
        assert_eq!(frames.free_frames(), 3);
        assert!(frames.allocate().unwrap() >= 0x6000);
        assert_eq!(frames.release_withheld(), 0);
    }
}
