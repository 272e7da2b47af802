//! System-call numbers, and what each call takes and returns.
//!
//! Owns the number of every [`Syscall`] and its documented contract: which argument slots it
//! reads (`a0..a8`, mapped to registers by [`crate::regs`]), which rights it needs, what it returns
//! in the result register and which slots it writes on success. It must never renumber or reuse
//! a number (pinned by the crate's tests); new calls are appended.
//!
//! Common to every call: a handle argument is checked in this order, and the first failure is
//! returned: [`InvalidCapability`](crate::Error::InvalidCapability) (null, out of range, never
//! issued), [`StaleCapability`](crate::Error::StaleCapability), [`WrongType`](crate::Error::WrongType),
//! [`InsufficientRights`](crate::Error::InsufficientRights). A handle whose capability is lent to a
//! message in flight (see [`Syscall::Send`]) is [`Busy`](crate::Error::Busy). An unknown number is
//! [`NoSuchSyscall`](crate::Error::NoSuchSyscall). A call that fails has no effect unless its
//! description says otherwise.
//!
//! Pointer arguments (the buffers of [`Syscall::DebugWrite`] and [`Syscall::TestReport`]) may
//! point into memory a pager maps on demand. A buffer that does not lie wholly inside user space
//! (`[USER_START, USER_END)` of [`crate::init`]: a kernel or non-canonical address, or a range
//! that wraps) is [`BadAddress`](crate::Error::BadAddress) at once, and no pager hears of it.
//! When the kernel's copy meets a page it cannot access, it asks the calling process's pager
//! on the calling thread's behalf, exactly as for a page fault of that thread (the fault message
//! of [`crate::fault`]: kind `Page`, the first address it could not access, the pc of the
//! system-call instruction, `access::WRITE` for a buffer the kernel writes), and the thread reads
//! [`Faulted`](ThreadStatus::Faulted) meanwhile; on `RESUME` it retries from that address. With
//! no pager, a pager that answers anything else or is gone, or after
//! [`SYSCALL_FAULT_ATTEMPTS`](crate::fault::SYSCALL_FAULT_ATTEMPTS) answers about the same page,
//! the call fails with [`BadAddress`](crate::Error::BadAddress): the process is not killed (the
//! call failed, not an instruction of the thread).

/// Most bytes one [`Syscall::DebugWrite`] takes.
pub const DEBUG_WRITE_MAX: usize = 4096;

