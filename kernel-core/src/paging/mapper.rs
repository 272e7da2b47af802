//! The page-table walker: map, unmap, protect, translate and tear down one tree of tables.
//!
//! Owns the mechanism shared by every architecture and every address space (user spaces and the
//! kernel's own tables): walking the four levels, allocating and freeing intermediate tables,
//! splitting blocks, and enforcing the rules no caller may bypass (W^X, alignment, canonical
//! addresses, user mappings only in the user half and kernel mappings only in the kernel half).
//!
//! It must never flush a TLB, switch a root or touch memory except through
//! [`TableMemory`]: each method says what the caller must invalidate afterwards, and returns
//! what it needs to do so. It must never leak: every error path frees the tables the failed
//! call allocated and restores every entry it changed.

use super::flags::MapFlags;
use super::format::{ENTRIES, PAGE_SIZE, PageTableFormat, ROOT_LEVEL, level_size};
use super::memory::{FrameSource, TableMemory};
use arrayvec::ArrayVec;
use core::fmt;
use core::marker::PhantomData;
use core::ops::Range;

/// Why a page-table operation was refused. A refused operation changed nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapError {
    /// A table (or the root) could not be allocated.
    OutOfFrames,
    /// Something already translates the address (a page, a block, or, for a block, a table
    /// holding mappings).
    AlreadyMapped,
    /// Nothing translates the address.
    NotMapped,
    /// The address or the frame is not aligned to the page or block size.
    Unaligned,
    /// A user mapping outside the user half, or any address outside a user tree's half
    /// (including a non-canonical address given to an address space).
    NotUserAddress,
    /// A kernel mapping outside the kernel half, or any address outside a kernel tree's half.
    NotKernelAddress,
    /// Writable and executable together (W^X).
    WriteAndExecute,
    /// The address is in neither half.
    NonCanonical,
    /// The frame lies beyond what an entry can hold.
    PhysicalTooHigh,
    /// A block was asked for at a level that has none (only 1 and 2 do).
    InvalidLevel,
}

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::OutOfFrames => "out of frames for page tables",
            Self::AlreadyMapped => "address already mapped",
            Self::NotMapped => "address not mapped",
            Self::Unaligned => "address or frame not aligned",
            Self::NotUserAddress => "not a user address",
            Self::NotKernelAddress => "not a kernel address",
            Self::WriteAndExecute => "writable and executable together (W^X)",
            Self::NonCanonical => "non-canonical address",
            Self::PhysicalTooHigh => "frame beyond the physical address width",
            Self::InvalidLevel => "no block at this page-table level",
        })
    }
}

/// What translates one virtual address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Translation {
    /// The physical address of the virtual address itself (page or block start plus offset).
    pub phys: u64,
    /// The rights of the leaf.
    pub flags: MapFlags,
    /// Level of the leaf: 0 for a 4 KiB page, 1 or 2 for a block.
    pub level: u8,
}

/// The half of the virtual address space one tree translates.
///
/// Every tree serves exactly one half, and is given addresses of that half only. This is not
/// bookkeeping: AArch64 indexes a TTBR0 and a TTBR1 tree with the same 48 address bits, so
/// `0x0` and `0xffff_0000_0000_0000` select the same entry, and a tree fed an address of the
/// other half would silently map the alias (a kernel mapping appearing in user space, or an
/// EL0-accessible page in the kernel's tables).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Half {
    /// `[0, USER_END)`: a user address space (x86 CR3 lower half, AArch64 TTBR0).
    User,
    /// `[KERNEL_START, 2^64)`: the kernel's tables (x86 upper half, AArch64 TTBR1).
    Kernel,
}

/// One tree of page tables in format `F` for one [`Half`], identified by its root's physical
/// address.
///
/// The mapper holds no lock and no memory: the caller passes the table memory and the frame
/// source to each call and serialises calls on one tree (an address space does it with its
/// mutex). Mutating methods take `&mut self` to say so. On x86 one root holds both halves
/// (user roots copy the kernel's root entries); each half is still changed through a mapper of
/// that half only.
pub struct Mapper<F> {
    root: u64,
    half: Half,
    format: PhantomData<fn() -> F>,
}

impl<F> fmt::Debug for Mapper<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mapper")
            .field("root", &format_args!("{:#x}", self.root))
            .field("half", &self.half)
            .finish()
    }
}

/// What one call changed before it failed, so that it can be put back.
///
/// A call links at most one new subtree into existing tables (a walk allocates top-down, and
/// everything below the first new table is new too), so restoring that one entry and freeing
/// the new tables undoes it completely. Three is the deepest chain: levels 2, 1 and 0.
struct Undo {
    /// (table, index, entry before) of the first entry that was pointed at a new table.
    link: Option<(u64, usize, u64)>,
    tables: ArrayVec<u64, 3>,
}

impl Undo {
    fn new() -> Self {
        Self {
            link: None,
            tables: ArrayVec::new(),
        }
    }

    fn record(&mut self, table: u64, index: usize, before: u64, new_table: u64) {
        if self.link.is_none() {
            self.link = Some((table, index, before));
        }
        self.tables.push(new_table);
    }

    fn rollback(self, mem: &mut impl TableMemory, frames: &mut impl FrameSource) {
        // Unlink first, so no walker can reach a table after it went back to the source.
        if let Some((table, index, before)) = self.link {
            mem.write(table, index, before);
        }
        for &table in self.tables.iter().rev() {
            frames.free(table);
        }
    }
}

/// Tables from the root down to the leaf table: `path[level]` is (table, index) of the entry
/// at `level` that translates the address.
type Path = [(u64, usize); ROOT_LEVEL as usize + 1];

impl<F: PageTableFormat> Mapper<F> {
    /// Allocates and zeroes a new root for `half`.
    ///
    /// The root is empty: an arch that shares the kernel half by copying root entries (x86)
    /// copies them afterwards.
    pub fn new(
        mem: &mut impl TableMemory,
        frames: &mut impl FrameSource,
        half: Half,
    ) -> Result<Self, MapError> {
        Ok(Self::from_root(new_table(mem, frames)?, half))
    }

