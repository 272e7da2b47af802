//! The system-call layer: decodes a call from the user registers, checks every argument and
//! capability, and runs it.
//!
//! Owns the dispatch by number and the calls that are not message passing: the console and test
//! report, capability management, object creation, memory mapping and threads (with
//! `ThreadState`, which only reads the thread, IPC, fault and exit records) and where faults go
//! (`SetPager`, `SetExceptionHandler`). IPC, notifications and the ends of threads (`ThreadKill`,
//! `SpaceKill`) are in `ipc.rs`, user buffers in `copy.rs`. It must never trust a register:
//! handles go through the capability table's checks, pointers through the user-copy path (which
//! may ask the pager), every other value through a decoder that returns `InvalidArgument`. A
//! failed call changes nothing.

use super::copy::{SyscallSite, copy_in};
use super::ipc;
use super::objects::{Evicted, kernel};
use super::{UserFrame, process_of, process_ref};
use crate::memory::{FRAMES, UserSpace, phys_to_virt};
use crate::platform::Machine;
use crate::sched;
use abi::init::{USER_END, USER_START};
use abi::syscall::ThreadStatus;
use abi::{CapHandle, Error, ObjectType, Rights, Syscall, Timeout};
use kernel_core::cap::{Capability, ObjectRef};
use kernel_core::hal::{Platform, UserRegisters};
use kernel_core::ipc::Blocked;
use kernel_core::memory_map::FRAME_SIZE;
use kernel_core::object::FrameRange;
use kernel_core::paging::{MapError, MapFlags};
use kernel_core::thread::ThreadId;

/// What a call produced.
pub enum Outcome {
    /// Success with a value for the result register.
    Value(u64),
    /// Failure.
    Fail(Error),
    /// The results are already in the registers (written by the call or by whoever completed it).
    Written,
}

impl From<Result<u64, Error>> for Outcome {
    fn from(result: Result<u64, Error>) -> Self {
        match result {
            Ok(value) => Outcome::Value(value),
            Err(error) => Outcome::Fail(error),
        }
    }
}

/// Most frames one `FrameAlloc` hands out (16 MiB).
const MAX_FRAME_ALLOC: u64 = 4096;
/// Most pages one `Unmap` covers.
const MAX_UNMAP_PAGES: u64 = 1 << 20;
/// Most bytes of a test name and of a failure reason.
#[cfg(feature = "testing")]
const TEST_NAME_MAX: usize = test_catalog::NAME_MAX;
#[cfg(feature = "testing")]
const TEST_REASON_MAX: usize = 200;

/// The system-call entry (registered with the arch crate).
pub fn on_syscall(frame: &mut UserFrame) {
    let outcome = match Syscall::from_raw(frame.syscall_number() as usize) {
        Some(call) => dispatch(call, frame),
        None => Outcome::Fail(Error::NoSuchSyscall),
    };
    match outcome {
        Outcome::Value(value) => frame.set_result(value),
        Outcome::Fail(error) => frame.set_result(error.into_raw() as u64),
        Outcome::Written => {}
    }
    if sched::kill_requested() {
        ipc::exit_current(sched::KILLED_EXIT_CODE);
    }
}

