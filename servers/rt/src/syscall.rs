//! System calls: the raw entry instruction and one typed wrapper per [`abi::Syscall`].
//!
//! Owns the inline assembly that enters the kernel ([`syscall`]), exactly per [`abi::regs`]:
//! on x86_64 `syscall` with the number in `rax`, slots `a0..a8` in `rdi, rsi, rdx, r10, r8, r9,
//! r12, r13, r14` and `rcx`/`r11` destroyed; on AArch64 `svc #0` with the number in `x8` and
//! slots in `x0..x7, x9`. Every slot is passed `inout`, so the compiler assumes any of them may
//! change (the kernel writes outputs into them) and reads them back afterwards.
//!
//! The typed wrappers decode the result register with [`abi::result_from_raw`] and read output
//! slots only on success (the ABI defines them on success only). They must never retry, swallow
//! or reinterpret an error: callers (and tests) need the exact [`abi::Error`] the kernel returned.
//! They must never pass a pointer to memory that does not live for the duration of the call.
//!
//! # Safety of the wrappers
//!
//! Most calls cannot affect the caller's memory and are safe. The exceptions are `unsafe`:
//! [`unmap`] (it can remove memory the caller's own code is using), [`thread_create`] (in the
//! caller's own address space it makes a thread that will run arbitrary code on arbitrary stack
//! memory once started), and [`raw_syscall_result`]/[`syscall`] (any call, any argument).
//! [`map`] is safe: mapping never replaces a mapped page (the kernel refuses with `Busy`), so it
//! can only make new memory appear.

use abi::regs::ipc;
use abi::{
    Badge, CapHandle, Error, MSG_WORDS, MessageInfo, ObjectType, ReplyToken, Result, Rights,
    Syscall, Timeout, result_from_raw,
};

/// Number of argument slots (`a0..a8`), as in [`abi::regs::ARG_SLOTS`].
pub const SLOTS: usize = abi::regs::ARG_SLOTS;

/// Enters the kernel with system-call number `nr` and slots `args` (`a0..a8`); returns the raw
/// result register and all nine slots as the kernel left them.
///
/// # Safety
///
/// The call can do anything the caller's capabilities allow, including things that break the
/// memory safety of the calling program: `Unmap` of its own pages removes memory Rust code may
/// still reference, `ThreadExit`/`ThreadKill` of the caller ends it with live borrows on its
/// stack, `ThreadCreate` in its own space starts code on memory it did not reserve, and a pointer
/// argument lets the kernel read (or write) caller memory. The caller must ensure that the
/// particular call and arguments cannot do any of this to memory Rust still uses.
#[inline(always)]
pub unsafe fn syscall(nr: usize, args: [u64; SLOTS]) -> (u64, [u64; SLOTS]) {
    let [
        mut a0,
        mut a1,
        mut a2,
        mut a3,
        mut a4,
        mut a5,
        mut a6,
        mut a7,
        mut a8,
    ] = args;
    let result: u64;
    #[cfg(target_arch = "x86_64")]
    {
        let mut rax = nr as u64;
        // The instruction follows abi::regs::X86_64: every slot register is inout, rax carries
        // the number in and the result out, rcx and r11 are destroyed by `syscall`. The kernel
        // never touches the user stack (abi::regs), hence `nostack`; flags are not preserved.
        // SAFETY: the caller upholds the contract of the particular call (see the function docs).
        unsafe {
            core::arch::asm!(
                "syscall",
                inout("rax") rax,
                inout("rdi") a0,
                inout("rsi") a1,
                inout("rdx") a2,
                inout("r10") a3,
                inout("r8") a4,
                inout("r9") a5,
                inout("r12") a6,
                inout("r13") a7,
                inout("r14") a8,
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack),
            );
        }
        result = rax;
    }
    #[cfg(target_arch = "aarch64")]
    {
        // SAFETY: as above; the instruction follows abi::regs::AARCH64: x8 carries the number
        // (preserved), x0..x7 and x9 are the slots (inout), the result comes back in x0 (slot
        // a0). The kernel never touches the user stack.
        unsafe {
            core::arch::asm!(
                "svc #0",
                inout("x0") a0,
                inout("x1") a1,
                inout("x2") a2,
                inout("x3") a3,
                inout("x4") a4,
                inout("x5") a5,
                inout("x6") a6,
                inout("x7") a7,
                in("x8") nr as u64,
                inout("x9") a8,
                options(nostack),
            );
        }
        result = a0;
    }
    (result, [a0, a1, a2, a3, a4, a5, a6, a7, a8])
}

