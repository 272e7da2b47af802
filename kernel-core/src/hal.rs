//! The hardware abstraction the portable core asks of an architecture.
//!
//! Owns the contract between `kernel-core` and an arch crate (`arch/x86_64`, `arch/aarch64`). Each
//! arch crate implements [`Platform`] on a zero-sized type; `boot` names it once and the rest of
//! the kernel stays generic. This module must never grow machine detail: a method belongs here
//! only when both architectures can implement it with the same meaning.

use crate::boot_info::BootInfo;
use crate::paging::{AddressSpaceHal, FrameSource, MapError};

/// How a boot ends. The arch crate passes [`ExitStatus::value`] v to the emulator's exit device:
/// isa-debug-exit on x86_64 (QEMU exits with `(v << 1) | 1`), semihosting `SYS_EXIT_EXTENDED` on
/// AArch64 (QEMU exits with v). A process exit status has 8 bits, so on x86_64 only v up to 127
/// survives; every value here stays below that.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Every selected test passed (value 0).
    Passed,
    /// At least one test failed, or a stage failed (value 1).
    Failed,
    /// The kernel stopped on an unexpected trap or a panic (value 2).
    Crashed,
    /// A normal boot ended because init ended, with init's status (0 to
    /// [`ExitStatus::INIT_STATUS_MAX`], see [`ExitStatus::init_status`]); value
    /// [`ExitStatus::INIT_EXIT_BASE`] + status.
    InitExited(u8),
}

impl ExitStatus {
    /// The value of [`ExitStatus::InitExited`] with status 0; status s has value this + s.
    pub const INIT_EXIT_BASE: u32 = 3;
    /// The largest init status: the value is then 127, the largest x86_64's isa-debug-exit
    /// carries through QEMU's 8-bit exit status. It also stands for every ending of init that
    /// has no status of its own in range (see [`ExitStatus::init_status`]).
    pub const INIT_STATUS_MAX: u8 = 124;

    /// Init's status for [`ExitStatus::InitExited`] when it ended with exit code `code` (`None`:
    /// init has no exit code, it could not be joined): the exit code when that lies in
    /// `0..INIT_STATUS_MAX`; anything else (a negative code, a larger one, a killed init, no
    /// code) is [`ExitStatus::INIT_STATUS_MAX`].
    pub fn init_status(code: Option<i64>) -> u8 {
        code.and_then(|c| u8::try_from(c).ok())
            .filter(|&s| s < Self::INIT_STATUS_MAX)
            .unwrap_or(Self::INIT_STATUS_MAX)
    }

    /// The value the exit device gets (0 to 127).
    pub fn value(self) -> u32 {
        match self {
            ExitStatus::Passed => 0,
            ExitStatus::Failed => 1,
            ExitStatus::Crashed => 2,
            ExitStatus::InitExited(status) => {
                Self::INIT_EXIT_BASE + u32::from(status.min(Self::INIT_STATUS_MAX))
            }
        }
    }
}

/// A fault the kernel provokes on purpose so that the trap path can be tested end to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliberateFault {
    /// Read from a kernel-half address that no page table maps.
    UnmappedRead,
    /// Execute an instruction the CPU defines as permanently undefined (`ud2`, `udf`).
    UndefinedInstruction,
}

/// A kind of memory access, for [`Platform::probe`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Load one byte.
    Read,
    /// Load one byte and store it back unchanged (so a probe that succeeds changes nothing).
    Write,
    /// Call the address; the byte there must be a return instruction (`ret`).
    Execute,
}

/// A probed access trapped; the fault was recovered and nothing else happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeFault;

/// Why a copy between kernel and user memory failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserAccessError {
    /// The range is not entirely inside the user half (or wraps around).
    NotUserRange,
    /// The copy faulted at `addr` (unmapped, or not accessible that way); bytes before it were
    /// copied.
    Fault {
        /// First user address that could not be accessed.
        addr: u64,
    },
}

/// What the kernel address space came out as, for the `paging` stage report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelSpaceReport {
    /// Bytes of physical memory the HHDM maps.
    pub hhdm_bytes: u64,
    /// Address-space tags the TLB offers (PCIDs, ASIDs); 1 means untagged.
    pub tlb_tags: u32,
    /// The kernel cannot execute user pages (SMEP, PXN).
    pub user_execute_blocked: bool,
    /// The kernel cannot touch user data outside the user-copy path (SMAP, PAN).
    pub user_access_blocked: bool,
}

