//! The portable user address space: one page-table tree, its TLB tag, and its lock.
//!
//! Owns the user-facing rules on top of the [`Mapper`]: only page-aligned addresses of the user
//! half, every mapping `USER` and never global, a TLB flush after every change that needs one
//! (plus the SMP shootdown hook), the ASID/PCID handling of a switch, and teardown. Everything
//! machine-specific comes through [`AddressSpaceHal`], which the arch crates implement.
//!
//! It must never hold its lock past a return (every guard is RAII) and never free a frame it
//! did not allocate: mapped frames belong to the caller (the memory server's policy), only the
//! tables are this module's. Lock order: the caller's frame-allocator lock, then the ASID
//! allocator's, then this space's.

use super::asid::{AsidAllocator, AsidOutcome, AsidTag};
use super::flags::MapFlags;
use super::format::{PAGE_SIZE, PageTableFormat};
use super::mapper::{Half, MapError, Mapper, Translation};
use super::memory::{FrameSource, TableMemory};
use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use spin::Mutex;

/// A TLB invalidation that other CPUs may have to repeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shootdown {
    /// One page of one tag ([`AddressSpaceHal::flush_page`]).
    Page {
        /// The tag.
        asid: u32,
        /// The page.
        va: u64,
    },
    /// Everything of one tag ([`AddressSpaceHal::flush_asid`]).
    Asid(u32),
    /// Every non-global entry ([`AddressSpaceHal::flush_all_non_global`]).
    AllNonGlobal,
}

/// What an architecture provides for address spaces. Implemented by a zero-sized type per arch.
///
/// The flush functions act on the calling CPU and must also drop the cached intermediate
/// (walk-cache) entries for what they invalidate, because tables are freed before them (x86
/// `invlpg`/`invpcid` do; AArch64 must use `tlbi vae1is`/`aside1is`, not the `..le1` forms);
/// they include the barriers that make the invalidation complete before they return.
pub trait AddressSpaceHal {
    /// The entry encoding.
    type Format: PageTableFormat;
    /// Access to tables by physical address (the HHDM).
    type Memory: TableMemory;

    /// A handle to the tables (a zero-sized HHDM accessor on real hardware).
    fn memory() -> Self::Memory;

    /// How many TLB tags the CPU has, for [`AsidAllocator::new`] (x86 without PCID: 1).
    fn asid_count() -> u32;

    /// Prepares a new, zeroed root before first use. x86 copies the kernel half's root entries
    /// from the kernel's root (which must never change afterwards:
    /// [`Mapper::populate_root`]); AArch64 does nothing (TTBR1 holds the kernel).
    fn init_root(mem: &mut Self::Memory, root: u64);

    /// Invalidates the translation of `va` under tag `asid`.
    fn flush_page(asid: u32, va: u64);

    /// Invalidates every translation under tag `asid`.
    fn flush_asid(asid: u32);

    /// Invalidates every non-global translation (all tags).
    fn flush_all_non_global();

    /// Makes `root` the user tables of this CPU under tag `asid` (CR3 with PCID, TTBR0 with
    /// ASID). With `flush`, the CPU must not keep anything cached for `asid` (x86: clear CR3
    /// bit 63; AArch64: `tlbi aside1` before use).
    fn activate(root: u64, asid: u32, flush: bool);

    /// The SMP shootdown hook: called for every flush, after the local one, so that other CPUs
    /// that may cache the same entries invalidate them too. Single CPU for now: an empty body.
    /// (AArch64's inner-shareable `tlbi ..is` already reaches every CPU; x86 will send IPIs.)
    fn shootdown(request: Shootdown);
}

/// What the lock protects.
struct Inner<F> {
    mapper: Mapper<F>,
    tag: AsidTag,
}

