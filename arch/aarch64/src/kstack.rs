//! Kernel stacks with guard pages, in their own TTBR1 region.
//!
//! Owns `Platform::new_kernel_stack`, `free_kernel_stack` and `run_on_stack`, and what the trap
//! handler and the backtrace walker need to know about those stacks. The region
//! (`layout::KERNEL_STACKS_BASE`) is a kernel-core [`StackRegion`] of 16-page slots: the lowest
//! page of a slot is its guard and is never mapped, the 15 above it (60 KiB) are mapped with
//! 4 KiB pages, read+write, never executable, global. The region is never mapped with blocks,
//! so mapping and unmapping a stack never splits a live block.
//!
//! A slot's life: claimed (`StackRegion::claim`) -> pages mapped -> marked in [`MAPPED`] ->
//! used -> unmarked -> pages unmapped and flushed -> frames freed -> released. The trap handler
//! reads the region without a lock: a guard hit names the slot's owner, and the backtrace
//! walker reads only slots marked mapped. This module must never map a guard page, and never
//! free a stack something may still run on (the caller guarantees that; the current one is
//! refused).

use crate::kernel_space::KERNEL_TABLES;
use crate::layout::{KERNEL_STACK_SLOT_PAGES, KERNEL_STACKS_BASE};
use crate::mmu;
use crate::spaces::HhdmTables;
use core::sync::atomic::{AtomicU64, Ordering};
use kernel_core::hal::KernelStack;
use kernel_core::paging::{FrameSource, MapError, MapFlags, PAGE_SIZE};
use kernel_core::stack_region::{MAX_SLOTS, Slot, StackRegion};

/// Mapped pages per stack.
const STACK_PAGES: usize = KERNEL_STACK_SLOT_PAGES as usize - 1;
/// Stack pages: read+write, never executable, in every address space.
const STACK_FLAGS: MapFlags = MapFlags::READ
    .union(MapFlags::WRITE)
    .union(MapFlags::GLOBAL);

static REGION: StackRegion = StackRegion::new(KERNEL_STACKS_BASE, KERNEL_STACK_SLOT_PAGES);

/// Bit `i`: slot `i`'s stack pages are mapped (set after mapping, cleared before unmapping).
static MAPPED: [AtomicU64; MAX_SLOTS / 64] = [const { AtomicU64::new(0) }; MAX_SLOTS / 64];

fn set_mapped(index: usize, mapped: bool) {
    let bit = 1u64 << (index % 64);
    if mapped {
        MAPPED[index / 64].fetch_or(bit, Ordering::Release);
    } else {
        MAPPED[index / 64].fetch_and(!bit, Ordering::Release);
    }
}

fn is_mapped(index: usize) -> bool {
    MAPPED[index / 64].load(Ordering::Acquire) & (1 << (index % 64)) != 0
}

/// The slot whose pages (guard included) contain `addr`, if `addr` is in the region.
fn slot_of(addr: u64) -> Option<Slot> {
    if addr < KERNEL_STACKS_BASE || addr >= REGION.end() {
        return None;
    }
    let index = (addr - KERNEL_STACKS_BASE) / (KERNEL_STACK_SLOT_PAGES * PAGE_SIZE);
    Some(REGION.slot(index as usize))
}

/// Claims a slot for `owner` and maps its stack pages from fresh frames. On any failure
/// everything taken so far is given back (pages unmapped and flushed, frames freed, slot
/// released) and the error returned; an exhausted region is `MapError::OutOfFrames`.
///
/// Panics when called before `init_kernel_space` (the region exists only in the kernel's own
/// tables).
pub fn new_kernel_stack(
    frames: &mut impl FrameSource,
    owner: u64,
) -> Result<KernelStack, MapError> {
    let slot = REGION.claim(owner).ok_or(MapError::OutOfFrames)?;
    let mut mem = HhdmTables;
    let mut tables = KERNEL_TABLES.lock();
    let mapper = tables
        .as_mut()
        .expect("kernel stacks need the kernel's own tables: call init_kernel_space first");
    let mut mapped = 0;
    let mut result = Ok(());
    for page in 0..STACK_PAGES {
        let va = slot.bottom + page as u64 * PAGE_SIZE;
        let Some(frame) = frames.allocate() else {
            result = Err(MapError::OutOfFrames);
            break;
        };
        if let Err(error) = mapper.map(&mut mem, frames, va, frame, STACK_FLAGS) {
            frames.free(frame);
            result = Err(error);
            break;
        }
        mapped += 1;
    }
    if let Err(error) = result {
        let mut taken = [0u64; STACK_PAGES];
        for (page, frame) in taken.iter_mut().enumerate().take(mapped) {
            let va = slot.bottom + page as u64 * PAGE_SIZE;
            *frame = mapper
                .unmap(&mut mem, frames, va)
                .expect("a stack page mapped just before is mapped");
        }
        // Also drops walk-cache entries of tables a failed map linked and unlinked again.
        mmu::flush_kernel_range(slot.bottom, slot.top);
        drop(tables);
        for &frame in &taken[..mapped] {
            frames.free(frame);
        }
        REGION.release(slot.index);
        return Err(error);
    }
    drop(tables);
    set_mapped(slot.index, true);
    Ok(KernelStack {
        top: slot.top,
        bottom: slot.bottom,
        guard: slot.guard,
        owner,
    })
}