/// The system calls. The value is the number passed in the number register.
///
/// Arguments are given as slots (`a0..a8`); "→" gives the success value in the result register
/// and the output slots. The IPC calls share the slot layout documented in [`crate::regs`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(usize)]
pub enum Syscall {
    /// Does nothing. → 0. The cost of entering and leaving the kernel (the `null_syscall`
    /// benchmark).
    Null = 1,
    /// Writes bytes to the kernel console, for tests and early bring-up: `a0` pointer, `a1` length
    /// (at most [`DEBUG_WRITE_MAX`], else `InvalidArgument`). → the number of bytes written (all of
    /// them). Bytes are written as they are; lines are not interleaved with other writers' lines
    /// only if each call writes whole lines. The buffer may be demand-paged (see the module
    /// documentation); `BadAddress` if it cannot be read, and then nothing was written.
    DebugWrite = 2,
    /// Gives up the rest of the time slice to the next ready thread of the same priority (returns
    /// at once if there is none). → 0.
    Yield = 3,
    /// Ends the calling thread with exit code `a0`. Never returns. A thread blocked in IPC never
    /// reaches here; a thread killed while blocked is withdrawn from every queue. When the last
    /// thread of an address space ends, the address space and every capability in its table go
    /// away.
    ThreadExit = 4,
    /// Sends a message on an endpoint and waits until a receiver has taken it: `a0` endpoint
    /// (`SEND`), `a1` [`MessageInfo`](crate::MessageInfo), `a2..a5` words, `a6` capability to
    /// transfer when the info says so (`GRANT`), `a7` [`Timeout`](crate::Timeout). → 0.
    ///
    /// If a receiver is waiting the message is delivered at once; otherwise the caller queues
    /// behind earlier senders (first come, first served) until a receiver takes it. With
    /// `Timeout::POLL` and no waiting receiver: `WouldBlock`. On expiry: `Timeout`. If the
    /// endpoint is destroyed while queued: `Killed`. In all three cases the message was not
    /// delivered.
    ///
    /// A transferred capability is *lent* to the message while the call is in progress: its handle
    /// is refused with `Busy`. When the message is delivered the capability moves to the receiver
    /// (same rights and badge): the sender's handle goes stale. If the call fails, the capability
    /// is back under its old handle, untouched. If the receiver's table is full, the capability is
    /// destroyed and the receiver sees the info's flag set with a null handle in `a6`.
    Send = 5,
    /// Waits for a message on an endpoint: `a0` endpoint (`RECEIVE`), `a7` timeout. → 0; `a1`
    /// info, `a2..a5` words (0 past the info's length), `a6` received capability or
    /// [`CapHandle::NULL`](crate::CapHandle::NULL), `a7` the [`Badge`](crate::Badge) of the
    /// capability the sender used, `a8` the [`ReplyToken`](crate::ReplyToken) if the sender is
    /// waiting in [`Call`](Self::Call) (`NONE` for a [`Send`](Self::Send)).
    ///
    /// Senders are taken in the order they queued; receivers waiting on one endpoint are served in
    /// the order they started waiting. `WouldBlock`, `Timeout`, `Killed` as for `Send`.
    Recv = 6,
    /// Sends a message on an endpoint and waits for the reply: `a0` endpoint (`CALL`), `a1..a6`
    /// and `a7` as for [`Send`](Self::Send). → 0; `a1` the reply's info, `a2..a5` its words,
    /// `a6` its capability or `NULL`; `a7` and `a8` are preserved.
    ///
    /// If a receiver is waiting, the kernel switches straight to it (the IPC fast path). The
    /// timeout covers the whole call, delivery and reply; with `Timeout::POLL`, `WouldBlock` if
    /// no receiver is waiting, and once delivered the reply is awaited without limit. After
    /// delivery, a timeout withdraws the call: the server's later reply gets `InvalidReply`. If
    /// the server thread holding the call dies before replying: `Killed`. A capability attached
    /// to the call moves as for `Send` (on delivery, even if the reply then fails).
    Call = 7,
    /// Answers a call without waiting: `a1` info, `a2..a5` words, `a6` capability to transfer
    /// (`GRANT`; it moves at once), `a8` the reply token [`Recv`](Self::Recv) gave. → 0.
    /// `InvalidReply` if the token does not name a call this thread received and has not answered
    /// (nothing is delivered, the capability stays).
    Reply = 8,
    /// Answers a call, then waits for the next message: the server loop in one call. `a0`
    /// endpoint (`RECEIVE`), `a1..a6` the reply as for [`Reply`](Self::Reply), `a7` timeout (for
    /// the receive), `a8` reply token. → as [`Recv`](Self::Recv).
    ///
    /// The reply is checked first: `InvalidReply` means nothing happened at all (no reply, no
    /// receive; a server usually continues with `Recv`). A `NONE` token is `InvalidReply` too:
    /// a server loop starts with `Recv`. Once the reply is delivered it stays
    /// delivered, even if the receive then fails (`WouldBlock`, `Timeout`, `Killed`). When no
    /// message is waiting, the kernel switches straight back to the caller (the fast path).
    ReplyRecv = 9,
    /// Sets bits in a notification word and wakes its waiter: `a0` notification (`SEND`), `a1`
    /// bits. The bits signalled are `a1` OR the capability's badge; they must be non-zero and
    /// inside [`NOTIFICATION_BITS`](crate::NOTIFICATION_BITS), else `InvalidArgument`. → 0.
    /// Never blocks. Signals merge: bits set twice before anyone looks are seen once.
    Signal = 10,
    /// Waits until a notification word is non-zero, then takes (clears) it: `a0` notification
    /// (`RECEIVE`), `a7` timeout. → the bits (never 0). At most one thread waits on a
    /// notification: a second gets `Busy`. `WouldBlock` (timeout `POLL`, no bits), `Timeout`.
    /// No signalled bit is ever lost: bits that arrive while nobody waits stay in the word.
    Wait = 11,
    /// Takes (clears) a notification word without waiting: `a0` notification (`RECEIVE`). → the
    /// bits, 0 if none.
    Poll = 12,
    /// Copies a capability within the caller's table: `a0` handle, `a1` [`Rights`](crate::Rights)
    /// of the copy, `a2` badge (0 keeps the source's). → the new handle.
    ///
    /// The copy's rights must be a subset of the source's (`InsufficientRights` otherwise:
    /// rights only shrink). A non-zero badge may only be set on an unbadged endpoint or
    /// notification capability, and a notification badge must lie inside `NOTIFICATION_BITS`
    /// (`InvalidArgument` otherwise). `TableFull` if there is no free slot.
    CapCopy = 13,
    /// Deletes a capability from the caller's table: `a0` handle. → 0. The handle, and every copy
    /// of it the program kept, goes stale; other capabilities to the same object are unaffected.
    CapDelete = 14,
    /// Describes a capability: `a0` handle. → the [`ObjectType`](crate::ObjectType) value; `a1`
    /// its rights, `a2` its badge.
    CapIdentify = 15,
    /// Copies a capability into another process's table: `a0` handle (`GRANT`), `a1` address space
    /// (`CONTROL`), `a2` rights of the copy (a subset, as for [`CapCopy`](Self::CapCopy)). → the
    /// handle in the target's table (meaningful to the target only). `TableFull` if the target's
    /// table has no free slot. `InvalidArgument` for an address-space capability given to a
    /// space that has never had a thread: such a space goes when the last capability to it does,
    /// and spaces nobody runs naming one another would otherwise keep each other for good.
    CapGrant = 16,
    /// Creates an endpoint. → a handle carrying every endpoint right. `OutOfMemory`, `TableFull`.
    ///
    /// An endpoint lives while any capability names it, not while some thread receives on it:
    /// when a server thread dies, the calls it had received fail with `Killed` (see
    /// [`ThreadKill`](Self::ThreadKill)), but callers still queued on the endpoint stay queued
    /// for the next receiver. When the last capability goes, every thread still queued on it
    /// gets `Killed`, and a capability its message carried comes back to it.
    EndpointCreate = 17,
    /// Creates a notification, its word 0. → a handle carrying every notification right.
    /// `OutOfMemory`, `TableFull`.
    NotificationCreate = 18,
    /// Creates an empty address space (a process: no mappings, an empty capability table, no
    /// threads). → a handle carrying every address-space right. `OutOfMemory`, `TableFull`.
    AddressSpaceCreate = 19,
    /// Allocates physically contiguous, zeroed frames: `a0` number of frames (at least 1, else
    /// `InvalidArgument`). → a frame-range handle carrying every frame-range right.
    /// `OutOfMemory`, `TableFull`.
    FrameAlloc = 20,
    /// Maps a whole frame range: `a0` address space (`MAP`), `a1` frame range (`MAP`), `a2` user
    /// virtual address (page-aligned, the whole range below the user limit, else `BadAddress`),
    /// `a3` access: [`Rights`](crate::Rights) among `READ`, `WRITE`, `EXECUTE`, all held by the
    /// frame-range capability (`InsufficientRights`), never `WRITE` with `EXECUTE`
    /// (`InvalidArgument`). → 0. `Busy` if a page of the target range is already mapped;
    /// `OutOfMemory` for page tables.
    Map = 21,
    /// Unmaps pages: `a0` address space (`MAP`), `a1` page-aligned user virtual address, `a2`
    /// number of pages. → 0. Pages of the range that are not mapped are skipped.
    Unmap = 22,
    /// Creates a thread in an address space, not yet running: `a0` address space (`CONTROL`), `a1`
    /// entry point, `a2` initial stack pointer, `a3` a word the thread finds in its slot `a0`
    /// register. → a thread handle carrying every thread right. `BadAddress` if the entry point is
    /// not below [`USER_END`](crate::init::USER_END) or the stack pointer is above it;
    /// `StaleCapability` if the space was killed ([`SpaceKill`](Self::SpaceKill), or the kill
    /// after a fault nobody resolved), even while its last threads are still ending;
    /// `OutOfMemory`, `TableFull`.
    ThreadCreate = 23,
    /// Starts a thread made by [`ThreadCreate`](Self::ThreadCreate): `a0` thread (`CONTROL`). → 0.
    /// `InvalidArgument` if it was already started. A thread whose last capability is deleted
    /// before it was started can never be started: the kernel ends it (as killed) and reclaims it.
    ThreadStart = 24,
    /// Kills a thread: `a0` thread (`CONTROL`). → 0 (from a thread killing itself: never
    /// returns). A thread blocked in IPC is withdrawn first: a message it was sending is not
    /// delivered, and callers waiting for its reply get `Killed`.
    ThreadKill = 25,
    /// Waits for a thread to end: `a0` thread (`CONTROL`), `a7` timeout. → its exit code (the low
    /// 32 bits of what it passed to [`ThreadExit`](Self::ThreadExit), zero-extended, so it is never
    /// an error code). `Killed` if it was killed (by [`ThreadKill`](Self::ThreadKill), or by the
    /// kernel after a fault nobody resolved). `WouldBlock`, `Timeout` as for `Recv`. One thread at a
    /// time may wait for a given thread; another gets `Busy`. Joining a thread reclaims it: its
    /// handles then go stale. Joining oneself is `InvalidArgument`.
    ThreadJoin = 26,
    /// Sets the pager of an address space: `a0` address space (`CONTROL`), `a1` endpoint (`SEND`
    /// and `CALL`), or [`CapHandle::NULL`](crate::CapHandle::NULL) for none. → 0. From then on a
    /// page fault of any thread in the space is a call on that endpoint (see [`crate::fault`]),
    /// and so is any other fault while the space has no exception handler
    /// ([`SetExceptionHandler`](Self::SetExceptionHandler)); a system call whose buffer faults
    /// asks it too (see the module documentation). With no pager a faulting process is killed.
    SetPager = 27,
    /// Reports the result of a user test in the console protocol (`[test] NAME ok`,
    /// `[test] NAME FAILED reason` or `[test] NAME skipped reason`), counted in the kernel's
    /// closing `[done]` line: `a0`/`a1` name pointer and length (1..=64 bytes of `[a-z0-9_]`,
    /// else `InvalidArgument`), `a2` a [`TestStatus`], `a3`/`a4` reason pointer and length (at
    /// most 200 bytes, ignored when passed; a skip must say why: a reason of only spaces is
    /// `InvalidArgument`). → 0. Both buffers may be demand-paged, as for
    /// [`DebugWrite`](Self::DebugWrite). Only in a kernel built for testing (else
    /// `NoSuchSyscall`), and only from the initial process (init; any other gets
    /// `InsufficientRights`), for an init test of the test catalog that the boot's `test=`
    /// selects (else `InvalidArgument`), once per test (a second report is `Busy`). A refused
    /// report prints nothing.
    TestReport = 28,
    /// Reads the kernel's monotonic clock. → nanoseconds since boot. For timeouts and reports,
    /// never for benchmarks (those read the cycle counter directly).
    ClockNanos = 29,
    /// Says what a thread is doing, from the kernel's own records: `a0` thread (`CONTROL`). → a
    /// [`ThreadStatus`] value; `a1..a4` its detail (every slot written, 0 where the status has
    /// none):
    ///
    /// - [`Exited`](ThreadStatus::Exited): `a1` the exit code, as [`ThreadJoin`](Self::ThreadJoin)
    ///   would return it;
    /// - [`Faulted`](ThreadStatus::Faulted) (its fault is with its pager) and
    ///   [`Killed`](ThreadStatus::Killed): `a1..a4` words 0..3 of the fault message
    ///   ([`crate::fault`]: kind, address, instruction pointer, access bits) of the fault it
    ///   waits on, or that killed it; all 0 for a thread killed for another reason (by
    ///   [`ThreadKill`](Self::ThreadKill), or because another thread of its process faulted).
    ///
    /// An ended thread reads [`Exited`](ThreadStatus::Exited) or [`Killed`](ThreadStatus::Killed)
    /// until it is joined (its handles then go stale). A snapshot, like every answer about another
    /// thread: it may have moved on by the time the caller looks, except that an ended thread
    /// stays ended and a blocked thread stays blocked until someone (a partner, a timeout, a
    /// kill) moves it. Never blocks, changes nothing. `Busy` if the thread kept changing state
    /// while the kernel assembled the answer (possible only with several CPUs).
    ThreadState = 30,
    /// Sets the exception handler of an address space: `a0` address space (`CONTROL`), `a1`
    /// endpoint (`SEND` and `CALL`), or [`CapHandle::NULL`](crate::CapHandle::NULL) for none.
    /// → 0. The handler receives the faults of the space's threads that are not page faults
    /// ([`FaultKind::UndefinedInstruction`](crate::fault::FaultKind::UndefinedInstruction) and
    /// [`FaultKind::Other`](crate::fault::FaultKind::Other): general protection, alignment,
    /// breakpoint, a privileged instruction), as a call with the fault message of
    /// [`crate::fault`] and the badge of the capability given here; page faults still go to the
    /// pager ([`SetPager`](Self::SetPager)). Without a handler those faults go to the pager, and
    /// with neither the process is killed (the forwarding rule in [`crate::fault`]).
    ///
    /// Errors: the handle checks of `a0` (`AddressSpace`, `CONTROL`) and of `a1` unless it is
    /// null (`Endpoint`, `SEND | CALL`); nothing changes on failure. The endpoint is named by
    /// ID, like the pager: the kernel keeps no reference, so once the endpoint is gone (its
    /// last capability deleted) a fault for the handler kills the process.
    SetExceptionHandler = 31,
    /// Ends every thread of an address space at once: `a0` address space (`CONTROL`). → 0
    /// (when the caller's own thread is in that space: never returns, the caller ends too, as
    /// killed).
    ///
    /// Every thread of the space ends as killed, whatever it is doing: running or ready,
    /// blocked in IPC (withdrawn as by [`ThreadKill`](Self::ThreadKill): a queued message is not
    /// delivered, callers waiting for its replies get `Killed`), waiting on a notification, in a
    /// join, in a fault call to its pager or exception handler (the held call's reply token goes
    /// stale: replying is `InvalidReply`), or created and never started. A thread other than
    /// the caller ends the next time it gets a CPU, before it runs another user instruction: a
    /// blocked one is woken for that, one never started is started. Threads of the space created
    /// by any process are included, and none can be added from the call on: `ThreadCreate` in
    /// the space is then `StaleCapability`. [`ThreadJoin`](Self::ThreadJoin) on any of them
    /// returns `Killed` and [`ThreadState`](Self::ThreadState) reads
    /// [`Killed`](ThreadStatus::Killed) with a zero fault.
    ///
    /// The space goes with its last thread, as when a process ends on its own: its capability
    /// table is released (an endpoint it held the last capability to is destroyed, and callers
    /// queued there get `Killed`), its memory unmapped, and every capability to it goes stale. A
    /// space with no thread (created, never given one) goes at once. Calling it again, or on a
    /// space already gone, is harmless: `StaleCapability` once the space is gone, 0 while its
    /// threads are still ending.
    ///
    /// Errors: only the handle checks of `a0` (`AddressSpace`, `CONTROL`); nothing changes on
    /// failure.
    SpaceKill = 32,
}