fn dispatch(call: Syscall, frame: &mut UserFrame) -> Outcome {
    let a = |i: usize| frame.slot(i);
    match call {
        Syscall::Null => Outcome::Value(0),
        Syscall::DebugWrite => debug_write(SyscallSite::of(frame), a(0), a(1)).into(),
        Syscall::Yield => {
            sched::yield_now();
            Outcome::Value(0)
        }
        Syscall::ThreadExit => ipc::exit_current(i64::from(a(0) as u32)),
        Syscall::Send => ipc::send(frame),
        Syscall::Recv => ipc::recv(frame),
        Syscall::Call => ipc::call(frame),
        Syscall::Reply => ipc::reply(frame),
        Syscall::ReplyRecv => ipc::reply_recv(frame),
        Syscall::Signal => ipc::signal(a(0), a(1)).into(),
        Syscall::Wait => ipc::wait(a(0), a(7)),
        Syscall::Poll => ipc::poll(a(0)).into(),
        Syscall::CapCopy => cap_copy(a(0), a(1), a(2)).into(),
        Syscall::CapDelete => cap_delete(a(0)).into(),
        Syscall::CapIdentify => cap_identify(frame),
        Syscall::CapGrant => cap_grant(a(0), a(1), a(2)).into(),
        Syscall::EndpointCreate => create_object(ObjectKind::Endpoint).into(),
        Syscall::NotificationCreate => create_object(ObjectKind::Notification).into(),
        Syscall::AddressSpaceCreate => create_object(ObjectKind::AddressSpace).into(),
        Syscall::FrameAlloc => frame_alloc(a(0)).into(),
        Syscall::Map => map(a(0), a(1), a(2), a(3)).into(),
        Syscall::Unmap => unmap(a(0), a(1), a(2)).into(),
        Syscall::ThreadCreate => thread_create(a(0), a(1), a(2), a(3)).into(),
        Syscall::ThreadStart => thread_start(a(0)).into(),
        Syscall::ThreadKill => ipc::thread_kill(a(0)),
        Syscall::ThreadJoin => ipc::thread_join(a(0), a(7)),
        Syscall::SetPager => set_pager(a(0), a(1)).into(),
        Syscall::TestReport => {
            test_report(SyscallSite::of(frame), a(0), a(1), a(2), a(3), a(4)).into()
        }
        Syscall::ClockNanos => Outcome::Value(Machine::now_ns()),
        Syscall::ThreadState => thread_state(frame),
        Syscall::SetExceptionHandler => set_exception_handler(a(0), a(1)).into(),
        Syscall::SpaceKill => ipc::space_kill(a(0)),
    }
}

/// The calling thread's process ID.
pub fn my_process() -> kernel_core::cap::AddressSpaceId {
    process_of(sched::current())
        .expect("a system call comes from a user thread")
        .id
}

fn debug_write(site: SyscallSite, ptr: u64, len: u64) -> Result<u64, Error> {
    if len > abi::syscall::DEBUG_WRITE_MAX as u64 {
        return Err(Error::InvalidArgument);
    }
    let mut bytes = [0u8; abi::syscall::DEBUG_WRITE_MAX];
    let bytes = &mut bytes[..len as usize];
    copy_in(site, ptr, bytes)?;
    let text = alloc::string::String::from_utf8_lossy(bytes);
    let _ = core::fmt::Write::write_str(&mut crate::console::Console::new(), &text);
    Ok(len)
}

/// `TestReport`: checks the arguments, then hands the report to the test tally, which accepts
/// it only from init, for a selected init test of the catalog, once.
#[cfg(feature = "testing")]
fn test_report(
    site: SyscallSite,
    name_ptr: u64,
    name_len: u64,
    status: u64,
    reason_ptr: u64,
    reason_len: u64,
) -> Result<u64, Error> {
    use abi::syscall::TestStatus;
    use kernel_core::selftest::Outcome;
    let status = TestStatus::from_raw(status).ok_or(Error::InvalidArgument)?;
    if name_len == 0 || name_len > TEST_NAME_MAX as u64 {
        return Err(Error::InvalidArgument);
    }
    let mut name = [0u8; TEST_NAME_MAX];
    let name = &mut name[..name_len as usize];
    copy_in(site, name_ptr, name)?;
    if !name
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_')
    {
        return Err(Error::InvalidArgument);
    }
    let mut reason = [0u8; TEST_REASON_MAX];
    let reason = if status == TestStatus::Passed {
        &mut reason[..0]
    } else {
        if reason_len > TEST_REASON_MAX as u64 {
            return Err(Error::InvalidArgument);
        }
        let reason = &mut reason[..reason_len as usize];
        copy_in(site, reason_ptr, reason)?;
        reason
    };
    let name = core::str::from_utf8(name).map_err(|_| Error::InvalidArgument)?;
    let reason = alloc::string::String::from_utf8_lossy(reason).replace(['\n', '\r'], " ");
    if status == TestStatus::Skipped && reason.trim().is_empty() {
        // `[test] NAME skipped` without a reason is not the console protocol.
        return Err(Error::InvalidArgument);
    }
    let outcome = match status {
        TestStatus::Passed => Outcome::Passed,
        TestStatus::Failed => Outcome::Failed(&reason),
        TestStatus::Skipped => Outcome::Skipped(&reason),
    };
    crate::testing::user_report(my_process(), name, &outcome)?;
    Ok(0)
}

