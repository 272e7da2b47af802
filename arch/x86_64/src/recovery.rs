//! Fault recovery: kernel instructions that are allowed to fault, and where they resume.
//!
//! Owns the exception table (`.strait_extable`: pairs of faulting-instruction and fixup
//! addresses, emitted next to the instructions in assembly) and the memory probes built on it.
//! The trap handler asks [`recover`] before it declares a fault fatal. Only instructions listed
//! here may fault without killing the kernel; every other kernel fault stays fatal, which is what
//! makes a stray access loud.

use core::sync::atomic::{AtomicU64, Ordering};
use kernel_core::hal::{Access, ProbeFault};

core::arch::global_asm!(
    r#"
    .section .text.recovery, "ax"
    .global x86_64_probe_read
x86_64_probe_read:
    xor %eax, %eax
1:  movb (%rdi), %cl
    ret
    .pushsection .strait_extable, "a"
    .quad 1b, x86_64_probe_fixup
    .popsection

    .global x86_64_probe_write
x86_64_probe_write:
    xor %eax, %eax
1:  movb (%rdi), %cl
2:  movb %cl, (%rdi)
    ret
    .pushsection .strait_extable, "a"
    .quad 1b, x86_64_probe_fixup
    .quad 2b, x86_64_probe_fixup
    .popsection

    .global x86_64_probe_call
x86_64_probe_call:
    xor %eax, %eax
    call *%rdi
    ret

x86_64_probe_fixup:
    mov $1, %eax
    ret
    "#,
    options(att_syntax)
);

unsafe extern "C" {
    fn x86_64_probe_read(addr: u64) -> u64;
    fn x86_64_probe_write(addr: u64) -> u64;
    fn x86_64_probe_call(addr: u64) -> u64;
    static __extable_start: [u64; 2];
    static __extable_end: [u64; 2];
}

/// Target of the execute probe in flight (0 when none): an instruction fetch that faults
/// exactly there is the probe's fault, recovered by returning to the caller.
static EXECUTE_PROBE_TARGET: AtomicU64 = AtomicU64::new(0);

/// The exception table between the linker symbols.
fn table() -> &'static [[u64; 2]] {
    let start = &raw const __extable_start;
    let end = &raw const __extable_end;
    // SAFETY: the linker script places `.strait_extable` (written only by the `.quad` pairs
    // above, 16 bytes each, 8-byte aligned) between the two symbols; it is read-only data that
    // lives as long as the kernel.
    unsafe {
        let len = (end as usize - start as usize) / core::mem::size_of::<[u64; 2]>();
        core::slice::from_raw_parts(start.cast::<[u64; 2]>(), len)
    }
}

/// Where a recovered fault resumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// Continue at this instruction with the same stack.
    At(u64),
    /// Return to the caller of the faulting call: pop the return address, result 1 in rax.
    ReturnFromCall,
}

/// The recovery for a fault at `pc`, if the kernel expected one there.
pub fn recover(pc: u64) -> Option<Resume> {
    if pc != 0 && EXECUTE_PROBE_TARGET.load(Ordering::Acquire) == pc {
        return Some(Resume::ReturnFromCall);
    }
    table()
        .iter()
        .find(|entry| entry[0] == pc)
        .map(|entry| Resume::At(entry[1]))
}

/// Performs `access` at `addr` under recovery (see `Platform::probe`).
pub fn probe(access: Access, addr: u64) -> Result<(), ProbeFault> {
    let faulted = match access {
        // SAFETY: the probe's only memory access is listed in the exception table, so a fault
        // resumes at the fixup; a successful write stores back the byte just read.
        Access::Read => unsafe { x86_64_probe_read(addr) },
        // SAFETY: as above.
        Access::Write => unsafe { x86_64_probe_write(addr) },
        Access::Execute => {
            EXECUTE_PROBE_TARGET.store(addr, Ordering::Release);
            // SAFETY: the caller guarantees `addr` holds a `ret` if it is executable at all; an
            // instruction fetch fault there is recovered by `recover` as a return to here.
            let result = unsafe { x86_64_probe_call(addr) };
            EXECUTE_PROBE_TARGET.store(0, Ordering::Release);
            result
        }
    };
    if faulted == 0 {
        Ok(())
    } else {
        Err(ProbeFault)
    }
}
