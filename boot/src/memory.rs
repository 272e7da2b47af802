//! Boot-time memory services: the global frame allocator and the kernel heap.
//!
//! Owns the placement decisions made once at boot: where the frame bitmap lives, how large the
//! kernel heap is and which frames back it. The allocation logic itself is `kernel-core`'s; this
//! module only hands it memory through the HHDM. It must never give out a frame the boot
//! information reserved, and never touch RAM the boot-time HHDM does not reach.

use crate::ktrace::KLock;
use crate::platform::Machine;
use alloc::format;
use alloc::string::String;
use buddy_system_allocator::LockedHeap;
use kernel_core::boot_info::BootInfo;
use kernel_core::frame_alloc::FrameAllocator;
use kernel_core::hal::{Access, KernelSpaceReport, Platform};
use kernel_core::memory_map::ram_ranges;
use kernel_core::memory_map::{FRAME_SIZE, FreeRanges};
use kernel_core::paging::{AddressSpace, MapFlags};
use spin::Once;

/// A user address space on this machine.
pub type UserSpace = AddressSpace<<Machine as Platform>::Spaces>;

/// Order of the buddy allocator: blocks up to 2^(ORDER-1) bytes.
const HEAP_ORDER: usize = 32;
/// Heap size bounds; within them the heap gets 1/16 of free RAM.
const HEAP_MIN_BYTES: u64 = 1 << 20;
const HEAP_MAX_BYTES: u64 = 32 << 20;

/// The kernel heap, with interrupts masked around every operation: system calls (which run
/// masked) allocate, and may run right after a preempted kernel thread was interrupted inside
/// the allocator; masking keeps a holder from ever being interrupted on its own CPU.
struct MaskedHeap(LockedHeap<HEAP_ORDER>);

// SAFETY: every method delegates to the `LockedHeap` (a sound allocator) with the same
// arguments; masking interrupts around it changes no result.
unsafe impl core::alloc::GlobalAlloc for MaskedHeap {
    unsafe fn alloc(&self, layout: core::alloc::Layout) -> *mut u8 {
        let enabled = Machine::disable_interrupts();
        // SAFETY: the caller's contract for `alloc` is passed on unchanged.
        let ptr = unsafe { self.0.alloc(layout) };
        Machine::restore_interrupts(enabled);
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: core::alloc::Layout) {
        let enabled = Machine::disable_interrupts();
        // SAFETY: the caller's contract for `dealloc` is passed on unchanged.
        unsafe { self.0.dealloc(ptr, layout) };
        Machine::restore_interrupts(enabled);
    }
}

#[global_allocator]
static HEAP: MaskedHeap = MaskedHeap(LockedHeap::empty());

/// The physical frame allocator (after the `frames` stage).
pub static FRAMES: KLock<Option<FrameAllocator<'static>>> = KLock::new("frames", None);

/// Where physical address 0 is mapped; set once by [`init_frames`].
static HHDM_OFFSET: Once<u64> = Once::new();

/// The virtual address through which the kernel reaches physical address `phys`.
pub fn phys_to_virt(phys: u64) -> u64 {
    HHDM_OFFSET
        .get()
        .copied()
        .expect("HHDM offset used before the frames stage")
        + phys
}

/// Builds the frame allocator from the boot memory map.
pub fn init_frames(info: &BootInfo) -> Result<(), &'static str> {
    HHDM_OFFSET.call_once(|| info.hhdm_offset);
    // The bitmap spans all of RAM, but frames the boot-time HHDM cannot reach are withheld
    // until the kernel's own page tables map them (the `hhdm` stage).
    let mut ranges = FreeRanges::compute(&info.memory, &info.reserved, u64::MAX);
    if ranges.dropped_bytes() > 0 {
        crate::kprintln!(
            "[frames] {} KiB of usable RAM could not be tracked (memory map too fragmented)",
            ranges.dropped_bytes() >> 10
        );
    }
    let words = FrameAllocator::bitmap_words(&ranges);
    let bytes = (words * 8) as u64;
    let storage = ranges
        .take(bytes, FRAME_SIZE)
        .ok_or("no room for the frame bitmap")?;
    // SAFETY: `storage` was just taken out of the free ranges (nobody else owns it), lies below
    // `hhdm_limit` (mapped RW), is frame aligned and holds `words` words; it is never freed.
    let bitmap =
        unsafe { core::slice::from_raw_parts_mut(phys_to_virt(storage.start) as *mut u64, words) };
    let mut allocator =
        FrameAllocator::new(&ranges, bitmap).map_err(|_| "frame bitmap too small")?;
    let withheld = allocator.withhold_from(info.hhdm_limit);
    if withheld > 0 {
        crate::kprintln!(
            "[frames] {} MiB above {:#x} withheld until the kernel page tables map them",
            (withheld as u64 * FRAME_SIZE) >> 20,
            info.hhdm_limit
        );
    }
    crate::kprintln!(
        "[frames] {} free frames ({} MiB), bitmap of {} KiB at {}",
        allocator.free_frames(),
        (allocator.free_frames() as u64 * FRAME_SIZE) >> 20,
        bytes.div_ceil(1024),
        storage
    );
    if allocator.free_frames() == 0 {
        return Err("no free frames after reservations");
    }
    *FRAMES.lock_irqsave() = Some(allocator);
    Ok(())
}