/// Makes system call `nr` with `args` and decodes only the result register: for tests that
/// pass deliberately bad arguments or unknown numbers (`syscall_bad_args`).
///
/// # Safety
///
/// As for [`syscall`]: the caller must ensure the call cannot invalidate memory the program
/// still uses (a call the kernel refuses has no effect, but a test must also be sound if the
/// kernel wrongly accepts it).
pub unsafe fn raw_syscall_result(nr: usize, args: [u64; SLOTS]) -> Result<usize> {
    // SAFETY: forwarded to the caller.
    let (result, _) = unsafe { syscall(nr, args) };
    result_from_raw(result as usize)
}

/// A call whose arguments are plain values (handles, numbers, bits): it cannot touch the
/// caller's memory.
#[inline(always)]
fn value_call(call: Syscall, args: [u64; SLOTS]) -> (Result<usize>, [u64; SLOTS]) {
    debug_assert!(
        !matches!(
            call,
            Syscall::Unmap
                | Syscall::ThreadCreate
                | Syscall::ThreadExit
                | Syscall::DebugWrite
                | Syscall::TestReport
        ),
        "{} is not a value call",
        call.name()
    );
    // Only used for calls whose arguments are handles, numbers and bit sets (checked above in
    // debug builds). ThreadKill of the caller itself (or SpaceKill of its own space) ends it like
    // a panic would: nothing runs afterwards that could observe a dangling borrow.
    // SAFETY: none of these calls can unmap, overwrite or free this program's memory or start code.
    let (raw, slots) = unsafe { syscall(call.into_raw(), args) };
    (result_from_raw(raw as usize), slots)
}

/// A failed system call and the step it was part of, for error messages (`"step: error"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepError {
    /// What the program was doing (usually the call's name).
    pub step: &'static str,
    /// What the kernel returned.
    pub error: Error,
}

impl core::fmt::Display for StepError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}: {}", self.step, self.error)
    }
}

/// Names the step of a failed call: `frame_alloc(4).map_err(step("stack frames"))?`.
pub fn step(step: &'static str) -> impl Fn(Error) -> StepError {
    move |error| StepError { step, error }
}

fn args1(a0: u64) -> [u64; SLOTS] {
    [a0, 0, 0, 0, 0, 0, 0, 0, 0]
}

fn unit(result: Result<usize>) -> Result<()> {
    result.map(|_| ())
}

fn handle(result: Result<usize>) -> Result<CapHandle> {
    result.map(|raw| CapHandle::from_raw(raw as u64))
}

// ---------------------------------------------------------------------------------------------
// Messages.

/// An IPC message: descriptor, data words and (if `info.has_cap()`) one capability.
///
/// Words past `info.length()` are not delivered (the receiver sees 0). `cap` is only read by the
/// kernel when the info's capability flag is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Message {
    /// Label, length and capability flag.
    pub info: MessageInfo,
    /// Data words `0..MSG_WORDS`.
    pub words: [u64; MSG_WORDS],
    /// The capability to transfer (sending) or the received one (receiving; `NULL` if none).
    pub cap: CapHandle,
}

impl Message {
    /// A message with label `label` carrying all [`MSG_WORDS`] words `words`, no capability.
    #[must_use]
    pub fn new(label: u32, words: [u64; MSG_WORDS]) -> Self {
        Self {
            info: label_info(label, MSG_WORDS, false),
            words,
            cap: CapHandle::NULL,
        }
    }

    /// A message with label `label`, no words and no capability.
    #[must_use]
    pub fn label_only(label: u32) -> Self {
        Self {
            info: label_info(label, 0, false),
            words: [0; MSG_WORDS],
            cap: CapHandle::NULL,
        }
    }

