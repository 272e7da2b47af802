//! Loading a program from the initrd into a new address space.
//!
//! Owns [`spawn`] (static ELF from the cpio initrd → new address space with its segments, a
//! stack and a thread that has not started) and [`Child::write_bootstrap`] (the bootstrap page of
//! [`crate::roles`]). The layout of a spawned program:
//!
//! | range | what |
//! |-------|------|
//! | [`BOOTSTRAP_VA`], one page | bootstrap page, read-only |
//! | from [`LOAD_START`] | the ELF's `PT_LOAD` segments, each with its own R/W/X |
//! | [`STACK_TOP`] − [`STACK_BYTES`] − [`GUARD_BYTES`] | guard page, never mapped |
//! | [`STACK_TOP`] − [`STACK_BYTES`] .. [`STACK_TOP`] | stack, read-write |
//!
//! Memory is filled through a **scratch window** in the caller's own address space
//! ([`SCRATCH_VA`]): fresh frames are mapped there read-write, filled, unmapped, then mapped into
//! the child with their final permissions. Frames come zeroed from the kernel (`FrameAlloc`), so
//! only file bytes are copied; the zero-fill past `file_size` is the frames' own. After mapping
//! into the child, the frame-range capability is deleted: this relies on the kernel keeping
//! mapped frames alive while they are mapped (the mapping, not the capability, holds them).
//!
//! The window is one fixed range, so one spawn at a time: a second concurrent use (another thread
//! of the same program) fails with [`SpawnError::ScratchBusy`] instead of corrupting the first.
//!
//! It must never map anything writable and executable, never leave the scratch window mapped
//! after returning, and never unmap a scratch mapping it did not make.

use crate::roles::{BOOTSTRAP_MAGIC, BOOTSTRAP_MAX_HANDLES, BOOTSTRAP_VA, Bootstrap};
use crate::syscall::{
    address_space_create, cap_delete, frame_alloc, map, thread_create, thread_start, unmap,
};
use abi::{CapHandle, Error, Rights};
use core::fmt;
use core::sync::atomic::{AtomicBool, Ordering};
use loader::elf_image::{Limits, Machine, Segment, plan, segment_bytes};
use loader::{Archive, CpioError, ElfError};

/// The page size on both architectures (4 KiB granule).
pub const PAGE_SIZE: u64 = 4096;
/// Where the caller's scratch window starts (in the caller's own address space).
pub const SCRATCH_VA: u64 = 0x0000_6000_0000_0000;
/// Size of the scratch window: the largest segment [`spawn`] loads.
pub const SCRATCH_BYTES: u64 = 1 << 30;
/// One past the top of a spawned program's stack.
pub const STACK_TOP: u64 = 0x0000_7ffe_0000_0000;
/// Size of a spawned program's stack.
pub const STACK_BYTES: u64 = 64 * 1024;
/// Size of the unmapped guard below the stack.
pub const GUARD_BYTES: u64 = PAGE_SIZE;
/// Lowest address a spawned program's segments may use: above the bootstrap page.
pub const LOAD_START: u64 = BOOTSTRAP_VA + PAGE_SIZE;
/// The largest executable [`spawn`] accepts.
pub const MAX_PROGRAM_BYTES: u64 = 16 << 20;

/// The instruction set of this build.
#[cfg(target_arch = "x86_64")]
const MACHINE: Machine = Machine::X86_64;
/// The instruction set of this build.
#[cfg(target_arch = "aarch64")]
const MACHINE: Machine = Machine::Aarch64;

/// What a program may occupy: above the bootstrap page, below the stack guard.
const LIMITS: Limits = Limits {
    user_start: LOAD_START,
    user_end: STACK_TOP - STACK_BYTES - GUARD_BYTES,
    page_size: PAGE_SIZE,
    max_file_bytes: MAX_PROGRAM_BYTES,
};

/// Set while a [`spawn`] or [`Child::write_bootstrap`] uses the scratch window.
static SCRATCH_IN_USE: AtomicBool = AtomicBool::new(false);

/// A spawned program: its address space and its first thread, not started yet.
///
/// The caller gives it capabilities ([`cap_grant`](crate::syscall::cap_grant)), writes them into
/// its bootstrap page ([`write_bootstrap`](Self::write_bootstrap)), possibly sets its pager, then
/// [`start`](Self::start)s it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Child {
    /// The child's address space (every address-space right).
    pub space: CapHandle,
    /// The child's first thread (every thread right).
    pub thread: CapHandle,
}

