//! Strait's x86_64 support: PVH boot, long mode, GDT/TSS/IDT, the 16550 console, QEMU exit.
//!
//! Owns everything that is specific to x86_64 and implements `kernel_core::hal::Platform` for
//! it as [`Machine`]. The kernel binary (`boot`) names this crate once and otherwise talks to it
//! only through that trait. Machine detail must never leak upwards: what crosses the boundary is
//! `BootInfo`, bytes for the console and an exit status.
#![no_std]

mod console;
pub mod context;
mod cpu;
mod entry;
mod exit;
mod faults;
mod gdt;
mod lapic;
mod layout;
mod paging;
mod pvh;
mod recovery;
mod serial;
mod stacks;
mod timer;
mod traps;
mod user;
mod user_copy;

use kernel_core::boot_info::BootInfo;
use kernel_core::hal::{
    Access, DeliberateFault, ExitStatus, FpArea, KernelSpaceReport, KernelStack, Platform,
    ProbeFault, TimerReport, UserAccessError, UserFault, UserMode,
};
use kernel_core::paging::{FrameSource, MapError};
use x86_64::instructions::interrupts;

/// The x86_64 machine, as the portable kernel sees it.
#[derive(Debug)]
pub struct Machine;

impl Platform for Machine {
    const NAME: &'static str = "x86_64";
    const RETURN_INSTRUCTION: [u8; 4] = [0xc3, 0xcc, 0xcc, 0xcc]; // ret; int3 padding
    type Spaces = paging::X86Spaces;

    fn console_write(bytes: &[u8]) {
        serial::write(bytes);
    }

    fn boot_info() -> &'static BootInfo {
        pvh::boot_info()
    }

    fn init_traps() -> Result<(), &'static str> {
        traps::init()
    }

    fn probe(access: Access, addr: u64) -> Result<(), ProbeFault> {
        recovery::probe(access, addr)
    }

    fn copy_from_user(dst: &mut [u8], src: u64) -> Result<(), UserAccessError> {
        user_copy::copy_from_user(dst, src)
    }

    fn copy_to_user(dst: u64, src: &[u8]) -> Result<(), UserAccessError> {
        user_copy::copy_to_user(dst, src)
    }

    fn init_kernel_space(
        info: &BootInfo,
        frames: &mut impl FrameSource,
    ) -> Result<KernelSpaceReport, &'static str> {
        paging::init_kernel_space(info, frames)
    }

    fn activate_kernel_space() {
        paging::activate_kernel_space();
    }

    fn new_kernel_stack(
        frames: &mut impl FrameSource,
        owner: u64,
    ) -> Result<KernelStack, MapError> {
        stacks::new_kernel_stack(frames, owner)
    }

    fn free_kernel_stack(stack: KernelStack, frames: &mut impl FrameSource) {
        stacks::free_kernel_stack(stack, frames);
    }

    fn reassign_kernel_stack(stack: &mut KernelStack, owner: u64) {
        stacks::reassign_kernel_stack(stack, owner);
    }

    fn run_on_stack(stack: &KernelStack, entry: fn() -> !) -> ! {
        stacks::run_on_stack(stack, entry)
    }

    fn cpu_id() -> u32 {
        // One CPU runs for now; with SMP this becomes a per-CPU variable (GS base).
        0
    }

    fn disable_interrupts() -> bool {
        let enabled = interrupts::are_enabled();
        interrupts::disable();
        enabled
    }

    fn restore_interrupts(enabled: bool) {
        if enabled {
            interrupts::enable();
        }
    }

    fn wait_for_interrupt() {
        // `sti` takes effect after the next instruction, so no interrupt can slip in between
        // it and `hlt`: a wake-up that is already pending ends the halt at once.
        interrupts::enable_and_hlt();
        interrupts::disable();
    }

    fn init_timer(
        frames: &mut impl FrameSource,
        tick_hz: u32,
        on_tick: fn(),
    ) -> Result<TimerReport, &'static str> {
        timer::init(frames, tick_hz, on_tick)
    }

    fn now_ns() -> u64 {
        timer::now_ns()
    }

    fn provoke(fault: DeliberateFault) -> ! {
        match fault {
            DeliberateFault::UnmappedRead => faults::deliberate_unmapped_read(),
            DeliberateFault::UndefinedInstruction => faults::deliberate_undefined_instruction(),
        }
    }

    #[inline(always)]
    fn frame_pointer() -> u64 {
        let fp: u64;
        // SAFETY: copying rbp into a register has no side effects.
        unsafe {
            core::arch::asm!("mov {}, rbp", out(reg) fp, options(nomem, nostack, preserves_flags))
        };
        fp
    }

    fn read_stack_word(addr: u64) -> Option<u64> {
        let (start, end) = layout::kernel_image_virt();
        let in_image = addr >= start && addr.checked_add(8)? <= end;
        if !addr.is_multiple_of(8) || !(in_image || stacks::is_stack_word(addr)) {
            return None;
        }
        // SAFETY: the word is aligned and lies inside the kernel image (text, data, bss and the
        // boot and trap stacks) or inside the mapped part of a claimed kernel stack, both mapped
        // readable for as long as they exist.
        Some(unsafe { core::ptr::read_volatile(addr as *const u64) })
    }

    fn exit(status: ExitStatus) -> ! {
        exit::exit(status)
    }

    fn halt_forever() -> ! {
        exit::halt_forever()
    }
}