/// A kernel built without tests has no `TestReport`.
#[cfg(not(feature = "testing"))]
fn test_report(_: SyscallSite, _: u64, _: u64, _: u64, _: u64, _: u64) -> Result<u64, Error> {
    Err(Error::NoSuchSyscall)
}

// ---- capabilities -------------------------------------------------------------------------

fn cap_copy(handle: u64, rights: u64, badge: u64) -> Result<u64, Error> {
    let rights = Rights::from_raw(rights)?;
    let me = my_process();
    let mut kernel = kernel();
    let entry = kernel.process_mut(me)?;
    let copy = entry
        .caps
        .derive(CapHandle::from_raw(handle), rights, badge)?;
    let object = entry.caps.get(copy)?.object();
    kernel.retain_object(object);
    Ok(copy.into_raw())
}

fn cap_delete(handle: u64) -> Result<u64, Error> {
    let me = my_process();
    let mut evicted = Evicted::new();
    {
        let mut kernel = kernel();
        let cap = kernel
            .process_mut(me)?
            .caps
            .delete(CapHandle::from_raw(handle))?;
        kernel.release_object(cap.object(), &mut evicted);
    }
    ipc::wake_evicted(evicted);
    Ok(0)
}

fn cap_identify(frame: &mut UserFrame) -> Outcome {
    let me = my_process();
    let kernel = kernel();
    let cap = match kernel
        .process(me)
        .and_then(|entry| entry.caps.get(CapHandle::from_raw(frame.slot(0))))
    {
        Ok(cap) => cap,
        Err(error) => return Outcome::Fail(error),
    };
    frame.set_slot(1, cap.rights().into_raw());
    frame.set_slot(2, cap.badge());
    Outcome::Value(cap.object_type().into_raw())
}

fn cap_grant(handle: u64, space: u64, rights: u64) -> Result<u64, Error> {
    let rights = Rights::from_raw(rights)?;
    let me = my_process();
    let mut kernel = kernel();
    let target = lookup_space(&kernel, me, space, Rights::CONTROL)?;
    let source = kernel.process(me)?.caps.get(CapHandle::from_raw(handle))?;
    if !source.rights().contains(Rights::GRANT) {
        return Err(Error::InsufficientRights);
    }
    let copy = source.derive(rights, abi::UNBADGED)?;
    kernel.insert_cap(target, copy).map(CapHandle::into_raw)
}

/// Looks up an address-space capability in process `me`'s table.
pub fn lookup_space(
    kernel: &super::objects::Kernel,
    me: kernel_core::cap::AddressSpaceId,
    handle: u64,
    rights: Rights,
) -> Result<kernel_core::cap::AddressSpaceId, Error> {
    let cap = kernel.cap(me, handle, ObjectType::AddressSpace, rights)?;
    let ObjectRef::AddressSpace(id) = cap.object() else {
        return Err(Error::WrongType);
    };
    // The object must still exist.
    kernel.process(id).map_err(|_| Error::StaleCapability)?;
    Ok(id)
}

enum ObjectKind {
    Endpoint,
    Notification,
    AddressSpace,
}

