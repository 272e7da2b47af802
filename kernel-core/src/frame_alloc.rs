//! The physical frame allocator: one bit per frame over the free ranges of the boot memory map,
//! with summary levels that keep every search bounded however full memory is.
//!
//! Owns which frames are free. It is given its storage by the caller (boot places it in RAM
//! through the HHDM), so it never allocates and never touches the frames it manages. It must
//! never hand out a frame outside the free ranges it was built from, nor accept a free of a
//! frame it does not own or that is already free.
//!
//! # Layout and cost
//!
//! The storage ([`FrameAllocator::bitmap_words`] words) holds, one after the other:
//!
//! - the bitmap: one bit per frame from the lowest to the highest free frame, set = free (holes,
//!   frames taken before construction, withheld and allocated frames are clear);
//! - the *free tower*: level 1 has one bit per bitmap word, set when that word has a free frame;
//!   each further level has one bit per word of the level below, set when that word is non-zero,
//!   up to a level of one word;
//! - the *whole tower*: level 1 has one bit per bitmap word, set when all 64 frames of that word
//!   are free; the further levels summarise it the same way.
//!
//! Every change of a bitmap word goes through one function that updates both towers, so they are
//! exact at all times (the host tests check this against a recomputation). A tower of `L` levels
//! finds the first set bit at or after any position in at most `2 × L` word reads, where
//! `L = ⌈log64(bitmap words)⌉` (3 for 256 MiB, 5 for 1 TiB): the cost depends on how much RAM the
//! bitmap spans, never on how many frames are in use. Each bitmap change costs at most `2 × L`
//! word writes. The towers cost about 1/32 of the bitmap's size in storage.
//!
//! - [`allocate`](FrameAllocator::allocate) (one frame): next fit. It looks for a free frame at
//!   or after the word of the previous allocation, then from the start: at most `4 × L` word
//!   reads.
//! - [`allocate_contiguous`](FrameAllocator::allocate_contiguous): lowest fit among the first
//!   [`SMALL_RUN_TRIES`] free stretches, found through the free tower (so allocated stretches are
//!   skipped in `O(L)` each, not walked). A *small* run (`count + align - 1 <= 64` frames, which
//!   always fits inside one entirely free bitmap word) that does not fit there goes to the lowest
//!   entirely free word, found through the whole tower. So a small run costs at most
//!   `SMALL_RUN_TRIES × (2L + 2) + 2L` word reads whenever one 64-frame word anywhere is entirely
//!   free. Only when none is (memory chopped into stretches shorter than 64 frames everywhere),
//!   or for larger runs, does the search go on through every free stretch in address order: its
//!   cost then grows with the number of free stretches it skips, still not with the frames in
//!   use.

use crate::boot_info::PhysRange;
use crate::memory_map::{FRAME_SIZE, FreeRanges, MAX_FREE_RANGES};
use arrayvec::ArrayVec;

/// Why a frame operation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// The storage given to [`FrameAllocator::new`] is too small for the ranges.
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
    /// The frame is withheld (see [`FrameAllocator::withhold_from`]): it was never handed out,
    /// and freeing it would put a frame the kernel cannot reach yet into circulation.
    Withheld,
}

/// Bits per bitmap word.
const WORD_BITS: usize = u64::BITS as usize;

/// Free stretches a contiguous search tries in address order before a small run goes to the
/// lowest entirely free word instead (see the module header).
pub const SMALL_RUN_TRIES: usize = 4;

/// Most levels a tower can have: a bitmap of at most 2^52 frames (2^46 words) needs 8 levels
/// above the word level; one spare.
const MAX_LEVELS: usize = 10;

/// Where the levels of one tower lie in the storage. Level 0 is the one searched for frames
/// (the bitmap itself for the free tower, the "word entirely free" bits for the whole tower);
/// level `k + 1` has bit `i` set exactly when word `i` of level `k` is non-zero.
#[derive(Debug, Clone, Copy)]
struct Tower {
    /// `(offset, words)` of each level in the storage.
    levels: [(usize, usize); MAX_LEVELS],
    /// Levels in use (0 when there is nothing to summarise).
    count: usize,
}

