//! User mode on AArch64: SVC, the first entry into EL0, user exceptions and the FP/SIMD state of
//! user threads.
//!
//! Owns the decoding of every synchronous exception from EL0 (an `svc #0` is a system call, the
//! rest become `UserFault`s), the first `eret` into EL0, CPACR_EL1.FPEN and the save and restore
//! of q0-q31, FPCR, FPSR and TPIDR_EL0, and EL0's access to the cycle counter (PMCCNTR_EL0, for
//! the benchmarks). Entries from EL0 save a [`TrapFrame`] at the top of the thread's kernel stack
//! (SP_EL1, see `traps.rs`), so the kernel reads and writes user registers in one place. It must
//! never run a handler with IRQs unmasked: the kernel is not preemptible, its handlers are short
//! or block through the scheduler.
//!
//! The kernel itself is built soft-float and never touches FP/SIMD registers, so a user thread's
//! FP state stays live in the registers while the kernel runs and only needs saving when another
//! user thread is switched in.

use crate::traps::{FRAME_SIZE, TrapFrame};
use aarch64_cpu::asm::barrier;
use abi::fault::{FaultKind, access};
use kernel_core::hal::{FpArea, UserFault, UserRegisters};
use spin::Once;

/// ESR_EL1.EC of an `svc` from AArch64 state.
const EC_SVC64: u64 = 0x15;
const EC_UNKNOWN: u64 = 0x00;
const EC_INSTRUCTION_ABORT_LOWER: u64 = 0x20;
const EC_DATA_ABORT_LOWER: u64 = 0x24;
/// ISS.WnR of a data abort: the access was a write.
const ISS_WNR: u64 = 1 << 6;
/// ISS.FnV of an abort: FAR_EL1 is not valid.
const ISS_FNV: u64 = 1 << 10;
/// Layout of the FP area: FPCR and FPSR, TPIDR_EL0, then q0-q31 (within `ldp`/`stp` reach).
const FP_CONTROL_OFFSET: usize = 0;
const TPIDR_OFFSET: usize = 16;
const Q_OFFSET: usize = 32;

static SYSCALL_HANDLER: Once<fn(&mut TrapFrame)> = Once::new();
static FAULT_HANDLER: Once<fn(&mut TrapFrame, UserFault)> = Once::new();

unsafe extern "C" {
    fn strait_return_to_lower() -> !;
}

/// Installs the handlers, enables FP/SIMD at EL0 and EL1 (CPACR_EL1.FPEN = 0b11: no traps) and
/// gives EL0 read access to the cycle counter, which is started.
pub fn init(
    syscall: fn(&mut TrapFrame),
    fault: fn(&mut TrapFrame, UserFault),
) -> Result<(), &'static str> {
    SYSCALL_HANDLER.call_once(|| syscall);
    FAULT_HANDLER.call_once(|| fault);
    // SAFETY: FPEN only stops FP/SIMD instructions from trapping; the kernel is soft-float and
    // uses them only in `save_fp`/`restore_fp`. PMUSERENR_EL0.EN|CR lets EL0 read PMCCNTR_EL0
    // (a counter, no side effects); PMCR_EL0.E and PMCNTENSET_EL0.C start the cycle counter.
    unsafe {
        core::arch::asm!(
            "mrs {t}, cpacr_el1",
            "orr {t}, {t}, #(3 << 20)",
            "msr cpacr_el1, {t}",
            "mov {t}, #0b101",
            "msr pmuserenr_el0, {t}",
            "mrs {t}, pmcr_el0",
            "orr {t}, {t}, #1",
            "msr pmcr_el0, {t}",
            "mov {t}, #(1 << 31)",
            "msr pmcntenset_el0, {t}",
            "isb",
            t = out(reg) _,
            options(nostack)
        )
    };
    Ok(())
}

/// The frame at the top of the kernel stack ending at `top`.
pub fn frame_at(top: u64) -> *mut TrapFrame {
    (top - FRAME_SIZE as u64) as *mut TrapFrame
}