/// The step of [`spawn`] or [`Child::write_bootstrap`] that a system call failed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpawnStep {
    /// `AddressSpaceCreate` for the child.
    CreateSpace,
    /// `FrameAlloc` for segment `n` (index in the plan).
    AllocSegment(usize),
    /// `Map` of segment `n`'s frames into the scratch window.
    MapScratch(usize),
    /// `Unmap` of the scratch window after filling segment `n`.
    UnmapScratch(usize),
    /// `Map` of segment `n` into the child.
    MapSegment(usize),
    /// `CapDelete` of segment `n`'s frame range after mapping.
    DeleteFrames(usize),
    /// `FrameAlloc` for the stack.
    AllocStack,
    /// `Map` of the stack into the child.
    MapStack,
    /// `ThreadCreate` in the child.
    CreateThread,
    /// `FrameAlloc` for the bootstrap page.
    AllocBootstrap,
    /// `Map` of the bootstrap page into the scratch window.
    MapBootstrapScratch,
    /// `Unmap` of the bootstrap page from the scratch window.
    UnmapBootstrapScratch,
    /// `Map` of the bootstrap page into the child.
    MapBootstrap,
    /// `ThreadStart` of the child's thread.
    StartThread,
}

impl fmt::Display for SpawnStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::CreateSpace => f.write_str("address_space_create"),
            Self::AllocSegment(n) => write!(f, "frame_alloc for segment {n}"),
            Self::MapScratch(n) => write!(f, "map segment {n} into the scratch window"),
            Self::UnmapScratch(n) => write!(f, "unmap segment {n} from the scratch window"),
            Self::MapSegment(n) => write!(f, "map segment {n} into the child"),
            Self::DeleteFrames(n) => write!(f, "cap_delete of segment {n}'s frames"),
            Self::AllocStack => f.write_str("frame_alloc for the stack"),
            Self::MapStack => f.write_str("map the stack into the child"),
            Self::CreateThread => f.write_str("thread_create in the child"),
            Self::AllocBootstrap => f.write_str("frame_alloc for the bootstrap page"),
            Self::MapBootstrapScratch => {
                f.write_str("map the bootstrap page into the scratch window")
            }
            Self::UnmapBootstrapScratch => {
                f.write_str("unmap the bootstrap page from the scratch window")
            }
            Self::MapBootstrap => f.write_str("map the bootstrap page into the child"),
            Self::StartThread => f.write_str("thread_start"),
        }
    }
}

/// Why [`spawn`] (or [`Child::write_bootstrap`], [`Child::start`]) failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpawnError {
    /// The initrd is not a valid cpio archive.
    Archive(CpioError),
    /// The initrd has no regular file of that name.
    NotFound,
    /// The file is not a static executable this loader accepts.
    Elf(ElfError),
    /// A segment is larger than the scratch window (plan index, size in bytes).
    SegmentTooLarge(usize, u64),
    /// More handles than the bootstrap page holds (count given).
    TooManyHandles(usize),
    /// Another thread of this program is using the scratch window.
    ScratchBusy,
    /// A system call failed.
    Syscall(SpawnStep, Error),
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Archive(ref error) => write!(f, "reading the initrd: {error}"),
            Self::NotFound => f.write_str("no such program in the initrd"),
            Self::Elf(ref error) => write!(f, "checking the executable: {error}"),
            Self::SegmentTooLarge(n, bytes) => write!(
                f,
                "segment {n} is {bytes} bytes, more than the {SCRATCH_BYTES}-byte scratch window"
            ),
            Self::TooManyHandles(count) => write!(
                f,
                "{count} bootstrap handles, at most {BOOTSTRAP_MAX_HANDLES}"
            ),
            Self::ScratchBusy => f.write_str("the scratch window is in use by another thread"),
            Self::Syscall(step, error) => write!(f, "{step}: {error}"),
        }
    }
}

/// Exclusive use of the scratch window while alive.
struct ScratchLease;

impl ScratchLease {
    fn acquire() -> Result<Self, SpawnError> {
        if SCRATCH_IN_USE.swap(true, Ordering::Acquire) {
            return Err(SpawnError::ScratchBusy);
        }
        Ok(Self)
    }
}

impl Drop for ScratchLease {
    fn drop(&mut self) {
        SCRATCH_IN_USE.store(false, Ordering::Release);
    }
}