/// Gives the kernel heap a contiguous run of frames.
pub fn init_heap() -> Result<(), &'static str> {
    let mut frames = FRAMES.lock_irqsave();
    let allocator = frames.as_mut().ok_or("frame allocator missing")?;
    let free_bytes = allocator.free_frames() as u64 * FRAME_SIZE;
    let size = (free_bytes / 16).clamp(HEAP_MIN_BYTES, HEAP_MAX_BYTES);
    let count = (size / FRAME_SIZE) as usize;
    let range = allocator
        .allocate_contiguous(count, 1)
        .ok_or("no contiguous run for the heap")?;
    // SAFETY: the frames of `range` were just taken from the frame allocator, so nothing else
    // uses them, and they lie below `hhdm_limit`, so the HHDM maps them read-write. They are
    // given to the heap for good.
    unsafe {
        HEAP.0
            .lock()
            .init(phys_to_virt(range.start) as usize, range.len() as usize)
    };
    crate::kprintln!("[heap] {} KiB at {}", range.len() >> 10, range);
    Ok(())
}

/// Bytes currently allocated from the kernel heap (what the user asked for).
pub fn heap_bytes_in_use() -> usize {
    masked_heap_stats()
}

/// Sets up the TLB-tag allocator for user address spaces once the kernel tables are live.
pub fn init_address_spaces(report: KernelSpaceReport) {
    crate::tlb_tags::TLB_TAGS.init(report.tlb_tags);
}

/// Hands the frames above the boot HHDM limit to the allocator, then proves the kernel's HHDM
/// reaches all of RAM: the first and last frame of every RAM range is read and written back
/// through it under fault recovery, so a hole is a stage failure, not a crash. A frame of the
/// kernel image (the first frame of RAM when a loader put the image there) is only read: an
/// architecture may map the image's text and rodata read-only in the HHDM.
pub fn release_and_check_hhdm(info: &BootInfo) -> Result<(), String> {
    let released = FRAMES
        .lock()
        .as_mut()
        .map_or(0, |frames| frames.release_withheld());
    if released > 0 {
        crate::kprintln!(
            "[hhdm] {} MiB above the boot mapping are now allocatable",
            (released as u64 * FRAME_SIZE) >> 20
        );
    }
    let ranges = ram_ranges(&info.memory);
    for range in &ranges {
        for frame in [range.start, range.end - FRAME_SIZE] {
            let va = phys_to_virt(frame);
            let image = &info.kernel_image;
            let access = if (image.start..image.end).contains(&frame) {
                Access::Read
            } else {
                Access::Write
            };
            Machine::probe(access, va)
                .map_err(|_| format!("physical {frame:#x} is not reachable at {va:#x}"))?;
        }
    }
    let top = ranges.last().map_or(0, |r| r.end);
    crate::kprintln!(
        "[hhdm] {} RAM ranges reachable up to {:#x}",
        ranges.len(),
        top
    );
    Ok(())
}

/// Creates a user address space, maps one page, switches to it, writes and reads it through the
/// user-copy path, switches back and destroys it; every frame must come back.
pub fn address_space_smoke_test() -> Result<(), String> {
    const USER_VA: u64 = 0x40_0000;
    let mut frames = FRAMES.lock_irqsave();
    let frames = frames.as_mut().ok_or("no frame allocator")?;
    let before = frames.free_frames();
    let space = UserSpace::create(frames).map_err(|e| format!("create: {e}"))?;
    let frame = frames.allocate().ok_or("out of frames")?;
    let flags = MapFlags::READ | MapFlags::WRITE;
    space
        .map(frames, USER_VA, frame, flags)
        .map_err(|e| format!("map: {e}"))?;
    let translated = space.translate(USER_VA).map(|t| t.phys);
    let checked = if translated != Some(frame) {
        Err(format!("translate gave {translated:x?}, mapped {frame:#x}"))
    } else {
        crate::tlb_tags::TLB_TAGS.switch_to(&space);
        let written = *b"strait address space";
        let mut read = [0u8; 20];
        let result = Machine::copy_to_user(USER_VA, &written)
            .and_then(|()| Machine::copy_from_user(&mut read, USER_VA));
        Machine::activate_kernel_space();
        match result {
            Ok(()) if read == written => Ok(()),
            Ok(()) => Err(format!("read back {read:?}")),
            Err(e) => Err(format!("user copy failed: {e:?}")),
        }
    };
    // The mapped frame is ours (the space only owns its tables): free it after teardown.
    space.destroy(frames, |_| {});
    let _ = frames.free(frame);
    checked?;
    if frames.free_frames() != before {
        return Err(format!(
            "{} frames leaked",
            before as i64 - frames.free_frames() as i64
        ));
    }
    Ok(())
}

fn masked_heap_stats() -> usize {
    let enabled = Machine::disable_interrupts();
    let bytes = HEAP.0.lock().stats_alloc_user();
    Machine::restore_interrupts(enabled);
    bytes
}