impl Tower {
    /// A tower whose level 0 is `words` words at `offset`; returns it and the offset past it.
    fn new(offset: usize, words: usize) -> (Self, usize) {
        let mut tower = Tower {
            levels: [(0, 0); MAX_LEVELS],
            count: 0,
        };
        let mut at = offset;
        let mut len = words;
        if len == 0 {
            return (tower, at);
        }
        loop {
            tower.levels[tower.count] = (at, len);
            tower.count += 1;
            at += len;
            if len == 1 {
                break;
            }
            len = len.div_ceil(WORD_BITS);
        }
        (tower, at)
    }
}

/// Storage layout for a bitmap of `words` words: the two towers and the total word count.
fn layout(words: usize) -> (Tower, Tower, usize) {
    let (free, end) = Tower::new(0, words);
    let (whole, end) = Tower::new(end, words.div_ceil(WORD_BITS));
    (free, whole, end)
}

/// A bitmap frame allocator (bit set = frame free) with summary towers.
#[derive(Debug)]
pub struct FrameAllocator<'a> {
    /// The bitmap followed by the two towers' summary levels (see the module header).
    words: &'a mut [u64],
    /// Bitmap words (the first `bitmap_len` of `words`).
    bitmap_len: usize,
    /// Summary of free frames (level 0 is the bitmap).
    free_tower: Tower,
    /// Summary of entirely free bitmap words.
    whole_tower: Tower,
    /// Physical address of the frame that bit 0 describes.
    base: u64,
    /// Number of frames the bitmap spans (free or not).
    span_frames: usize,
    /// Frames currently free.
    free_frames: usize,
    /// Frames that were free at construction.
    managed_frames: usize,
    /// Word index where the next single-frame search starts (next fit).
    next_word: usize,
    /// The ranges the allocator was built from. A clear bit means either "allocated" or "never
    /// ours" (a hole, or a frame taken before construction); these tell the two apart on free.
    ranges: ArrayVec<PhysRange, MAX_FREE_RANGES>,
    /// `(limit, count)` while frames at or above `limit` are withheld.
    withheld: Option<(u64, usize)>,
    /// Storage words read by searches since the last reset (host tests bound it).
    #[cfg(test)]
    reads: core::cell::Cell<usize>,
}

impl<'a> FrameAllocator<'a> {
    /// Number of `u64` words of storage needed for `ranges`: the bitmap (one bit per frame from
    /// the lowest to the highest free frame) and its summary towers.
    pub fn bitmap_words(ranges: &FreeRanges) -> usize {
        layout(span(ranges).1.div_ceil(WORD_BITS)).2
    }

