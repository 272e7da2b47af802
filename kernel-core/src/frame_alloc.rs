//! The physical frame allocator: one bit per frame over the free ranges of the boot memory map.
//!
//! Owns which frames are free. It is given its bitmap storage by the caller (boot places it in
//! RAM through the HHDM), so it never allocates and never touches the frames it manages. It must
//! never hand out a frame outside the free ranges it was built from, nor accept a free of a
//! frame it does not own or that is already free.

use crate::boot_info::PhysRange;
use crate::memory_map::{FRAME_SIZE, FreeRanges};

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
}

impl<'a> FrameAllocator<'a> {
    /// Number of `u64` words of bitmap storage needed for `ranges` (one bit per frame from the
    /// lowest to the highest free frame).
    pub fn bitmap_words(ranges: &FreeRanges) -> usize {
        let _ = ranges;
        unimplemented!("frame_alloc::bitmap_words")
    }

    /// Builds the allocator with every frame of `ranges` free. `bitmap` may be larger than
    /// needed; its contents are overwritten.
    pub fn new(ranges: &FreeRanges, bitmap: &'a mut [u64]) -> Result<Self, FrameError> {
        let _ = (ranges, bitmap, FRAME_SIZE);
        unimplemented!("frame_alloc::new")
    }

    /// Takes one free frame and returns its physical address.
    pub fn allocate(&mut self) -> Option<u64> {
        unimplemented!("frame_alloc::allocate")
    }

    /// Takes `count` physically contiguous frames whose first address is aligned to
    /// `align_frames` frames (a power of two).
    pub fn allocate_contiguous(&mut self, count: usize, align_frames: usize) -> Option<PhysRange> {
        let _ = (count, align_frames);
        unimplemented!("frame_alloc::allocate_contiguous")
    }

    /// Returns one frame. Refuses unaligned, unmanaged and already-free frames.
    pub fn free(&mut self, addr: u64) -> Result<(), FrameError> {
        let _ = addr;
        unimplemented!("frame_alloc::free")
    }

    /// Frames free right now.
    pub fn free_frames(&self) -> usize {
        self.free_frames
    }

    /// Frames the allocator manages (free at construction).
    pub fn managed_frames(&self) -> usize {
        self.managed_frames
    }
}
