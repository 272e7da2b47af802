//! The contract between a spawner (init's tests and benchmarks) and the `utest` helper program:
//! role numbers, the start-up argument, the bootstrap page and the small protocols the roles
//! speak.
//!
//! Owns every number both sides must agree on. It must never hold behaviour that only one side
//! needs (the roles live in `servers/utest`, the tests in `servers/init`), and never renumber a
//! role or move the bootstrap page without changing both sides in the same commit.
//!
//! # Starting a helper
//!
//! A process cannot know the handle values of capabilities it will be given (a handle is 64 bits:
//! slot index and generation, chosen by the kernel), and a new process has no endpoint to receive
//! them on. So:
//!
//! 1. the spawner loads `utest` with [`crate::process::spawn`], passing
//!    [`arg(role, param)`](arg) as the thread's start-up argument (slot `a0`): the role in bits
//!    0..16, a role-specific parameter in bits 16..64;
//! 2. it gives the child its capabilities with `CapGrant`, which returns each handle as it is in
//!    the *child's* table;
//! 3. it writes those handles into the **bootstrap page** with
//!    [`Child::write_bootstrap`](crate::process::Child::write_bootstrap): one page mapped
//!    read-only at [`BOOTSTRAP_VA`] in the child, laid out as [`Bootstrap`] (magic, count,
//!    handles in the order the role documents);
//! 4. it starts the thread (and, for roles that expect a pager, sets the pager first).
//!
//! The child reads its handles with [`bootstrap`]. The page is always mapped by
//! `write_bootstrap`, even with no handles, so that every role can rely on it.

use abi::CapHandle;

/// Where the bootstrap page is mapped (read-only) in a spawned helper. Below the program's load
/// address (0x400000, see `user.ld`) and above the null guard.
pub const BOOTSTRAP_VA: u64 = 0x0000_0000_0002_0000;
/// The value of [`Bootstrap::magic`] ("STRTBOOT").
pub const BOOTSTRAP_MAGIC: u64 = 0x5354_5254_424f_4f54;
/// Most handles the bootstrap page carries.
pub const BOOTSTRAP_MAX_HANDLES: usize = 16;

/// The bootstrap page's contents. `repr(C)`, every field a word.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub struct Bootstrap {
    /// [`BOOTSTRAP_MAGIC`].
    pub magic: u64,
    /// How many entries of [`handles`](Self::handles) are meaningful.
    pub count: u64,
    /// Raw handles, valid in the child's table, in the order the role documents.
    pub handles: [u64; BOOTSTRAP_MAX_HANDLES],
}

/// Why [`bootstrap`] refused the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootstrapError {
    /// The magic is not [`BOOTSTRAP_MAGIC`] (value found).
    BadMagic(u64),
    /// The count exceeds [`BOOTSTRAP_MAX_HANDLES`] (value found).
    BadCount(u64),
}

impl core::fmt::Display for BootstrapError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Self::BadMagic(found) => write!(f, "bootstrap page: bad magic {found:#x}"),
            Self::BadCount(found) => write!(
                f,
                "bootstrap page: {found} handles (at most {BOOTSTRAP_MAX_HANDLES})"
            ),
        }
    }
}

/// The handles the spawner left in the bootstrap page.
///
/// # Safety
///
/// The calling process must have been started by a spawner that follows the protocol above
/// (mapped the page at [`BOOTSTRAP_VA`] before starting it, and never changes it afterwards):
/// otherwise the read faults or reads memory that is not a [`Bootstrap`].
pub unsafe fn bootstrap() -> Result<&'static [CapHandle], BootstrapError> {
    // SAFETY: by the caller's guarantee the page is mapped read-only at BOOTSTRAP_VA for the rest
    // of the process's life and holds a `Bootstrap` (plain words, any value valid, aligned).
    let page = unsafe { &*(BOOTSTRAP_VA as *const Bootstrap) };
    if page.magic != BOOTSTRAP_MAGIC {
        return Err(BootstrapError::BadMagic(page.magic));
    }
    let count = usize::try_from(page.count)
        .ok()
        .filter(|&count| count <= BOOTSTRAP_MAX_HANDLES)
        .ok_or(BootstrapError::BadCount(page.count))?;
    let handles = &page.handles[..count];
    // SAFETY: CapHandle is `repr(transparent)` over u64, so a slice of u64 is a slice of
    // CapHandle with the same length and lifetime ('static: the page is never unmapped).
    Ok(unsafe { core::slice::from_raw_parts(handles.as_ptr().cast::<CapHandle>(), count) })
}