    /// Builds the allocator with every frame of `ranges` free. `storage` may be larger than
    /// needed; its contents are overwritten.
    ///
    /// Only the first [`bitmap_words`](Self::bitmap_words) words are used afterwards; the rest
    /// are zeroed and left alone.
    pub fn new(ranges: &FreeRanges, storage: &'a mut [u64]) -> Result<Self, FrameError> {
        let (base, span_frames) = span(ranges);
        let bitmap_len = span_frames.div_ceil(WORD_BITS);
        let (free_tower, whole_tower, needed) = layout(bitmap_len);
        if storage.len() < needed {
            return Err(FrameError::BitmapTooSmall { needed });
        }
        storage.fill(0);
        let mut this = Self {
            words: &mut storage[..needed],
            bitmap_len,
            free_tower,
            whole_tower,
            base,
            span_frames,
            free_frames: 0,
            managed_frames: 0,
            next_word: 0,
            ranges: ranges.as_slice().iter().copied().collect(),
            withheld: None,
            #[cfg(test)]
            reads: core::cell::Cell::new(0),
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
    /// Next fit: the first free frame at or after the word the previous allocation came from,
    /// else the first from the start. At most `4 × L` word reads (see the module header).
    pub fn allocate(&mut self) -> Option<u64> {
        if self.free_frames == 0 {
            return None;
        }
        let tower = self.free_tower;
        let index = self
            .next_set(&tower, self.next_word * WORD_BITS)
            .or_else(|| self.next_set(&tower, 0))?;
        self.fill(index, index + 1, false);
        self.free_frames -= 1;
        self.next_word = index / WORD_BITS;
        Some(self.address(index))
    }

    /// Takes `count` physically contiguous frames whose first address is aligned to
    /// `align_frames` frames (a power of two).
    ///
    /// Returns the lowest run that fits within the first [`SMALL_RUN_TRIES`] free stretches
    /// (the lowest run of all when it lies there). Past them, a small run (`count +
    /// align_frames - 1 <= 64`) goes to the lowest entirely free 64-frame bitmap word, and only
    /// when there is none, or for a larger run, does the search go on to the lowest fitting run
    /// of all. See the module header for the costs.
    ///
    /// `None` when no run fits, when `count` is 0, or when `align_frames` is not a power of two
    /// (0 included). The alignment is of the physical address, not of the position in the
    /// bitmap.
    pub fn allocate_contiguous(&mut self, count: usize, align_frames: usize) -> Option<PhysRange> {
        if count == 0 || !align_frames.is_power_of_two() || count > self.free_frames {
            return None;
        }
        let mut small = align_frames <= WORD_BITS && count + align_frames - 1 <= WORD_BITS;
        let tower = self.free_tower;
        let mut from = 0;
        let mut tries = 0;
        loop {
            if small && tries == SMALL_RUN_TRIES {
                if let Some(range) = self.allocate_in_whole_word(count, align_frames) {
                    return Some(range);
                }
                small = false;
            }
            tries += 1;
            // Holes, withheld and allocated frames are all clear bits: the free tower skips
            // them all, and `first_clear` refuses a run that crosses any.
            let free = self.next_set(&tower, from)?;
            // No later candidate can fit once one runs past the address space or the span.
            let start = self.align_index(free, align_frames)?;
            let stop = start
                .checked_add(count)
                .filter(|&stop| stop <= self.span_frames)?;
            match self.first_clear(start, stop) {
                None => return Some(self.take(start, stop)),
                // No run starting at or before the used frame can fit: go past it.
                Some(used) => from = used + 1,
            }
        }
    }

    /// Places a small run (`count + align - 1 <= 64`) at the start of the lowest entirely free
    /// bitmap word, if there is one.
    fn allocate_in_whole_word(&mut self, count: usize, align: usize) -> Option<PhysRange> {
        let tower = self.whole_tower;
        let word = self.next_set(&tower, 0)?;
        let start = self.align_index(word * WORD_BITS, align)?;
        let stop = start + count;
        debug_assert!(stop <= (word + 1) * WORD_BITS && self.first_clear(start, stop).is_none());
        Some(self.take(start, stop))
    }

    /// Marks the free bits `[start, stop)` allocated and returns their addresses.
    fn take(&mut self, start: usize, stop: usize) -> PhysRange {
        self.fill(start, stop, false);
        self.free_frames -= stop - start;
        PhysRange {
            start: self.address(start),
            end: self.address(stop),
        }
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
        if self.withheld.is_some_and(|(limit, _)| addr >= limit) {
            return Err(FrameError::Withheld);
        }
        let index = self.index(addr);
        if self.words[index / WORD_BITS] & (1 << (index % WORD_BITS)) != 0 {
            return Err(FrameError::DoubleFree);
        }
        self.fill(index, index + 1, true);
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
            changed += self.fill(self.index(start), self.index(range.end), free);
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
        self.words[index / WORD_BITS] & (1 << (index % WORD_BITS)) != 0
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

    /// Reads storage word `at`, counting the read in host tests.
    fn read(&self, at: usize) -> u64 {
        #[cfg(test)]
        self.reads.set(self.reads.get() + 1);
        self.words[at]
    }

    /// The first set bit at or after `from` in level 0 of `tower`: up the levels until a word
    /// has a set bit at or after the position, then down following the lowest set bits. At
    /// most two reads per level.
    fn next_set(&self, tower: &Tower, from: usize) -> Option<usize> {
        let mut level = 0;
        let mut pos = from;
        loop {
            if level == tower.count {
                return None;
            }
            let (offset, len) = tower.levels[level];
            let word = pos / WORD_BITS;
            if word >= len {
                return None;
            }
            let bits = self.read(offset + word) & (u64::MAX << (pos % WORD_BITS));
            if bits != 0 {
                pos = word * WORD_BITS + bits.trailing_zeros() as usize;
                break;
            }
            level += 1;
            pos = word + 1;
        }
        while level > 0 {
            level -= 1;
            let (offset, _) = tower.levels[level];
            pos = pos * WORD_BITS + self.read(offset + pos).trailing_zeros() as usize;
        }
        Some(pos)
    }

    /// The first clear bit in `[from, to)` of the bitmap, a word at a time.
    fn first_clear(&self, from: usize, to: usize) -> Option<usize> {
        let mut at = from;
        while at < to {
            let (word, bit) = (at / WORD_BITS, at % WORD_BITS);
            let n = (WORD_BITS - bit).min(to - at);
            let clear = !self.read(word) & mask(bit, n);
            if clear != 0 {
                return Some(word * WORD_BITS + clear.trailing_zeros() as usize);
            }
            at += n;
        }
        None
    }

    /// Sets (`free`) or clears bits `[from, to)`, a word at a time; returns how many bits changed.
    fn fill(&mut self, from: usize, to: usize, free: bool) -> usize {
        debug_assert!(to <= self.span_frames);
        let mut changed = 0;
        let mut at = from;
        while at < to {
            let (word, bit) = (at / WORD_BITS, at % WORD_BITS);
            let n = (WORD_BITS - bit).min(to - at);
            let old = self.words[word];
            let new = if free {
                old | mask(bit, n)
            } else {
                old & !mask(bit, n)
            };
            changed += (old ^ new).count_ones() as usize;
            self.set_word(word, new);
            at += n;
        }
        changed
    }

    /// Writes bitmap word `word` and brings both towers up to date: the only way the bitmap
    /// changes after construction.
    fn set_word(&mut self, word: usize, new: u64) {
        debug_assert!(word < self.bitmap_len, "bitmap word {word} out of range");
        let old = self.words[word];
        self.words[word] = new;
        if (old != 0) != (new != 0) {
            let tower = self.free_tower;
            self.set_summary_bit(&tower, 1, word, new != 0);
        }
        if (old == u64::MAX) != (new == u64::MAX) {
            let tower = self.whole_tower;
            self.set_summary_bit(&tower, 0, word, new == u64::MAX);
        }
    }

    /// Sets bit `index` of `level` of `tower` to `value`, and the levels above when the word
    /// it lies in turns zero or non-zero.
    fn set_summary_bit(&mut self, tower: &Tower, mut level: usize, mut index: usize, value: bool) {
        let mut value = value;
        while level < tower.count {
            let (offset, _) = tower.levels[level];
            let at = offset + index / WORD_BITS;
            let old = self.words[at];
            let bit = 1u64 << (index % WORD_BITS);
            let new = if value { old | bit } else { old & !bit };
            self.words[at] = new;
            if (old != 0) == (new != 0) {
                return;
            }
            value = new != 0;
            index /= WORD_BITS;
            level += 1;
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
        // One bitmap word: no free tower above it, one "whole word" word.
        assert_eq!(FrameAllocator::bitmap_words(&one), 1 + 1);
        let sixty_four = ranges(&[ram(0, 64 * FRAME_SIZE)], &[]);
        assert_eq!(FrameAllocator::bitmap_words(&sixty_four), 1 + 1);
        let sixty_five = ranges(&[ram(0, 65 * FRAME_SIZE)], &[]);
        assert_eq!(FrameAllocator::bitmap_words(&sixty_five), 2 + 1 + 1);
        // Two frames 129 frames apart: the hole is in the span.
        let holes = ranges(
            &[
                ram(MIB, MIB + FRAME_SIZE),
                ram(MIB + 129 * FRAME_SIZE, MIB + 130 * FRAME_SIZE),
            ],
            &[],
        );
        assert_eq!(FrameAllocator::bitmap_words(&holes), 3 + 1 + 1);
        // 3 GiB: 786432 frames, 12288 words, each tower 192 + 3 + 1 words.
        let big = ranges(&[ram(GIB, 4 * GIB)], &[]);
        assert_eq!(
            FrameAllocator::bitmap_words(&big),
            786_432 / 64 + 2 * (192 + 3 + 1)
        );
    }

    #[test]
    fn storage_must_be_big_enough() {
        let free = ranges(&[ram(0, 65 * FRAME_SIZE)], &[]);
        let mut small = [0u64; 1];
        assert_eq!(
            FrameAllocator::new(&free, &mut small).unwrap_err(),
            FrameError::BitmapTooSmall { needed: 4 }
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
        // The summaries come from the same dirty storage: they must be rebuilt, not inherited.
        check_towers(&alloc);
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
            (TIB / FRAME_SIZE / 64) as usize + 2 * (65_536 + 1024 + 16 + 1)
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
        assert_eq!(bitmap.len(), (1 << 22) + 2 * (65_536 + 1024 + 16 + 1));
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
        assert!(needed as u64 > (top / FRAME_SIZE).div_ceil(64));
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
                check_towers(&alloc);
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
        // A withheld frame was never handed out: freeing it is refused and changes nothing.
        assert_eq!(frames.free(0x7000), Err(FrameError::Withheld));
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

    /// Recomputes both towers from the bitmap and compares every storage word.
    fn check_towers(alloc: &FrameAllocator<'_>) {
        let mut expected = alloc.words[..alloc.bitmap_len].to_vec();
        expected.resize(alloc.words.len(), 0);
        // Level 0 of the whole tower: one bit per entirely free bitmap word.
        let (whole0, _) = alloc.whole_tower.levels[0];
        for w in 0..alloc.bitmap_len {
            if alloc.words[w] == u64::MAX {
                expected[whole0 + w / 64] |= 1 << (w % 64);
            }
        }
        for tower in [alloc.free_tower, alloc.whole_tower] {
            for level in 1..tower.count {
                let (below, below_len) = tower.levels[level - 1];
                let (offset, len) = tower.levels[level];
                assert_eq!(len, below_len.div_ceil(64));
                for w in 0..below_len {
                    if expected[below + w] != 0 {
                        expected[offset + w / 64] |= 1 << (w % 64);
                    }
                }
            }
            assert_eq!(tower.levels[tower.count - 1].1, 1, "top level is one word");
        }
        assert_eq!(alloc.words, &expected[..], "a summary word is stale");
    }

    #[test]
    fn towers_stay_exact_under_random_operations() {
        // 20 MiB over three ranges with holes: 5120-frame span, 80 bitmap words, 3 free levels.
        let memory = [
            ram(0x5000, 4 * MIB),
            ram(4 * MIB + 0x3000, 12 * MIB),
            ram(13 * MIB, 20 * MIB + 0x7000),
        ];
        let free = ranges(&memory, &[res(6 * MIB, 6 * MIB + 0x9000)]);
        let managed: Vec<u64> = free
            .as_slice()
            .iter()
            .flat_map(|r| (r.start..r.end).step_by(FRAME_SIZE as usize))
            .collect();
        let mut bitmap = storage(&free);
        let mut alloc = FrameAllocator::new(&free, &mut bitmap).unwrap();
        assert_eq!(alloc.free_tower.count, 3);
        check_towers(&alloc);
        assert_eq!(alloc.withhold_from(18 * MIB + 0x800), 518);
        check_towers(&alloc);
        let mut used: BTreeSet<u64> = BTreeSet::new();
        let mut rng = Rng(0xfeed_f00d_dead_beef);
        for step in 0..20_000 {
            if step == 10_000 {
                assert_eq!(alloc.release_withheld(), 518);
            }
            // Fill up to about 97% and back, so both full and empty phases are visited.
            let fill = if (step / 2500) % 2 == 0 { 9 } else { 3 };
            match rng.below(12) {
                n if n < fill => {
                    if rng.below(2) == 0 {
                        if let Some(addr) = alloc.allocate() {
                            assert!(used.insert(addr), "{addr:#x} handed out twice");
                        }
                    } else {
                        let count = 1 + rng.below(16) as usize;
                        let align = 1 << rng.below(5);
                        if let Some(range) = alloc.allocate_contiguous(count, align) {
                            assert_eq!(range.start % (align as u64 * FRAME_SIZE), 0);
                            assert_eq!(range.len(), count as u64 * FRAME_SIZE);
                            for a in (range.start..range.end).step_by(FRAME_SIZE as usize) {
                                assert!(used.insert(a), "{a:#x} handed out twice");
                            }
                        }
                    }
                }
                _ => {
                    if let Some(&addr) = used.iter().nth(rng.below(used.len() as u64 + 1) as usize)
                    {
                        alloc.free(addr).unwrap();
                        used.remove(&addr);
                    }
                }
            }
            let withheld = alloc.withheld_frames();
            assert_eq!(alloc.free_frames() + withheld, managed.len() - used.len());
            if step % 7 == 0 {
                check_towers(&alloc);
                for &addr in managed.iter().step_by(97) {
                    let held = withheld > 0 && addr >= 18 * MIB + 0x1000;
                    assert_eq!(alloc.is_free(addr), !used.contains(&addr) && !held);
                }
            }
        }
        for &addr in &used {
            alloc.free(addr).unwrap();
        }
        check_towers(&alloc);
        assert_eq!(alloc.free_frames(), managed.len());
    }

    /// Storage words read by `op`.
    fn reads<T>(
        alloc: &mut FrameAllocator<'_>,
        op: impl FnOnce(&mut FrameAllocator<'_>) -> T,
    ) -> (T, usize) {
        alloc.reads.set(0);
        let value = op(alloc);
        (value, alloc.reads.get())
    }

    /// The most words one frame or one small run may read: the bounds of the module header.
    fn bounds(alloc: &FrameAllocator<'_>) -> (usize, usize) {
        let (free, whole) = (alloc.free_tower.count, alloc.whole_tower.count);
        // `+ 1`: the debug check of the whole-word placement reads its word again.
        (4 * free, SMALL_RUN_TRIES * (2 * free + 2) + 2 * whole + 1)
    }

    /// One frame, and runs of 1 to 16 frames at alignments 1 to 16, each freed again; returns
    /// the most words any of them read.
    fn probe(alloc: &mut FrameAllocator<'_>) -> usize {
        let (one, mut most) = reads(alloc, |a| a.allocate());
        alloc.free(one.unwrap()).unwrap();
        let (single_bound, run_bound) = bounds(alloc);
        assert!(most <= single_bound, "one frame read {most} words");
        for count in 1..=16 {
            for align in [1, 2, 4, 8, 16] {
                let (range, n) = reads(alloc, |a| a.allocate_contiguous(count, align));
                let range = range.unwrap();
                assert!(
                    n <= run_bound,
                    "{count} frames aligned {align} read {n} words"
                );
                most = most.max(n);
                for addr in (range.start..range.end).step_by(FRAME_SIZE as usize) {
                    alloc.free(addr).unwrap();
                }
            }
        }
        most
    }

    #[test]
    fn allocation_reads_a_bounded_number_of_words_however_full() {
        // 1 GiB: 262144 frames, 4096 bitmap words, towers of 3 levels.
        let free = ranges(&[ram(MIB, MIB + GIB)], &[]);
        let mut bitmap = storage(&free);
        let mut alloc = FrameAllocator::new(&free, &mut bitmap).unwrap();
        assert_eq!((alloc.free_tower.count, alloc.whole_tower.count), (3, 2));
        let empty = probe(&mut alloc);

        // 95% taken in large runs from the bottom, as the benchmark does.
        let mut runs = Vec::new();
        while alloc.free_frames() > alloc.managed_frames() / 20 {
            runs.push(alloc.allocate_contiguous(4096, 1).unwrap());
        }
        let full = probe(&mut alloc);

        // Worse: everything below the top 2 MiB chopped into one-frame holes (every other frame
        // free), so the first free stretches are all too short for any run but one frame.
        let mut singles = Vec::new();
        while let Some(addr) = alloc.allocate() {
            singles.push(addr);
        }
        for &addr in &singles {
            if addr < MIB + GIB - 2 * MIB && (addr / FRAME_SIZE).is_multiple_of(2) {
                alloc.free(addr).unwrap();
            }
        }
        for range in runs.drain(..) {
            for addr in (range.start..range.end).step_by(FRAME_SIZE as usize) {
                if range.end <= MIB + GIB - 2 * MIB && (addr / FRAME_SIZE).is_multiple_of(2) {
                    alloc.free(addr).unwrap();
                }
            }
        }
        let top: Vec<u64> = singles
            .iter()
            .copied()
            .filter(|&a| a >= MIB + GIB - 2 * MIB)
            .collect();
        for &addr in &top {
            alloc.free(addr).unwrap();
        }
        assert!(alloc.free_frames() < alloc.managed_frames() / 2 + 1024);
        let chopped = probe(&mut alloc);
        check_towers(&alloc);
        let (single_bound, run_bound) = bounds(&alloc);
        assert!(empty.max(full).max(chopped) <= run_bound.max(single_bound));
        // Nearly empty, the first word searched has the frames; 95% full, the search climbs the
        // tower once and comes down (2 × 3 levels), plus the run's own words: still a constant.
        let first_fit = 2 * alloc.free_tower.count + 2;
        assert!(
            empty <= first_fit && full <= first_fit,
            "empty {empty}, full {full} words"
        );
    }
}
