//! The kernel's records of frame ranges handed to user space, with their reference counts.
//!
//! Owns which physical ranges are user memory and how many references keep each alive: the
//! capabilities naming the range plus every page of it mapped in any address space. A range goes
//! back to the frame allocator (through the caller) when its last reference goes, unless it was
//! never the allocator's (a boot module such as the initrd). It must never free a range that is
//! still referenced and never count a reference against a range that does not contain the page.

use crate::memory_map::FRAME_SIZE;
use alloc::collections::BTreeMap;

/// A physically contiguous run of frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameRange {
    /// Physical address of the first frame.
    pub start: u64,
    /// Number of frames.
    pub frames: u64,
}

#[derive(Debug, Clone, Copy)]
struct Record {
    frames: u64,
    refs: u64,
    /// Returned to the allocator at zero references (false for boot modules like the initrd).
    owned: bool,
}

/// Every recorded range, by start address.
#[derive(Debug, Default)]
pub struct FrameRecords {
    records: BTreeMap<u64, Record>,
}

impl FrameRecords {
    /// No ranges.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            records: BTreeMap::new(),
        }
    }

    /// How many ranges are recorded.
    #[must_use]
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Records `range` with no references yet; `owned` ranges go back to the allocator at the end.
    pub fn add(&mut self, range: FrameRange, owned: bool) {
        self.records.insert(
            range.start,
            Record {
                frames: range.frames,
                refs: 0,
                owned,
            },
        );
    }

    /// One more capability names the range starting at `start`.
    pub fn retain(&mut self, start: u64) {
        if let Some(record) = self.records.get_mut(&start) {
            record.refs += 1;
        }
    }

    /// One reference to the range starting at `start` went away. Returns the range when it was
    /// the last reference and the range belongs to the allocator (the caller frees it).
    pub fn release(&mut self, start: u64) -> Option<FrameRange> {
        let record = self.records.get_mut(&start)?;
        record.refs = record.refs.saturating_sub(1);
        if record.refs > 0 {
            return None;
        }
        let record = self.records.remove(&start)?;
        record.owned.then_some(FrameRange {
            start,
            frames: record.frames,
        })
    }

    /// The start of the recorded range containing `phys`.
    fn start_of(&self, phys: u64) -> Option<u64> {
        let (&start, record) = self.records.range(..=phys).next_back()?;
        (phys < start + record.frames * FRAME_SIZE).then_some(start)
    }

    /// A page of a recorded range was mapped (pages outside every range are not counted).
    pub fn retain_page(&mut self, phys: u64) {
        if let Some(start) = self.start_of(phys) {
            self.retain(start);
        }
    }

    /// A page of a recorded range was unmapped; as [`release`](Self::release).
    pub fn release_page(&mut self, phys: u64) -> Option<FrameRange> {
        let start = self.start_of(phys)?;
        self.release(start)
    }
}