fn create_object(kind: ObjectKind) -> Result<u64, Error> {
    let me = my_process();
    if matches!(kind, ObjectKind::AddressSpace) {
        sched::reap();
    }
    let mut evicted = Evicted::new();
    let result = {
        let mut kernel = kernel();
        let object = match kind {
            ObjectKind::Endpoint => ObjectRef::Endpoint(kernel.create_endpoint()?),
            ObjectKind::Notification => ObjectRef::Notification(kernel.create_notification()?),
            ObjectKind::AddressSpace => {
                let space = {
                    let mut frames = FRAMES.lock_irqsave();
                    let frames = frames.as_mut().ok_or(Error::OutOfMemory)?;
                    UserSpace::create(frames).map_err(|_| Error::OutOfMemory)?
                };
                ObjectRef::AddressSpace(super::objects::add_process(&mut kernel, space, "process")?)
            }
        };
        match kernel.insert_cap(me, Capability::full(object)) {
            Ok(handle) => Ok(handle.into_raw()),
            Err(error) => {
                // Nothing names the new object: it goes again.
                kernel.retain_object(object);
                kernel.release_object(object, &mut evicted);
                Err(error)
            }
        }
    };
    ipc::wake_evicted(evicted);
    result
}

// ---- memory -------------------------------------------------------------------------------

fn frame_alloc(count: u64) -> Result<u64, Error> {
    if count == 0 || count > MAX_FRAME_ALLOC {
        return Err(Error::InvalidArgument);
    }
    let me = my_process();
    let start = {
        let mut frames = FRAMES.lock_irqsave();
        let frames = frames.as_mut().ok_or(Error::OutOfMemory)?;
        // One frame takes the single-frame (next-fit) path; both are bounded however full RAM
        // is (see `kernel_core::frame_alloc`).
        if count == 1 {
            frames.allocate().ok_or(Error::OutOfMemory)?
        } else {
            frames
                .allocate_contiguous(count as usize, 1)
                .ok_or(Error::OutOfMemory)?
                .start
        }
    };
    // SAFETY: the frames were just taken from the allocator (nobody else uses them) and the
    // HHDM maps all RAM read-write.
    unsafe {
        core::ptr::write_bytes(
            phys_to_virt(start) as *mut u8,
            0,
            (count * FRAME_SIZE) as usize,
        )
    };
    let mut kernel = kernel();
    kernel.add_frames(
        FrameRange {
            start,
            frames: count,
        },
        true,
    );
    let object = ObjectRef::FrameRange {
        start,
        frames: count,
    };
    match kernel.insert_cap(me, Capability::full(object)) {
        Ok(handle) => Ok(handle.into_raw()),
        Err(error) => {
            kernel.retain_object(object);
            kernel.release_object(object, &mut Evicted::new());
            Err(error)
        }
    }
}

/// Checks a user range of `pages` pages at `va`: aligned, inside user space.
fn check_user_range(va: u64, pages: u64) -> Result<(), Error> {
    let bytes = pages.checked_mul(FRAME_SIZE).ok_or(Error::BadAddress)?;
    let end = va.checked_add(bytes).ok_or(Error::BadAddress)?;
    if !va.is_multiple_of(FRAME_SIZE) || va < USER_START || end > USER_END {
        return Err(Error::BadAddress);
    }
    Ok(())
}

