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
/// Reads address 0. Handles: `[endpoint (SEND)]`: like every `FAULT_*` role, it first sends one
/// message labelled [`FAULT_PLAN`] whose word 0 is the address of the instruction that will
/// fault (the first instruction of a small assembly routine) and word 1 the data address it
/// accesses (0 if none), then faults. Must be killed; [`EXIT_SURVIVED_FAULT`] if it was resumed.
pub const FAULT_NULL: u16 = 4;
/// Writes to its own text segment (the byte already there). Handles and plan: as
/// [`FAULT_NULL`]. Must be killed.
pub const FAULT_WRITE_RO: u16 = 5;
/// Reads [`KERNEL_PROBE_VA`], the first kernel address. Handles and plan: as [`FAULT_NULL`].
/// Must be killed.
pub const FAULT_KERNEL: u16 = 6;
/// Executes the undefined instruction (`ud2` / `udf #0`). Handles and plan: as [`FAULT_NULL`].
/// Must be killed.
pub const FAULT_UNDEFINED: u16 = 7;
/// Pager client. Handles: `[endpoint (SEND)]`, its pager's endpoint (a copy without the pager
/// capability's badge). First sends one message labelled [`PAGER_PLAN`] with word 0 = the
/// address of the load and word 1 = the address of the store instruction it first touches pages
/// with. Then, for each data page `p` (the first [`PAGER_WINDOW_PAGES`] - 1 pages at
/// [`PAGER_WINDOW_VA`], mapped by nobody: each first touch faults to the pager, in page order),
/// touches word 0 with that load if `p` is even, that store if `p` is odd, and writes a pattern
/// into the page; then calls the last page, [`PAGER_CODE_PAGE`], which the pager must map
/// readable and executable with [`RETURN_INSTRUCTION`] at its start; then reads the patterns
/// back. Exit 0 if all matched, [`EXIT_CHECK_FAILED`] otherwise.
pub const PAGER_CLIENT: u16 = 8;
/// FP/SIMD worker. Handles: none; param: seed. Runs [`crate::fpu::torture`] for
/// [`FP_ITERATIONS`] iterations; exit 0 if the vector registers held, [`EXIT_CHECK_FAILED`]
/// otherwise.
pub const FP_WORKER: u16 = 9;
/// Benchmark server. Handles: `[endpoint (RECEIVE)]`. As [`ECHO_SERVER`] but echoes words
/// unchanged and never prints.
pub const BENCH_SERVER: u16 = 10;
/// Yield partner. Handles: none; param: number of yields, 0 for "forever" (the spawner kills
/// it). Before starting it, the spawner maps one page read-write at [`YIELD_TURNS_VA`]: the
/// partner counts its turns there (word 0: 1 before its first yield, one more after each yield
/// returns), so that the spawner can check that the two strictly alternate. Exit 0, or
/// [`EXIT_SYSCALL_FAILED`] if a yield fails (without printing: it is a benchmark role; the
/// count stops, which is what the spawner sees).
pub const YIELD_PARTNER: u16 = 11;
/// Fault benchmark client. Handles: `[endpoint (SEND)]`, the same endpoint that is its pager.
/// Touches (reads) [`FAULT_BENCH_BATCHES`] + 1 batches of [`FAULT_BENCH_BATCH`] fresh pages at
/// [`FAULT_BENCH_VA`], timing each batch with the cycle counter, then sends one message labelled
/// [`BENCH_RESULT`] with word 0 = the median over the timed batches of cycles per fault (the
/// first batch is the warm-up). Each touch must fault exactly once: the pager maps the page and
/// replies `RESUME`, and any other outcome is the benchmark's failure, never a different way of
/// serving it. Exit 0.
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
        FAULT_PRIVILEGED => "fault_privileged",
        EXIT_WITH => "exit_with",
        PARKED => "parked",
        MANY_CLIENT => "many_client",
        HOLDING_SERVER => "holding_server",
        RECORDER => "recorder",
        REPORT_PROBE => "report_probe",
        FAULT_BREAKPOINT => "fault_breakpoint",
        USERCOPY_CLIENT => "usercopy_client",
        SPACE_KILL_VICTIM => "space_kill_victim",
        SPACE_KILL_SELF => "space_kill_self",
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
/// The page of the window that [`PAGER_CLIENT`] executes (the last one; the others hold data).
pub const PAGER_CODE_PAGE: u64 = PAGER_WINDOW_PAGES - 1;
/// [`PAGER_CLIENT`]'s first message (word 0: pc of its load, word 1: pc of its store).
pub const PAGER_PLAN: u32 = 0x9A9E;
/// The first message of every `FAULT_*` role (word 0: pc of the faulting instruction, word 1:
/// the data address it accesses or 0).
pub const FAULT_PLAN: u32 = 0xF1A9;