/// A user address space: its own tables for the user half, switched to with a tagged root.
///
/// Every method takes the internal lock for its whole duration and releases it on every path.
/// Never call a method from a context that may have interrupted a holder of the same space's
/// lock (an interrupt or a preemption inside `map`): it would spin forever. Dropping a space
/// without [`destroy`](Self::destroy) leaks its tables.
pub struct AddressSpace<H: AddressSpaceHal> {
    /// The root never changes, so reading it needs no lock.
    root: u64,
    inner: Mutex<Inner<H::Format>>,
    /// A copy of the tag for the lock-free switch ([`switch_to_cached`](Self::switch_to_cached)):
    /// `generation << ASID_BITS | asid`, or 0 (never matches) while the tag is unassigned or
    /// does not fit. Written under `inner` by every refresh.
    cached_tag: AtomicU64,
    /// [`switch_to_untagged`](Self::switch_to_untagged) has marked the tag (set once, under
    /// `inner`, after the mark).
    untagged_marked: AtomicBool,
}

/// Bits of a tag in [`AddressSpace::cached_tag`]: AArch64 has at most 2^16 ASIDs, x86 2^12
/// PCIDs.
const ASID_BITS: u32 = 16;

/// `tag` packed for [`AddressSpace::cached_tag`]; 0 if it cannot be (a generation past 2^48,
/// reached only after that many rollovers): the space then always takes the locked switch.
fn pack_tag(tag: AsidTag) -> u64 {
    if tag.generation >> (64 - ASID_BITS) != 0 || tag.asid >> ASID_BITS != 0 {
        return 0;
    }
    (tag.generation << ASID_BITS) | u64::from(tag.asid)
}

impl<H: AddressSpaceHal> fmt::Debug for AddressSpace<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("AddressSpace");
        out.field("root", &format_args!("{:#x}", self.root));
        // Never wait for the lock here: Debug may run in a panic report while it is held.
        match self.inner.try_lock() {
            Some(inner) => out.field("tag", &inner.tag),
            None => out.field("tag", &format_args!("<locked>")),
        };
        out.finish()
    }
}

impl<H: AddressSpaceHal> AddressSpace<H> {
    /// A new, empty address space (one root table, prepared by [`AddressSpaceHal::init_root`]).
    pub fn create(frames: &mut impl FrameSource) -> Result<Self, MapError> {
        let mut mem = H::memory();
        let mapper = Mapper::new(&mut mem, frames, Half::User)?;
        H::init_root(&mut mem, mapper.root());
        Ok(Self {
            root: mapper.root(),
            inner: Mutex::new(Inner {
                mapper,
                tag: AsidTag::UNASSIGNED,
            }),
            cached_tag: AtomicU64::new(0),
            untagged_marked: AtomicBool::new(false),
        })
    }

    /// Maps `frame` at the user address `va` with `flags` plus `USER` (and never `GLOBAL`).
    ///
    /// Refuses [`MapError::NotUserAddress`] for anything outside `[0, USER_END)` (non-canonical
    /// addresses included), then [`MapError::Unaligned`], then what
    /// [`Mapper::map`] refuses. A refused map changed nothing and leaked nothing.
    ///
    /// TLB: nothing to flush on success; after a failed table allocation the walk caches for
    /// `va` are flushed (and shot down) before returning, since new tables were unlinked.
    pub fn map(
        &self,
        frames: &mut impl FrameSource,
        va: u64,
        frame: u64,
        flags: MapFlags,
    ) -> Result<(), MapError> {
        check_user::<H::Format>(va)?;
        let flags = (flags | MapFlags::USER).difference(MapFlags::GLOBAL);
        let mut inner = self.inner.lock();
        let result = inner.mapper.map(&mut H::memory(), frames, va, frame, flags);
        if result == Err(MapError::OutOfFrames) {
            flush_page::<H>(inner.tag, va);
        }
        result
    }

    /// Removes the mapping at the user address `va` and returns its frame (the caller's again).
    ///
    /// Refuses like [`map`](Self::map) for the address, then [`MapError::NotMapped`].
    ///
    /// TLB: `va` is invalidated under this space's tag (and shot down) before returning, so the
    /// frame may be reused at once. A space that never ran has nothing cached and is not flushed.
    pub fn unmap(&self, frames: &mut impl FrameSource, va: u64) -> Result<u64, MapError> {
        check_user::<H::Format>(va)?;
        let mut inner = self.inner.lock();
        let frame = inner.mapper.unmap(&mut H::memory(), frames, va)?;
        flush_page::<H>(inner.tag, va);
        Ok(frame)
    }