    /// A mapper for the `half` of an existing tree (the kernel's tables, a root built
    /// elsewhere, or the kernel half of an x86 root for inspection).
    pub fn from_root(root: u64, half: Half) -> Self {
        Self {
            root,
            half,
            format: PhantomData,
        }
    }

    /// Physical address of the root table (what CR3 / TTBR holds).
    pub fn root(&self) -> u64 {
        self.root
    }

    /// The half this tree translates.
    pub fn half(&self) -> Half {
        self.half
    }

    /// Maps the 4 KiB page at `va` to `frame` with `flags` (made [`MapFlags::effective`]).
    ///
    /// Allocates missing intermediate tables. Refuses, in this order: [`MapError::NonCanonical`],
    /// [`MapError::Unaligned`] (`va` or `frame`), [`MapError::WriteAndExecute`],
    /// [`MapError::NotUserAddress`] (a `USER` mapping outside the user half),
    /// [`MapError::NotKernelAddress`] (any other mapping outside the kernel half), the same two
    /// when `va` is not in this tree's [`Half`], [`MapError::PhysicalTooHigh`]; then, while walking, [`MapError::AlreadyMapped`] (a page or
    /// block already covers `va`) and [`MapError::OutOfFrames`]. On every error the tree is as
    /// before and every table this call allocated is freed.
    ///
    /// TLB: never flushes. On success nothing needs flushing (an empty entry became valid, and
    /// neither MMU caches empty entries). After `Err(OutOfFrames)` new tables may have been
    /// linked and unlinked again: a caller whose root is live must flush `va` (walk caches)
    /// before the freed tables can be reused.
    pub fn map(
        &mut self,
        mem: &mut impl TableMemory,
        frames: &mut impl FrameSource,
        va: u64,
        frame: u64,
        flags: MapFlags,
    ) -> Result<(), MapError> {
        self.map_leaf(mem, frames, va, frame, flags, 0)
    }

    /// Maps one block at `level` (1: 2 MiB, 2: 1 GiB) of `va` to `frame`: for the HHDM and the
    /// kernel image.
    ///
    /// Same checks, errors and TLB rule as [`map`](Self::map), with the alignment being the block
    /// size, plus [`MapError::InvalidLevel`] first for any other level. A table in the way is
    /// [`MapError::AlreadyMapped`] even if it is empty.
    pub fn map_huge(
        &mut self,
        mem: &mut impl TableMemory,
        frames: &mut impl FrameSource,
        va: u64,
        frame: u64,
        flags: MapFlags,
        level: u8,
    ) -> Result<(), MapError> {
        if !(1..=2).contains(&level) {
            return Err(MapError::InvalidLevel);
        }
        self.map_leaf(mem, frames, va, frame, flags, level)
    }

    /// Removes the 4 KiB mapping at `va` and returns the frame it mapped.
    ///
    /// A block covering `va` is split first (into blocks and then pages with the same rights), so
    /// only `va` goes away. Intermediate tables left empty are freed, bottom-up; the root never
    /// is, nor a table linked from the root in the kernel half (x86 shares those among all
    /// roots by copying the root entries: freeing one would leave every other root pointing at a
    /// free frame). Refuses [`MapError::NonCanonical`], [`MapError::NotUserAddress`] or
    /// [`MapError::NotKernelAddress`] (`va` not in this tree's half), [`MapError::Unaligned`],
    /// [`MapError::NotMapped`], and [`MapError::OutOfFrames`] when a split needs a table; a
    /// refused unmap changed nothing.
    ///
    /// TLB: never flushes. The caller must invalidate `va` (the leaf and the cached walk entries
    /// for `va`, since tables may have been freed) on every CPU that may have used this root,
    /// before the returned frame or the freed tables are reused. After a split the other pages
    /// translate exactly as before, which x86 tolerates without a flush; on AArch64 replacing a
    /// live block needs break-before-make, which the mapper cannot do: split only blocks that no
    /// CPU can be using (map what may be split with pages from the start).
    pub fn unmap(
        &mut self,
        mem: &mut impl TableMemory,
        frames: &mut impl FrameSource,
        va: u64,
    ) -> Result<u64, MapError> {
        check_canonical::<F>(va)?;
        check_half::<F>(self.half, va)?;
        if !va.is_multiple_of(PAGE_SIZE) {
            return Err(MapError::Unaligned);
        }
        let path = self.walk_to_page(mem, frames, va)?;
        let (table, index) = path[0];
        let frame = F::address(mem.read(table, index));
        mem.write(table, index, 0);
        prune::<F>(mem, frames, va, &path);
        Ok(frame)
    }

    /// Changes the rights of the 4 KiB mapping at `va` to `flags` (made
    /// [`MapFlags::effective`]), splitting a covering block first.
    ///
    /// Refuses like [`map`](Self::map) for the address and the flags, then
    /// [`MapError::NotMapped`] and [`MapError::OutOfFrames`] (split); a refused call changed
    /// nothing.
    ///
    /// TLB: never flushes. The caller must invalidate `va` on every CPU that may have used this
    /// root (also when rights only grow: the kernel does not expect spurious faults). The split
    /// caveat of [`unmap`](Self::unmap) applies.
    pub fn protect(
        &mut self,
        mem: &mut impl TableMemory,
        frames: &mut impl FrameSource,
        va: u64,
        flags: MapFlags,
    ) -> Result<(), MapError> {
        let flags = check_leaf::<F>(self.half, va, 0, flags, 0)?;
        let path = self.walk_to_page(mem, frames, va)?;
        let (table, index) = path[0];
        let frame = F::address(mem.read(table, index));
        mem.write(table, index, F::leaf_entry(frame, flags, 0));
        Ok(())
    }