/// The return instruction (`ret`), as [`PAGER_CLIENT`]'s pager writes it into the code page.
#[cfg(target_arch = "x86_64")]
pub const RETURN_INSTRUCTION: &[u8] = &[0xc3];
/// The return instruction (`ret`, 0xd65f03c0 little-endian), as [`PAGER_CLIENT`]'s pager writes
/// it into the code page.
#[cfg(target_arch = "aarch64")]
pub const RETURN_INSTRUCTION: &[u8] = &[0xc0, 0x03, 0x5f, 0xd6];

/// The first kernel address, which [`FAULT_KERNEL`] reads (the start of the higher half).
#[cfg(target_arch = "x86_64")]
pub const KERNEL_PROBE_VA: u64 = 0xffff_8000_0000_0000;
/// The first kernel address, which [`FAULT_KERNEL`] reads (the start of the TTBR1 half).
#[cfg(target_arch = "aarch64")]
pub const KERNEL_PROBE_VA: u64 = 0xffff_0000_0000_0000;

/// Iterations of [`FP_WORKER`] (each yields once with live vector registers).
pub const FP_ITERATIONS: u32 = 200;

/// Where the spawner of [`YIELD_PARTNER`] maps the page in which the partner counts its turns.
pub const YIELD_TURNS_VA: u64 = 0x0000_5200_0000_0000;

/// Where [`FAULT_BENCH`] touches pages.
pub const FAULT_BENCH_VA: u64 = 0x0000_5100_0000_0000;
/// Faults per batch of [`FAULT_BENCH`].
pub const FAULT_BENCH_BATCH: u64 = 1000;
/// Timed batches of [`FAULT_BENCH`] (after one warm-up batch); the median is reported.
pub const FAULT_BENCH_BATCHES: usize = 11;
/// The label of [`FAULT_BENCH`]'s result message (word 0: median cycles per fault).
pub const BENCH_RESULT: u32 = 0xBE9C;

// ---------------------------------------------------------------------------------------------
// Roles of the exit-code, many-clients, capability-return and report-refusal tests. Numbered
// from 40, apart from the roles above, so that roles added elsewhere at the same time cannot
// take the same numbers.

/// Exit-code helper. Handles: none; param: an index into [`EXIT_CODES`]. Ends at once with
/// `ThreadExit(EXIT_CODES[param])`, the whole 64-bit value, printing nothing; an index out of
/// range ends it with [`EXIT_UNKNOWN_ROLE`].
pub const EXIT_WITH: u16 = 40;
/// Parked helper. Handles: `[notification (RECEIVE), ...]`. Waits on the notification for ever
/// and only holds the other handles (for example a receive capability it never uses): it must
/// be killed. Exit [`EXIT_CHECK_FAILED`] if the wait returns, [`EXIT_SYSCALL_FAILED`] if it
/// fails.
pub const PARKED: u16 = 41;
/// Client of the many-clients test. Handles: `[endpoint (CALL)]`, badged
/// [`many_badge`]`(id)`; param: [`many_param`]`(id, calls)`.
///
/// With `calls > 0`: makes `calls` calls in turn, call `seq` with label [`MANY_CALL`] and the
/// words [`many_request`]`(badge, seq)`, and checks that each reply is exactly
/// [`many_reply`]`(badge, request)` with label [`MANY_REPLY`], four words and no capability;
/// exit [`many_exit`]`(`[`MANY_EXIT_DONE`]`, id)`. With `calls == 0`: makes one call (request
/// `seq` 0), which the server holds until it is killed; exit `many_exit(`[`MANY_EXIT_KILLED`]`,
/// id)` if it fails with `Killed`. Otherwise: `many_exit(`[`MANY_EXIT_WRONG_REPLY`]`, id)` for
/// a reply that is not its own (or any reply in the second mode), `many_exit(`
/// [`MANY_EXIT_CALL_FAILED`]`, id)` for a call that failed otherwise (the client prints which).
pub const MANY_CLIENT: u16 = 42;
/// Holding server. Handles: `[endpoint (RECEIVE), report endpoint (CALL)]`; param: K
/// (`1..=MSG_WORDS`). Receives K messages and answers none (each caller stays waiting for its
/// reply; a capability a message carries stays in its table), then calls the report endpoint
/// with label [`HELD`] and, as its K words, the badges of the K messages in the order they
/// arrived. That call is never answered: the spawner kills the server, which must fail every
/// call it holds. Exit [`EXIT_CHECK_FAILED`] if the report is answered, [`EXIT_SYSCALL_FAILED`]
/// if a call fails, [`EXIT_BAD_BOOTSTRAP`] for a K out of range.
pub const HOLDING_SERVER: u16 = 43;
/// Recorder. Handles: `[endpoint (RECEIVE)]`. Counts every message it receives and answers each
/// call with label = that count (this message included) and the words `[raw info, raw
/// capability handle, badge, 0]` of the message, deleting any capability it carried. A message
/// labelled [`SHUTDOWN`] ends it (answered first if it was a call; not counted). Exit 0, or
/// [`EXIT_SYSCALL_FAILED`].
pub const RECORDER: u16 = 44;
/// Report prober. Handles: none. Makes one `TestReport` for [`REPORT_PROBE_TEST`], status
/// failed, reason [`REPORT_PROBE_REASON`] (if the kernel wrongly took it, that test shows as
/// failed, never as passed), and exits with the error the kernel returned
/// (`Error::into_raw`, negative: a joiner sees its low 32 bits), or with
/// [`REPORT_PROBE_ACCEPTED`] if the kernel accepted the report.
pub const REPORT_PROBE: u16 = 45;