    /// Changes the rights of the mapping at the user address `va` to `flags` plus `USER`.
    ///
    /// Refuses like [`map`](Self::map) for the address and the flags, then
    /// [`MapError::NotMapped`]. TLB: `va` is invalidated (and shot down) before returning.
    pub fn protect(
        &self,
        frames: &mut impl FrameSource,
        va: u64,
        flags: MapFlags,
    ) -> Result<(), MapError> {
        check_user::<H::Format>(va)?;
        let flags = (flags | MapFlags::USER).difference(MapFlags::GLOBAL);
        let mut inner = self.inner.lock();
        inner.mapper.protect(&mut H::memory(), frames, va, flags)?;
        flush_page::<H>(inner.tag, va);
        Ok(())
    }

    /// What translates the user address `va` (`None` outside the user half).
    pub fn translate(&self, va: u64) -> Option<Translation> {
        if !H::Format::is_user(va) {
            return None;
        }
        self.inner.lock().mapper.translate(&H::memory(), va)
    }

    /// Makes this space the current CPU's user address space.
    ///
    /// Refreshes the space's tag; on a rollover invalidates every non-global entry (and shoots
    /// it down) first; then activates the root, flushing its tag unless the tag was current.
    pub fn switch_to(&self, asids: &mut AsidAllocator) {
        let mut inner = self.inner.lock();
        let outcome = asids.refresh(&mut inner.tag);
        if outcome == AsidOutcome::Rollover {
            H::flush_all_non_global();
            H::shootdown(Shootdown::AllNonGlobal);
        }
        self.cached_tag
            .store(pack_tag(inner.tag), Ordering::Relaxed);
        H::activate(
            inner.mapper.root(),
            inner.tag.asid,
            outcome != AsidOutcome::Current,
        );
    }

    /// The switch without any lock, for the context-switch path: if this space's tag is still
    /// valid in `generation` (the allocator's current generation, as the caller last saw it
    /// under the allocator's lock), activates the root under that tag without a flush, exactly
    /// as [`switch_to`](Self::switch_to) would, and returns true. Otherwise changes nothing and
    /// returns false: the caller then locks the allocator and calls `switch_to`.
    ///
    /// Sound only while no other CPU can advance the generation in between: single CPU, like
    /// [`AsidAllocator`]. With SMP the rollover must keep running spaces' tags reserved.
    pub fn switch_to_cached(&self, generation: u64) -> bool {
        let cached = self.cached_tag.load(Ordering::Relaxed);
        if cached == 0 || cached >> ASID_BITS != generation {
            return false;
        }
        H::activate(self.root, (cached & ((1 << ASID_BITS) - 1)) as u32, false);
        true
    }

    /// The switch for a CPU without tags (an allocator with `count <= 1`), which needs no
    /// allocator: activates the root under tag 0 with a flush. That is what
    /// [`switch_to`](Self::switch_to) decides for every space but the one switched to last, and
    /// the context switch never switches to the space already active.
    ///
    /// The space's tag becomes tag 0 of no generation: assigned (the TLB may now hold entries of
    /// the space, so unmap, protect and destroy flush them), current in none (a later
    /// `switch_to` gives it a tag like any stale space).
    ///
    /// Only the first such switch takes the space's lock (to mark the tag); later ones take no
    /// lock at all, as the context-switch path requires.
    pub fn switch_to_untagged(&self) {
        if !self.untagged_marked.load(Ordering::Acquire) {
            let mut inner = self.inner.lock();
            inner.tag = AsidTag {
                generation: u64::MAX,
                asid: 0,
            };
            self.cached_tag.store(0, Ordering::Relaxed);
            self.untagged_marked.store(true, Ordering::Release);
        }
        H::activate(self.root, 0, true);
    }

    /// Physical address of the root table.
    pub fn root(&self) -> u64 {
        self.root
    }

    /// True while some CPU holds this space's lock (for tests: it must be free after every
    /// call, whatever the call returned).
    pub fn is_locked(&self) -> bool {
        self.inner.is_locked()
    }