fn map(space: u64, frames_handle: u64, va: u64, access: u64) -> Result<u64, Error> {
    let access = Rights::from_raw(access)?;
    let allowed = Rights::READ | Rights::WRITE | Rights::EXECUTE;
    if !allowed.contains(access) || access.is_empty() {
        return Err(Error::InvalidArgument);
    }
    if access.contains(Rights::WRITE | Rights::EXECUTE) {
        return Err(Error::InvalidArgument);
    }
    let me = my_process();
    // Declared before the guard, so that it drops after the lock is released: the last
    // reference to a process tears it down, which takes the lock.
    let process;
    let mut kernel = kernel();
    let target = lookup_space(&kernel, me, space, Rights::MAP)?;
    let cap = kernel.cap(
        me,
        frames_handle,
        ObjectType::FrameRange,
        Rights::MAP | access,
    )?;
    let ObjectRef::FrameRange { start, frames } = cap.object() else {
        return Err(Error::WrongType);
    };
    check_user_range(va, frames)?;
    process = kernel.process(target)?.process.clone();
    let space = process.space.as_ref().ok_or(Error::StaleCapability)?;
    if (0..frames).any(|i| space.translate(va + i * FRAME_SIZE).is_some()) {
        return Err(Error::Busy);
    }
    let mut flags = MapFlags::READ;
    if access.contains(Rights::WRITE) {
        flags |= MapFlags::WRITE;
    }
    if access.contains(Rights::EXECUTE) {
        flags |= MapFlags::EXECUTE;
    }
    let mapped = {
        let mut allocator = FRAMES.lock_irqsave();
        let allocator = allocator.as_mut().ok_or(Error::OutOfMemory)?;
        let mut done = 0;
        let mut failure = None;
        while done < frames {
            match space.map(
                allocator,
                va + done * FRAME_SIZE,
                start + done * FRAME_SIZE,
                flags,
            ) {
                Ok(()) => done += 1,
                Err(error) => {
                    failure = Some(error);
                    break;
                }
            }
        }
        if let Some(error) = failure {
            for i in 0..done {
                let _ = space.unmap(allocator, va + i * FRAME_SIZE);
            }
            Err(match error {
                MapError::OutOfFrames => Error::OutOfMemory,
                MapError::AlreadyMapped => Error::Busy,
                _ => Error::BadAddress,
            })
        } else {
            Ok(())
        }
    };
    mapped?;
    for i in 0..frames {
        kernel.retain_frame_page(start + i * FRAME_SIZE);
    }
    Ok(0)
}

fn unmap(space: u64, va: u64, pages: u64) -> Result<u64, Error> {
    if pages > MAX_UNMAP_PAGES {
        return Err(Error::InvalidArgument);
    }
    check_user_range(va, pages)?;
    let me = my_process();
    // Declared before the guard, so that it drops after the lock is released: the last
    // reference to a process tears it down, which takes the lock.
    let process;
    let mut kernel = kernel();
    let target = lookup_space(&kernel, me, space, Rights::MAP)?;
    process = kernel.process(target)?.process.clone();
    let space = process.space.as_ref().ok_or(Error::StaleCapability)?;
    let mut released = alloc::vec::Vec::new();
    {
        let mut allocator = FRAMES.lock_irqsave();
        let allocator = allocator.as_mut().ok_or(Error::OutOfMemory)?;
        for i in 0..pages {
            if let Ok(phys) = space.unmap(allocator, va + i * FRAME_SIZE) {
                released.push(phys);
            }
        }
    }
    for phys in released {
        kernel.release_frame_page(phys);
    }
    Ok(0)
}

// ---- threads and pagers -------------------------------------------------------------------

fn thread_create(space: u64, entry: u64, sp: u64, arg: u64) -> Result<u64, Error> {
    // A thread enters user mode with IRETQ/ERET: a non-canonical pc or stack there would fault in
    // the kernel on x86_64, so both must lie in user space.
    if entry >= USER_END || sp > USER_END {
        return Err(Error::BadAddress);
    }
    let me = my_process();
    let (target, process) = {
        let kernel = kernel();
        let target = lookup_space(&kernel, me, space, Rights::CONTROL)?;
        let entry = kernel.process(target)?;
        if entry.dying {
            // Being ended as a whole (`SpaceKill`, a fatal fault): as good as gone.
            return Err(Error::StaleCapability);
        }
        if kernel.process(me)?.caps.free() == 0 {
            return Err(Error::TableFull);
        }
        (target, entry.process.clone())
    };
    let thread = sched::create_user_thread(
        process_ref(&process),
        sched::NORMAL_PRIORITY,
        entry,
        sp,
        arg,
    )
    .map_err(|_| Error::OutOfMemory)?;
    let mut kernel = kernel();
    let alive = kernel.process(target).is_ok_and(|entry| !entry.dying);
    if !alive {
        // The space was killed (or ended) while the thread was made: it never joins it.
        drop(kernel);
        ipc::discard_unregistered(thread);
        return Err(Error::StaleCapability);
    }
    // Checked again under the lock that inserts: a thread registered without a capability
    // could never be started, joined or detached.
    if kernel
        .process(me)
        .map_or(true, |entry| entry.caps.free() == 0)
    {
        drop(kernel);
        ipc::discard_unregistered(thread);
        return Err(Error::TableFull);
    }
    ipc::register_thread(&mut kernel, target, thread);
    kernel
        .insert_cap(me, Capability::full(ObjectRef::Thread(thread)))
        .map(CapHandle::into_raw)
}