// ---------------------------------------------------------------------------------------------
// Roles of the fault-kind tests. Numbered from 60, apart from the others, so that roles added
// elsewhere at the same time cannot take the same numbers.

/// Executes a privileged instruction (`hlt` on x86_64: a general-protection fault in ring 3;
/// `msr daifset, #0xf` on AArch64: trapped at EL0 while `SCTLR_EL1.UMA` is 0). Handles and plan:
/// as [`FAULT_NULL`]. Must be killed.
pub const FAULT_PRIVILEGED: u16 = 60;

/// Executes a breakpoint (`int3` on x86_64, which from ring 3 is a general-protection fault
/// because the kernel's breakpoint gate is not open to user mode; `brk #0` on AArch64). Handles
/// and plan: as [`FAULT_NULL`]. Resumed (the exception handler answers `RESUME` without changing
/// anything), it executes the breakpoint again; it must be killed in the end.
pub const FAULT_BREAKPOINT: u16 = 61;

// ---------------------------------------------------------------------------------------------
// Roles of the system-call fault and process-kill tests. Numbered from 70, apart from the others.

/// System calls on demand-paged memory. Handles: `[endpoint (CALL)]`, the report endpoint (its
/// pager is the same endpoint under another badge). First calls the endpoint with label
/// [`USERCOPY_PLAN`] and word 0 = the address of the `syscall` / `svc #0` instruction its
/// `DebugWrite`s are made with; then, each time that call (or the previous report) is answered,
/// makes the next `DebugWrite(ptr, len)` of [`USERCOPY_CASES`] and calls the endpoint with label
/// [`USERCOPY_RESULT`] and words `[case index, raw result register]`. After the last report is
/// answered it exits 0 ([`EXIT_CHECK_FAILED`] if a report was answered with a label other than
/// 0, [`EXIT_SYSCALL_FAILED`] if a call failed). The window at [`USERCOPY_WINDOW_VA`] is mapped by
/// nobody but its pager.
pub const USERCOPY_CLIENT: u16 = 70;
/// A process whose threads wait everywhere a thread can wait, for `SpaceKill`. Handles:
/// `[own address space (MAP, CONTROL), endpoint (RECEIVE), notification (RECEIVE), report
/// endpoint (SEND, CALL)]`; its pager is set by the spawner. Makes, in its own space, the
/// threads [`VICTIM_THREADS`] names (index order), each local thread with a stack of
/// [`VICTIM_STACK_PAGES`] pages at [`VICTIM_STACKS_VA`] + index * [`VICTIM_STACK_STRIDE`]:
/// a receiver (receives one call on the endpoint and keeps it unanswered, then receives
/// again for ever), a waiter (waits on the notification for ever), a spinner (loops in user
/// mode without system calls), a joiner (joins the spinner for ever), a faulter (reads
/// [`VICTIM_FAULT_VA`], which nobody maps: its fault stays with the pager) and a thread created
/// and never started. Then sends one message per thread to the report endpoint, label
/// [`VICTIM_THREAD`], word 0 = the index, carrying a copy of the thread's capability (`CONTROL`,
/// `GRANT`); then calls the report endpoint with label [`VICTIM_READY`], which is never answered.
/// Every thread must be killed; a thread whose wait returns ends with [`EXIT_CHECK_FAILED`].
pub const SPACE_KILL_VICTIM: u16 = 71;
/// A process that kills itself. Handles: `[own address space (MAP, CONTROL), notification (RECEIVE),
/// report endpoint (SEND)]`. Starts a waiter (as [`SPACE_KILL_VICTIM`]'s, stack at
/// [`VICTIM_STACKS_VA`]), sends a copy of its capability to the report endpoint (label
/// [`VICTIM_THREAD`], word 0 = 0), waits until the kernel reports the waiter `Waiting`, then
/// calls `SpaceKill` on its own space, which must end it and its waiter. Exit
/// [`EXIT_CHECK_FAILED`] if `SpaceKill` returns.
pub const SPACE_KILL_SELF: u16 = 72;