/// What a thread is doing (the value [`Syscall::ThreadState`] returns). A thread in IPC is
/// reported by what it waits for, whatever the scheduler is doing with it at that instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u64)]
pub enum ThreadStatus {
    /// Created by [`Syscall::ThreadCreate`], not started yet.
    NotStarted = 1,
    /// Runnable, waiting for a CPU (or woken and not yet run: a thread killed or whose operation
    /// just completed reads `Ready` until it runs).
    Ready = 2,
    /// On a CPU (on one CPU: only ever the caller itself).
    Running = 3,
    /// Queued on an endpoint in [`Syscall::Send`], no receiver has taken the message yet.
    Sending = 4,
    /// Queued on an endpoint in [`Syscall::Call`], no receiver has taken the call yet.
    Calling = 5,
    /// In [`Syscall::Call`]: a receiver took the call; waiting for the reply.
    AwaitingReply = 6,
    /// Queued on an endpoint to receive ([`Syscall::Recv`], [`Syscall::ReplyRecv`]).
    Receiving = 7,
    /// Waiting on a notification ([`Syscall::Wait`]).
    Waiting = 8,
    /// Waiting for another thread to end ([`Syscall::ThreadJoin`]).
    Joining = 9,
    /// Stopped on a fault that its process's pager has not answered yet (`a1..a4`: the fault).
    Faulted = 10,
    /// Blocked in the kernel on nothing listed above (with several CPUs: for an instant, when its
    /// operation was completed and it is being woken).
    Blocked = 11,
    /// Ended by [`Syscall::ThreadExit`] (`a1`: the exit code).
    Exited = 12,
    /// Ended by a kill (`a1..a4`: the fault that killed it, or 0).
    Killed = 13,
}