/// A kernel stack in the kernel half, with an unmapped guard page directly below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelStack {
    /// Initial stack pointer (one past the highest byte).
    pub top: u64,
    /// Lowest mapped byte.
    pub bottom: u64,
    /// The unmapped guard page below `bottom`: touching it reports an overflow.
    pub guard: u64,
    /// Who runs on it (a thread ID), printed by the overflow report.
    pub owner: u64,
}

/// What the timer setup measured, for the `timer` stage report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerReport {
    /// Periodic tick rate (preemption interrupts per second).
    pub tick_hz: u32,
    /// Frequency of the monotonic clock behind `now_ns` (TSC, CNTVCT).
    pub clock_hz: u64,
    /// Frequency of the timer that raises the tick (LAPIC timer after its divider, CNTV).
    pub event_hz: u64,
}

/// Owner ID of the boot CPU's stack in overflow reports.
pub const BOOT_STACK_OWNER: u64 = u64::MAX;

/// The services the portable kernel needs from one architecture during boot.
///
/// Implemented by a zero-sized type in each arch crate. Methods are associated functions (no
/// `self`) because there is exactly one machine.
pub trait Platform: UserMode {
    /// Short architecture name printed on the console (`x86_64`, `aarch64`).
    const NAME: &'static str;

    /// A return instruction, as bytes, padded to four (for the W^X execute probes).
    const RETURN_INSTRUCTION: [u8; 4];

    /// The page-table hooks that user address spaces (`paging::AddressSpace`) run on.
    type Spaces: AddressSpaceHal;

    /// Writes bytes to the boot console. Must be callable from any context, including trap
    /// handlers, and must never block on a lock another context can hold.
    fn console_write(bytes: &[u8]);

    /// The arch-neutral description of the machine, built from PVH `hvm_start_info` or the DTB.
    fn boot_info() -> &'static BootInfo;

    /// Installs the trap vectors (IDT/GDT/TSS or VBAR_EL1) and proves them with a breakpoint that
    /// must come back. Returns a reason when the round trip did not happen.
    fn init_traps() -> Result<(), &'static str>;

    /// Performs `access` at kernel address `addr` under fault recovery: `Err(ProbeFault)` when
    /// the access trapped (unmapped, or forbidden by the page permissions), `Ok` when it
    /// happened. Used by the memory tests to prove W^X; never used on user addresses.
    fn probe(access: Access, addr: u64) -> Result<(), ProbeFault>;

    /// Copies `dst.len()` bytes from user address `src` in the current address space, through
    /// the one audited user-access path (range validation, SMAP/PAN, fault recovery).
    fn copy_from_user(dst: &mut [u8], src: u64) -> Result<(), UserAccessError>;

    /// Copies `src` to user address `dst` in the current address space (see
    /// [`copy_from_user`](Self::copy_from_user)).
    fn copy_to_user(dst: u64, src: &[u8]) -> Result<(), UserAccessError>;

    /// Builds the kernel's own page tables from `info` (the HHDM over all RAM, the kernel image
    /// least-privilege: text read+execute, rodata read-only, data and bss read+write and never
    /// executable), switches to them and turns on user-access protection (SMEP/SMAP, PAN).
    fn init_kernel_space(
        info: &BootInfo,
        frames: &mut impl FrameSource,
    ) -> Result<KernelSpaceReport, &'static str>;

    /// Switches this CPU back to the kernel-only address space (no user half mapped).
    fn activate_kernel_space();

    /// Maps a fresh kernel stack of the architecture's standard size with an unmapped guard
    /// page below it.
    fn new_kernel_stack(frames: &mut impl FrameSource, owner: u64)
    -> Result<KernelStack, MapError>;

    /// Unmaps `stack` and returns its frames. The caller guarantees nothing runs on it.
    fn free_kernel_stack(stack: KernelStack, frames: &mut impl FrameSource);

    /// Hands a live kernel stack nothing runs on any more to thread `owner` (its guard-page
    /// report names the new owner from now on).
    fn reassign_kernel_stack(stack: &mut KernelStack, owner: u64);

    /// Switches this CPU to `stack` and calls `entry` there; the old stack is abandoned.
    fn run_on_stack(stack: &KernelStack, entry: fn() -> !) -> !;

    /// This CPU's number (0 for the boot CPU).
    fn cpu_id() -> u32;

    /// Masks interrupts on this CPU and returns whether they were enabled before.
    fn disable_interrupts() -> bool;