    /// The same message, transferring `cap` (sets the info's capability flag).
    #[must_use]
    pub fn with_cap(mut self, cap: CapHandle) -> Self {
        self.info = self.info.with_cap(true);
        self.cap = cap;
        self
    }

    /// The message's label.
    #[must_use]
    pub fn label(&self) -> u32 {
        self.info.label()
    }

    /// Puts the message into the IPC slots of `args` (info, words, capability).
    fn store(&self, args: &mut [u64; SLOTS]) {
        args[ipc::INFO] = self.info.into_raw();
        for (i, &slot) in ipc::WORDS.iter().enumerate() {
            args[slot] = self.words[i];
        }
        args[ipc::CAP] = self.cap.into_raw();
    }

    /// Reads a message from the IPC output slots. A descriptor the ABI does not allow (a kernel
    /// bug) is reported as [`Error::Unknown`] rather than guessed at.
    fn load(slots: &[u64; SLOTS]) -> Result<Self> {
        let info = MessageInfo::from_raw(slots[ipc::INFO]).map_err(|_| Error::Unknown)?;
        let mut words = [0; MSG_WORDS];
        for (i, &slot) in ipc::WORDS.iter().enumerate() {
            words[i] = slots[slot];
        }
        Ok(Self {
            info,
            words,
            cap: CapHandle::from_raw(slots[ipc::CAP]),
        })
    }
}

/// A [`MessageInfo`] from values known to be valid (`length <= MSG_WORDS`).
fn label_info(label: u32, length: usize, cap: bool) -> MessageInfo {
    match MessageInfo::new(label, length.min(MSG_WORDS), cap) {
        Ok(info) => info,
        // Unreachable: the length was clamped to MSG_WORDS.
        Err(_) => MessageInfo::EMPTY,
    }
}

/// What [`recv`] and [`reply_recv`] return: the message, the sender's badge and the reply token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// The message (its `cap` is the received capability, or `NULL`).
    pub msg: Message,
    /// The badge of the capability the sender used ([`abi::UNBADGED`] if none).
    pub badge: Badge,
    /// The token to answer the call with; [`ReplyToken::NONE`] for a `Send`.
    pub reply: ReplyToken,
}