    /// What translates `va`, or `None` (also for an address outside this tree's half). Reads
    /// only.
    pub fn translate(&self, mem: &impl TableMemory, va: u64) -> Option<Translation> {
        if check_half::<F>(self.half, va).is_err() {
            return None;
        }
        let mut table = self.root;
        for level in (0..=ROOT_LEVEL).rev() {
            let entry = mem.read(table, F::index(va, level));
            if !F::is_present(entry) {
                return None;
            }
            if level > 0 && F::is_table(entry, level) {
                table = F::address(entry);
                continue;
            }
            return Some(Translation {
                phys: F::address(entry) + (va & (level_size(level) - 1)),
                flags: F::flags(entry, level),
                level,
            });
        }
        None
    }

    /// Links a new empty table into every empty root slot of `slots`.
    ///
    /// x86 calls this once on the kernel's root for the kernel half before the first address
    /// space is created: roots copy the kernel half's root entries, so a root entry added later
    /// would be missing from every existing space. On [`MapError::OutOfFrames`] the slots this
    /// call filled are emptied again and their tables freed. Slots past the table are ignored.
    ///
    /// TLB: nothing to flush on success (empty entries became valid); on error the caller
    /// flushes like after a failed [`map`](Self::map), for the whole range.
    pub fn populate_root(
        &mut self,
        mem: &mut impl TableMemory,
        frames: &mut impl FrameSource,
        slots: Range<usize>,
    ) -> Result<(), MapError> {
        // The slots this call filled, so that a failure undoes exactly those.
        let mut filled = [0u64; ENTRIES / 64];
        for slot in slots.start..slots.end.min(ENTRIES) {
            if F::is_present(mem.read(self.root, slot)) {
                continue;
            }
            match new_table(mem, frames) {
                Ok(table) => {
                    mem.write(self.root, slot, F::table_entry(table));
                    filled[slot / 64] |= 1 << (slot % 64);
                }
                Err(error) => {
                    for undo in (0..ENTRIES).filter(|&s| filled[s / 64] & (1 << (s % 64)) != 0) {
                        let entry = mem.read(self.root, undo);
                        mem.write(self.root, undo, 0);
                        frames.free(F::address(entry));
                    }
                    return Err(error);
                }
            }
        }
        Ok(())
    }

    /// Frees every table reachable from the root slots `root_slots`, reports every mapped 4 KiB
    /// frame to `release_leaf` (a block reports each of its 4 KiB frames), and frees the root.
    ///
    /// Pass the user slots ([`PageTableFormat::user_root_slots`]): the kernel half of a root is
    /// shared and must never be freed from here. Mapped frames are not freed: they belong to
    /// whoever mapped them, which `release_leaf` tells.
    ///
    /// TLB: never flushes. The root must not be live on any CPU (switch away first), and the
    /// caller must invalidate this tree's ASID everywhere before the freed frames are reused.
    pub fn destroy(
        self,
        mem: &mut impl TableMemory,
        frames: &mut impl FrameSource,
        root_slots: Range<usize>,
        mut release_leaf: impl FnMut(u64),
    ) {
        for slot in root_slots.start..root_slots.end.min(ENTRIES) {
            let entry = mem.read(self.root, slot);
            if F::is_present(entry) {
                release::<F>(mem, frames, entry, ROOT_LEVEL, &mut release_leaf);
            }
        }
        frames.free(self.root);
    }

    /// Checks, walks and writes one leaf at `level` (0, 1 or 2), undoing the walk on any error.
    fn map_leaf(
        &mut self,
        mem: &mut impl TableMemory,
        frames: &mut impl FrameSource,
        va: u64,
        frame: u64,
        flags: MapFlags,
        level: u8,
    ) -> Result<(), MapError> {
        let flags = check_leaf::<F>(self.half, va, frame, flags, level)?;
        let mut undo = Undo::new();
        let result = self.map_walk(mem, frames, va, level, &mut undo);
        match result {
            Ok(table) => {
                mem.write(
                    table,
                    F::index(va, level),
                    F::leaf_entry(frame, flags, level),
                );
                Ok(())
            }
            Err(error) => {
                undo.rollback(mem, frames);
                Err(error)
            }
        }
    }

    /// Walks to the table at `level` for `va`, creating missing tables, and checks that its
    /// entry for `va` is empty. Returns that table.
    fn map_walk(
        &self,
        mem: &mut impl TableMemory,
        frames: &mut impl FrameSource,
        va: u64,
        level: u8,
        undo: &mut Undo,
    ) -> Result<u64, MapError> {
        let mut table = self.root;
        for current in (level + 1..=ROOT_LEVEL).rev() {
            let index = F::index(va, current);
            let entry = mem.read(table, index);
            table = if !F::is_present(entry) {
                let new = new_table(mem, frames)?;
                mem.write(table, index, F::table_entry(new));
                undo.record(table, index, entry, new);
                new
            } else if F::is_table(entry, current) {
                F::address(entry)
            } else {
                // A block already translates `va` (never split to map: that would hide a bug).
                return Err(MapError::AlreadyMapped);
            };
        }
        if F::is_present(mem.read(table, F::index(va, level))) {
            return Err(MapError::AlreadyMapped);
        }
        Ok(table)
    }

    /// Walks to the present 4 KiB leaf for `va`, splitting blocks on the way. On error the
    /// splits are undone.
    fn walk_to_page(
        &self,
        mem: &mut impl TableMemory,
        frames: &mut impl FrameSource,
        va: u64,
    ) -> Result<Path, MapError> {
        let mut undo = Undo::new();
        let result = self.split_walk(mem, frames, va, &mut undo);
        if result.is_err() {
            undo.rollback(mem, frames);
        }
        result
    }

    fn split_walk(
        &self,
        mem: &mut impl TableMemory,
        frames: &mut impl FrameSource,
        va: u64,
        undo: &mut Undo,
    ) -> Result<Path, MapError> {
        let mut path: Path = [(0, 0); ROOT_LEVEL as usize + 1];
        let mut table = self.root;
        for level in (1..=ROOT_LEVEL).rev() {
            let index = F::index(va, level);
            path[usize::from(level)] = (table, index);
            let entry = mem.read(table, index);
            if !F::is_present(entry) {
                return Err(MapError::NotMapped);
            }
            table = if F::is_table(entry, level) {
                F::address(entry)
            } else {
                let new = split::<F>(mem, frames, entry, level)?;
                mem.write(table, index, F::table_entry(new));
                undo.record(table, index, entry, new);
                new
            };
        }
        let index = F::index(va, 0);
        path[0] = (table, index);
        if !F::is_present(mem.read(table, index)) {
            return Err(MapError::NotMapped);
        }
        Ok(path)
    }
}