    /// Unmasks interrupts on this CPU if `enabled` (the value `disable_interrupts` returned).
    fn restore_interrupts(enabled: bool);

    /// Called with interrupts masked: unmasks them and sleeps until one arrives (`sti; hlt`,
    /// `wfi`) without a window in which a wake-up could be lost, lets its handler run, and
    /// returns with interrupts masked again. The idle loop's only way to wait.
    fn wait_for_interrupt();

    /// Starts the interrupt controller and a periodic tick of `tick_hz` that calls `on_tick` in
    /// interrupt context (masked, already acknowledged; it may switch threads). Interrupts stay
    /// masked until the caller unmasks them. `frames` supplies page tables for device mappings.
    fn init_timer(
        frames: &mut impl FrameSource,
        tick_hz: u32,
        on_tick: fn(),
    ) -> Result<TimerReport, &'static str>;

    /// Monotonic nanoseconds since the timer was set up (0 before `init_timer`).
    fn now_ns() -> u64;

    /// Provokes `fault`; the trap handler reports it and ends the boot, so this never returns.
    fn provoke(fault: DeliberateFault) -> !;

    /// The frame pointer of the calling function (`rbp`, `x29`), to start a backtrace.
    fn frame_pointer() -> u64;

    /// Reads one word for the backtrace walker, or `None` when `addr` is not inside memory the
    /// kernel knows to be mapped and readable (its image and its stacks). Never faults.
    fn read_stack_word(addr: u64) -> Option<u64>;

    /// Ends the boot with `status`; under QEMU this exits the emulator (when the exit device is
    /// there: `-device isa-debug-exit,iobase=0xf4,iosize=0x04` on x86_64, `-semihosting` on
    /// AArch64).
    fn exit(status: ExitStatus) -> !;

    /// Stops this CPU for good with interrupts masked (a normal boot with nothing left to do).
    fn halt_forever() -> !;
}

/// Bytes of per-thread FP/SIMD state an architecture may keep in an [`FpArea`].
pub const FP_AREA_BYTES: usize = 560;

/// Storage for one user thread's FP/SIMD state (and, where an architecture has one, its user
/// thread-pointer register), saved when the thread is switched out and restored when it is
/// switched back in. Only the arch crate interprets the bytes; 16-byte aligned as `fxsave` and
/// `stp q` need.
#[derive(Clone)]
#[repr(C, align(16))]
pub struct FpArea(pub [u8; FP_AREA_BYTES]);

impl core::fmt::Debug for FpArea {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("FpArea")
    }
}

/// What went wrong in a user-mode exception, decoded by the arch crate into the terms of the
/// fault protocol ([`abi::fault`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserFault {
    /// The kind of exception.
    pub kind: abi::fault::FaultKind,
    /// The data address of a page fault (0 otherwise).
    pub address: u64,
    /// [`abi::fault::access`] bits of a page fault (0 otherwise).
    pub access: u64,
    /// The instruction that faulted.
    pub pc: u64,
    /// A short machine-specific detail for the kill report (vector or syndrome).
    pub detail: u64,
}

/// A user thread's saved registers (the frame at the top of its kernel stack), seen through the
/// argument slots of [`abi::regs`]. Implemented by each arch crate's trap frame.
pub trait UserRegisters {
    /// The syscall number register (valid on syscall entry).
    fn syscall_number(&self) -> u64;
    /// Argument slot `index` (`a0..a8`).
    fn slot(&self, index: usize) -> u64;
    /// Writes argument slot `index` (an output slot).
    fn set_slot(&mut self, index: usize, value: u64);
    /// Writes the result register.
    fn set_result(&mut self, value: u64);
    /// Where the thread resumes.
    fn pc(&self) -> u64;
    /// The user stack pointer.
    fn user_sp(&self) -> u64;
}

/// The user-mode services of an architecture: entering user mode, taking system calls and user
/// exceptions, and keeping each user thread's full register state, FP/SIMD included.
///
/// A user thread has a kernel stack whose top holds its [`UserFrame`](Self::UserFrame) (the
/// registers saved on every entry from user mode, where the CPU puts them); the kernel runs below
/// it. [`USER_AREA_BYTES`](Self::USER_AREA_BYTES) is what to reserve. Its [`FpArea`] lives
/// elsewhere (the kernel keeps one per thread slot): code running on the stack below the frame
/// would overwrite anything kept there.
pub trait UserMode {
    /// The saved registers of a user thread.
    type UserFrame: UserRegisters;

