//! Emulated physical memory and a checking frame source, for host tests.
//!
//! Owns the test doubles that let the page-table logic of any
//! [`PageTableFormat`](super::PageTableFormat) run in `cargo test`: [`EmulatedMemory`] holds
//! page tables in a map keyed by physical address, [`CountingFrames`] hands out frames with a
//! chosen capacity and catches every double or foreign free. This is not `cfg(test)` because the
//! `strait-arch-paging` tests use it too; the kernel itself must never use it (nothing here is
//! fit for real memory), and neither type ever decides anything about entries.
//!
//! Both doubles panic on misuse: a panic is how they report a mapper bug to the test.

use super::format::{ENTRIES, PAGE_SIZE};
use super::memory::{FrameSource, TableMemory};
use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;

/// Page tables in a map from physical address to 512 entries.
///
/// A table exists from the first [`zero`](TableMemory::zero) of its address until
/// [`retain_live`](Self::retain_live) drops it; reading or writing any other address panics, so
/// a walk that follows a stray or stale pointer is caught at once.
#[derive(Debug, Default)]
pub struct EmulatedMemory {
    tables: BTreeMap<u64, Box<[u64; ENTRIES]>>,
}

impl EmulatedMemory {
    /// Memory with no tables.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of tables that exist.
    pub fn table_count(&self) -> usize {
        self.tables.len()
    }

    /// The entries of the table at `table`, if it exists.
    pub fn table(&self, table: u64) -> Option<&[u64; ENTRIES]> {
        self.tables.get(&table).map(|t| &**t)
    }

    /// Drops every table whose frame `frames` no longer has outstanding, so any later access
    /// to a freed table panics instead of silently reading stale entries.
    pub fn retain_live(&mut self, frames: &CountingFrames) {
        self.tables.retain(|&table, _| frames.is_live(table));
    }

    fn entries(&self, table: u64) -> &[u64; ENTRIES] {
        match self.tables.get(&table) {
            Some(entries) => entries,
            None => panic!("EmulatedMemory: access to {table:#x}, which is not a table"),
        }
    }
}

impl TableMemory for EmulatedMemory {
    fn read(&self, table: u64, index: usize) -> u64 {
        self.entries(table)[index]
    }

    fn write(&mut self, table: u64, index: usize, value: u64) {
        match self.tables.get_mut(&table) {
            Some(entries) => entries[index] = value,
            None => panic!("EmulatedMemory: write to {table:#x}, which is not a table"),
        }
    }

    fn zero(&mut self, table: u64) {
        assert!(
            table.is_multiple_of(PAGE_SIZE),
            "EmulatedMemory: table address {table:#x} is not page aligned"
        );
        self.tables.insert(table, Box::new([0; ENTRIES]));
    }
}

/// A frame source that counts, limits and checks.
///
/// Frames are handed out from `base` upwards, freed frames are reused last-in first-out (as a
/// real allocator would, so a use after free lands on a frame in use again). `allocate` fails
/// once `capacity` frames are outstanding, which lets a test make any chosen allocation of an
/// operation fail.
#[derive(Debug)]
pub struct CountingFrames {
    next: u64,
    capacity: usize,
    live: BTreeSet<u64>,
    recycled: Vec<u64>,
    allocations: u64,
}

impl CountingFrames {
    /// Default address of the first frame (an arbitrary, recognisable 1 GiB).
    pub const DEFAULT_BASE: u64 = 0x4000_0000;

    /// A source that lets at most `capacity` frames be outstanding at once.
    pub fn new(capacity: usize) -> Self {
        Self::with_base(Self::DEFAULT_BASE, capacity)
    }

    /// Like [`new`](Self::new), handing out frames from `base` (page aligned) upwards.
    pub fn with_base(base: u64, capacity: usize) -> Self {
        assert!(base.is_multiple_of(PAGE_SIZE), "unaligned base {base:#x}");
        Self {
            next: base,
            capacity,
            live: BTreeSet::new(),
            recycled: Vec::new(),
            allocations: 0,
        }
    }