/// Allocates and zeroes one table.
fn new_table(mem: &mut impl TableMemory, frames: &mut impl FrameSource) -> Result<u64, MapError> {
    let table = frames.allocate().ok_or(MapError::OutOfFrames)?;
    debug_assert!(
        table.is_multiple_of(PAGE_SIZE),
        "unaligned frame {table:#x}"
    );
    mem.zero(table);
    Ok(table)
}

fn check_canonical<F: PageTableFormat>(va: u64) -> Result<(), MapError> {
    if F::is_canonical(va) {
        Ok(())
    } else {
        Err(MapError::NonCanonical)
    }
}

/// Refuses an address outside the tree's half.
fn check_half<F: PageTableFormat>(half: Half, va: u64) -> Result<(), MapError> {
    match half {
        Half::User if !F::is_user(va) => Err(MapError::NotUserAddress),
        Half::Kernel if !F::is_kernel(va) => Err(MapError::NotKernelAddress),
        _ => Ok(()),
    }
}

/// Every check a new leaf must pass; returns the flags to encode.
fn check_leaf<F: PageTableFormat>(
    half: Half,
    va: u64,
    frame: u64,
    flags: MapFlags,
    level: u8,
) -> Result<MapFlags, MapError> {
    check_canonical::<F>(va)?;
    let size = level_size(level);
    if !va.is_multiple_of(size) || !frame.is_multiple_of(size) {
        return Err(MapError::Unaligned);
    }
    let flags = flags.effective();
    if flags.violates_wx() {
        return Err(MapError::WriteAndExecute);
    }
    // Both halves are aligned to every block size, so an aligned leaf starting in a half lies
    // wholly inside it.
    if flags.contains(MapFlags::USER) {
        if !F::is_user(va) {
            return Err(MapError::NotUserAddress);
        }
    } else if !F::is_kernel(va) {
        return Err(MapError::NotKernelAddress);
    }
    check_half::<F>(half, va)?;
    if frame >= F::PHYS_LIMIT {
        return Err(MapError::PhysicalTooHigh);
    }
    Ok(flags)
}

/// A new table holding the translations of the block `entry` at `level`, one level down.
fn split<F: PageTableFormat>(
    mem: &mut impl TableMemory,
    frames: &mut impl FrameSource,
    block: u64,
    level: u8,
) -> Result<u64, MapError> {
    let table = new_table(mem, frames)?;
    let (base, flags, child) = (F::address(block), F::flags(block, level), level - 1);
    for (i, offset) in (0..ENTRIES as u64)
        .map(|i| i * level_size(child))
        .enumerate()
    {
        mem.write(table, i, F::leaf_entry(base + offset, flags, child));
    }
    Ok(table)
}

/// Frees the tables of `path` that are empty after an unmap, from the leaf table up.
fn prune<F: PageTableFormat>(
    mem: &mut impl TableMemory,
    frames: &mut impl FrameSource,
    va: u64,
    path: &Path,
) {
    for level in 0..ROOT_LEVEL {
        if level + 1 == ROOT_LEVEL && F::is_kernel(va) {
            // Linked from the root in the kernel half: shared by every root (see `unmap`).
            break;
        }
        let (table, _) = path[usize::from(level)];
        // Any non-zero entry keeps the table, present or not: only zero means empty.
        if (0..ENTRIES).any(|i| mem.read(table, i) != 0) {
            break;
        }
        let (parent, index) = path[usize::from(level) + 1];
        mem.write(parent, index, 0);
        frames.free(table);
    }
}