impl Received {
    fn load(slots: &[u64; SLOTS]) -> Result<Self> {
        Ok(Self {
            msg: Message::load(slots)?,
            badge: slots[ipc::BADGE],
            reply: ReplyToken::from_raw(slots[ipc::REPLY]),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Basic calls.

/// `Null`: enters and leaves the kernel.
pub fn null() -> Result<()> {
    unit(value_call(Syscall::Null, [0; SLOTS]).0)
}

/// `DebugWrite`: writes `bytes` (at most [`abi::syscall::DEBUG_WRITE_MAX`]) to the kernel
/// console; returns the number of bytes written.
pub fn debug_write(bytes: &[u8]) -> Result<usize> {
    let mut args = args1(bytes.as_ptr() as u64);
    args[1] = bytes.len() as u64;
    // SAFETY: the kernel only reads `bytes.len()` bytes at `bytes.as_ptr()`, which the borrow
    // keeps alive and unchanged for the duration of the call.
    let (raw, _) = unsafe { syscall(Syscall::DebugWrite.into_raw(), args) };
    result_from_raw(raw as usize)
}

/// `Yield`: gives the rest of the time slice to another ready thread of the same priority.
pub fn yield_now() -> Result<()> {
    unit(value_call(Syscall::Yield, [0; SLOTS]).0)
}

/// `ThreadExit`: ends the calling thread with exit code `code` (a joiner sees its low 32 bits).
pub fn thread_exit(code: i64) -> ! {
    // SAFETY: ending the calling thread cannot invalidate memory another thread uses: only this
    // thread's own stack becomes unused, and nothing on it is referenced from elsewhere (a
    // program that lends its stack memory to another thread must not call this first).
    unsafe {
        syscall(Syscall::ThreadExit.into_raw(), args1(code as u64));
    }
    // The kernel never returns from ThreadExit; if it ever did, trap rather than run on.
    loop {
        trap()
    }
}

/// Executes the architecture's undefined instruction (a fault nobody should resolve).
fn trap() {
    // SAFETY: `ud2` / `udf #0` only raise an exception; they read and write nothing.
    unsafe {
        #[cfg(target_arch = "x86_64")]
        core::arch::asm!("ud2", options(nomem, nostack));
        #[cfg(target_arch = "aarch64")]
        core::arch::asm!("udf #0", options(nomem, nostack));
    }
}

// ---------------------------------------------------------------------------------------------
// IPC.

fn ipc_args(endpoint: CapHandle, msg: Option<&Message>, timeout: Timeout) -> [u64; SLOTS] {
    let mut args = [0; SLOTS];
    args[ipc::ENDPOINT] = endpoint.into_raw();
    if let Some(msg) = msg {
        msg.store(&mut args);
    }
    args[ipc::TIMEOUT] = timeout.into_raw();
    args
}

/// `Send`: sends `msg` on `endpoint` (`SEND`; `GRANT` on `msg.cap` if attached) and waits until a
/// receiver takes it, at most `timeout`.
pub fn send(endpoint: CapHandle, msg: &Message, timeout: Timeout) -> Result<()> {
    unit(value_call(Syscall::Send, ipc_args(endpoint, Some(msg), timeout)).0)
}

/// `Recv`: waits (at most `timeout`) for a message on `endpoint` (`RECEIVE`).
pub fn recv(endpoint: CapHandle, timeout: Timeout) -> Result<Received> {
    let (result, slots) = value_call(Syscall::Recv, ipc_args(endpoint, None, timeout));
    result?;
    Received::load(&slots)
}

/// `Call`: sends `msg` on `endpoint` (`CALL`) and waits for the reply; `timeout` covers the whole
/// call. Returns the reply.
pub fn call(endpoint: CapHandle, msg: &Message, timeout: Timeout) -> Result<Message> {
    let (result, slots) = value_call(Syscall::Call, ipc_args(endpoint, Some(msg), timeout));
    result?;
    Message::load(&slots)
}

/// `Reply`: answers the call `token` names with `msg`, without waiting.
pub fn reply(msg: &Message, token: ReplyToken) -> Result<()> {
    let mut args = ipc_args(CapHandle::NULL, Some(msg), Timeout::POLL);
    args[ipc::REPLY] = token.into_raw();
    unit(value_call(Syscall::Reply, args).0)
}

/// `ReplyRecv`: answers the call `token` names with `msg`, then waits (at most `timeout`) for the
/// next message on `endpoint` (`RECEIVE`).
pub fn reply_recv(
    endpoint: CapHandle,
    msg: &Message,
    token: ReplyToken,
    timeout: Timeout,
) -> Result<Received> {
    let mut args = ipc_args(endpoint, Some(msg), timeout);
    args[ipc::REPLY] = token.into_raw();
    let (result, slots) = value_call(Syscall::ReplyRecv, args);
    result?;
    Received::load(&slots)
}

/// `Signal`: sets `bits` (OR the capability's badge) in `notification` (`SEND`).
pub fn signal(notification: CapHandle, bits: u64) -> Result<()> {
    let mut args = args1(notification.into_raw());
    args[1] = bits;
    unit(value_call(Syscall::Signal, args).0)
}

/// `Wait`: waits (at most `timeout`) until `notification` (`RECEIVE`) has bits, takes and
/// returns them.
pub fn wait(notification: CapHandle, timeout: Timeout) -> Result<u64> {
    let mut args = args1(notification.into_raw());
    args[ipc::TIMEOUT] = timeout.into_raw();
    value_call(Syscall::Wait, args).0.map(|bits| bits as u64)
}

/// `Poll`: takes and returns the bits of `notification` (`RECEIVE`), 0 if none.
pub fn poll(notification: CapHandle) -> Result<u64> {
    value_call(Syscall::Poll, args1(notification.into_raw()))
        .0
        .map(|bits| bits as u64)
}

// ---------------------------------------------------------------------------------------------
// Capabilities.

/// What [`cap_identify`] says about a capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapInfo {
    /// The type of the object it names.
    pub object: ObjectType,
    /// Its rights.
    pub rights: Rights,
    /// Its badge ([`abi::UNBADGED`] if none).
    pub badge: Badge,
}

/// `CapCopy`: copies `cap` with `rights` (a subset) and `badge` (0 keeps the source's).
pub fn cap_copy(cap: CapHandle, rights: Rights, badge: Badge) -> Result<CapHandle> {
    let mut args = args1(cap.into_raw());
    args[1] = rights.into_raw();
    args[2] = badge;
    handle(value_call(Syscall::CapCopy, args).0)
}

/// `CapDelete`: deletes `cap` from the caller's table.
pub fn cap_delete(cap: CapHandle) -> Result<()> {
    unit(value_call(Syscall::CapDelete, args1(cap.into_raw())).0)
}

/// `CapIdentify`: the type, rights and badge of `cap`. A type or rights value this ABI version
/// does not know (a newer or buggy kernel) is reported as [`Error::Unknown`].
pub fn cap_identify(cap: CapHandle) -> Result<CapInfo> {
    let (result, slots) = value_call(Syscall::CapIdentify, args1(cap.into_raw()));
    let raw_type = result? as u64;
    let object = ObjectType::from_raw(raw_type).ok_or(Error::Unknown)?;
    let rights = Rights::from_raw(slots[1]).map_err(|_| Error::Unknown)?;
    Ok(CapInfo {
        object,
        rights,
        badge: slots[2],
    })
}

/// `CapGrant`: copies `cap` (`GRANT`) with `rights` into the table of `space` (`CONTROL`); returns
/// the handle in the target's table.
pub fn cap_grant(cap: CapHandle, space: CapHandle, rights: Rights) -> Result<CapHandle> {
    let mut args = args1(cap.into_raw());
    args[1] = space.into_raw();
    args[2] = rights.into_raw();
    handle(value_call(Syscall::CapGrant, args).0)
}

// ---------------------------------------------------------------------------------------------
// Objects and memory.

/// `EndpointCreate`: a new endpoint, every endpoint right.
pub fn endpoint_create() -> Result<CapHandle> {
    handle(value_call(Syscall::EndpointCreate, [0; SLOTS]).0)
}

/// `NotificationCreate`: a new notification (word 0), every notification right.
pub fn notification_create() -> Result<CapHandle> {
    handle(value_call(Syscall::NotificationCreate, [0; SLOTS]).0)
}

/// `AddressSpaceCreate`: a new empty address space, every address-space right.
pub fn address_space_create() -> Result<CapHandle> {
    handle(value_call(Syscall::AddressSpaceCreate, [0; SLOTS]).0)
}

/// `FrameAlloc`: `frames` physically contiguous, zeroed frames, every frame-range right.
pub fn frame_alloc(frames: usize) -> Result<CapHandle> {
    handle(value_call(Syscall::FrameAlloc, args1(frames as u64)).0)
}

/// `Map`: maps the whole frame range `frames` (`MAP`) into `space` (`MAP`) at page-aligned `va`
/// with `access` (among `READ`, `WRITE`, `EXECUTE`; never `WRITE` with `EXECUTE`).
///
/// Safe even for the caller's own space: the kernel refuses (`Busy`) to map over a mapped page,
/// so no memory the program uses can be replaced.
pub fn map(space: CapHandle, frames: CapHandle, va: u64, access: Rights) -> Result<()> {
    let mut args = args1(space.into_raw());
    args[1] = frames.into_raw();
    args[2] = va;
    args[3] = access.into_raw();
    unit(value_call(Syscall::Map, args).0)
}

/// `Unmap`: unmaps `pages` pages at page-aligned `va` in `space` (`MAP`); unmapped pages are
/// skipped.
///
/// # Safety
///
/// If `space` is the caller's own address space, no memory in the range may still be in use by
/// the program (no live reference, no stack, no code it will run): after the call, accessing it
/// faults. For any other address space the call is harmless to the caller.
pub unsafe fn unmap(space: CapHandle, va: u64, pages: usize) -> Result<()> {
    let mut args = args1(space.into_raw());
    args[1] = va;
    args[2] = pages as u64;
    // SAFETY: forwarded to the caller (see above).
    let (raw, _) = unsafe { syscall(Syscall::Unmap.into_raw(), args) };
    unit(result_from_raw(raw as usize))
}

// ---------------------------------------------------------------------------------------------
// Threads.

/// `ThreadCreate`: a thread in `space` (`CONTROL`), not yet running, that will start at `entry`
/// with stack pointer `stack_top` and slot `a0` = `arg`.
///
/// # Safety
///
/// If `space` is the caller's own address space, once started the thread runs `entry` on the
/// caller's memory: `entry` must be code that is sound to run with `arg` as its argument, and
/// the stack below `stack_top` must be mapped memory nothing else uses (see
/// [`crate::thread::spawn_local`] for the safe way). For any other address space the call cannot
/// affect the caller's memory.
pub unsafe fn thread_create(
    space: CapHandle,
    entry: u64,
    stack_top: u64,
    arg: u64,
) -> Result<CapHandle> {
    let mut args = args1(space.into_raw());
    args[1] = entry;
    args[2] = stack_top;
    args[3] = arg;
    // SAFETY: forwarded to the caller (see above).
    let (raw, _) = unsafe { syscall(Syscall::ThreadCreate.into_raw(), args) };
    handle(result_from_raw(raw as usize))
}

/// `ThreadStart`: starts `thread` (`CONTROL`), made by [`thread_create`].
pub fn thread_start(thread: CapHandle) -> Result<()> {
    unit(value_call(Syscall::ThreadStart, args1(thread.into_raw())).0)
}

/// `ThreadKill`: kills `thread` (`CONTROL`).
pub fn thread_kill(thread: CapHandle) -> Result<()> {
    unit(value_call(Syscall::ThreadKill, args1(thread.into_raw())).0)
}

/// `ThreadJoin`: waits (at most `timeout`) for `thread` (`CONTROL`) to end; returns the low 32
/// bits of its exit code. `Err(Killed)` if it was killed. The kernel zero-extends the code, so a
/// result with any of bits 32..64 set is not one the ABI allows: `Err(Unknown)`, never a
/// silently truncated value.
pub fn thread_join(thread: CapHandle, timeout: Timeout) -> Result<u32> {
    let mut args = args1(thread.into_raw());
    args[ipc::TIMEOUT] = timeout.into_raw();
    value_call(Syscall::ThreadJoin, args)
        .0
        .and_then(|code| u32::try_from(code).map_err(|_| Error::Unknown))
}

/// A fault as the kernel describes it: words 0..3 of the fault message ([`abi::fault`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultWords {
    /// What went wrong.
    pub kind: abi::fault::FaultKind,
    /// The faulting data address ([`abi::fault::FaultKind::Page`]), else 0.
    pub address: u64,
    /// The instruction pointer of the faulting instruction.
    pub pc: u64,
    /// [`abi::fault::access`] bits ([`abi::fault::FaultKind::Page`]), else 0.
    pub access: u64,
}

impl FaultWords {
    /// Decodes words 0..3 of a fault message; `None` if word 0 is not a [`FaultKind`](
    /// abi::fault::FaultKind).
    #[must_use]
    pub fn from_words([kind, address, pc, access]: [u64; 4]) -> Option<Self> {
        Some(Self {
            kind: abi::fault::FaultKind::from_raw(kind)?,
            address,
            pc,
            access,
        })
    }
}

/// What [`thread_state`] says a thread is doing ([`abi::syscall::ThreadStatus`] with its
/// detail decoded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadState {
    /// Not started yet.
    NotStarted,
    /// Runnable, waiting for a CPU (or woken and not yet run).
    Ready,
    /// On a CPU.
    Running,
    /// Queued to send on an endpoint (`Send`).
    Sending,
    /// Queued to call an endpoint (`Call`), not taken yet.
    Calling,
    /// Its call was taken; waiting for the reply.
    AwaitingReply,
    /// Queued to receive on an endpoint.
    Receiving,
    /// Waiting on a notification.
    Waiting,
    /// Waiting for another thread to end.
    Joining,
    /// Stopped on a fault its pager has not answered.
    Faulted(FaultWords),
    /// Blocked on nothing else listed.
    Blocked,
    /// Ended with this exit code.
    Exited(u32),
    /// Killed: by the fault given, or (`None`) by a kill.
    Killed(Option<FaultWords>),
}

/// `ThreadState`: what `thread` (`CONTROL`) is doing. A status or detail this ABI version does
/// not know (a newer or buggy kernel) is reported as [`Error::Unknown`]; so is a `Faulted` status
/// without a fault kind.
pub fn thread_state(thread: CapHandle) -> Result<ThreadState> {
    use abi::syscall::ThreadStatus as S;
    let (result, slots) = value_call(Syscall::ThreadState, args1(thread.into_raw()));
    let status = S::from_raw(result? as u64).ok_or(Error::Unknown)?;
    let detail = [slots[1], slots[2], slots[3], slots[4]];
    Ok(match status {
        S::NotStarted => ThreadState::NotStarted,
        S::Ready => ThreadState::Ready,
        S::Running => ThreadState::Running,
        S::Sending => ThreadState::Sending,
        S::Calling => ThreadState::Calling,
        S::AwaitingReply => ThreadState::AwaitingReply,
        S::Receiving => ThreadState::Receiving,
        S::Waiting => ThreadState::Waiting,
        S::Joining => ThreadState::Joining,
        S::Faulted => ThreadState::Faulted(FaultWords::from_words(detail).ok_or(Error::Unknown)?),
        S::Blocked => ThreadState::Blocked,
        // Zero-extended like ThreadJoin's result: anything above 32 bits is not the ABI's.
        S::Exited => ThreadState::Exited(u32::try_from(slots[1]).map_err(|_| Error::Unknown)?),
        S::Killed if detail == [0; 4] => ThreadState::Killed(None),
        S::Killed => {
            ThreadState::Killed(Some(FaultWords::from_words(detail).ok_or(Error::Unknown)?))
        }
    })
}

/// `SetPager`: makes `endpoint` (`SEND` and `CALL`; `NULL` for none) the pager of `space`
/// (`CONTROL`).
pub fn set_pager(space: CapHandle, endpoint: CapHandle) -> Result<()> {
    let mut args = args1(space.into_raw());
    args[1] = endpoint.into_raw();
    unit(value_call(Syscall::SetPager, args).0)
}

/// `SetExceptionHandler`: makes `endpoint` (`SEND` and `CALL`; `NULL` for none) the exception
/// handler of `space` (`CONTROL`): it receives the space's faults other than page faults (see
/// [`abi::fault`]).
pub fn set_exception_handler(space: CapHandle, endpoint: CapHandle) -> Result<()> {
    let mut args = args1(space.into_raw());
    args[1] = endpoint.into_raw();
    unit(value_call(Syscall::SetExceptionHandler, args).0)
}

/// `SpaceKill`: ends every thread of `space` (`CONTROL`); the space goes with its last thread
/// (at once if it has none). If `space` is the caller's own, the caller ends too and this never
/// returns.
pub fn space_kill(space: CapHandle) -> Result<()> {
    unit(value_call(Syscall::SpaceKill, args1(space.into_raw())).0)
}

// ---------------------------------------------------------------------------------------------
// Tests and time.

/// `TestReport`: reports user test `name` (1..=64 bytes of `[a-z0-9_]`) as `status`, with
/// `reason` (at most 200 bytes; ignored when passed).
pub fn test_report(name: &str, status: abi::syscall::TestStatus, reason: &str) -> Result<()> {
    let mut args = args1(name.as_ptr() as u64);
    args[1] = name.len() as u64;
    args[2] = status as u64;
    args[3] = reason.as_ptr() as u64;
    args[4] = reason.len() as u64;
    // SAFETY: the kernel only reads `name` and `reason` (pointer and length from live borrows,
    // unchanged for the duration of the call).
    let (raw, _) = unsafe { syscall(Syscall::TestReport.into_raw(), args) };
    unit(result_from_raw(raw as usize))
}

/// `ClockNanos`: nanoseconds since boot (the kernel's monotonic clock).
pub fn clock_nanos() -> Result<u64> {
    value_call(Syscall::ClockNanos, [0; SLOTS])
        .0
        .map(|nanos| nanos as u64)
}