/// Loads program `name` from the cpio archive `initrd` into a new address space, with a stack and
/// a thread that will start at the ELF entry point with slot `a0` = `arg`. `own_space` is the
/// caller's address space (`MAP`), used for the scratch window.
///
/// The thread is not started: see [`Child`]. On failure, what was created is deleted again (best
/// effort) and the error names the step.
pub fn spawn(
    initrd: &[u8],
    name: &str,
    own_space: CapHandle,
    arg: u64,
) -> Result<Child, SpawnError> {
    let lease = ScratchLease::acquire()?;
    let archive = Archive::new(initrd).map_err(SpawnError::Archive)?;
    let entry = archive
        .find(name)
        .map_err(SpawnError::Archive)?
        .ok_or(SpawnError::NotFound)?;
    let image = plan(entry.data, MACHINE, &LIMITS).map_err(SpawnError::Elf)?;

    let space = address_space_create()
        .map_err(|error| SpawnError::Syscall(SpawnStep::CreateSpace, error))?;
    let result = (|| {
        for (n, segment) in image.segments().iter().enumerate() {
            let (start, end) = image.page_range(segment);
            load_segment(&lease, own_space, space, entry.data, n, segment, start, end)?;
        }
        map_stack(space)?;
        // SAFETY: `space` is the new child's address space, not ours: the thread cannot touch
        // our memory. Its entry point and stack are the child's, just loaded and mapped.
        unsafe { thread_create(space, image.entry, STACK_TOP, arg) }
            .map_err(|error| SpawnError::Syscall(SpawnStep::CreateThread, error))
    })();
    drop(lease);
    match result {
        Ok(thread) => Ok(Child { space, thread }),
        Err(error) => {
            // The space has no thread: deleting our only handle to it frees it and its mappings.
            let _ = cap_delete(space);
            Err(error)
        }
    }
}

/// Fills fresh frames with segment `n` (pages `[start, end)` of the child) through the scratch
/// window and maps them into `space` with the segment's permissions.
#[allow(clippy::too_many_arguments)]
fn load_segment(
    lease: &ScratchLease,
    own_space: CapHandle,
    space: CapHandle,
    file: &[u8],
    n: usize,
    segment: &Segment,
    start: u64,
    end: u64,
) -> Result<(), SpawnError> {
    let bytes = end - start;
    if bytes > SCRATCH_BYTES {
        return Err(SpawnError::SegmentTooLarge(n, bytes));
    }
    let pages = (bytes / PAGE_SIZE) as usize;
    let syscall = |step: SpawnStep| move |error| SpawnError::Syscall(step, error);
    let frames = frame_alloc(pages).map_err(syscall(SpawnStep::AllocSegment(n)))?;
    let filled = fill_through_scratch(lease, own_space, frames, pages, n, |window| {
        // The plan guarantees the file bytes lie inside the segment's pages; `get_mut` keeps a
        // violation from panicking (it is reported as an oversized segment instead).
        let data = segment_bytes(file, segment);
        let offset = (segment.vaddr - start) as usize;
        match window.get_mut(offset..offset + data.len()) {
            Some(target) => {
                target.copy_from_slice(data);
                Ok(())
            }
            None => Err(SpawnError::SegmentTooLarge(n, segment.file_size)),
        }
    });
    let mapped = filled.and_then(|()| {
        let mut access = Rights::empty();
        access.set(Rights::READ, segment.flags.read);
        access.set(Rights::WRITE, segment.flags.write);
        access.set(Rights::EXECUTE, segment.flags.execute);
        map(space, frames, start, access).map_err(syscall(SpawnStep::MapSegment(n)))
    });
    let deleted = cap_delete(frames).map_err(syscall(SpawnStep::DeleteFrames(n)));
    mapped.and(deleted)
}

/// Maps `frames` (`pages` pages) read-write at the scratch window, lets `fill` write into it, and
/// unmaps it again (also when `fill` fails). The lease proves the caller has the window.
fn fill_through_scratch(
    _lease: &ScratchLease,
    own_space: CapHandle,
    frames: CapHandle,
    pages: usize,
    n: usize,
    fill: impl FnOnce(&mut [u8]) -> Result<(), SpawnError>,
) -> Result<(), SpawnError> {
    map(own_space, frames, SCRATCH_VA, Rights::READ | Rights::WRITE)
        .map_err(|error| SpawnError::Syscall(scratch_step(n, true), error))?;
    let filled = {
        // SAFETY: the window was just mapped read-write, `pages` pages long (Map succeeded, so
        // nothing was mapped there and no Rust object lives there); the scratch lease makes this
        // the only user of the window until it is unmapped below, after the slice is gone.
        let window = unsafe {
            core::slice::from_raw_parts_mut(SCRATCH_VA as *mut u8, pages * PAGE_SIZE as usize)
        };
        fill(window)
    };
    // SAFETY: the slice over the window ended with the block above; nothing else references the
    // window (scratch lease), and it holds exactly the mapping made above.
    let unmapped = unsafe { unmap(own_space, SCRATCH_VA, pages) }
        .map_err(|error| SpawnError::Syscall(scratch_step(n, false), error));
    filled.and(unmapped)
}

