//! Exception vectors and the trap handler.
//!
//! Owns VBAR_EL1's table, the trap frame, the switch to the exception stack (`stacks.rs`) and
//! what happens on every exception: a `brk` from the kernel is skipped and returns (the
//! `init_traps` self-test); a fault of an instruction listed in the exception table resumes at
//! its fixup (`extable.rs`); everything else is reported in the `kernel_core::trap_report` format
//! with a backtrace, and the boot ends with `ExitStatus::Crashed`. A kernel data abort on the
//! guard page of a kernel stack (a `kstack` slot, or the boot stack) is reported as that stack's
//! overflow, naming its owner. It must never try to recover from a fault it does not understand.
//!
//! Stacks: the kernel runs at EL1h on SP_EL1 (the current thread's kernel stack), and keeps
//! SP_EL0 pointing at the top of a dedicated exception stack (EL0's stack pointer, once user mode
//! exists, is saved in the trap frame on entry and reloaded on return). Two kinds of entry from
//! the kernel use them differently:
//!
//! - **Synchronous exceptions, FIQ and SError** switch to the exception stack with
//!   `msr spsel, #0` before touching memory, so a fault on a bad or overflowed kernel stack (the
//!   boot stack or any `kstack` stack, including an overflow by an IRQ frame) is still reported.
//!   The handler then runs at EL1t, which makes a fault *inside* the handler land in the
//!   "current EL with SP0" vectors: those print one line without using any stack and end the
//!   boot, so a broken report can never recurse. These handlers never switch threads and never
//!   unmask IRQs (one taken at EL1t would be reported as a nested fault): there is one exception
//!   stack per CPU, and a second user of it would overwrite the first.
//! - **IRQs** stay on SP_EL1 and push their frame on the interrupted thread's own kernel stack,
//!   then run the dispatcher (`timer::on_interrupt`) at EL1h with IRQs masked. The tick handler
//!   may switch threads from there: the interrupted thread's IRQ frame and the handler's frames
//!   stay on *its* stack, untouched while other threads run on theirs (each IRQ they take lands
//!   on their own stack), and when the scheduler switches back, the handler returns, the frame
//!   is restored and `eret` resumes the thread. ELR_EL1 and SPSR_EL1 are reloaded from the frame
//!   just before `eret`, since other threads' IRQs overwrite the registers meanwhile. The frame
//!   holds a frame record (interrupted x29, interrupted pc), so a backtrace from inside the
//!   handler continues into the interrupted code. No nesting: IRQs stay masked until `eret`.
//!
//! From a lower EL every exception (IRQs included) saves its frame on SP_EL1, which is then the
//! thread's kernel stack, so a system call or an IRQ from user mode may switch threads too.

use crate::serial::{self, UART_VIRT};
use crate::stacks::{self, BootStack};
use crate::{exit, extable, kstack, timer};
use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{VBAR_EL1, Writeable};
use core::arch::{asm, global_asm};
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use kernel_core::hal::{BOOT_STACK_OWNER, ExitStatus};
use kernel_core::{backtrace, trap_report};

/// Everything the vector code saves; `repr(C)` because the assembly fills it by offset.
#[repr(C)]
#[derive(Debug)]
pub struct TrapFrame {
    /// x0..x30 of the interrupted code.
    pub x: [u64; 31],
    /// The interrupted stack pointer (SP_EL1 for the kernel, SP_EL0 for user mode).
    pub sp: u64,
    /// ELR_EL1: where the exception was taken (and where `eret` returns).
    pub elr: u64,
    /// SPSR_EL1: the interrupted PSTATE.
    pub spsr: u64,
    /// ESR_EL1: the exception syndrome.
    pub esr: u64,
    /// FAR_EL1: the faulting address (meaningful for aborts and alignment faults).
    pub far: u64,
}

/// What the kernel IRQ vector saves: the same layout as [`TrapFrame`] up to SPSR, then a frame
/// record instead of ESR and FAR (which mean nothing for an interrupt).
#[repr(C)]
#[derive(Debug)]
pub struct IrqFrame {
    /// x0..x30 of the interrupted code.
    pub x: [u64; 31],
    /// The interrupted SP_EL1.
    pub sp: u64,
    /// ELR_EL1: the interrupted pc (where `eret` returns).
    pub elr: u64,
    /// SPSR_EL1: the interrupted PSTATE.
    pub spsr: u64,
    /// A frame record (interrupted x29, interrupted pc) that x29 points at during the handler.
    pub record: [u64; 2],
}