/// [`USERCOPY_CLIENT`]'s first call (word 0: the pc of its system-call instruction).
pub const USERCOPY_PLAN: u32 = 0xC09A;
/// [`USERCOPY_CLIENT`]'s report of one case (words: case index, raw result).
pub const USERCOPY_RESULT: u32 = 0xC09B;
/// Where [`USERCOPY_CLIENT`]'s buffers lie: pages nobody but its pager maps.
pub const USERCOPY_WINDOW_VA: u64 = 0x0000_5400_0000_0000;
/// The bytes of [`USERCOPY_CLIENT`]'s first case, which its pager puts into the first two pages
/// of the window, split across the page boundary: the kernel prints them, and the boot log must
/// show them whole.
pub const USERCOPY_TEXT: &[u8] =
    b"usercopy_demand_fault: this line was paged in on demand, across two pages\n";
/// How many bytes of [`USERCOPY_TEXT`] lie on the window's first page (at its end).
pub const USERCOPY_SPLIT: u64 = 40;
/// [`USERCOPY_CLIENT`]'s `DebugWrite`s, in order: `(pointer, length)`. The spawner's test knows
/// what each must do (`servers/init/src/tests/usercopy_demand_fault.rs`).
pub const USERCOPY_CASES: [(u64, u64); 7] = [
    // Across the boundary of pages 0 and 1: two faults, then the text.
    (
        USERCOPY_WINDOW_VA + crate::process::PAGE_SIZE - USERCOPY_SPLIT,
        USERCOPY_TEXT.len() as u64,
    ),
    // Page 2, which the pager never maps (it answers RESUME all the same).
    (USERCOPY_WINDOW_VA + 2 * crate::process::PAGE_SIZE + 8, 16),
    // Page 3, which the pager refuses.
    (USERCOPY_WINDOW_VA + 3 * crate::process::PAGE_SIZE, 16),
    // A kernel address.
    (KERNEL_PROBE_VA, 16),
    // A range that runs past the end of user space.
    (abi::init::USER_END - 8, 16),
    // Page 4, with no pager at all.
    (USERCOPY_WINDOW_VA + 4 * crate::process::PAGE_SIZE, 16),
    // The first case again: mapped by now.
    (
        USERCOPY_WINDOW_VA + crate::process::PAGE_SIZE - USERCOPY_SPLIT,
        USERCOPY_TEXT.len() as u64,
    ),
];

/// The threads of [`SPACE_KILL_VICTIM`], by index.
pub const VICTIM_THREADS: [&str; 6] = [
    "receiver",
    "waiter",
    "spinner",
    "joiner",
    "faulter",
    "never started",
];
/// Index of the receiver in [`VICTIM_THREADS`].
pub const VICTIM_RECEIVER: u64 = 0;
/// Index of the waiter.
pub const VICTIM_WAITER: u64 = 1;
/// Index of the spinner.
pub const VICTIM_SPINNER: u64 = 2;
/// Index of the joiner.
pub const VICTIM_JOINER: u64 = 3;
/// Index of the faulter.
pub const VICTIM_FAULTER: u64 = 4;
/// Index of the thread never started.
pub const VICTIM_UNSTARTED: u64 = 5;
/// Where the victims' local thread stacks lie (in their own spaces).
pub const VICTIM_STACKS_VA: u64 = 0x0000_5500_0000_0000;
/// Distance between two victim thread stacks (leaves an unmapped guard below each).
pub const VICTIM_STACK_STRIDE: u64 = 1 << 20;
/// Pages of each victim thread stack.
pub const VICTIM_STACK_PAGES: usize = 4;
/// What the victim's faulter reads: nobody maps it.
pub const VICTIM_FAULT_VA: u64 = 0x0000_5600_0000_0000;
/// The label of a victim's thread-capability message (word 0: index).
pub const VICTIM_THREAD: u32 = 0x71C7;
/// The label of [`SPACE_KILL_VICTIM`]'s last call (never answered).
pub const VICTIM_READY: u32 = 0x71C8;

