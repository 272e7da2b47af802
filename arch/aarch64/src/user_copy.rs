//! The one audited path between the kernel and user memory.
//!
//! Owns every kernel access to a user address. A copy is validated first (the whole range lies
//! in the TTBR0 half, `[0, 2^48)`, without wrapping) and then done byte by byte with the
//! *unprivileged* `ldtrb`/`sttrb`, which the MMU checks with EL0's permissions: the kernel can
//! only read or write what the user could, whatever PSTATE.PAN says. Those two instructions are
//! listed in the exception table, so an unmapped or forbidden user page ends the copy with an
//! error at the first byte that failed instead of a kernel fault. (Without an active user
//! address space every user address faults: TTBR0 walks are off during boot, and TTBR0 holds an
//! empty root afterwards.) `ldtrb`/`sttrb` are unprivileged only while PSTATE.UAO is 0: the
//! kernel must never set UAO. Nothing else in the kernel may dereference a user address: with
//! PAN (`kernel_space` turns it on when the CPU has it) any other access to a user page faults.

use core::arch::global_asm;
use kernel_core::hal::UserAccessError;

/// One past the highest user address: TCR_EL1.T0SZ = 16 gives a 48-bit lower half.
const USER_END: u64 = 1 << 48;

global_asm!(
    r#"
    .section .text.strait_user_copy, "ax"
    // x0 = destination, x1 = source, x2 = length; returns the number of bytes not copied.
    .global strait_copy_from_user
strait_copy_from_user:
    cbz     x2, 2f
1:  ldtrb   w3, [x1]
    strb    w3, [x0], #1
    add     x1, x1, #1
    subs    x2, x2, #1
    b.ne    1b
2:  mov     x0, x2
    ret
    .pushsection .strait_extable, "a"
    .balign 8
    .quad   1b, 2b
    .popsection

    .global strait_copy_to_user
strait_copy_to_user:
    cbz     x2, 2f
    ldrb    w3, [x1], #1
1:  sttrb   w3, [x0]
    add     x0, x0, #1
    subs    x2, x2, #1
    b.eq    2f
    ldrb    w3, [x1], #1
    b       1b
2:  mov     x0, x2
    ret
    .pushsection .strait_extable, "a"
    .balign 8
    .quad   1b, 2b
    .popsection
"#
);

unsafe extern "C" {
    fn strait_copy_from_user(dst: *mut u8, src: u64, len: usize) -> usize;
    fn strait_copy_to_user(dst: u64, src: *const u8, len: usize) -> usize;
}

/// Checks that `[addr, addr + len)` lies entirely in the user half.
fn validate(addr: u64, len: usize) -> Result<(), UserAccessError> {
    let end = addr
        .checked_add(len as u64)
        .ok_or(UserAccessError::NotUserRange)?;
    if end > USER_END {
        return Err(UserAccessError::NotUserRange);
    }
    Ok(())
}

/// Copies `dst.len()` bytes from user address `src` in the current address space.
pub fn copy_from_user(dst: &mut [u8], src: u64) -> Result<(), UserAccessError> {
    validate(src, dst.len())?;
    // SAFETY: `src` is a validated user range read only by the listed unprivileged load (a
    // fault resumes at the fixup); `dst` is a kernel slice borrowed mutably for its length.
    let left = unsafe { strait_copy_from_user(dst.as_mut_ptr(), src, dst.len()) };
    match left {
        0 => Ok(()),
        _ => Err(UserAccessError::Fault {
            addr: src + (dst.len() - left) as u64,
        }),
    }
}

/// Copies `src` to user address `dst` in the current address space.
pub fn copy_to_user(dst: u64, src: &[u8]) -> Result<(), UserAccessError> {
    validate(dst, src.len())?;
    // SAFETY: `dst` is a validated user range written only by the listed unprivileged store (a
    // fault resumes at the fixup); `src` is a kernel slice borrowed for its length.
    let left = unsafe { strait_copy_to_user(dst, src.as_ptr(), src.len()) };
    match left {
        0 => Ok(()),
        _ => Err(UserAccessError::Fault {
            addr: dst + (src.len() - left) as u64,
        }),
    }
}
