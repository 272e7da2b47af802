//! The exception table: the few kernel instructions that are allowed to fault.
//!
//! Owns the lookup the trap handler does before declaring a kernel fault fatal. Assembly lists
//! an instruction that may fault on purpose (a probe, a user copy) with a pair of addresses in
//! the `.strait_extable` section, `(instruction, fixup)`; when exactly that instruction takes a
//! translation, permission or access-flag fault, the handler resumes at `fixup` instead. For a
//! listed `blr` the fault is an instruction abort at the branch *target*, so the handler looks
//! up the branch from the link register. This module must never widen that rule: any other
//! fault, or a listed instruction faulting for another reason, stays fatal.

/// One `(instruction, fixup)` entry, as the assembly emits it with `.quad`.
#[repr(C)]
struct Entry {
    instruction: u64,
    fixup: u64,
}

unsafe extern "C" {
    static __extable_start: Entry;
    static __extable_end: Entry;
}

fn entries() -> &'static [Entry] {
    let start = &raw const __extable_start;
    let end = &raw const __extable_end;
    let count = (end as usize - start as usize) / size_of::<Entry>();
    // SAFETY: the linker script places every `.strait_extable` input section, 8-byte aligned
    // and made only of 16-byte entries, between these two symbols in read-only data.
    unsafe { core::slice::from_raw_parts(start, count) }
}

/// Where to resume when the listed instruction at `pc` faults, if it is listed.
pub fn fixup_for(pc: u64) -> Option<u64> {
    entries()
        .iter()
        .find(|entry| entry.instruction == pc)
        .map(|entry| entry.fixup)
}

/// Where to resume when the instruction fetch at the target of a listed `blr` faults: `lr` is
/// the link register at the fault, so the branch is at `lr - 4`, and it must really be a `blr`.
pub fn fixup_for_call(lr: u64) -> Option<u64> {
    const BLR_MASK: u32 = 0xffff_fc1f;
    const BLR: u32 = 0xd63f_0000;
    let branch = lr.checked_sub(4)?;
    let fixup = fixup_for(branch)?;
    // SAFETY: `branch` is a listed instruction address, inside the kernel's text, which is
    // mapped readable; the word is 4-byte aligned like every A64 instruction.
    let instruction = unsafe { core::ptr::read_volatile(branch as *const u32) };
    (instruction & BLR_MASK == BLR).then_some(fixup)
}

/// Whether an abort's fault status code (ISS bits 5:0) is one a listed access may recover from:
/// address size, translation, access flag or permission fault, at any level.
pub fn recoverable_fault_status(iss: u64) -> bool {
    let status = iss & 0x3f;
    matches!(status >> 2, 0b0000..=0b0011)
}