/// Releases what the present `entry` at `level` maps: its tables to `frames`, its 4 KiB frames
/// to `release_leaf`. Recursion depth is bounded by the four levels.
fn release<F: PageTableFormat>(
    mem: &mut impl TableMemory,
    frames: &mut impl FrameSource,
    entry: u64,
    level: u8,
    release_leaf: &mut impl FnMut(u64),
) {
    if level > 0 && F::is_table(entry, level) {
        let table = F::address(entry);
        for i in 0..ENTRIES {
            let child = mem.read(table, i);
            if F::is_present(child) {
                release::<F>(mem, frames, child, level - 1, release_leaf);
            }
        }
        frames.free(table);
    } else {
        let base = F::address(entry);
        for page in 0..level_size(level) / PAGE_SIZE {
            release_leaf(base + page * PAGE_SIZE);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paging::emulated::{CountingFrames, EmulatedMemory};
    use crate::paging::format::TestFormat;
    use std::collections::btree_map::Entry;
    use std::collections::{BTreeMap, BTreeSet};
    use std::vec;
    use std::vec::Vec;

    type TestMapper = Mapper<TestFormat>;

    const USER_END: u64 = TestFormat::USER_END;
    const KERNEL: u64 = TestFormat::KERNEL_START;
    const GIB: u64 = 1 << 30;
    const MIB2: u64 = 2 << 20;
    const R: MapFlags = MapFlags::READ;
    const W: MapFlags = MapFlags::WRITE;
    const X: MapFlags = MapFlags::EXECUTE;
    const U: MapFlags = MapFlags::USER;

    /// Leaf frames come from far above the table frames, so the two never mix up.
    fn frame(i: u64) -> u64 {
        0x80_0000_0000 + i * PAGE_SIZE
    }

    struct Setup {
        mem: EmulatedMemory,
        frames: CountingFrames,
        mapper: TestMapper,
    }

    /// A user tree.
    fn setup(capacity: usize) -> Setup {
        setup_half(capacity, Half::User)
    }

    fn setup_half(capacity: usize, half: Half) -> Setup {
        let mut mem = EmulatedMemory::new();
        let mut frames = CountingFrames::new(capacity);
        let mapper = TestMapper::new(&mut mem, &mut frames, half).unwrap();
        Setup {
            mem,
            frames,
            mapper,
        }
    }

    /// Every table reachable from `root`, root included.
    fn reachable(mem: &EmulatedMemory, root: u64) -> BTreeSet<u64> {
        fn walk(mem: &EmulatedMemory, table: u64, level: u8, out: &mut BTreeSet<u64>) {
            assert!(out.insert(table), "table {table:#x} reachable twice");
            for &e in mem.table(table).expect("reachable table exists") {
                if level > 0 && TestFormat::is_present(e) && TestFormat::is_table(e, level) {
                    walk(mem, TestFormat::address(e), level - 1, out);
                }
            }
        }
        let mut out = BTreeSet::new();
        walk(mem, root, ROOT_LEVEL, &mut out);
        out
    }

    impl Setup {
        fn map(&mut self, va: u64, frame: u64, flags: MapFlags) -> Result<(), MapError> {
            self.mapper
                .map(&mut self.mem, &mut self.frames, va, frame, flags)
        }

        fn map_huge(
            &mut self,
            va: u64,
            f: u64,
            flags: MapFlags,
            level: u8,
        ) -> Result<(), MapError> {
            self.mapper
                .map_huge(&mut self.mem, &mut self.frames, va, f, flags, level)
        }

        fn unmap(&mut self, va: u64) -> Result<u64, MapError> {
            self.mapper.unmap(&mut self.mem, &mut self.frames, va)
        }

        fn protect(&mut self, va: u64, flags: MapFlags) -> Result<(), MapError> {
            self.mapper
                .protect(&mut self.mem, &mut self.frames, va, flags)
        }

        fn translate(&self, va: u64) -> Option<Translation> {
            self.mapper.translate(&self.mem, va)
        }

        /// The live frames are exactly the reachable tables: nothing leaked, nothing freed
        /// while still linked. Freed tables are then dropped from memory, so any later walk
        /// into one panics.
        fn check(&mut self) {
            let live: BTreeSet<u64> = self.frames.live().collect();
            assert_eq!(reachable(&self.mem, self.mapper.root()), live);
            self.mem.retain_live(&self.frames);
        }

        fn page(&self, va: u64) -> Option<(u64, MapFlags, u8)> {
            self.translate(va).map(|t| (t.phys, t.flags, t.level))
        }
    }

    /// Addresses at the edges of every table: the first and last user pages, both sides of
    /// 2 MiB, 1 GiB and 512 GiB boundaries.
    fn user_addresses() -> Vec<u64> {
        let mut out = vec![0, PAGE_SIZE, USER_END - PAGE_SIZE, USER_END - 2 * PAGE_SIZE];
        for boundary in [MIB2, GIB, 512 * GIB, 3 * 512 * GIB + 7 * GIB + 5 * MIB2] {
            out.extend([boundary - PAGE_SIZE, boundary, boundary + PAGE_SIZE]);
        }
        out
    }

    #[test]
    fn map_translate_unmap_round_trip_at_many_addresses() {
        let mut s = setup(usize::MAX);
        let addresses = user_addresses();
        let rights = [R | U, R | W | U, R | X | U, U, W | U | MapFlags::DEVICE];
        for (i, &va) in addresses.iter().enumerate() {
            let flags = rights[i % rights.len()];
            s.map(va, frame(i as u64), flags).unwrap();
            s.check();
        }
        for (i, &va) in addresses.iter().enumerate() {
            let flags = rights[i % rights.len()].effective();
            assert_eq!(s.page(va), Some((frame(i as u64), flags, 0)), "{va:#x}");
            assert_eq!(
                s.translate(va + 0x123).unwrap().phys,
                frame(i as u64) + 0x123
            );
        }
        assert_eq!(s.translate(3 * PAGE_SIZE), None);
        for (i, &va) in addresses.iter().enumerate() {
            assert_eq!(s.unmap(va), Ok(frame(i as u64)));
            assert_eq!(s.translate(va), None);
            assert_eq!(s.unmap(va), Err(MapError::NotMapped));
            s.check();
        }
        // Every intermediate table went away again.
        assert_eq!(s.frames.outstanding(), 1);
    }

    #[test]
    fn kernel_mappings_live_in_the_kernel_half() {
        let mut s = setup_half(usize::MAX, Half::Kernel);
        let top = u64::MAX - (PAGE_SIZE - 1);
        for (i, va) in [KERNEL, KERNEL + GIB, top].into_iter().enumerate() {
            let flags = [R | X | MapFlags::GLOBAL, R | W, R][i];
            s.map(va, frame(i as u64), flags).unwrap();
            assert_eq!(s.page(va), Some((frame(i as u64), flags.effective(), 0)));
        }
        // Tables linked from the root in the kernel half stay, even when empty (x86 shares them).
        for va in [KERNEL, KERNEL + GIB, top] {
            s.unmap(va).unwrap();
        }
        s.check();
        assert_eq!(
            s.frames.outstanding(),
            3,
            "root and two kernel-half level-2 tables"
        );
        assert_eq!(s.mapper.root(), s.frames.live().next().unwrap());
    }

    #[test]
    fn address_and_flag_errors_change_nothing() {
        let mut s = setup(usize::MAX);
        s.map(0x1000, frame(0), R | U).unwrap();
        let before = s.frames.outstanding();
        let cases = [
            (
                0x0000_8000_0000_0000,
                frame(1),
                R | U,
                MapError::NonCanonical,
            ),
            (0x1234_5678_0000_0000, frame(1), R, MapError::NonCanonical),
            (0x2001, frame(1), R | U, MapError::Unaligned),
            (0x2000, frame(1) + 8, R | U, MapError::Unaligned),
            (0x2000, frame(1), R | W | X | U, MapError::WriteAndExecute),
            (0x2000, frame(1), W | X, MapError::WriteAndExecute),
            (KERNEL, frame(1), R | U, MapError::NotUserAddress),
            (
                USER_END - PAGE_SIZE,
                frame(1),
                R,
                MapError::NotKernelAddress,
            ),
            (
                0x2000,
                TestFormat::PHYS_LIMIT,
                R | U,
                MapError::PhysicalTooHigh,
            ),
            (0x1000, frame(1), R | U, MapError::AlreadyMapped),
        ];
        for (va, f, flags, error) in cases {
            assert_eq!(s.map(va, f, flags), Err(error), "{va:#x} {flags:?}");
            assert_eq!(s.frames.outstanding(), before);
            s.check();
        }
        assert_eq!(s.page(0x1000), Some((frame(0), R | U, 0)));
        assert_eq!(s.translate(0x2000), None);
    }

    #[test]
    fn out_of_frames_at_every_point_of_a_map_leaks_nothing() {
        // Each target needs 3, 2, 1 and 0 new tables next to the existing mapping at 0x1000.
        let targets = [(513 * GIB, 3), (5 * GIB, 2), (7 * MIB2, 1), (0x5000, 0)];
        for (va, needed) in targets {
            let mut s = setup(usize::MAX);
            s.map(0x1000, frame(0), R | U).unwrap();
            let base = s.frames.outstanding();
            for extra in 0..=needed {
                s.frames.set_capacity(base + extra);
                let result = s.map(va, frame(1), R | W | U);
                if extra < needed {
                    assert_eq!(result, Err(MapError::OutOfFrames), "{va:#x} +{extra}");
                    assert_eq!(s.frames.outstanding(), base);
                    assert_eq!(s.translate(va), None);
                } else {
                    assert_eq!(result, Ok(()));
                    assert_eq!(s.frames.outstanding(), base + needed);
                }
                assert_eq!(s.page(0x1000), Some((frame(0), R | U, 0)));
                s.check();
            }
        }
        // Even the root.
        let mut mem = EmulatedMemory::new();
        let mut frames = CountingFrames::new(0);
        assert_eq!(
            TestMapper::new(&mut mem, &mut frames, Half::User).unwrap_err(),
            MapError::OutOfFrames
        );
        assert_eq!(mem.table_count(), 0);
    }

    #[test]
    fn huge_pages_map_translate_and_refuse_overlap() {
        let mut s = setup_half(usize::MAX, Half::Kernel);
        let (va1, va2) = (KERNEL + 4 * GIB + 3 * MIB2, KERNEL + 9 * GIB);
        let (pa1, pa2) = (0x1_0020_0000, 0x40_0000_0000);
        s.map_huge(va1, pa1, R | W | MapFlags::GLOBAL, 1).unwrap();
        s.map_huge(va2, pa2, R | X, 2).unwrap();
        assert_eq!(
            s.translate(va1 + 0x12_345),
            Some(Translation {
                phys: pa1 + 0x12_345,
                flags: R | W | MapFlags::GLOBAL,
                level: 1,
            })
        );
        assert_eq!(s.page(va2 + GIB - 1), Some((pa2 + GIB - 1, R | X, 2)));
        s.check();

        let before = s.frames.outstanding();
        // (va, frame, level: None for a 4 KiB `map`, expected error)
        let refused = [
            (va1 + PAGE_SIZE, 0x20_0000, None, MapError::AlreadyMapped),
            (va1, 0x20_0000, Some(1), MapError::AlreadyMapped),
            (va2 + 5 * MIB2, 0x20_0000, Some(1), MapError::AlreadyMapped),
            (va2, 0x4000_0000, Some(2), MapError::AlreadyMapped),
            (va1 + PAGE_SIZE, 0x20_0000, Some(1), MapError::Unaligned),
            (va1 + MIB2, 0x20_1000, Some(1), MapError::Unaligned),
            (va2 + GIB + MIB2, 0x4000_0000, Some(2), MapError::Unaligned),
            (va1 + MIB2, 0x20_0000, Some(0), MapError::InvalidLevel),
            (va1 + MIB2, 0x20_0000, Some(3), MapError::InvalidLevel),
            (GIB, 0x20_0000, Some(1), MapError::NotKernelAddress),
            (KERNEL, 0, Some(2), MapError::NotUserAddress),
        ];
        for (va, pa, level, error) in refused {
            let flags = if error == MapError::NotUserAddress {
                R | U
            } else {
                R
            };
            let result = match level {
                None => s.map(va, pa, flags),
                Some(level) => s.map_huge(va, pa, flags, level),
            };
            assert_eq!(result, Err(error), "{va:#x} level {level:?}");
            assert_eq!(s.frames.outstanding(), before);
            s.check();
        }

        // A block over a table that holds pages is refused too.
        s.map(va1 + 2 * MIB2, frame(0), R).unwrap();
        assert_eq!(
            s.map_huge(va1 + MIB2 + MIB2, 0x20_0000, R, 1),
            Err(MapError::AlreadyMapped)
        );
        // User blocks belong in a user tree.
        assert_eq!(
            s.map_huge(GIB, 0, R | U, 2),
            Err(MapError::NotKernelAddress)
        );
        let mut user = setup(usize::MAX);
        assert_eq!(user.map_huge(GIB, 0, R | U, 2), Ok(()));
        assert_eq!(user.page(GIB + 5), Some((5, R | U, 2)));
        assert_eq!(
            user.map_huge(KERNEL, 0, R, 2),
            Err(MapError::NotUserAddress)
        );
        user.check();
    }

    #[test]
    fn unmapping_inside_a_block_splits_it() {
        let mut s = setup_half(usize::MAX, Half::Kernel);
        let va = KERNEL + 6 * GIB;
        let pa = 0x7_4000_0000;
        let flags = R | W | MapFlags::GLOBAL;
        s.map_huge(va, pa, flags, 2).unwrap();
        let before = s.frames.outstanding();
        let hole = va + 3 * MIB2 + 5 * PAGE_SIZE;
        assert_eq!(s.unmap(hole), Ok(pa + 3 * MIB2 + 5 * PAGE_SIZE));
        // 1 GiB -> 2 MiB blocks -> pages for the one 2 MiB block that lost a page.
        assert_eq!(s.frames.outstanding(), before + 2);
        s.check();
        assert_eq!(s.translate(hole), None);
        assert_eq!(
            s.page(hole - PAGE_SIZE),
            Some((pa + 3 * MIB2 + 4 * PAGE_SIZE, flags, 0))
        );
        assert_eq!(
            s.page(hole + PAGE_SIZE),
            Some((pa + 3 * MIB2 + 6 * PAGE_SIZE, flags, 0))
        );
        assert_eq!(
            s.page(va + 2 * MIB2 + 7),
            Some((pa + 2 * MIB2 + 7, flags, 1))
        );
        assert_eq!(s.page(va + GIB - 1), Some((pa + GIB - 1, flags, 1)));
        assert_eq!(s.page(va), Some((pa, flags, 1)));
        // Unmapping the rest of that 2 MiB frees its page table; the 2 MiB blocks stay.
        for i in 0..512 {
            let page = va + 3 * MIB2 + i * PAGE_SIZE;
            if page != hole {
                assert_eq!(s.unmap(page), Ok(pa + 3 * MIB2 + i * PAGE_SIZE));
            }
        }
        assert_eq!(s.frames.outstanding(), before + 1);
        s.check();
        assert_eq!(s.page(va + 4 * MIB2), Some((pa + 4 * MIB2, flags, 1)));
    }

    #[test]
    fn protect_changes_rights_and_splits_blocks() {
        let mut s = setup(usize::MAX);
        s.map(0x7000, frame(3), R | W | U).unwrap();
        s.protect(0x7000, R | X | U).unwrap();
        assert_eq!(s.page(0x7000), Some((frame(3), R | X | U, 0)));
        s.protect(0x7000, U).unwrap();
        assert_eq!(s.page(0x7000), Some((frame(3), R | U, 0)));
        let before = s.frames.outstanding();
        for (va, flags, error) in [
            (0x7000, R | W | X | U, MapError::WriteAndExecute),
            (0x8000, R | U, MapError::NotMapped),
            (0x7001, R | U, MapError::Unaligned),
            (0x7000, R, MapError::NotKernelAddress),
            (1 << 60, R | U, MapError::NonCanonical),
            (KERNEL, R | U, MapError::NotUserAddress),
            (KERNEL, R, MapError::NotUserAddress),
        ] {
            assert_eq!(s.protect(va, flags), Err(error), "{va:#x}");
            assert_eq!(s.frames.outstanding(), before);
            assert_eq!(s.page(0x7000), Some((frame(3), R | U, 0)));
            s.check();
        }

        let mut s = setup_half(usize::MAX, Half::Kernel);
        let va = KERNEL + MIB2 * 7;
        s.map_huge(va, 0x60_0000, R | W, 1).unwrap();
        s.protect(va + PAGE_SIZE, R).unwrap();
        assert_eq!(s.page(va + PAGE_SIZE), Some((0x60_1000, R, 0)));
        assert_eq!(s.page(va), Some((0x60_0000, R | W, 0)));
        assert_eq!(
            s.page(va + MIB2 - 1),
            Some((0x60_0000 + MIB2 - 1, R | W, 0))
        );
        s.check();
    }

    #[test]
    fn out_of_frames_during_a_split_restores_the_block() {
        for op in 0..2 {
            let mut s = setup_half(usize::MAX, Half::Kernel);
            let va = KERNEL + 2 * GIB;
            s.map_huge(va, 0x8000_0000, R | W, 2).unwrap();
            let base = s.frames.outstanding();
            let target = va + 5 * MIB2 + PAGE_SIZE;
            for extra in 0..=2 {
                s.frames.set_capacity(base + extra);
                let result = if op == 0 {
                    s.unmap(target).map(|_| ())
                } else {
                    s.protect(target, R)
                };
                if extra < 2 {
                    assert_eq!(result, Err(MapError::OutOfFrames));
                    assert_eq!(s.frames.outstanding(), base);
                    assert_eq!(
                        s.page(target),
                        Some((0x8000_0000 + 5 * MIB2 + PAGE_SIZE, R | W, 2))
                    );
                } else {
                    assert_eq!(result, Ok(()));
                }
                s.check();
            }
        }
    }

    #[test]
    fn unmap_refuses_what_it_cannot_find() {
        let mut s = setup(usize::MAX);
        s.map(GIB + 0x3000, frame(0), R | U).unwrap();
        let before = s.frames.outstanding();
        for (va, error) in [
            (0, MapError::NotMapped),            // empty root slot
            (GIB * 5, MapError::NotMapped),      // empty level-2 entry
            (GIB + MIB2, MapError::NotMapped),   // empty level-1 entry
            (GIB + 0x4000, MapError::NotMapped), // empty leaf
            (GIB + 0x3008, MapError::Unaligned),
            (USER_END, MapError::NonCanonical),
            (KERNEL, MapError::NotUserAddress),
        ] {
            assert_eq!(s.unmap(va), Err(error), "{va:#x}");
            assert_eq!(s.frames.outstanding(), before);
            s.check();
        }
        assert_eq!(s.translate(u64::MAX), None);
        assert_eq!(s.translate(USER_END), None);
    }

    #[test]
    fn destroy_frees_user_tables_and_reports_every_frame() {
        let mut s = setup(usize::MAX);
        // Kernel half first, as x86 shares it: these tables are the kernel's and must survive.
        let mut kernel = TestMapper::from_root(s.mapper.root(), Half::Kernel);
        kernel
            .map(&mut s.mem, &mut s.frames, KERNEL + 0x5000, frame(900), R)
            .unwrap();
        let kernel_tables = s.frames.outstanding() - 1;
        let mut mapped = BTreeSet::new();
        for (i, va) in user_addresses().into_iter().enumerate() {
            s.map(va, frame(i as u64), R | U).unwrap();
            mapped.insert(frame(i as u64));
        }
        s.map_huge(100 * GIB, 0x40_0000, R | U, 1).unwrap();
        mapped.extend((0..512).map(|i| 0x40_0000 + i * PAGE_SIZE));
        let mut released = Vec::new();
        let Setup {
            mut mem,
            mut frames,
            mapper,
        } = s;
        mapper.destroy(&mut mem, &mut frames, TestFormat::user_root_slots(), |f| {
            released.push(f);
        });
        assert_eq!(released.len(), mapped.len(), "each frame once");
        assert_eq!(released.into_iter().collect::<BTreeSet<_>>(), mapped);
        assert_eq!(frames.outstanding(), kernel_tables);
    }

    #[test]
    fn a_thousand_create_map_destroy_cycles_return_every_frame() {
        let mut mem = EmulatedMemory::new();
        let mut frames = CountingFrames::new(usize::MAX);
        for cycle in 0..1000u64 {
            let mut mapper = TestMapper::new(&mut mem, &mut frames, Half::User).unwrap();
            let pages = [
                0,
                cycle * PAGE_SIZE,
                GIB + cycle * MIB2,
                USER_END - PAGE_SIZE,
            ];
            let mut expected = BTreeSet::new();
            for (i, va) in pages.into_iter().enumerate() {
                if mapper.translate(&mem, va).is_none() {
                    mapper
                        .map(&mut mem, &mut frames, va, frame(i as u64), R | W | U)
                        .unwrap();
                    expected.insert(frame(i as u64));
                }
            }
            let mut released = BTreeSet::new();
            mapper.destroy(&mut mem, &mut frames, TestFormat::user_root_slots(), |f| {
                assert!(released.insert(f));
            });
            assert_eq!(released, expected);
            assert_eq!(frames.outstanding(), 0, "cycle {cycle}");
            mem.retain_live(&frames);
        }
        assert_eq!(mem.table_count(), 0);
    }

    #[test]
    fn populate_root_fills_empty_slots_and_undoes_itself_when_short() {
        let mut s = setup_half(usize::MAX, Half::Kernel);
        s.map(KERNEL + 3 * 512 * GIB, frame(0), R).unwrap();
        let base = s.frames.outstanding();
        s.frames.set_capacity(base + 100);
        let kernel_slots = 256..512;
        assert_eq!(
            s.mapper
                .populate_root(&mut s.mem, &mut s.frames, kernel_slots.clone()),
            Err(MapError::OutOfFrames)
        );
        assert_eq!(s.frames.outstanding(), base);
        assert_eq!(s.page(KERNEL + 3 * 512 * GIB), Some((frame(0), R, 0)));
        s.check();
        s.frames.set_capacity(usize::MAX);
        s.mapper
            .populate_root(&mut s.mem, &mut s.frames, kernel_slots.clone())
            .unwrap();
        // One table per slot; the slot that already had one kept it.
        assert_eq!(s.frames.outstanding(), 1 + 256 + 2);
        for slot in kernel_slots {
            let e = s.mem.read(s.mapper.root(), slot);
            assert!(TestFormat::is_present(e) && TestFormat::is_table(e, 3));
        }
        assert_eq!(s.page(KERNEL + 3 * 512 * GIB), Some((frame(0), R, 0)));
        s.check();
    }

    /// Deterministic xorshift64 so failures reproduce.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    /// Random maps, unmaps and protects with random frame shortages against a model.
    #[test]
    fn random_operations_match_a_model() {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let mut s = setup(usize::MAX);
        let mut model: BTreeMap<u64, (u64, MapFlags)> = BTreeMap::new();
        // A few clusters so tables fill up and empty again.
        let bases = [
            0,
            GIB - 16 * PAGE_SIZE,
            700 * GIB,
            USER_END - 32 * PAGE_SIZE,
        ];
        let all_rights = [R | U, R | W | U, R | X | U, R | W | X | U];
        for step in 0..20_000u64 {
            let va = bases[rng.below(4) as usize] + rng.below(32) * PAGE_SIZE;
            let flags = all_rights[rng.below(4) as usize];
            let short = rng.below(4) == 0;
            let cap = if short {
                s.frames.outstanding() + rng.below(3) as usize
            } else {
                usize::MAX
            };
            s.frames.set_capacity(cap);
            let before = s.frames.outstanding();
            match rng.below(3) {
                0 => {
                    let result = s.map(va, frame(step), flags);
                    if flags.violates_wx() {
                        assert_eq!(result, Err(MapError::WriteAndExecute));
                    } else {
                        match model.entry(va) {
                            Entry::Occupied(_) => assert_eq!(result, Err(MapError::AlreadyMapped)),
                            Entry::Vacant(slot) => match result {
                                Ok(()) => {
                                    slot.insert((frame(step), flags));
                                }
                                Err(error) => {
                                    assert_eq!(error, MapError::OutOfFrames);
                                    assert!(short);
                                }
                            },
                        }
                    }
                }
                1 => match model.remove(&va) {
                    Some((f, _)) => assert_eq!(s.unmap(va), Ok(f)),
                    None => assert_eq!(s.unmap(va), Err(MapError::NotMapped)),
                },
                _ => {
                    let result = s.protect(va, flags);
                    match model.get_mut(&va) {
                        _ if flags.violates_wx() => {
                            assert_eq!(result, Err(MapError::WriteAndExecute));
                        }
                        Some(entry) => {
                            assert_eq!(result, Ok(()));
                            entry.1 = flags;
                        }
                        None => assert_eq!(result, Err(MapError::NotMapped)),
                    }
                }
            }
            if s.frames.outstanding() < before {
                // Only an unmap may free tables.
                assert!(!model.contains_key(&va));
            }
            if step % 97 == 0 {
                s.check();
                for base in bases {
                    for i in 0..32 {
                        let page = base + i * PAGE_SIZE;
                        let expected = model.get(&page).map(|&(f, fl)| (f, fl.effective(), 0));
                        assert_eq!(s.page(page), expected, "step {step} {page:#x}");
                    }
                }
            }
        }
        s.frames.set_capacity(usize::MAX);
        for (&va, &(f, _)) in &model {
            assert_eq!(s.unmap(va), Ok(f));
        }
        s.check();
        assert_eq!(s.frames.outstanding(), 1);
    }
}