/// Looks up a thread capability in the caller's table and checks the thread still exists.
pub fn lookup_thread(handle: u64) -> Result<ThreadId, Error> {
    let me = my_process();
    let kernel = kernel();
    let cap = kernel.cap(me, handle, ObjectType::Thread, Rights::CONTROL)?;
    let ObjectRef::Thread(id) = cap.object() else {
        return Err(Error::WrongType);
    };
    match sched::THREADS.state(id) {
        Ok(_) => Ok(id),
        Err(_) => Err(Error::StaleCapability),
    }
}

fn thread_start(handle: u64) -> Result<u64, Error> {
    let id = lookup_thread(handle)?;
    if !ipc::mark_started(id) {
        return Err(Error::InvalidArgument);
    }
    sched::start_thread(id);
    Ok(0)
}

/// `ThreadState`: what the thread in slot `a0` is doing, from the kernel's records: the thread
/// table (ended or not, on a CPU or not), the IPC records (what it waits for) and the fault and
/// exit records. Reads only: the IPC records under the objects' lock like any other system call
/// (nothing is added to the IPC paths), the rest by atomic loads.
fn thread_state(frame: &mut UserFrame) -> Outcome {
    let described = lookup_thread(frame.slot(0)).and_then(describe_thread);
    match described {
        Ok((status, detail)) => {
            for (slot, word) in (1..).zip(detail) {
                frame.set_slot(slot, word);
            }
            Outcome::Value(status.into_raw())
        }
        Err(error) => Outcome::Fail(error),
    }
}

/// The status and detail words (`a1..a4`) of live or ended thread `id`.
///
/// The description is put together from several records (the thread table, the kernel objects,
/// the join and fault records), not one atomic snapshot. On one CPU nothing changes while this
/// runs (system calls run with interrupts masked and are never preempted). With several CPUs the
/// thread may move on meanwhile, even end and have its slot reused: an answer counts only if the
/// table shows the same state, for the same generation, after it was assembled as before (the
/// records of a reused slot then fail the generation check as stale). A thread that keeps
/// changing state through every attempt gets `Busy`.
fn describe_thread(id: ThreadId) -> Result<(ThreadStatus, [u64; 4]), Error> {
    const ATTEMPTS: usize = 8;
    let stale = |_| Error::StaleCapability;
    for _ in 0..ATTEMPTS {
        let state = sched::THREADS.state(id).map_err(stale)?;
        let answer = describe_in_state(id, state)?;
        if sched::THREADS.state(id).map_err(stale)? == state {
            return Ok(answer);
        }
    }
    Err(Error::Busy)
}

