//! Kernel stacks on x86_64: guarded slots in PML4 slot 508, and switching onto one.
//!
//! Owns the stack region (`kernel_core::stack_region` decides the addresses; this module maps
//! the pages) and the boot CPU's move from its `.bss` boot stack to a guarded one. A guard page
//! is never mapped, so running off the bottom of a stack faults; the trap handler asks
//! [`overflow_owner`] whether a fault address was such a hit. Stacks are mapped 4 KiB at a time
//! and never share tables with the HHDM's huge pages.

use crate::paging::{HhdmTables, with_kernel_mapper};
use kernel_core::hal::KernelStack;
use kernel_core::paging::{FrameSource, MapError, MapFlags, PAGE_SIZE};
use kernel_core::stack_region::StackRegion;

/// Base of the stack region: PML4 slot 508.
const STACK_REGION_BASE: u64 = 0xffff_fe00_0000_0000;
/// Pages per slot: one guard page and 60 KiB of stack.
const SLOT_PAGES: u64 = 16;

static REGION: StackRegion = StackRegion::new(STACK_REGION_BASE, SLOT_PAGES);

/// The owner of the stack whose guard page contains `addr`, if any.
pub fn overflow_owner(addr: u64) -> Option<u64> {
    REGION.guard_hit(addr).map(|(_, owner)| owner)
}

/// True when `[addr, addr + 8)` lies in the mapped part of a claimed stack (for backtraces).
pub fn is_stack_word(addr: u64) -> bool {
    let Some(offset) = addr.checked_sub(STACK_REGION_BASE) else {
        return false;
    };
    let slot_bytes = SLOT_PAGES * PAGE_SIZE;
    let index = offset / slot_bytes;
    addr < REGION.end()
        && offset % slot_bytes >= PAGE_SIZE
        && offset % slot_bytes <= slot_bytes - 8
        && REGION
            .guard_hit(REGION.slot(index as usize).guard)
            .is_some()
}

/// Maps a new stack for `owner`. On failure nothing stays mapped or allocated.
pub fn new_kernel_stack(
    frames: &mut impl FrameSource,
    owner: u64,
) -> Result<KernelStack, MapError> {
    let slot = REGION.claim(owner).ok_or(MapError::OutOfFrames)?;
    let flags = MapFlags::READ | MapFlags::WRITE | MapFlags::GLOBAL;
    let result = with_kernel_mapper(|mapper| {
        for va in (slot.bottom..slot.top).step_by(PAGE_SIZE as usize) {
            let mapped = match frames.allocate() {
                None => Err(MapError::OutOfFrames),
                Some(frame) => mapper
                    .map(&mut HhdmTables, frames, va, frame, flags)
                    .inspect_err(|_| frames.free(frame)),
            };
            if let Err(error) = mapped {
                for done in (slot.bottom..va).step_by(PAGE_SIZE as usize) {
                    if let Ok(frame) = mapper.unmap(&mut HhdmTables, frames, done) {
                        frames.free(frame);
                    }
                    x86_64::instructions::tlb::flush(x86_64::VirtAddr::new(done));
                }
                return Err(error);
            }
        }
        Ok(())
    })
    .unwrap_or(Err(MapError::NotMapped));
    match result {
        Ok(()) => Ok(KernelStack {
            top: slot.top,
            bottom: slot.bottom,
            guard: slot.guard,
            owner,
        }),
        Err(error) => {
            REGION.release(slot.index);
            Err(error)
        }
    }
}

/// Unmaps `stack`, frees its frames and its slot.
pub fn free_kernel_stack(stack: KernelStack, frames: &mut impl FrameSource) {
    with_kernel_mapper(|mapper| {
        for va in (stack.bottom..stack.top).step_by(PAGE_SIZE as usize) {
            if let Ok(frame) = mapper.unmap(&mut HhdmTables, frames, va) {
                frames.free(frame);
            }
            x86_64::instructions::tlb::flush(x86_64::VirtAddr::new(va));
        }
    });
    let index = (stack.guard - STACK_REGION_BASE) / (SLOT_PAGES * PAGE_SIZE);
    REGION.release(index as usize);
}

/// Moves this CPU to `stack` and calls `entry` there.
pub fn run_on_stack(stack: &KernelStack, entry: fn() -> !) -> ! {
    // SAFETY: `stack.top` is the 16-byte-aligned top of a mapped, unused kernel stack; the old
    // stack is abandoned (nothing returns to it), rbp = 0 ends backtraces, and `entry` never
    // returns.
    unsafe {
        core::arch::asm!(
            "mov rsp, {top}",
            "xor ebp, ebp",
            "call {entry}",
            "ud2",
            top = in(reg) stack.top,
            entry = in(reg) entry,
            options(noreturn)
        )
    }
}

/// Hands `stack` (live, nothing running on it) to thread `owner`.
pub fn reassign_kernel_stack(stack: &mut KernelStack, owner: u64) {
    let renamed = REGION.reassign(stack.guard, owner);
    debug_assert!(renamed, "{stack:x?} is not a live kernel stack");
    stack.owner = owner;
}