impl ThreadStatus {
    /// Decodes the result of [`Syscall::ThreadState`]; `None` for a value the kernel never sends.
    #[must_use]
    pub const fn from_raw(raw: u64) -> Option<Self> {
        Some(match raw {
            1 => Self::NotStarted,
            2 => Self::Ready,
            3 => Self::Running,
            4 => Self::Sending,
            5 => Self::Calling,
            6 => Self::AwaitingReply,
            7 => Self::Receiving,
            8 => Self::Waiting,
            9 => Self::Joining,
            10 => Self::Faulted,
            11 => Self::Blocked,
            12 => Self::Exited,
            13 => Self::Killed,
            _ => return None,
        })
    }

    /// The value.
    #[must_use]
    pub const fn into_raw(self) -> u64 {
        self as u64
    }

    /// Whether the thread has ended (exited or killed).
    #[must_use]
    pub const fn has_ended(self) -> bool {
        matches!(self, Self::Exited | Self::Killed)
    }
}

/// How a user test ended (`TestReport`'s `a2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum TestStatus {
    /// It passed.
    Passed = 0,
    /// It failed (the reason says why).
    Failed = 1,
    /// This machine cannot run it (the reason says why).
    Skipped = 2,
}

impl TestStatus {
    /// Decodes `a2`; `None` for any other value.
    #[must_use]
    pub const fn from_raw(raw: u64) -> Option<Self> {
        match raw {
            0 => Some(Self::Passed),
            1 => Some(Self::Failed),
            2 => Some(Self::Skipped),
            _ => None,
        }
    }
}