/// [`describe_thread`]'s answer for thread `id`, seen in `state` by the thread table.
fn describe_in_state(
    id: ThreadId,
    state: kernel_core::thread::ThreadState,
) -> Result<(ThreadStatus, [u64; 4]), Error> {
    use kernel_core::thread::ThreadState as Table;
    let stale = |_| Error::StaleCapability;
    if state == Table::Terminated {
        let code = sched::THREADS.exit_code(id).map_err(stale)?;
        let fatal = super::fault::fatal_fault_of(id);
        // Still `Terminated` with this generation afterwards: the slot was not reclaimed and
        // reused while the records were read, so they are this thread's. (A seqlock read: every
        // record is stored with release, after the claim of the slot by its thread, so a record
        // of a new occupant read above makes that claim visible to the look below.)
        core::sync::atomic::fence(core::sync::atomic::Ordering::Acquire);
        sched::THREADS.state(id).map_err(stale)?;
        return Ok(if code == sched::KILLED_EXIT_CODE {
            (ThreadStatus::Killed, fatal.unwrap_or([0; 4]))
        } else {
            (ThreadStatus::Exited, [u64::from(code as u32), 0, 0, 0])
        });
    }
    let none = [0; 4];
    {
        let kernel = kernel();
        let block = crate::tcb::tcb(id);
        if !block.started() {
            return Ok((ThreadStatus::NotStarted, none));
        }
        let blocked = kernel.endpoints.blocked(id);
        // A fault call is IPC on the pager endpoint, made by the kernel: the fault is reported
        // while the call is queued or held (once answered the thread is just being woken).
        if block.in_fault() && blocked.is_some() {
            return Ok((ThreadStatus::Faulted, super::fault::pending_fault_of(id)));
        }
        let ipc = match blocked {
            Some(Blocked::Send { call: false, .. }) => Some(ThreadStatus::Sending),
            Some(Blocked::Send { call: true, .. }) => Some(ThreadStatus::Calling),
            Some(Blocked::Reply { .. }) => Some(ThreadStatus::AwaitingReply),
            Some(Blocked::Recv { .. }) => Some(ThreadStatus::Receiving),
            None if block.waiting_on().is_some() => Some(ThreadStatus::Waiting),
            None => None,
        };
        if let Some(status) = ipc {
            return Ok((status, none));
        }
    }
    let status = match state {
        Table::Running => ThreadStatus::Running,
        Table::Blocked if sched::is_joining(id) => ThreadStatus::Joining,
        Table::Blocked => ThreadStatus::Blocked,
        // `Ready`; `Initializing` and `Free` never carry a published thread's generation (the
        // table's `state` refuses `Free` as stale), so only `Ready` gets here.
        _ => ThreadStatus::Ready,
    };
    Ok((status, none))
}

/// The endpoint a `SetPager` or `SetExceptionHandler` names in slot `a1`: `None` for a null
/// handle, else an endpoint capability with `SEND` and `CALL`, and its badge.
fn fault_endpoint(
    kernel: &super::objects::Kernel,
    me: kernel_core::cap::AddressSpaceId,
    endpoint: u64,
) -> Result<Option<(kernel_core::cap::EndpointId, abi::Badge)>, Error> {
    if CapHandle::from_raw(endpoint).is_null() {
        return Ok(None);
    }
    let cap = kernel.cap(
        me,
        endpoint,
        ObjectType::Endpoint,
        Rights::SEND | Rights::CALL,
    )?;
    let ObjectRef::Endpoint(id) = cap.object() else {
        return Err(Error::WrongType);
    };
    Ok(Some((id, cap.badge())))
}

fn set_pager(space: u64, endpoint: u64) -> Result<u64, Error> {
    let me = my_process();
    let mut kernel = kernel();
    let target = lookup_space(&kernel, me, space, Rights::CONTROL)?;
    let pager = fault_endpoint(&kernel, me, endpoint)?;
    kernel.process_mut(target)?.pager = pager;
    Ok(0)
}

/// `SetExceptionHandler`: where the space's faults other than page faults go (`abi::fault`).
fn set_exception_handler(space: u64, endpoint: u64) -> Result<u64, Error> {
    let me = my_process();
    let mut kernel = kernel();
    let target = lookup_space(&kernel, me, space, Rights::CONTROL)?;
    let handler = fault_endpoint(&kernel, me, endpoint)?;
    kernel.process_mut(target)?.exception_handler = handler;
    Ok(0)
}

/// `Timeout` decoding shared by the blocking calls: the absolute deadline, if any.
pub fn deadline(timeout: u64) -> Option<u64> {
    let timeout = Timeout::from_raw(timeout);
    // The clock is read only for a finite timeout (never on a `FOREVER` call).
    timeout.nanos()?;
    timeout.deadline(Machine::now_ns())
}