/// Enters EL0 for the first time; see `UserMode::enter_user`.
pub fn enter(top: u64, entry: u64, sp: u64, arg: u64) -> ! {
    let frame = frame_at(top);
    let mut x = [0u64; 31];
    x[0] = arg;
    let initial = TrapFrame {
        x,
        sp,
        elr: entry,
        // EL0t, AArch64, DAIF clear: IRQs are taken while user code runs.
        spsr: 0,
        esr: 0,
        far: 0,
    };
    // `frame` is the top `FRAME_SIZE` bytes of the current thread's kernel stack, reserved for
    // it (the kernel runs below). IRQs are masked before it becomes the stack that
    // `strait_return_to_lower` restores and `eret`s from; after the `eret`, SP_EL1 is `top`
    // again, where the next entry from EL0 saves its frame.
    // SAFETY: the reserved frame slot is mapped, aligned and used by nothing else.
    unsafe { frame.write(initial) };
    // SAFETY: the frame is written and becomes the stack the return path pops; nothing of this
    // Rust frame is used after the branch.
    unsafe {
        core::arch::asm!(
            "msr daifset, #0b1111",
            "mov sp, {frame}",
            "b {ret}",
            frame = in(reg) frame,
            ret = sym strait_return_to_lower,
            options(noreturn)
        )
    }
}

/// A synchronous exception from EL0: a system call, or a fault handed to the kernel.
pub fn lower_sync(frame: &mut TrapFrame) {
    let ec = (frame.esr >> 26) & 0x3f;
    let iss = frame.esr & 0x1ff_ffff;
    if ec == EC_SVC64 {
        if iss & 0xffff != 0 {
            // Only `svc #0` is a system call (abi::regs).
            frame.x[0] = abi::Error::NoSuchSyscall.into_raw() as u64;
            return;
        }
        if let Some(handler) = SYSCALL_HANDLER.get() {
            handler(frame);
        }
        return;
    }
    let far = if iss & ISS_FNV == 0 { frame.far } else { 0 };
    let fault = match ec {
        EC_DATA_ABORT_LOWER | EC_INSTRUCTION_ABORT_LOWER => {
            let status = iss & 0x3f;
            let mut bits = 0;
            if ec == EC_INSTRUCTION_ABORT_LOWER {
                bits |= access::EXECUTE;
            } else if iss & ISS_WNR != 0 {
                bits |= access::WRITE;
            }
            // Permission faults (0b0011xx): a page is there, the access is not allowed.
            if status & 0b11_1100 == 0b00_1100 {
                bits |= access::PRESENT;
            }
            UserFault {
                kind: FaultKind::Page,
                address: far,
                access: bits,
                pc: frame.elr,
                detail: frame.esr,
            }
        }
        EC_UNKNOWN => UserFault {
            kind: FaultKind::UndefinedInstruction,
            address: 0,
            access: 0,
            pc: frame.elr,
            detail: frame.esr,
        },
        _ => UserFault {
            kind: FaultKind::Other,
            address: 0,
            access: 0,
            pc: frame.elr,
            detail: frame.esr,
        },
    };
    match FAULT_HANDLER.get() {
        Some(handler) => handler(frame, fault),
        None => panic!("user exception before user mode was set up: {fault:?}"),
    }
}

/// Zero registers, FPCR 0 (round to nearest, no traps), FPSR 0, TPIDR_EL0 0.
pub fn init_fp(area: &mut FpArea) {
    area.0.fill(0);
}