/// Size of a [`TrapFrame`].
pub(crate) const FRAME_SIZE: usize = size_of::<TrapFrame>();
const _: () = assert!(FRAME_SIZE == 36 * 8 && FRAME_SIZE.is_multiple_of(16));
const _: () = assert!(size_of::<IrqFrame>() == FRAME_SIZE);

// Vector slots 0..16 in table order: four sources (current EL with SP_EL0, current EL with
// SP_EL1, lower EL AArch64, lower EL AArch32), each with four kinds in this order:
const KIND_IRQ: u64 = 1;
const KIND_FIQ: u64 = 2;
const KIND_SERROR: u64 = 3;
/// Current EL with SP_EL1, synchronous: a kernel fault, `brk`, undefined instruction.
const SLOT_KERNEL_SYNC: u64 = 4;
/// Lower EL (AArch64), synchronous: a system call or a user exception.
const SLOT_LOWER_SYNC: u64 = 8;
/// Lower EL (AArch64), IRQ: an interrupt while user code ran.
const SLOT_LOWER_IRQ: u64 = 9;

// Exception classes (ESR_EL1.EC) that have a name in the report.
const EC_UNKNOWN: u64 = 0x00;
const EC_INSTRUCTION_ABORT_LOWER: u64 = 0x20;
const EC_INSTRUCTION_ABORT: u64 = 0x21;
const EC_PC_ALIGNMENT: u64 = 0x22;
const EC_DATA_ABORT_LOWER: u64 = 0x24;
const EC_DATA_ABORT: u64 = 0x25;
const EC_SP_ALIGNMENT: u64 = 0x26;
const EC_BRK: u64 = 0x3c;
/// ISS.FnV of an abort: FAR_EL1 is not valid.
const ISS_FNV: u64 = 1 << 10;