/// What [`EXIT_WITH`] passes to `ThreadExit`, by index: boundary values of the low 32 bits, the
/// low 32 bits of an error code, and values with bits above 32 (a joiner sees the low 32 bits
/// only, `ThreadJoin`'s documented rule).
pub const EXIT_CODES: [i64; 11] = [
    0,
    1,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_fffe,
    0xffff_ffff,
    -1,
    // `Error::Killed`'s code: as an exit code it must come back as a value, never as `Killed`.
    -10,
    0x1_0000_0000,
    0x1234_5678_9abc_def0,
    i64::MIN,
];

/// The label of a [`MANY_CLIENT`] call.
pub const MANY_CALL: u32 = 0x3A11;
/// The label of the answer to a [`MANY_CLIENT`] call.
pub const MANY_REPLY: u32 = 0x3A12;
/// [`HOLDING_SERVER`]'s report label (words: the badges of the calls it holds).
pub const HELD: u32 = 0x4E1D;

/// [`MANY_CLIENT`] exit base: every reply was its own.
pub const MANY_EXIT_DONE: u32 = 0x600D_0000;
/// [`MANY_CLIENT`] exit base: the held call failed with `Killed`.
pub const MANY_EXIT_KILLED: u32 = 0x4B1D_0000;
/// [`MANY_CLIENT`] exit base: a reply that was not its own (or a reply it should not get).
pub const MANY_EXIT_WRONG_REPLY: u32 = 0xBAD0_0000;
/// [`MANY_CLIENT`] exit base: a call failed with an error it did not expect.
pub const MANY_EXIT_CALL_FAILED: u32 = 0xFA1D_0000;

/// The exit code of [`MANY_CLIENT`] `id` for outcome `base` (one of the `MANY_EXIT_*`).
#[must_use]
pub const fn many_exit(base: u32, id: u64) -> i64 {
    (base | (id as u32 & 0xff)) as i64
}

/// The parameter of [`MANY_CLIENT`] `id` (below 256) making `calls` calls (below 2^40).
#[must_use]
pub const fn many_param(id: u64, calls: u64) -> u64 {
    (id & 0xff) | (calls << 8)
}

/// Splits a [`MANY_CLIENT`] parameter into id and number of calls.
#[must_use]
pub const fn split_many_param(param: u64) -> (u64, u64) {
    (param & 0xff, param >> 8)
}

/// The badge of [`MANY_CLIENT`] `id`: distinct per id, with bits set in both halves of the
/// word so that a badge cut to 32 bits or mixed up with another shows.
#[must_use]
pub const fn many_badge(id: u64) -> abi::Badge {
    0xB0B0_0000_0000_0000 | ((id + 1) << 32) | ((id + 1) * 0x1111)
}

/// The words of call `seq` of the client with `badge`: every word depends on both.
#[must_use]
pub const fn many_request(badge: abi::Badge, seq: u64) -> [u64; abi::MSG_WORDS] {
    [
        badge ^ seq,
        seq,
        badge.rotate_left((seq % 64) as u32),
        !seq ^ (badge >> 7),
    ]
}

/// The words of the answer to `request` from the client with `badge` (the badge as the
/// server's kernel delivered it): every word depends on both.
#[must_use]
pub const fn many_reply(
    badge: abi::Badge,
    request: [u64; abi::MSG_WORDS],
) -> [u64; abi::MSG_WORDS] {
    [
        badge,
        request[0]
            .wrapping_add(request[1])
            .wrapping_mul(0x9e37_79b9_7f4a_7c15),
        request[2] ^ badge,
        !request[3],
    ]
}

/// The init test [`REPORT_PROBE`] reports for (it must be refused: only init may report).
pub const REPORT_PROBE_TEST: &str = "syscall_bad_args";
/// The reason of [`REPORT_PROBE`]'s report.
pub const REPORT_PROBE_REASON: &str =
    "a utest helper's TestReport was accepted: only init may report";
/// [`REPORT_PROBE`]'s exit code when the kernel accepted its report.
pub const REPORT_PROBE_ACCEPTED: i64 = 0x0ACC_E97D;