/// The step naming a scratch map (`map`) or unmap of segment `n` (`usize::MAX`: bootstrap page).
fn scratch_step(n: usize, map: bool) -> SpawnStep {
    match (n, map) {
        (usize::MAX, true) => SpawnStep::MapBootstrapScratch,
        (usize::MAX, false) => SpawnStep::UnmapBootstrapScratch,
        (n, true) => SpawnStep::MapScratch(n),
        (n, false) => SpawnStep::UnmapScratch(n),
    }
}

/// Maps a fresh, zeroed read-write stack of [`STACK_BYTES`] ending at [`STACK_TOP`] into `space`;
/// the page below stays unmapped (the guard).
fn map_stack(space: CapHandle) -> Result<(), SpawnError> {
    let pages = (STACK_BYTES / PAGE_SIZE) as usize;
    let frames =
        frame_alloc(pages).map_err(|error| SpawnError::Syscall(SpawnStep::AllocStack, error))?;
    let mapped = map(
        space,
        frames,
        STACK_TOP - STACK_BYTES,
        Rights::READ | Rights::WRITE,
    )
    .map_err(|error| SpawnError::Syscall(SpawnStep::MapStack, error));
    let _ = cap_delete(frames);
    mapped
}

impl Child {
    /// Maps the child's bootstrap page (read-only, at [`BOOTSTRAP_VA`]) holding `handles`, which
    /// must be handles in the *child's* table (as [`cap_grant`](crate::syscall::cap_grant)
    /// returned them). Call it exactly once, before [`start`](Self::start), even with no handles.
    /// `own_space` is the caller's address space (`MAP`), for the scratch window.
    pub fn write_bootstrap(
        &self,
        own_space: CapHandle,
        handles: &[CapHandle],
    ) -> Result<(), SpawnError> {
        if handles.len() > BOOTSTRAP_MAX_HANDLES {
            return Err(SpawnError::TooManyHandles(handles.len()));
        }
        let mut page = Bootstrap {
            magic: BOOTSTRAP_MAGIC,
            count: handles.len() as u64,
            handles: [0; BOOTSTRAP_MAX_HANDLES],
        };
        for (slot, handle) in page.handles.iter_mut().zip(handles) {
            *slot = handle.into_raw();
        }
        let lease = ScratchLease::acquire()?;
        let frames = frame_alloc(1)
            .map_err(|error| SpawnError::Syscall(SpawnStep::AllocBootstrap, error))?;
        let filled = fill_through_scratch(&lease, own_space, frames, 1, usize::MAX, |window| {
            for (chunk, word) in window.chunks_exact_mut(8).zip(page_words(&page)) {
                chunk.copy_from_slice(&word.to_ne_bytes());
            }
            Ok(())
        });
        drop(lease);
        let mapped = filled.and_then(|()| {
            map(self.space, frames, BOOTSTRAP_VA, Rights::READ)
                .map_err(|error| SpawnError::Syscall(SpawnStep::MapBootstrap, error))
        });
        let _ = cap_delete(frames);
        mapped
    }

    /// Starts the child's thread.
    pub fn start(&self) -> Result<(), SpawnError> {
        thread_start(self.thread)
            .map_err(|error| SpawnError::Syscall(SpawnStep::StartThread, error))
    }

    /// Deletes the caller's handles to the child's thread and address space (best effort: once
    /// the child has ended, its address space is gone and the kernel may report the handle as
    /// stale). Call after joining.
    pub fn release(self) {
        let _ = cap_delete(self.thread);
        let _ = cap_delete(self.space);
    }
}

/// The words of a bootstrap page, in layout order (`repr(C)`: magic, count, handles).
fn page_words(page: &Bootstrap) -> impl Iterator<Item = u64> + '_ {
    [page.magic, page.count]
        .into_iter()
        .chain(page.handles.iter().copied())
}