/// Declares the kernel's main function: `entry_point!(kernel_main)` with `fn kernel_main() -> !`.
/// The PVH entry calls it once the console, boot information and stack are ready.
impl UserMode for Machine {
    type UserFrame = traps::TrapFrame;
    const USER_AREA_BYTES: u64 = traps::FRAME_BYTES;
    /// `syscall` is `0f 05`.
    const SYSCALL_INSTRUCTION_BYTES: u64 = 2;

    fn init_user_mode(
        syscall: fn(&mut Self::UserFrame),
        fault: fn(&mut Self::UserFrame, UserFault),
    ) -> Result<(), &'static str> {
        user::init(syscall, fault)
    }

    fn user_frame(stack_top: u64) -> *mut Self::UserFrame {
        user::frame_at(stack_top)
    }

    fn init_fp(area: &mut FpArea) {
        user::init_fp(area);
    }

    fn save_fp(area: &mut FpArea) {
        user::save_fp(area);
    }

    fn restore_fp(area: &FpArea) {
        user::restore_fp(area);
    }

    fn user_access_open() -> bool {
        let ac = x86_64::registers::rflags::read()
            .contains(x86_64::registers::rflags::RFlags::ALIGNMENT_CHECK);
        !cpu::features().smap || ac
    }

    fn set_user_access_open(open: bool) {
        if !cpu::features().smap {
            return;
        }
        if open {
            // SAFETY: `stac` only allows supervisor accesses to user pages (the CPU has SMAP:
            // checked above); the caller is the trap-entry test, which closes it again.
            unsafe { core::arch::asm!("stac", options(nostack)) };
        } else {
            // SAFETY: `clac` only forbids supervisor accesses to user pages again.
            unsafe { core::arch::asm!("clac", options(nostack)) };
        }
    }

    fn set_user_entry_stack(stack_top: u64) {
        user::set_entry_stack(stack_top);
    }

    fn enter_user(stack_top: u64, entry: u64, sp: u64, arg: u64) -> ! {
        user::enter(stack_top, entry, sp, arg)
    }
}

#[macro_export]
macro_rules! entry_point {
    ($main:path) => {
        #[unsafe(no_mangle)]
        extern "C" fn __strait_kernel_main() -> ! {
            let main: fn() -> ! = $main;
            main()
        }
    };
}