impl Syscall {
    /// Every system call, in numeric order.
    pub const ALL: [Syscall; 32] = [
        Syscall::Null,
        Syscall::DebugWrite,
        Syscall::Yield,
        Syscall::ThreadExit,
        Syscall::Send,
        Syscall::Recv,
        Syscall::Call,
        Syscall::Reply,
        Syscall::ReplyRecv,
        Syscall::Signal,
        Syscall::Wait,
        Syscall::Poll,
        Syscall::CapCopy,
        Syscall::CapDelete,
        Syscall::CapIdentify,
        Syscall::CapGrant,
        Syscall::EndpointCreate,
        Syscall::NotificationCreate,
        Syscall::AddressSpaceCreate,
        Syscall::FrameAlloc,
        Syscall::Map,
        Syscall::Unmap,
        Syscall::ThreadCreate,
        Syscall::ThreadStart,
        Syscall::ThreadKill,
        Syscall::ThreadJoin,
        Syscall::SetPager,
        Syscall::TestReport,
        Syscall::ClockNanos,
        Syscall::ThreadState,
        Syscall::SetExceptionHandler,
        Syscall::SpaceKill,
    ];

    /// Decodes the number register; `None` (the kernel answers
    /// [`Error::NoSuchSyscall`](crate::Error::NoSuchSyscall)) for any other value, 0 included.
    #[must_use]
    pub const fn from_raw(raw: usize) -> Option<Self> {
        if raw == 0 || raw > Self::ALL.len() {
            return None;
        }
        // `ALL` is in numeric order from 1 with no gaps (a test checks it).
        Some(Self::ALL[raw - 1])
    }

