//! The one audited path between the kernel and user memory.
//!
//! Owns every kernel access to a user address. A copy is validated first (the whole range lies
//! in the user half, no wrap-around) and then done by a single `rep movsb` that is listed in the
//! exception table, so an unmapped or read-only user page ends the copy with an error instead of
//! a kernel fault. With SMAP on, the copy opens user access with `stac` for exactly that
//! instruction; any other kernel access to user memory faults loudly. Nothing else in the kernel
//! may dereference a user address.

use crate::cpu;
use arch_paging::X86_64Format;
use kernel_core::hal::UserAccessError;
use kernel_core::paging::PageTableFormat;

core::arch::global_asm!(
    r#"
    .section .text.user_copy, "ax"
    /* rdi = destination, rsi = source, rdx = length; returns the bytes left uncopied. */
    .global x86_64_copy_user_smap
x86_64_copy_user_smap:
    mov %rdx, %rcx
    stac
1:  rep movsb
    clac
    mov %rcx, %rax
    ret
2:  clac
    mov %rcx, %rax
    ret
    .pushsection .strait_extable, "a"
    .quad 1b, 2b
    .popsection

    .global x86_64_copy_user_plain
x86_64_copy_user_plain:
    mov %rdx, %rcx
1:  rep movsb
    mov %rcx, %rax
    ret
    .pushsection .strait_extable, "a"
    .quad 1b, 2f
    .popsection
2:  mov %rcx, %rax
    ret
    "#,
    options(att_syntax)
);

unsafe extern "C" {
    fn x86_64_copy_user_smap(dst: *mut u8, src: *const u8, len: usize) -> usize;
    fn x86_64_copy_user_plain(dst: *mut u8, src: *const u8, len: usize) -> usize;
}

/// Checks that `[addr, addr + len)` lies entirely in the user half.
fn validate(addr: u64, len: usize) -> Result<(), UserAccessError> {
    let end = addr
        .checked_add(len as u64)
        .ok_or(UserAccessError::NotUserRange)?;
    if end > X86_64Format::USER_END {
        return Err(UserAccessError::NotUserRange);
    }
    Ok(())
}

fn copy(dst: *mut u8, src: *const u8, len: usize) -> usize {
    if cpu::features().smap {
        // SAFETY: one side is a validated user range, accessed only by the listed `rep movsb`
        // (faults resume at the fixup); the other is a kernel slice the caller borrowed with
        // the right mutability and length.
        unsafe { x86_64_copy_user_smap(dst, src, len) }
    } else {
        // SAFETY: as above; without SMAP no `stac` is needed (or allowed).
        unsafe { x86_64_copy_user_plain(dst, src, len) }
    }
}

/// Copies `dst.len()` bytes from user address `src` in the current address space.
pub fn copy_from_user(dst: &mut [u8], src: u64) -> Result<(), UserAccessError> {
    validate(src, dst.len())?;
    let left = copy(dst.as_mut_ptr(), src as *const u8, dst.len());
    if left == 0 {
        Ok(())
    } else {
        Err(UserAccessError::Fault {
            addr: src + (dst.len() - left) as u64,
        })
    }
}

/// Copies `src` to user address `dst` in the current address space.
pub fn copy_to_user(dst: u64, src: &[u8]) -> Result<(), UserAccessError> {
    validate(dst, src.len())?;
    let left = copy(dst as *mut u8, src.as_ptr(), src.len());
    if left == 0 {
        Ok(())
    } else {
        Err(UserAccessError::Fault {
            addr: dst + (src.len() - left) as u64,
        })
    }
}