    /// Frames handed out and not yet freed.
    pub fn outstanding(&self) -> usize {
        self.live.len()
    }

    /// The most frames that may be outstanding at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Changes the limit; frames already outstanding above it stay valid.
    pub fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity;
    }

    /// True when `frame` is outstanding.
    pub fn is_live(&self, frame: u64) -> bool {
        self.live.contains(&frame)
    }

    /// The outstanding frames, in address order.
    pub fn live(&self) -> impl Iterator<Item = u64> + '_ {
        self.live.iter().copied()
    }

    /// Successful allocations since construction.
    pub fn allocations(&self) -> u64 {
        self.allocations
    }
}

impl FrameSource for CountingFrames {
    fn allocate(&mut self) -> Option<u64> {
        if self.live.len() >= self.capacity {
            return None;
        }
        let frame = self.recycled.pop().unwrap_or_else(|| {
            let frame = self.next;
            self.next += PAGE_SIZE;
            frame
        });
        self.live.insert(frame);
        self.allocations += 1;
        Some(frame)
    }

    fn free(&mut self, frame: u64) {
        assert!(
            self.live.remove(&frame),
            "CountingFrames: free of {frame:#x}, which is not outstanding (double free, or a \
             frame this source never handed out)"
        );
        self.recycled.push(frame);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_holds_zeroed_tables_only() {
        let mut mem = EmulatedMemory::new();
        mem.zero(0x1000);
        assert_eq!(mem.read(0x1000, 511), 0);
        mem.write(0x1000, 3, 42);
        assert_eq!(mem.read(0x1000, 3), 42);
        assert_eq!(mem.table(0x1000).unwrap()[3], 42);
        mem.zero(0x1000);
        assert_eq!(mem.read(0x1000, 3), 0);
        assert_eq!(mem.table_count(), 1);
        assert!(mem.table(0x2000).is_none());
    }

    #[test]
    #[should_panic(expected = "not a table")]
    fn reading_a_table_that_was_never_zeroed_panics() {
        EmulatedMemory::new().read(0x1000, 0);
    }

    #[test]
    #[should_panic(expected = "not a table")]
    fn writing_a_table_that_was_never_zeroed_panics() {
        EmulatedMemory::new().write(0x1000, 0, 1);
    }

    #[test]
    #[should_panic(expected = "not page aligned")]
    fn an_unaligned_table_panics() {
        EmulatedMemory::new().zero(0x1008);
    }

    #[test]
    fn freed_tables_disappear_from_memory() {
        let mut frames = CountingFrames::new(4);
        let mut mem = EmulatedMemory::new();
        let a = frames.allocate().unwrap();
        let b = frames.allocate().unwrap();
        mem.zero(a);
        mem.zero(b);
        frames.free(a);
        mem.retain_live(&frames);
        assert!(mem.table(a).is_none());
        assert!(mem.table(b).is_some());
    }

    #[test]
    fn frames_respect_capacity_and_are_reused() {
        let mut frames = CountingFrames::with_base(0x10_0000, 2);
        let a = frames.allocate().unwrap();
        let b = frames.allocate().unwrap();
        assert_eq!((a, b), (0x10_0000, 0x10_1000));
        assert_eq!(frames.allocate(), None);
        assert_eq!(frames.outstanding(), 2);
        frames.free(a);
        assert!(!frames.is_live(a) && frames.is_live(b));
        assert_eq!(frames.allocate(), Some(a));
        frames.set_capacity(3);
        assert_eq!(frames.allocate(), Some(0x10_2000));
        assert_eq!(frames.live().count(), 3);
        assert_eq!(frames.allocations(), 4);
    }

    #[test]
    #[should_panic(expected = "not outstanding")]
    fn a_double_free_panics() {
        let mut frames = CountingFrames::new(2);
        let a = frames.allocate().unwrap();
        frames.free(a);
        frames.free(a);
    }

    #[test]
    #[should_panic(expected = "not outstanding")]
    fn freeing_a_foreign_frame_panics() {
        CountingFrames::new(2).free(0x1000);
    }
}