    /// The number.
    #[must_use]
    pub const fn into_raw(self) -> usize {
        self as usize
    }

    /// The name, as in the source (for traces and reports).
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Null => "Null",
            Self::DebugWrite => "DebugWrite",
            Self::Yield => "Yield",
            Self::ThreadExit => "ThreadExit",
            Self::Send => "Send",
            Self::Recv => "Recv",
            Self::Call => "Call",
            Self::Reply => "Reply",
            Self::ReplyRecv => "ReplyRecv",
            Self::Signal => "Signal",
            Self::Wait => "Wait",
            Self::Poll => "Poll",
            Self::CapCopy => "CapCopy",
            Self::CapDelete => "CapDelete",
            Self::CapIdentify => "CapIdentify",
            Self::CapGrant => "CapGrant",
            Self::EndpointCreate => "EndpointCreate",
            Self::NotificationCreate => "NotificationCreate",
            Self::AddressSpaceCreate => "AddressSpaceCreate",
            Self::FrameAlloc => "FrameAlloc",
            Self::Map => "Map",
            Self::Unmap => "Unmap",
            Self::ThreadCreate => "ThreadCreate",
            Self::ThreadStart => "ThreadStart",
            Self::ThreadKill => "ThreadKill",
            Self::ThreadJoin => "ThreadJoin",
            Self::SetPager => "SetPager",
            Self::TestReport => "TestReport",
            Self::ClockNanos => "ClockNanos",
            Self::ThreadState => "ThreadState",
            Self::SetExceptionHandler => "SetExceptionHandler",
            Self::SpaceKill => "SpaceKill",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_in_numeric_order_without_gaps() {
        for (i, syscall) in Syscall::ALL.into_iter().enumerate() {
            assert_eq!(syscall.into_raw(), i + 1, "{syscall:?}");
        }
    }