global_asm!(
    r#"
    // One vector entry: 32 instructions at a 128-byte boundary.
    // Kernel (current EL, SP_EL1): switch to the exception stack first.
    .macro STRAIT_VECTOR_KERNEL slot
    .balign 0x80
    msr     spsel, #0
    sub     sp, sp, #{frame}
    stp     x0, x1, [sp, #0]
    mov     x0, #\slot
    b       strait_trap_from_kernel
    .endm

    // Kernel IRQ: stay on SP_EL1, the interrupted thread's stack (see the module docs).
    .macro STRAIT_VECTOR_KERNEL_IRQ
    .balign 0x80
    sub     sp, sp, #{frame}
    stp     x0, x1, [sp, #0]
    b       strait_irq_from_kernel
    .endm

    // Lower EL: SP_EL1 is the thread's kernel stack, known good.
    .macro STRAIT_VECTOR_LOWER slot
    .balign 0x80
    sub     sp, sp, #{frame}
    stp     x0, x1, [sp, #0]
    mov     x0, #\slot
    b       strait_trap_from_lower
    .endm

    .macro STRAIT_SAVE_X2_X30
    stp     x2, x3, [sp, #16]
    stp     x4, x5, [sp, #32]
    stp     x6, x7, [sp, #48]
    stp     x8, x9, [sp, #64]
    stp     x10, x11, [sp, #80]
    stp     x12, x13, [sp, #96]
    stp     x14, x15, [sp, #112]
    stp     x16, x17, [sp, #128]
    stp     x18, x19, [sp, #144]
    stp     x20, x21, [sp, #160]
    stp     x22, x23, [sp, #176]
    stp     x24, x25, [sp, #192]
    stp     x26, x27, [sp, #208]
    stp     x28, x29, [sp, #224]
    str     x30, [sp, #240]
    .endm

    // x0 = slot. Saves ELR/SPSR/ESR/FAR, calls the Rust handler, restores ELR/SPSR.
    .macro STRAIT_CALL_HANDLER
    mrs     x1, elr_el1
    mrs     x2, spsr_el1
    stp     x1, x2, [sp, #256]
    mrs     x1, esr_el1
    mrs     x2, far_el1
    stp     x1, x2, [sp, #272]
    mov     x1, x0
    mov     x0, sp
    bl      {handler}
    ldp     x1, x2, [sp, #256]
    msr     elr_el1, x1
    msr     spsr_el1, x2
    .endm

    .macro STRAIT_RESTORE_X0_X30
    ldp     x0, x1, [sp, #0]
    ldp     x2, x3, [sp, #16]
    ldp     x4, x5, [sp, #32]
    ldp     x6, x7, [sp, #48]
    ldp     x8, x9, [sp, #64]
    ldp     x10, x11, [sp, #80]
    ldp     x12, x13, [sp, #96]
    ldp     x14, x15, [sp, #112]
    ldp     x16, x17, [sp, #128]
    ldp     x18, x19, [sp, #144]
    ldp     x20, x21, [sp, #160]
    ldp     x22, x23, [sp, #176]
    ldp     x24, x25, [sp, #192]
    ldp     x26, x27, [sp, #208]
    ldp     x28, x29, [sp, #224]
    ldr     x30, [sp, #240]
    .endm

    .section .text.strait_vectors, "ax"
    .balign 2048
    .global strait_vectors
strait_vectors:
    // Current EL with SP_EL0: only the trap handler runs like that, so this is a fault while
    // handling a trap.
    .balign 0x80
    b       strait_nested_fault
    .balign 0x80
    b       strait_nested_fault
    .balign 0x80
    b       strait_nested_fault
    .balign 0x80
    b       strait_nested_fault
    STRAIT_VECTOR_KERNEL 4
    STRAIT_VECTOR_KERNEL_IRQ
    STRAIT_VECTOR_KERNEL 6
    STRAIT_VECTOR_KERNEL 7
    STRAIT_VECTOR_LOWER 8
    STRAIT_VECTOR_LOWER 9
    STRAIT_VECTOR_LOWER 10
    STRAIT_VECTOR_LOWER 11
    STRAIT_VECTOR_LOWER 12
    STRAIT_VECTOR_LOWER 13
    STRAIT_VECTOR_LOWER 14
    STRAIT_VECTOR_LOWER 15

strait_trap_from_kernel:
    STRAIT_SAVE_X2_X30
    msr     spsel, #1                   // read the interrupted SP_EL1 ...
    mov     x1, sp
    msr     spsel, #0                   // ... and go back to the exception stack
    str     x1, [sp, #248]
    STRAIT_CALL_HANDLER
    STRAIT_RESTORE_X0_X30
    add     sp, sp, #{frame}            // SP_EL0 is the exception stack top again
    eret

strait_irq_from_kernel:
    STRAIT_SAVE_X2_X30
    add     x0, sp, #{frame}            // the interrupted SP_EL1
    mrs     x1, elr_el1
    mrs     x2, spsr_el1
    str     x0, [sp, #248]
    stp     x1, x2, [sp, #256]
    stp     x29, x1, [sp, #272]         // frame record: (interrupted x29, interrupted pc)
    add     x29, sp, #272
    mov     x0, sp
    bl      {irq_handler}               // may switch threads and return much later
    ldp     x1, x2, [sp, #256]
    msr     elr_el1, x1
    msr     spsr_el1, x2
    STRAIT_RESTORE_X0_X30
    add     sp, sp, #{frame}
    eret

strait_trap_from_lower:
    STRAIT_SAVE_X2_X30
    mrs     x1, sp_el0                  // EL0's stack pointer goes into the frame, and SP_EL0
    str     x1, [sp, #248]              // becomes the exception stack while in the kernel
    ldr     x1, =strait_exception_stack_top
    msr     sp_el0, x1
    STRAIT_CALL_HANDLER
    // sp = a TrapFrame of a lower EL: restore it and return there (also the first entry into
    // user mode, `user::enter`).
    .global strait_return_to_lower
strait_return_to_lower:
    ldp     x1, x2, [sp, #256]
    msr     elr_el1, x1
    msr     spsr_el1, x2
    ldr     x1, [sp, #248]
    msr     sp_el0, x1
    STRAIT_RESTORE_X0_X30
    add     sp, sp, #{frame}
    eret

    // A fault while the handler ran (at EL1t). SP_EL1 may be the bad stack that caused the first
    // trap, so no stack is used at all; registers are clobbered freely since the boot ends here.
strait_nested_fault:
    // Exception: the semihosting `hlt` of an exit from inside the handler, on a QEMU without
    // -semihosting. Skip it so `exit` can fall back; the call clobbers x16/x17 per the ABI.
    mrs     x16, elr_el1
    adrp    x17, strait_semihosting_hlt
    add     x17, x17, :lo12:strait_semihosting_hlt
    cmp     x16, x17
    b.ne    1f
    mrs     x17, esr_el1
    lsr     x17, x17, #26
    cbnz    x17, 1f
    add     x16, x16, #4
    msr     elr_el1, x16
    eret
1:  adrp    x1, {uart}
    ldr     x1, [x1, :lo12:{uart}]
    adr     x0, .Lmsg_nested
    bl      .Lputs
    mrs     x2, elr_el1
    bl      .Lputhex
    adr     x0, .Lmsg_esr
    bl      .Lputs
    mrs     x2, esr_el1
    bl      .Lputhex
    adr     x0, .Lmsg_far
    bl      .Lputs
    mrs     x2, far_el1
    bl      .Lputhex
    adr     x0, .Lmsg_end
    bl      .Lputs
    // Exit; if semihosting is missing, its hlt lands in the dead vectors and the CPU sleeps.
    adrp    x0, strait_dead_vectors
    add     x0, x0, :lo12:strait_dead_vectors
    msr     vbar_el1, x0
    isb
    mov     w0, #0x20                   // SYS_EXIT_EXTENDED
    adr     x1, .Lnested_exit
    hlt     #0xf000
2:  wfi
    b       2b

    // x0 = NUL-terminated string, x1 = UART (0: print nothing). Clobbers x0, x3, x4.
.Lputs:
    cbz     x1, 2f
1:  ldrb    w3, [x0], #1
    cbz     w3, 2f
3:  ldr     w4, [x1, #0x18]             // UARTFR
    tbnz    w4, #5, 3b                  // TXFF
    str     w3, [x1]
    b       1b
2:  ret

    // x2 = value printed as 0x + 16 hex digits, x1 = UART. Clobbers x3, x4, x5.
.Lputhex:
    cbz     x1, 2f
    mov     x5, #(('x' << 8) | '0')
3:  ldr     w4, [x1, #0x18]
    tbnz    w4, #5, 3b
    strb    w5, [x1]
    lsr     x5, x5, #8
    cbnz    x5, 3b
    mov     x5, #60
1:  lsr     x3, x2, x5
    and     x3, x3, #0xf
    cmp     x3, #10
    add     x4, x3, #'0'
    add     x3, x3, #('a' - 10)
    csel    x3, x4, x3, lo
4:  ldr     w4, [x1, #0x18]
    tbnz    w4, #5, 4b
    strb    w3, [x1]
    subs    x5, x5, #4
    b.pl    1b
2:  ret

    .balign 8
.Lnested_exit:
    .quad   0x20026                     // ADP_Stopped_ApplicationExit
    .quad   2                           // ExitStatus::Crashed
.Lmsg_nested:
    .asciz  "\r\n[trap] fault while handling a trap, at pc="
.Lmsg_esr:
    .asciz  " esr="
.Lmsg_far:
    .asciz  " far="
.Lmsg_end:
    .asciz  "; stopping\r\n"

    // Every entry sleeps forever: installed only when the boot is over and an exit may trap.
    .balign 2048
    .global strait_dead_vectors
strait_dead_vectors:
    .rept 16
    .balign 0x80
1:  wfi
    b       1b
    .endr
"#,
    frame = const FRAME_SIZE,
    handler = sym handle_trap,
    irq_handler = sym handle_kernel_irq,
    uart = sym UART_VIRT,
);

unsafe extern "C" {
    /// The vector table above (2 KiB aligned).
    static strait_vectors: u8;
}

/// Set by the handler when the `init_traps` breakpoint comes back.
static BRK_SEEN: AtomicBool = AtomicBool::new(false);
/// How many fatal reports have started; a second one means the first report itself faulted.
static FATAL_REPORTS: AtomicU32 = AtomicU32::new(0);

/// Installs the vector table and proves it with a `brk` round trip. The entry code already put
/// the same table in VBAR_EL1 (so early faults are reported too); installing it again keeps
/// this the one place that decides the final vectors.
pub fn init() -> Result<(), &'static str> {
    let vectors = &raw const strait_vectors as u64;
    VBAR_EL1.set(vectors);
    barrier::isb(barrier::SY);
    BRK_SEEN.store(false, Ordering::SeqCst);
    // SAFETY: the handler just installed skips a kernel `brk` by advancing ELR_EL1 by 4 and
    // restores every register, so execution continues at the next instruction with all state
    // intact (the asm is not marked `nomem`, so the compiler reloads memory afterwards).
    unsafe { asm!("brk #0x5354", options(nostack)) };
    if BRK_SEEN.load(Ordering::SeqCst) {
        Ok(())
    } else {
        Err("the brk self-test returned without passing through the trap handler")
    }
}

/// An IRQ taken from the kernel. `frame` is an [`IrqFrame`] on the interrupted thread's stack.
extern "C" fn handle_kernel_irq(_frame: &mut IrqFrame) {
    timer::on_interrupt();
}

extern "C" fn handle_trap(frame: &mut TrapFrame, slot: u64) {
    if slot == SLOT_LOWER_IRQ {
        // The frame lies on the thread's kernel stack (SP_EL1): switching threads is fine.
        timer::on_interrupt();
        return;
    }
    if slot == SLOT_LOWER_SYNC {
        // A system call or an exception in user mode: the process's business.
        crate::user::lower_sync(frame);
        return;
    }
    let ec = exception_class(frame.esr);
    if slot == SLOT_KERNEL_SYNC {
        let recoverable = extable::recoverable_fault_status(frame.esr);
        let resume = match ec {
            EC_BRK => {
                BRK_SEEN.store(true, Ordering::SeqCst);
                Some(frame.elr + 4)
            }
            // QEMU without -semihosting: `exit` falls back when the call comes back.
            EC_UNKNOWN if frame.elr == exit::semihosting_trap_site() => Some(frame.elr + 4),
            EC_DATA_ABORT if recoverable => extable::fixup_for(frame.elr),
            EC_INSTRUCTION_ABORT if recoverable => extable::fixup_for_call(frame.x[30]),
            _ => None,
        };
        if let Some(pc) = resume {
            frame.elr = pc;
            return;
        }
    }
    fatal(frame, slot)
}

fn exception_class(esr: u64) -> u64 {
    (esr >> 26) & 0x3f
}

/// The report's name for an exception, or `None` for a synchronous class without one.
fn kind_name(slot: u64, ec: u64) -> Option<&'static str> {
    match slot % 4 {
        KIND_IRQ => return Some("unexpected irq"),
        KIND_FIQ => return Some("unexpected fiq"),
        KIND_SERROR => return Some("serror"),
        _ => {}
    }
    match ec {
        EC_UNKNOWN => Some("undefined instruction"),
        EC_DATA_ABORT => Some("data abort"),
        EC_DATA_ABORT_LOWER => Some("data abort from EL0"),
        EC_INSTRUCTION_ABORT => Some("instruction abort"),
        EC_INSTRUCTION_ABORT_LOWER => Some("instruction abort from EL0"),
        EC_SP_ALIGNMENT => Some("sp alignment fault"),
        EC_PC_ALIGNMENT => Some("pc alignment fault"),
        _ => None,
    }
}

/// Whether a synchronous exception is an abort, whose FAR_EL1 is the faulting address.
fn is_abort(slot: u64, ec: u64) -> bool {
    slot.is_multiple_of(4)
        && matches!(
            ec,
            EC_DATA_ABORT | EC_DATA_ABORT_LOWER | EC_INSTRUCTION_ABORT | EC_INSTRUCTION_ABORT_LOWER
        )
}

/// `esr=0x.. ec=0x.. iss=0x.. far_valid=..`, and for an abort `fsc=0x.. (STATUS)`: which
/// translation or permission check failed, at which level (a scenario can then tell a
/// permission fault from a missing mapping).
struct Syndrome {
    esr: u64,
    far_valid: bool,
    abort: bool,
}

impl fmt::Display for Syndrome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "esr={:#x} ec={:#x} iss={:#x} far_valid={}",
            self.esr,
            exception_class(self.esr),
            self.esr & 0x1ff_ffff,
            self.far_valid
        )?;
        if self.abort {
            let fsc = self.esr & 0x3f;
            write!(f, " fsc={fsc:#x} (")?;
            write_fault_status(f, fsc)?;
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// The meaning of an abort's fault status code (ESR_EL1.ISS.DFSC/IFSC, bits 0..6; Arm ARM
/// D17.2.37, the 4 KiB-granule, non-LPA2 encodings).
fn write_fault_status(f: &mut dyn Write, fsc: u64) -> fmt::Result {
    let level = fsc & 0b11;
    let with_level = |f: &mut dyn Write, what: &str| write!(f, "{what}, level {level}");
    match fsc {
        0x00..=0x03 => with_level(f, "address size fault"),
        0x04..=0x07 => with_level(f, "translation fault"),
        0x08..=0x0b => with_level(f, "access flag fault"),
        0x0c..=0x0f => with_level(f, "permission fault"),
        0x10 => f.write_str("synchronous external abort"),
        0x11 => f.write_str("tag check fault"),
        0x14..=0x17 => with_level(f, "external abort on a table walk"),
        0x18 => f.write_str("parity or ECC error"),
        0x21 => f.write_str("alignment fault"),
        0x30 => f.write_str("TLB conflict abort"),
        0x31 => f.write_str("unsupported atomic update"),
        _ => f.write_str("other fault status"),
    }
}

struct Console;

impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        serial::write(s.as_bytes());
        Ok(())
    }
}

/// Reports an exception the kernel cannot handle and ends the boot.
fn fatal(frame: &TrapFrame, slot: u64) -> ! {
    match FATAL_REPORTS.fetch_add(1, Ordering::SeqCst) {
        0 => {}
        1 => {
            serial::write(b"\n[trap] another trap while reporting a trap; stopping\n");
            exit::exit(ExitStatus::Crashed)
        }
        _ => exit::halt_forever(),
    }
    let ec = exception_class(frame.esr);
    let far_valid = is_abort(slot, ec) && frame.esr & ISS_FNV == 0;
    let mut kind_text = KindText::default();
    let kind = match kind_name(slot, ec) {
        Some(name) => name,
        None => {
            let _ = write!(kind_text, "exception class {ec:#x}");
            kind_text.as_str()
        }
    };
    let mut out = Console;
    let _ = out.write_str("\n");
    let report = trap_report::TrapReport {
        kind,
        pc: frame.elr,
        fault_address: far_valid.then_some(frame.far),
        detail: &Syndrome {
            esr: frame.esr,
            far_valid,
            abort: is_abort(slot, ec),
        },
    };
    let overflow = (ec == EC_DATA_ABORT)
        .then_some(report.fault_address)
        .flatten()
        .and_then(overflowed_stack_owner);
    if let Some(owner) = overflow {
        let _ = trap_report::write_stack_overflow(&mut out, owner, frame.elr, frame.far);
    } else {
        let _ = trap_report::write_trap(&mut out, &report);
        if let Some(stack) = report.fault_address.and_then(stacks::guard_page_of) {
            let _ = writeln!(
                out,
                "[trap] the address is the {}'s guard page: stack overflow",
                stack.name()
            );
        }
    }
    backtrace::walk(
        frame.x[29],
        crate::read_stack_word,
        |depth, return_address| {
            let _ = trap_report::write_frame(&mut out, depth, return_address);
        },
    );
    let _ = trap_report::write_backtrace_end(&mut out);
    exit::exit(ExitStatus::Crashed)
}

/// Who ran on the kernel stack whose guard page holds `addr`: the owner of a claimed `kstack`
/// slot, or the boot CPU for the boot stack. (The exception stack's guard is hit only while a
/// trap is handled, which the nested-fault path reports.)
fn overflowed_stack_owner(addr: u64) -> Option<u64> {
    kstack::guard_owner(addr).or_else(|| {
        (stacks::guard_page_of(addr) == Some(BootStack::Boot)).then_some(BOOT_STACK_OWNER)
    })
}

/// A small fixed buffer for the `exception class 0x..` kind (no allocation in a trap).
#[derive(Default)]
struct KindText {
    bytes: [u8; 32],
    len: usize,
}

impl KindText {
    fn as_str(&self) -> &str {
        core::str::from_utf8(&self.bytes[..self.len]).unwrap_or("exception")
    }
}

impl Write for KindText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let slot = self.bytes.get_mut(self.len..end).ok_or(fmt::Error)?;
        slot.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}
