//! Strait's AArch64 support: Linux `Image` boot, EL2 -> EL1, the boot MMU, device tree, PL011,
//! exception vectors, the kernel's page tables, user address spaces (TTBR0 + ASID), guarded
//! kernel stacks, semihosting exit.
//!
//! Owns everything that is specific to AArch64 and implements `kernel_core::hal::Platform` for
//! it as [`Machine`]. The kernel binary (`boot`) names this crate once and otherwise talks to it
//! only through that trait and [`entry_point!`]. Machine detail must never leak upwards: what
//! crosses the boundary is `BootInfo`, bytes for the console and an exit status.
//!
//! Boot path, in order: `entry` (Image header, EL2 -> EL1, `.bss`), `boot_mmu` (tables, MMU on),
//! `entry` again (higher half, `stacks`, `traps` vectors), `dtb` (via `dtb_copy`) and `serial`,
//! then the kernel's `main`. Afterwards: `traps` (with `extable` for the recoverable accesses of
//! `probe` and `user_copy`), `kernel_space` (the kernel's own TTBR1 tables, built with
//! kernel-core's `Mapper`), `spaces` (the hooks of kernel-core's user `AddressSpace`), `kstack`
//! (stacks with guard pages), `mmu` (the system registers and TLB maintenance behind all three),
//! `faults` for the deliberate faults, `exit`. `layout` holds the addresses all of them derive
//! from. Threads and time: `context` (the kernel context switch), `cpu` (the IRQ mask, idle
//! wait, CPU number), `gic` (GICv2/v3) and `timer` (the generic timer's clock and tick, and the
//! IRQ dispatch that `traps` calls on the interrupted thread's stack).
#![no_std]

mod boot_mmu;
pub mod context;
mod cpu;
mod dtb;
mod dtb_copy;
mod entry;
mod exit;
mod extable;
mod faults;
mod gic;
mod kernel_space;
mod kstack;
mod layout;
mod mmu;
mod probe;
mod serial;
mod spaces;
mod stacks;
mod timer;
mod traps;
mod user;
mod user_copy;

pub use spaces::{HhdmTables, Spaces};

use kernel_core::boot_info::BootInfo;
use kernel_core::hal::{
    Access, DeliberateFault, ExitStatus, FpArea, KernelSpaceReport, KernelStack, Platform,
    ProbeFault, TimerReport, UserAccessError, UserFault, UserMode,
};
use kernel_core::paging::{FrameSource, MapError};

/// `ret` (0xd65f03c0), little-endian.
const RET: u32 = 0xd65f_03c0;

/// The AArch64 machine (QEMU `virt`), as the portable kernel sees it.
#[derive(Debug)]
pub struct Machine;

impl Platform for Machine {
    const NAME: &'static str = "aarch64";

    const RETURN_INSTRUCTION: [u8; 4] = RET.to_le_bytes();

    type Spaces = Spaces;

    fn console_write(bytes: &[u8]) {
        serial::write(bytes);
    }

    fn boot_info() -> &'static BootInfo {
        entry::boot_info()
    }

    fn init_traps() -> Result<(), &'static str> {
        traps::init()
    }

    fn probe(access: Access, addr: u64) -> Result<(), ProbeFault> {
        probe::probe(access, addr)
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
        kernel_space::init(info, frames)
    }

    fn activate_kernel_space() {
        kernel_space::activate_kernel_space();
    }

    fn new_kernel_stack(
        frames: &mut impl FrameSource,
        owner: u64,
    ) -> Result<KernelStack, MapError> {
        kstack::new_kernel_stack(frames, owner)
    }

    fn free_kernel_stack(stack: KernelStack, frames: &mut impl FrameSource) {
        kstack::free_kernel_stack(stack, frames);
    }

    fn reassign_kernel_stack(stack: &mut KernelStack, owner: u64) {
        kstack::reassign_kernel_stack(stack, owner);
    }

    fn run_on_stack(stack: &KernelStack, entry: fn() -> !) -> ! {
        kstack::run_on_stack(stack, entry)
    }

    fn cpu_id() -> u32 {
        cpu::cpu_id()
    }

    fn disable_interrupts() -> bool {
        cpu::disable_interrupts()
    }

    fn restore_interrupts(enabled: bool) {
        cpu::restore_interrupts(enabled);
    }

    fn wait_for_interrupt() {
        cpu::wait_for_interrupt();
    }

    fn init_timer(
        _frames: &mut impl FrameSource,
        tick_hz: u32,
        on_tick: fn(),
    ) -> Result<TimerReport, &'static str> {
        // The GIC's register frames are already mapped (`kernel_space` maps them with the
        // kernel's tables), so no page table is needed here.
        timer::init(tick_hz, on_tick)
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
        // SAFETY: copying x29 into a register has no side effects.
        unsafe {
            core::arch::asm!("mov {}, x29", out(reg) fp, options(nomem, nostack, preserves_flags))
        };
        fp
    }

    fn read_stack_word(addr: u64) -> Option<u64> {
        read_stack_word(addr)
    }

    fn exit(status: ExitStatus) -> ! {
        exit::exit(status)
    }

    fn halt_forever() -> ! {
        exit::halt_forever()
    }
}

/// A word for the backtrace walker: `None` unless `addr` is 8-byte aligned and the whole word
/// lies either inside `[__kernel_start, __kernel_end)` (which holds the boot and exception
/// stacks) but not in one of their guard pages, or in the mapped pages of a live `kstack` stack.
fn read_stack_word(addr: u64) -> Option<u64> {
    if !addr.is_multiple_of(8) {
        return None;
    }
    let (start, end) = layout::kernel_image_virt();
    let in_image =
        addr >= start && addr.checked_add(8)? <= end && stacks::guard_page_of(addr).is_none();
    if !in_image && !kstack::holds_stack_word(addr) {
        return None;
    }
    // SAFETY: the word is aligned and lies in the mapped kernel image (guard pages excluded) or in a
    // stack `kstack` marks mapped (cleared before unmapping; one CPU runs), so the read cannot fault.
    Some(unsafe { core::ptr::read_volatile(addr as *const u64) })
}

/// Declares the kernel's main function: `entry_point!(kernel_main)` with `fn kernel_main() -> !`.
/// The entry code calls it once the MMU, stack, vectors, boot information and console are ready.
impl UserMode for Machine {
    type UserFrame = traps::TrapFrame;
    const USER_AREA_BYTES: u64 = traps::FRAME_SIZE as u64;
    /// `svc #0`, like every A64 instruction, is 4 bytes.
    const SYSCALL_INSTRUCTION_BYTES: u64 = 4;

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
        !mmu::features().pan || !mmu::pan_set()
    }

    fn set_user_access_open(open: bool) {
        if mmu::features().pan {
            mmu::set_pan(!open);
        }
    }

    fn set_user_entry_stack(_stack_top: u64) {
        // SP_EL1 is already the thread's kernel stack whenever user code runs.
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