/// The claimed, mapped slot `stack` describes; panics when it is not one (a kernel bug).
fn live_slot(stack: &KernelStack) -> Slot {
    let slot = slot_of(stack.guard).filter(|slot| {
        slot.guard == stack.guard
            && slot.bottom == stack.bottom
            && slot.top == stack.top
            && is_mapped(slot.index)
            && REGION.guard_hit(slot.guard).is_some()
    });
    slot.unwrap_or_else(|| panic!("{stack:x?} is not a live kernel stack"))
}

/// Unmaps `stack`, flushes it from the TLB, frees its frames and releases its slot.
pub fn free_kernel_stack(stack: KernelStack, frames: &mut impl FrameSource) {
    let slot = live_slot(&stack);
    let sp = current_sp();
    assert!(
        !(slot.guard..slot.top).contains(&sp),
        "free_kernel_stack on the stack it runs on"
    );
    set_mapped(slot.index, false);
    let mut mem = HhdmTables;
    let mut tables = KERNEL_TABLES.lock();
    let mapper = tables
        .as_mut()
        .expect("a live kernel stack implies the kernel's own tables");
    let mut taken = [0u64; STACK_PAGES];
    for (page, frame) in taken.iter_mut().enumerate() {
        let va = slot.bottom + page as u64 * PAGE_SIZE;
        *frame = mapper
            .unmap(&mut mem, frames, va)
            .expect("every page of a live kernel stack is mapped");
    }
    mmu::flush_kernel_range(slot.bottom, slot.top);
    drop(tables);
    for frame in taken {
        frames.free(frame);
    }
    REGION.release(slot.index);
}

fn current_sp() -> u64 {
    let sp: u64;
    // SAFETY: copying SP into a register has no side effects.
    unsafe {
        core::arch::asm!("mov {}, sp", out(reg) sp, options(nomem, nostack, preserves_flags))
    };
    sp
}

/// First Rust frame on a new stack: its frame record is (0, 0), so backtraces end here.
#[allow(
    improper_ctypes_definitions,
    reason = "only `run_on_stack`'s assembly calls it, passing a Rust fn pointer in x0"
)]
extern "C" fn stack_entry(entry: fn() -> !) -> ! {
    entry()
}

/// Switches to `stack` (a live stack from [`new_kernel_stack`]) and calls `entry` there.
pub fn run_on_stack(stack: &KernelStack, entry: fn() -> !) -> ! {
    let slot = live_slot(stack);
    // SAFETY: `slot.top` is the aligned top of a mapped, unused stack given to this CPU for good;
    // `stack_entry` never returns, so abandoning the old stack is fine; x29 = x30 = 0 ends backtraces.
    unsafe {
        core::arch::asm!(
            "mov sp, {top}",
            "mov x29, xzr",
            "mov x30, xzr",
            "b {target}",
            top = in(reg) slot.top,
            target = sym stack_entry,
            in("x0") entry,
            options(noreturn)
        )
    }
}

/// The owner of the claimed slot whose guard page holds `addr` (a stack overflow), if any.
/// Lock-free: called from the trap handler.
pub fn guard_owner(addr: u64) -> Option<u64> {
    REGION.guard_hit(addr).map(|(_, owner)| owner)
}

/// Whether the 8-byte word at `addr` lies in the mapped pages of a live stack. Lock-free: the
/// backtrace walker calls it from the trap handler.
pub fn holds_stack_word(addr: u64) -> bool {
    slot_of(addr).is_some_and(|slot| {
        is_mapped(slot.index)
            && addr >= slot.bottom
            && addr.checked_add(8).is_some_and(|end| end <= slot.top)
    })
}

/// Hands `stack` (live, nothing running on it) to thread `owner`.
pub fn reassign_kernel_stack(stack: &mut KernelStack, owner: u64) {
    let renamed = REGION.reassign(stack.guard, owner);
    debug_assert!(renamed, "{stack:x?} is not a live kernel stack");
    stack.owner = owner;
}
