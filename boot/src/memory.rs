//! Boot-time memory services: the global frame allocator and the kernel heap.
//!
//! Owns the placement decisions made once at boot: where the frame bitmap lives, how large the
//! kernel heap is and which frames back it. The allocation logic itself is `kernel-core`'s; this
//! module only hands it memory through the HHDM. It must never give out a frame the boot
//! information reserved, and never touch RAM the boot-time HHDM does not reach.

use buddy_system_allocator::LockedHeap;
use kernel_core::boot_info::BootInfo;
use kernel_core::frame_alloc::FrameAllocator;
use kernel_core::memory_map::{FRAME_SIZE, FreeRanges};
use spin::{Mutex, Once};

/// Order of the buddy allocator: blocks up to 2^(ORDER-1) bytes.
const HEAP_ORDER: usize = 32;
/// Heap size bounds; within them the heap gets 1/16 of free RAM.
const HEAP_MIN_BYTES: u64 = 1 << 20;
const HEAP_MAX_BYTES: u64 = 32 << 20;

#[global_allocator]
static HEAP: LockedHeap<HEAP_ORDER> = LockedHeap::empty();

/// The physical frame allocator (after the `frames` stage).
pub static FRAMES: Mutex<Option<FrameAllocator<'static>>> = Mutex::new(None);

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
    // SAFETY: `storage` was just removed from the free ranges, so no frame allocator, heap or
    // other boot structure owns it; it is RAM below `hhdm_limit`, so the HHDM maps it read-write;
    // its start is frame aligned (so aligned for u64) and it holds at least `words` words. The
    // slice lives for the rest of the kernel's life because those frames are never freed.
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
    *FRAMES.lock() = Some(allocator);
    Ok(())
}

/// Gives the kernel heap a contiguous run of frames.
pub fn init_heap() -> Result<(), &'static str> {
    let mut frames = FRAMES.lock();
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
        HEAP.lock()
            .init(phys_to_virt(range.start) as usize, range.len() as usize)
    };
    crate::kprintln!("[heap] {} KiB at {}", range.len() >> 10, range);
    Ok(())
}

/// Bytes currently allocated from the kernel heap (what the user asked for).
pub fn heap_bytes_in_use() -> usize {
    HEAP.lock().stats_alloc_user()
}