/// The start-up argument of a helper: `role` in bits 0..16, `param` (at most 48 bits; higher bits
/// are dropped) in bits 16..64.
#[must_use]
pub const fn arg(role: u16, param: u64) -> u64 {
    role as u64 | (param << 16)
}

/// Splits a start-up argument into role and parameter (see [`arg`]).
#[must_use]
pub const fn split_arg(arg: u64) -> (u16, u64) {
    (arg as u16, arg >> 16)
}

// ---------------------------------------------------------------------------------------------
// Roles. Handles are listed in bootstrap-page order.

/// Echo server. Handles: `[endpoint (RECEIVE)]`. Loop: receive; a message labelled
/// [`SHUTDOWN`] ends it (answered first if it was a call); every other call is answered with the
/// same label and length and each word plus 1. Exit 0, or [`EXIT_SYSCALL_FAILED`].
pub const ECHO_SERVER: u16 = 1;
/// Notification signaller. Handles: `[notification (SEND)]`; param: N (1..=62). Signals bit
/// `1 << i` for `i` in `1..=N`, in order, yielding after each; exit 0.
pub const NOTIFY_SIGNALER: u16 = 2;
/// Capability receiver. Handles: `[endpoint (RECEIVE)]`. Serves calls whose label says what
/// capability they carry: [`CAP_NOTIFICATION`] (signal the received notification with word 0,
/// then delete it) or [`CAP_ENDPOINT`] (identify it, then delete it); replies [`CAP_OK`] or a
/// failure label ([`CAP_NO_CAP`], [`CAP_WRONG_TYPE`], [`CAP_USE_FAILED`]) with word 0 = detail
/// (the raw object type or error code). [`SHUTDOWN`] ends it.
pub const CAP_RECEIVER: u16 = 3;
/// Reads address 0. Handles: none. Must be killed.
pub const FAULT_NULL: u16 = 4;
/// Writes to its own text segment. Handles: none. Must be killed.
pub const FAULT_WRITE_RO: u16 = 5;
/// Reads the first kernel address (`0xffff_8000_0000_0000` on x86_64, `0xffff_0000_0000_0000`
/// on AArch64). Handles: none. Must be killed.
pub const FAULT_KERNEL: u16 = 6;
/// Executes the undefined instruction (`ud2` / `udf #0`). Handles: none. Must be killed.
pub const FAULT_UNDEFINED: u16 = 7;
/// Pager client. Handles: none. Writes a pattern into [`PAGER_WINDOW_PAGES`] pages at
/// [`PAGER_WINDOW_VA`] (mapped by nobody: every first touch faults to the pager), reads it back;
/// exit 0 if all matched, [`EXIT_CHECK_FAILED`] otherwise.
pub const PAGER_CLIENT: u16 = 8;
/// FP/SIMD worker. Handles: none; param: seed. Runs [`crate::fpu::torture`] for
/// [`FP_ITERATIONS`] iterations; exit 0 if the vector registers held, [`EXIT_CHECK_FAILED`]
/// otherwise.
pub const FP_WORKER: u16 = 9;
/// Benchmark server. Handles: `[endpoint (RECEIVE)]`. As [`ECHO_SERVER`] but echoes words
/// unchanged and never prints.
pub const BENCH_SERVER: u16 = 10;
/// Yield partner. Handles: none; param: number of yields, 0 for "forever" (the spawner kills
/// it). Exit 0.
pub const YIELD_PARTNER: u16 = 11;
/// Fault benchmark client. Handles: `[endpoint (SEND)]`, the same endpoint that is its pager.
/// Touches (reads) [`FAULT_BENCH_BATCHES`] + 1 batches of [`FAULT_BENCH_BATCH`] fresh pages at
/// [`FAULT_BENCH_VA`], timing each batch with the cycle counter, then sends one message labelled
/// [`BENCH_RESULT`] with word 0 = the median over the timed batches of cycles per fault (the
/// first batch is the warm-up). Exit 0.
pub const FAULT_BENCH: u16 = 12;