    #[test]
    fn every_number_round_trips() {
        for syscall in Syscall::ALL {
            assert_eq!(Syscall::from_raw(syscall.into_raw()), Some(syscall));
        }
    }

    /// The values are ABI: pinned literally (append, never renumber).
    #[test]
    fn thread_status_values_are_pinned() {
        use ThreadStatus::*;
        let pinned = [
            (NotStarted, 1),
            (Ready, 2),
            (Running, 3),
            (Sending, 4),
            (Calling, 5),
            (AwaitingReply, 6),
            (Receiving, 7),
            (Waiting, 8),
            (Joining, 9),
            (Faulted, 10),
            (Blocked, 11),
            (Exited, 12),
            (Killed, 13),
        ];
        for (status, raw) in pinned {
            assert_eq!(status.into_raw(), raw, "{status:?}");
        }
    }

    #[test]
    fn thread_status_round_trips_and_refuses_the_rest() {
        for raw in 1..=13 {
            let status = ThreadStatus::from_raw(raw).expect("1..=13 are statuses");
            assert_eq!(status.into_raw(), raw);
        }
        assert_eq!(ThreadStatus::from_raw(0), None);
        assert_eq!(ThreadStatus::from_raw(14), None);
        assert_eq!(ThreadStatus::from_raw(u64::MAX), None);
        assert!(ThreadStatus::Exited.has_ended() && ThreadStatus::Killed.has_ended());
        assert!(!ThreadStatus::Faulted.has_ended());
    }

    #[test]
    fn other_numbers_are_refused() {
        assert_eq!(Syscall::from_raw(0), None);
        assert_eq!(Syscall::from_raw(Syscall::ALL.len() + 1), None);
        assert_eq!(Syscall::from_raw(usize::MAX), None);
        assert_eq!(Syscall::from_raw(1 << 32 | 1), None);
    }
}