    /// Tears the space down: frees every table of the user half and the root, and reports every
    /// mapped 4 KiB frame to `release_leaf` (they are the caller's to free).
    ///
    /// The space must not be active on any CPU (switch to another first). TLB: everything
    /// cached under the space's tag is invalidated (and shot down) before the first table is
    /// freed; as the space is not active, nothing can be cached again.
    pub fn destroy(self, frames: &mut impl FrameSource, release_leaf: impl FnMut(u64)) {
        let Inner { mapper, tag } = self.inner.into_inner();
        if tag.is_assigned() {
            H::flush_asid(tag.asid);
            H::shootdown(Shootdown::Asid(tag.asid));
        }
        mapper.destroy(
            &mut H::memory(),
            frames,
            H::Format::user_root_slots(),
            release_leaf,
        );
    }
}

/// The address checks every user operation starts with.
fn check_user<F: PageTableFormat>(va: u64) -> Result<(), MapError> {
    if !F::is_user(va) {
        return Err(MapError::NotUserAddress);
    }
    if !va.is_multiple_of(PAGE_SIZE) {
        return Err(MapError::Unaligned);
    }
    Ok(())
}

/// Invalidates `va` for a space with `tag`, here and (through the hook) everywhere.
///
/// A space that never ran cannot have TLB entries. A stale tag may now belong to another space:
/// flushing it costs that space one refill, never correctness.
fn flush_page<H: AddressSpaceHal>(tag: AsidTag, va: u64) {
    if tag.is_assigned() {
        H::flush_page(tag.asid, va);
        H::shootdown(Shootdown::Page { asid: tag.asid, va });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paging::emulated::{CountingFrames, EmulatedMemory};
    use crate::paging::format::{ENTRIES, TestFormat};
    use core::cell::{Cell, RefCell};
    use std::collections::BTreeSet;
    use std::vec::Vec;

    /// What the fake hardware was asked to do.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Event {
        Page(u32, u64),
        Asid(u32),
        AllNonGlobal,
        Activate(u64, u32, bool),
        Shootdown(Shootdown),
    }

    std::thread_local! {
        static MEMORY: RefCell<EmulatedMemory> = RefCell::new(EmulatedMemory::new());
        static EVENTS: RefCell<Vec<Event>> = const { RefCell::new(Vec::new()) };
        static KERNEL_ROOT: Cell<Option<u64>> = const { Cell::new(None) };
        static ASIDS: Cell<u32> = const { Cell::new(4) };
    }

    /// The fake memory handle: every test thread has its own emulated memory.
    struct FakeMemory;

    impl TableMemory for FakeMemory {
        fn read(&self, table: u64, index: usize) -> u64 {
            MEMORY.with(|m| m.borrow().read(table, index))
        }

        fn write(&mut self, table: u64, index: usize, value: u64) {
            MEMORY.with(|m| m.borrow_mut().write(table, index, value));
        }

        fn zero(&mut self, table: u64) {
            MEMORY.with(|m| m.borrow_mut().zero(table));
        }
    }

    /// An x86-like fake: `init_root` copies the kernel half from a kernel root, and every
    /// hardware request is recorded.
    #[derive(Debug)]
    struct FakeHal;

    impl AddressSpaceHal for FakeHal {
        type Format = TestFormat;
        type Memory = FakeMemory;

        fn memory() -> FakeMemory {
            FakeMemory
        }

        fn asid_count() -> u32 {
            ASIDS.with(Cell::get)
        }

        fn init_root(mem: &mut FakeMemory, root: u64) {
            if let Some(kernel) = KERNEL_ROOT.with(Cell::get) {
                for slot in TestFormat::user_root_slots().end..ENTRIES {
                    let entry = mem.read(kernel, slot);
                    mem.write(root, slot, entry);
                }
            }
        }

        fn flush_page(asid: u32, va: u64) {
            record(Event::Page(asid, va));
        }

        fn flush_asid(asid: u32) {
            record(Event::Asid(asid));
        }

        fn flush_all_non_global() {
            record(Event::AllNonGlobal);
        }

        fn activate(root: u64, asid: u32, flush: bool) {
            record(Event::Activate(root, asid, flush));
        }

        fn shootdown(request: Shootdown) {
            record(Event::Shootdown(request));
        }
    }

    type Space = AddressSpace<FakeHal>;

    fn record(event: Event) {
        EVENTS.with(|e| e.borrow_mut().push(event));
    }

    /// The events since the last call.
    fn events() -> Vec<Event> {
        EVENTS.with(|e| e.take())
    }

    /// Fresh fake hardware for this test thread.
    fn reset() {
        MEMORY.with(|m| *m.borrow_mut() = EmulatedMemory::new());
        EVENTS.with(|e| e.borrow_mut().clear());
        KERNEL_ROOT.with(|k| k.set(None));
        ASIDS.with(|a| a.set(4));
    }

    fn forget_freed(frames: &CountingFrames) {
        MEMORY.with(|m| m.borrow_mut().retain_live(frames));
    }

    const R: MapFlags = MapFlags::READ;
    const W: MapFlags = MapFlags::WRITE;
    const X: MapFlags = MapFlags::EXECUTE;
    const U: MapFlags = MapFlags::USER;
    const USER_END: u64 = TestFormat::USER_END;
    const GIB: u64 = 1 << 30;

    fn frame(i: u64) -> u64 {
        0x80_0000_0000 + i * PAGE_SIZE
    }

    #[test]
    fn map_adds_user_and_never_global() {
        reset();
        let mut frames = CountingFrames::new(usize::MAX);
        let space = Space::create(&mut frames).unwrap();
        space.map(&mut frames, 0x1000, frame(0), R).unwrap();
        space
            .map(&mut frames, 0x2000, frame(1), W | MapFlags::GLOBAL)
            .unwrap();
        let t = space.translate(0x1000).unwrap();
        assert_eq!((t.phys, t.flags, t.level), (frame(0), R | U, 0));
        assert_eq!(space.translate(0x2000).unwrap().flags, R | W | U);
        assert_eq!(space.translate(0x3000), None);
        assert_eq!(space.translate(TestFormat::KERNEL_START), None);
        // Never run: nothing was cached, nothing is flushed.
        assert_eq!(space.unmap(&mut frames, 0x1000), Ok(frame(0)));
        assert_eq!(events(), []);
        space.destroy(&mut frames, |_| {});
        assert_eq!(frames.outstanding(), 0);
        assert_eq!(events(), []);
    }

    #[test]
    fn unmap_and_protect_flush_the_right_page_under_the_right_tag() {
        reset();
        let mut frames = CountingFrames::new(usize::MAX);
        let mut asids = AsidAllocator::new(FakeHal::asid_count());
        let a = Space::create(&mut frames).unwrap();
        let b = Space::create(&mut frames).unwrap();
        a.switch_to(&mut asids);
        b.switch_to(&mut asids);
        assert_eq!(
            events(),
            [
                Event::Activate(a.root(), 1, true),
                Event::Activate(b.root(), 2, true)
            ]
        );
        let va = USER_END - PAGE_SIZE;
        a.map(&mut frames, va, frame(0), R | W).unwrap();
        b.map(&mut frames, va, frame(1), R).unwrap();
        assert_eq!(events(), [], "map of an empty entry needs no flush");

        a.protect(&mut frames, va, R).unwrap();
        assert_eq!(
            events(),
            [
                Event::Page(1, va),
                Event::Shootdown(Shootdown::Page { asid: 1, va })
            ]
        );
        assert_eq!(b.unmap(&mut frames, va), Ok(frame(1)));
        assert_eq!(
            events(),
            [
                Event::Page(2, va),
                Event::Shootdown(Shootdown::Page { asid: 2, va })
            ]
        );
        // The same address still maps a's frame in a.
        assert_eq!(a.translate(va).unwrap().phys, frame(0));
        assert_eq!(b.translate(va), None);

        // Switching back to a current tag keeps the TLB.
        a.switch_to(&mut asids);
        assert_eq!(events(), [Event::Activate(a.root(), 1, false)]);

        b.destroy(&mut frames, |_| panic!("b has nothing mapped"));
        assert_eq!(
            events(),
            [Event::Asid(2), Event::Shootdown(Shootdown::Asid(2))]
        );
        let mut released = Vec::new();
        a.destroy(&mut frames, |f| released.push(f));
        assert_eq!(released, [frame(0)]);
        assert_eq!(frames.outstanding(), 0);
    }

    #[test]
    fn switching_past_the_last_tag_rolls_over_with_a_full_flush() {
        reset();
        ASIDS.with(|a| a.set(3));
        let mut frames = CountingFrames::new(usize::MAX);
        let mut asids = AsidAllocator::new(FakeHal::asid_count());
        let spaces: Vec<Space> = (0..3)
            .map(|_| Space::create(&mut frames).unwrap())
            .collect();
        spaces[0].switch_to(&mut asids);
        spaces[1].switch_to(&mut asids);
        events();
        spaces[2].switch_to(&mut asids);
        assert_eq!(
            events(),
            [
                Event::AllNonGlobal,
                Event::Shootdown(Shootdown::AllNonGlobal),
                Event::Activate(spaces[2].root(), 1, true)
            ]
        );
        // Space 0 is stale: it gets a fresh tag, not space 2's.
        spaces[0].switch_to(&mut asids);
        assert_eq!(events(), [Event::Activate(spaces[0].root(), 2, true)]);
        for space in spaces {
            space.destroy(&mut frames, |_| {});
        }
        assert_eq!(frames.outstanding(), 0);
    }

    #[test]
    fn without_tags_every_switch_flushes() {
        reset();
        ASIDS.with(|a| a.set(1));
        let mut frames = CountingFrames::new(usize::MAX);
        let mut asids = AsidAllocator::new(FakeHal::asid_count());
        let a = Space::create(&mut frames).unwrap();
        let b = Space::create(&mut frames).unwrap();
        a.switch_to(&mut asids);
        a.switch_to(&mut asids);
        b.switch_to(&mut asids);
        a.switch_to(&mut asids);
        assert_eq!(
            events(),
            [
                Event::Activate(a.root(), 0, true),
                Event::Activate(a.root(), 0, false),
                Event::Activate(b.root(), 0, true),
                Event::Activate(a.root(), 0, true)
            ]
        );
        a.destroy(&mut frames, |_| {});
        b.destroy(&mut frames, |_| {});
    }

    #[test]
    fn the_cached_switch_only_reuses_a_tag_of_the_current_generation() {
        reset();
        ASIDS.with(|a| a.set(3));
        let mut frames = CountingFrames::new(usize::MAX);
        let mut asids = AsidAllocator::new(FakeHal::asid_count());
        let spaces: Vec<Space> = (0..3)
            .map(|_| Space::create(&mut frames).unwrap())
            .collect();
        // Never switched to: no tag to reuse.
        assert!(!spaces[0].switch_to_cached(asids.generation()));
        assert_eq!(events(), []);
        spaces[0].switch_to(&mut asids);
        spaces[1].switch_to(&mut asids);
        events();
        // A current tag: the same activation as `switch_to` would make, without the allocator.
        assert!(spaces[0].switch_to_cached(asids.generation()));
        assert_eq!(events(), [Event::Activate(spaces[0].root(), 1, false)]);
        // A generation the space's tag is not of changes nothing.
        assert!(!spaces[0].switch_to_cached(asids.generation() + 1));
        assert_eq!(events(), []);
        // After a rollover the old tags are stale (tag 1 now belongs to space 2).
        spaces[2].switch_to(&mut asids);
        events();
        assert!(!spaces[0].switch_to_cached(asids.generation()));
        assert!(!spaces[1].switch_to_cached(asids.generation()));
        assert!(spaces[2].switch_to_cached(asids.generation()));
        assert_eq!(events(), [Event::Activate(spaces[2].root(), 1, false)]);
        for space in spaces {
            space.destroy(&mut frames, |_| {});
        }

        // Without tags only the space switched to last is current, and the untagged switch
        // makes the activation `switch_to` makes for any other space.
        ASIDS.with(|a| a.set(1));
        let mut asids = AsidAllocator::new(FakeHal::asid_count());
        let a = Space::create(&mut frames).unwrap();
        let b = Space::create(&mut frames).unwrap();
        a.switch_to(&mut asids);
        b.switch_to(&mut asids);
        events();
        assert!(!a.switch_to_cached(asids.generation()));
        assert!(b.switch_to_cached(asids.generation()));
        assert_eq!(events(), [Event::Activate(b.root(), 0, false)]);
        a.switch_to_untagged();
        let untagged = events();
        a.switch_to(&mut asids);
        assert_eq!(untagged, events());
        assert_eq!(untagged, [Event::Activate(a.root(), 0, true)]);
        // A space only ever switched to untagged still has its TLB entries flushed.
        let c = Space::create(&mut frames).unwrap();
        c.switch_to_untagged();
        let va = USER_END - PAGE_SIZE;
        c.map(&mut frames, va, frame(0), R).unwrap();
        events();
        assert_eq!(c.unmap(&mut frames, va), Ok(frame(0)));
        assert_eq!(
            events(),
            [
                Event::Page(0, va),
                Event::Shootdown(Shootdown::Page { asid: 0, va })
            ]
        );
        assert!(!c.switch_to_cached(asids.generation()));
        // Once marked, the untagged switch takes no lock (it must not spin on a holder it
        // interrupted): it completes while the space's lock is held.
        {
            let _held = c.inner.lock();
            c.switch_to_untagged();
        }
        assert_eq!(events(), [Event::Activate(c.root(), 0, true)]);
        c.destroy(&mut frames, |_| {});
        assert_eq!(
            events(),
            [Event::Asid(0), Event::Shootdown(Shootdown::Asid(0))]
        );
        a.destroy(&mut frames, |_| {});
        b.destroy(&mut frames, |_| {});
        assert_eq!(frames.outstanding(), 0);
    }

    #[test]
    fn a_tag_that_does_not_fit_the_cache_is_never_reused() {
        assert_eq!(
            pack_tag(AsidTag {
                generation: 1 << 48,
                asid: 1
            }),
            0
        );
        assert_eq!(
            pack_tag(AsidTag {
                generation: 2,
                asid: 1 << 16
            }),
            0
        );
        assert_eq!(pack_tag(AsidTag::UNASSIGNED), 0);
        assert_eq!(
            pack_tag(AsidTag {
                generation: 2,
                asid: 5
            }),
            (2 << 16) | 5
        );
    }

    #[test]
    fn every_error_path_releases_the_lock_and_leaks_nothing() {
        reset();
        let mut frames = CountingFrames::new(usize::MAX);
        let mut asids = AsidAllocator::new(FakeHal::asid_count());
        let space = Space::create(&mut frames).unwrap();
        space.switch_to(&mut asids);
        space.map(&mut frames, 0x1000, frame(0), R | W).unwrap();
        events();
        let base = frames.outstanding();
        let refused = [
            (0x1000, frame(1), R, MapError::AlreadyMapped),
            (0x2001, frame(1), R, MapError::Unaligned),
            (0x2000, frame(1) + 1, R, MapError::Unaligned),
            (
                TestFormat::KERNEL_START,
                frame(1),
                R,
                MapError::NotUserAddress,
            ),
            (!(PAGE_SIZE - 1), frame(1), R, MapError::NotUserAddress),
            (USER_END, frame(1), R, MapError::NotUserAddress),
            (0x1234_0000_0000_0000, frame(1), R, MapError::NotUserAddress),
            (0x2000, frame(1), W | X, MapError::WriteAndExecute),
            (0x2000, TestFormat::PHYS_LIMIT, R, MapError::PhysicalTooHigh),
        ];
        for (va, f, flags, error) in refused {
            assert_eq!(space.map(&mut frames, va, f, flags), Err(error), "{va:#x}");
            assert!(!space.is_locked());
            assert_eq!(frames.outstanding(), base);
        }
        for (va, error) in [
            (0x3000, MapError::NotMapped),
            (0x1008, MapError::Unaligned),
            (TestFormat::KERNEL_START, MapError::NotUserAddress),
        ] {
            assert_eq!(space.unmap(&mut frames, va), Err(error));
            assert!(!space.is_locked());
            assert_eq!(space.protect(&mut frames, va, R), Err(error));
            assert!(!space.is_locked());
            assert_eq!(frames.outstanding(), base);
        }
        assert_eq!(
            space.protect(&mut frames, 0x1000, R | W | X),
            Err(MapError::WriteAndExecute)
        );
        assert!(!space.is_locked());
        assert_eq!(events(), [], "refused calls flush nothing");

        // Out of frames at every point of a walk that needs three tables.
        let va = 600 * GIB + 0x5000;
        for extra in 0..3 {
            frames.set_capacity(base + extra);
            assert_eq!(
                space.map(&mut frames, va, frame(2), R),
                Err(MapError::OutOfFrames)
            );
            assert!(!space.is_locked());
            assert_eq!(frames.outstanding(), base);
            forget_freed(&frames);
            // Tables may have been linked and unlinked: the walk caches for `va` are flushed.
            assert_eq!(
                events(),
                [
                    Event::Page(1, va),
                    Event::Shootdown(Shootdown::Page { asid: 1, va })
                ]
            );
        }
        frames.set_capacity(base + 3);
        space.map(&mut frames, va, frame(2), R).unwrap();
        assert!(!space.is_locked());
        assert_eq!(space.translate(0x1000).unwrap().phys, frame(0));

        // And the lock is free for the next caller after all of it.
        frames.set_capacity(usize::MAX);
        let mut released = BTreeSet::new();
        space.destroy(&mut frames, |f| {
            released.insert(f);
        });
        assert_eq!(released, BTreeSet::from([frame(0), frame(2)]));
        assert_eq!(frames.outstanding(), 0);
    }

    #[test]
    fn create_out_of_frames_is_an_error() {
        reset();
        let mut frames = CountingFrames::new(0);
        assert_eq!(
            Space::create(&mut frames).unwrap_err(),
            MapError::OutOfFrames
        );
        assert_eq!(frames.outstanding(), 0);
    }

    #[test]
    fn the_shared_kernel_half_survives_a_thousand_spaces() {
        reset();
        let mut frames = CountingFrames::new(usize::MAX);
        let mut mem = FakeMemory;
        // The kernel's root with its half populated and one kernel page, as x86 would have.
        let mut kernel = Mapper::<TestFormat>::new(&mut mem, &mut frames, Half::Kernel).unwrap();
        kernel
            .populate_root(&mut mem, &mut frames, 256..ENTRIES)
            .unwrap();
        let kernel_page = TestFormat::KERNEL_START + 0x7000;
        kernel
            .map(
                &mut mem,
                &mut frames,
                kernel_page,
                frame(999),
                R | MapFlags::GLOBAL,
            )
            .unwrap();
        KERNEL_ROOT.with(|k| k.set(Some(kernel.root())));
        let start = frames.outstanding();

        let mut asids = AsidAllocator::new(FakeHal::asid_count());
        for cycle in 0..1000u64 {
            let space = Space::create(&mut frames).unwrap();
            // The kernel page is visible through the new root.
            let root = Mapper::<TestFormat>::from_root(space.root(), Half::Kernel);
            assert_eq!(root.translate(&mem, kernel_page).unwrap().phys, frame(999));
            let pages = [
                0,
                (cycle % 7) * GIB + cycle * PAGE_SIZE,
                USER_END - PAGE_SIZE,
            ];
            let mut mapped = BTreeSet::new();
            for (i, va) in pages.into_iter().enumerate() {
                if mapped.insert(va) {
                    space.map(&mut frames, va, frame(i as u64), R | W).unwrap();
                }
            }
            if cycle % 3 == 0 {
                space.switch_to(&mut asids);
            }
            assert_eq!(space.unmap(&mut frames, 0), Ok(frame(0)));
            let mut released = 0;
            space.destroy(&mut frames, |_| released += 1);
            assert_eq!(released, mapped.len() - 1);
            assert!(frames.is_live(kernel.root()));
            assert_eq!(frames.outstanding(), start, "cycle {cycle}");
            forget_freed(&frames);
        }
        // The kernel's tables were never touched.
        assert_eq!(
            kernel.translate(&mem, kernel_page).unwrap().phys,
            frame(999)
        );
        events();
    }

    #[test]
    fn debug_never_waits_for_the_lock() {
        reset();
        let mut frames = CountingFrames::new(usize::MAX);
        let space = Space::create(&mut frames).unwrap();
        let text = std::format!("{space:?}");
        assert!(text.contains("tag"), "{text}");
        let guard = space.inner.lock();
        assert!(space.is_locked());
        assert!(std::format!("{space:?}").contains("<locked>"));
        drop(guard);
        assert!(!space.is_locked());
        space.destroy(&mut frames, |_| {});
    }
}
