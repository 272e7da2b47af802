//! What the initial process (`init`) finds when it starts.
//!
//! Owns the layout of [`InitInfo`], the page the kernel maps read-only at [`INIT_INFO_VA`] in
//! init's address space, and the fixed addresses of init's start-up mappings. The kernel loads
//! init from the initrd (a cpio "newc" archive, entry [`INIT_NAME`]), maps the whole archive
//! read-only at [`INITRD_VA`] so that init can load every other program from it, gives init a
//! stack of [`INIT_STACK_BYTES`] ending at [`INIT_STACK_TOP`], and starts its first thread at the
//! ELF entry point with slot `a0` = [`INIT_INFO_VA`]. Everything init holds is listed in the info
//! page; it must never grow a field whose meaning depends on the architecture.

use crate::CapHandle;

/// The name of init's entry in the initrd.
pub const INIT_NAME: &str = "init";
/// Where the info page is mapped in init (read-only).
pub const INIT_INFO_VA: u64 = 0x0000_0000_0001_0000;
/// Where the initrd archive is mapped in init (read-only).
pub const INITRD_VA: u64 = 0x0000_0010_0000_0000;
/// One past the top of init's stack.
pub const INIT_STACK_TOP: u64 = 0x0000_7fff_0000_0000;
/// Size of init's stack.
pub const INIT_STACK_BYTES: u64 = 256 * 1024;
/// First user virtual address any program may use (below it nothing is ever mapped, so that a
/// null pointer dereference faults).
pub const USER_START: u64 = 0x0000_0000_0001_0000;
/// One past the last user virtual address on every supported architecture.
pub const USER_END: u64 = 0x0000_8000_0000_0000;
/// The value of [`InitInfo::magic`].
pub const INIT_MAGIC: u64 = 0x5354_5241_4954_494e; // "STRAITIN"
/// Bytes of [`InitInfo::cmdline`].
pub const CMDLINE_BYTES: usize = 512;

/// The info page. `repr(C)`, every field a word (or bytes), so both sides agree on the layout.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub struct InitInfo {
    /// [`INIT_MAGIC`]: the page is what this version describes.
    pub magic: u64,
    /// Init's own address space (`MAP`, `CONTROL`, `GRANT`).
    pub own_space: CapHandle,
    /// Init's first thread (`CONTROL`, `GRANT`).
    pub own_thread: CapHandle,
    /// Bytes of the initrd mapped at [`INITRD_VA`].
    pub initrd_len: u64,
    /// Bytes of the kernel command line in [`cmdline`](Self::cmdline).
    pub cmdline_len: u64,
    /// The kernel command line (the first [`cmdline_len`](Self::cmdline_len) bytes), so that init
    /// knows whether this is a test (`test=...`) or benchmark (`bench`) boot.
    pub cmdline: [u8; CMDLINE_BYTES],
}

impl InitInfo {
    /// The command line as text (`""` if the kernel wrote something that is not UTF-8).
    #[must_use]
    pub fn cmdline(&self) -> &str {
        let len = (self.cmdline_len as usize).min(CMDLINE_BYTES);
        core::str::from_utf8(&self.cmdline[..len]).unwrap_or("")
    }
}