/// A human-readable name for a role, for messages.
#[must_use]
pub const fn role_name(role: u16) -> &'static str {
    match role {
        ECHO_SERVER => "echo_server",
        NOTIFY_SIGNALER => "notify_signaler",
        CAP_RECEIVER => "cap_receiver",
        FAULT_NULL => "fault_null",
        FAULT_WRITE_RO => "fault_write_ro",
        FAULT_KERNEL => "fault_kernel",
        FAULT_UNDEFINED => "fault_undefined",
        PAGER_CLIENT => "pager_client",
        FP_WORKER => "fp_worker",
        BENCH_SERVER => "bench_server",
        YIELD_PARTNER => "yield_partner",
        FAULT_BENCH => "fault_bench",
        _ => "unknown",
    }
}

// ---------------------------------------------------------------------------------------------
// Exit codes of the helper.

/// The role's check found a wrong value.
pub const EXIT_CHECK_FAILED: i64 = 1;
/// A system call the role depends on failed (the helper prints which and why).
pub const EXIT_SYSCALL_FAILED: i64 = 2;
/// The bootstrap page was missing a handle or malformed.
pub const EXIT_BAD_BOOTSTRAP: i64 = 3;
/// The role number is not one of the above.
pub const EXIT_UNKNOWN_ROLE: i64 = 4;
/// A fault role survived its fault (the kernel resumed it).
pub const EXIT_SURVIVED_FAULT: i64 = 99;

// ---------------------------------------------------------------------------------------------
// Protocols.

/// The label that ends [`ECHO_SERVER`], [`BENCH_SERVER`] and [`CAP_RECEIVER`] (sent with
/// `Send`, or with `Call`, which is answered first).
pub const SHUTDOWN: u32 = 0xDEAD;
/// [`CAP_RECEIVER`] request: the message carries a notification; signal word 0 on it.
pub const CAP_NOTIFICATION: u32 = 1;
/// [`CAP_RECEIVER`] request: the message carries an endpoint; identify it.
pub const CAP_ENDPOINT: u32 = 2;
/// [`CAP_RECEIVER`] reply: done.
pub const CAP_OK: u32 = 0;
/// [`CAP_RECEIVER`] reply: the message carried no capability (word 0: the raw info).
pub const CAP_NO_CAP: u32 = 0x10;
/// [`CAP_RECEIVER`] reply: the capability is not what the label says (word 0: the raw type,
/// word 1: the raw rights).
pub const CAP_WRONG_TYPE: u32 = 0x11;
/// [`CAP_RECEIVER`] reply: a system call on the capability failed (word 0: the raw error code).
pub const CAP_USE_FAILED: u32 = 0x12;

/// Where [`PAGER_CLIENT`] touches memory nobody mapped.
pub const PAGER_WINDOW_VA: u64 = 0x0000_5000_0000_0000;
/// How many pages [`PAGER_CLIENT`] touches.
pub const PAGER_WINDOW_PAGES: u64 = 16;

/// Iterations of [`FP_WORKER`] (each yields once with live vector registers).
pub const FP_ITERATIONS: u32 = 200;

/// Where [`FAULT_BENCH`] touches pages.
pub const FAULT_BENCH_VA: u64 = 0x0000_5100_0000_0000;
/// Faults per batch of [`FAULT_BENCH`].
pub const FAULT_BENCH_BATCH: u64 = 1000;
/// Timed batches of [`FAULT_BENCH`] (after one warm-up batch); the median is reported.
pub const FAULT_BENCH_BATCHES: usize = 11;
/// The label of [`FAULT_BENCH`]'s result message (word 0: median cycles per fault).
pub const BENCH_RESULT: u32 = 0xBE9C;