    /// Bytes at the top of a user thread's kernel stack holding its frame.
    const USER_AREA_BYTES: u64;

    /// Length of the system-call instruction: a frame saved by a system call resumes right
    /// after it ([`UserRegisters::pc`]), so the instruction itself is this many bytes before
    /// (`syscall` is 2 bytes, `svc #0` 4). The fault protocol reports that pc for a system call
    /// whose user buffer faulted.
    const SYSCALL_INSTRUCTION_BYTES: u64;

    /// Installs the system-call entry and turns on the FP/SIMD unit for user mode. `syscall`
    /// runs for every system call, `fault` for every user exception; both run on the thread's
    /// kernel stack with interrupts masked and may switch threads. Whatever they leave in the
    /// frame is what user mode resumes with.
    fn init_user_mode(
        syscall: fn(&mut Self::UserFrame),
        fault: fn(&mut Self::UserFrame, UserFault),
    ) -> Result<(), &'static str>;

    /// The frame of the user thread whose kernel stack ends at `stack_top`.
    fn user_frame(stack_top: u64) -> *mut Self::UserFrame;

    /// Fills `area` with the state a new thread starts with (everything zero, default control
    /// registers).
    fn init_fp(area: &mut FpArea);

    /// Saves the live FP/SIMD state of this CPU into `area`.
    fn save_fp(area: &mut FpArea);

    /// Loads `area` into this CPU's FP/SIMD registers.
    fn restore_fp(area: &FpArea);

    /// Whether kernel code could touch user memory right now outside the user-copy path
    /// (x86_64: SMAP absent or RFLAGS.AC set; AArch64: PAN absent or PSTATE.PAN clear). Every
    /// trap entry must close it; the `user_access_closed_in_traps` test checks that.
    fn user_access_open() -> bool;

    /// Opens or closes kernel access to user memory for the code running now (`stac`/`clac`, or
    /// PSTATE.PAN). For the test of the trap entry only: nothing else may open it. Does nothing
    /// on a CPU without SMAP/PAN.
    fn set_user_access_open(open: bool);

    /// Tells the CPU which kernel stack the next entry from user mode lands on (TSS.RSP0 and
    /// the syscall stack on x86_64; nothing on AArch64, where SP_EL1 already is that stack).
    fn set_user_entry_stack(stack_top: u64);

    /// Enters user mode for the first time on the current kernel stack (whose top is
    /// `stack_top`): pc `entry`, stack pointer `sp`, slot `a0` = `arg`, every other register
    /// zero, interrupts enabled. Never returns: later entries into the kernel arrive through
    /// the handlers of [`init_user_mode`](Self::init_user_mode).
    fn enter_user(stack_top: u64, entry: u64, sp: u64, arg: u64) -> !;
}

#[cfg(test)]
mod tests {
    use super::ExitStatus;

    #[test]
    fn exit_values_of_test_boots() {
        assert_eq!(ExitStatus::Passed.value(), 0);
        assert_eq!(ExitStatus::Failed.value(), 1);
        assert_eq!(ExitStatus::Crashed.value(), 2);
    }

    #[test]
    fn init_status_is_its_exit_code_when_in_range() {
        assert_eq!(ExitStatus::init_status(Some(0)), 0);
        assert_eq!(ExitStatus::InitExited(0).value(), 3);
        assert_eq!(ExitStatus::init_status(Some(2)), 2);
        assert_eq!(ExitStatus::init_status(Some(123)), 123);
        assert_eq!(ExitStatus::InitExited(123).value(), 126);
    }

    #[test]
    fn any_other_ending_of_init_is_the_largest_status() {
        for code in [
            Some(124),
            Some(255),
            Some(256),
            Some(-1),
            Some(i64::MIN),
            None,
        ] {
            assert_eq!(
                ExitStatus::init_status(code),
                ExitStatus::INIT_STATUS_MAX,
                "{code:?}"
            );
        }
        assert_eq!(
            ExitStatus::InitExited(ExitStatus::INIT_STATUS_MAX).value(),
            127
        );
        // The largest value still survives x86_64's `(v << 1) | 1` in an 8-bit exit status.
        assert_eq!(ExitStatus::InitExited(u8::MAX).value(), 127);
        let x86_status = (ExitStatus::InitExited(u8::MAX).value() << 1) | 1;
        assert!(u8::try_from(x86_status).is_ok(), "{x86_status}");
    }
}