/// Saves q0-q31, FPCR, FPSR and TPIDR_EL0 into `area`.
pub fn save_fp(area: &mut FpArea) {
    const _: () = assert!(Q_OFFSET + 32 * 16 <= kernel_core::hal::FP_AREA_BYTES);
    let base = area.0.as_mut_ptr();
    // SAFETY: `area` is 16-byte aligned and holds FPCR/FPSR, TPIDR_EL0 and then the 512 bytes of
    // q registers (size checked above); FPEN is set by `init`, so nothing traps. Only `area` is
    // written.
    unsafe {
        core::arch::asm!(
            ".arch_extension fp",
            ".arch_extension simd",
            "stp q0, q1, [{b}, #32]",
            "stp q2, q3, [{b}, #64]",
            "stp q4, q5, [{b}, #96]",
            "stp q6, q7, [{b}, #128]",
            "stp q8, q9, [{b}, #160]",
            "stp q10, q11, [{b}, #192]",
            "stp q12, q13, [{b}, #224]",
            "stp q14, q15, [{b}, #256]",
            "stp q16, q17, [{b}, #288]",
            "stp q18, q19, [{b}, #320]",
            "stp q20, q21, [{b}, #352]",
            "stp q22, q23, [{b}, #384]",
            "stp q24, q25, [{b}, #416]",
            "stp q26, q27, [{b}, #448]",
            "stp q28, q29, [{b}, #480]",
            "stp q30, q31, [{b}, #512]",
            "mrs {t}, fpcr",
            "mrs {u}, fpsr",
            "stp {t}, {u}, [{b}, #{ctl}]",
            "mrs {t}, tpidr_el0",
            "str {t}, [{b}, #{tp}]",
            b = in(reg) base,
            t = out(reg) _,
            u = out(reg) _,
            ctl = const FP_CONTROL_OFFSET,
            tp = const TPIDR_OFFSET,
            options(nostack)
        )
    };
}

/// Loads q0-q31, FPCR, FPSR and TPIDR_EL0 from `area`.
pub fn restore_fp(area: &FpArea) {
    let base = area.0.as_ptr();
    // SAFETY: as in `save_fp`; `area` was written by `save_fp` or `init_fp`, and the registers
    // loaded belong to user mode (the kernel never uses them).
    unsafe {
        core::arch::asm!(
            ".arch_extension fp",
            ".arch_extension simd",
            "ldp q0, q1, [{b}, #32]",
            "ldp q2, q3, [{b}, #64]",
            "ldp q4, q5, [{b}, #96]",
            "ldp q6, q7, [{b}, #128]",
            "ldp q8, q9, [{b}, #160]",
            "ldp q10, q11, [{b}, #192]",
            "ldp q12, q13, [{b}, #224]",
            "ldp q14, q15, [{b}, #256]",
            "ldp q16, q17, [{b}, #288]",
            "ldp q18, q19, [{b}, #320]",
            "ldp q20, q21, [{b}, #352]",
            "ldp q22, q23, [{b}, #384]",
            "ldp q24, q25, [{b}, #416]",
            "ldp q26, q27, [{b}, #448]",
            "ldp q28, q29, [{b}, #480]",
            "ldp q30, q31, [{b}, #512]",
            "ldp {t}, {u}, [{b}, #{ctl}]",
            "msr fpcr, {t}",
            "msr fpsr, {u}",
            "ldr {t}, [{b}, #{tp}]",
            "msr tpidr_el0, {t}",
            b = in(reg) base,
            t = out(reg) _,
            u = out(reg) _,
            ctl = const FP_CONTROL_OFFSET,
            tp = const TPIDR_OFFSET,
            options(nostack)
        )
    };
    barrier::isb(barrier::SY);
}

impl UserRegisters for TrapFrame {
    fn syscall_number(&self) -> u64 {
        self.x[8]
    }

    fn slot(&self, index: usize) -> u64 {
        match index {
            0..=7 => self.x[index],
            8 => self.x[9],
            _ => 0,
        }
    }

    fn set_slot(&mut self, index: usize, value: u64) {
        match index {
            0..=7 => self.x[index] = value,
            8 => self.x[9] = value,
            _ => {}
        }
    }

    fn set_result(&mut self, value: u64) {
        self.x[0] = value;
    }

    fn pc(&self) -> u64 {
        self.elr
    }

    fn user_sp(&self) -> u64 {
        self.sp
    }
}
