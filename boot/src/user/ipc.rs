//! Message passing, notifications and the end of threads, as system calls.
//!
//! Owns the glue between kernel-core's IPC model (`Endpoints`, `Notification`, which decide) and
//! real threads: moving a message between register files, moving a capability between tables,
//! the fast path (a call to a waiting server switches straight to it; without a capability the
//! words go from register file to register file under one lock, with no `Message` in between),
//! blocking with timeouts, and withdrawing a thread from everything when it ends or is killed.
//! Whoever completes a blocked thread's operation writes its results into its saved registers and
//! marks it done before waking it; a thread woken without that (timeout, kill) withdraws itself.
//! It also keeps how each user thread ended (its exit code, for `ThreadState`), and ends whole
//! processes (`SpaceKill`, and the kill after an unresolved fault): every thread, whatever it
//! waits on, with none added meanwhile.
//! It must never hold the kernel objects' lock across a switch, and never leave a dead thread in
//! a queue.

use super::objects::{Evicted, Kernel, clear_completion, complete, kernel, take_completion};
use super::syscall::{Outcome, deadline, lookup_thread, my_process};
use super::{UserFrame, frame_of, process_of};
use crate::sched;
use crate::tcb::tcb;
use abi::regs::ipc::{BADGE, CAP, ENDPOINT, INFO, REPLY, TIMEOUT, WORDS};
use abi::{Badge, CapHandle, Error, MessageInfo, ObjectType, ReplyToken, Rights, Timeout};
use core::sync::atomic::Ordering;
use kernel_core::cap::{AddressSpaceId, EndpointId, NotificationId, ObjectRef};
use kernel_core::hal::{Platform, UserRegisters};
use kernel_core::ipc::{
    CallOutcome, Cancelled, Delivery, Message, RecvOutcome, ReplyRecvOutcome, SendOutcome,
    SignalOutcome, WaitOutcome,
};
use kernel_core::thread::ThreadId;

fn lookup_endpoint(
    kernel: &Kernel,
    me: AddressSpaceId,
    handle: u64,
    rights: Rights,
) -> Result<(EndpointId, Badge), Error> {
    let cap = kernel.cap(me, handle, ObjectType::Endpoint, rights)?;
    match cap.object() {
        ObjectRef::Endpoint(id) => Ok((id, cap.badge())),
        _ => Err(Error::WrongType),
    }
}

fn lookup_notification(
    kernel: &Kernel,
    me: AddressSpaceId,
    handle: u64,
    rights: Rights,
) -> Result<(NotificationId, Badge), Error> {
    let cap = kernel.cap(me, handle, ObjectType::Notification, rights)?;
    match cap.object() {
        ObjectRef::Notification(id) => Ok((id, cap.badge())),
        _ => Err(Error::WrongType),
    }
}

/// Builds the message in the caller's registers, lending its capability if the info says so.
#[inline(always)]
fn take_message(
    kernel: &mut Kernel,
    me: AddressSpaceId,
    thread: ThreadId,
    frame: &UserFrame,
) -> Result<Message, Error> {
    let info = MessageInfo::from_raw(frame.slot(INFO))?;
    let [w0, w1, w2, w3] = WORDS;
    let words = [
        frame.slot(w0),
        frame.slot(w1),
        frame.slot(w2),
        frame.slot(w3),
    ];
    let cap = if info.has_cap() {
        let handle = CapHandle::from_raw(frame.slot(CAP));
        let cap = kernel.process_mut(me)?.caps.lend(handle)?;
        tcb(thread).set_lent(handle);
        Some(cap)
    } else {
        None
    };
    Ok(Message::new(info, words, cap))
}

/// The start of every call that sends: the endpoint capability in slot `a0` (with `rights`)
/// and the message in the caller's registers, its capability lent. Inlined: it is on the IPC
/// path, and returning the message by value costs a copy.
#[inline(always)]
fn endpoint_and_message(
    kernel: &mut Kernel,
    process: AddressSpaceId,
    thread: ThreadId,
    frame: &UserFrame,
    rights: Rights,
) -> Result<(EndpointId, Badge, Message), Error> {
    let (endpoint, badge) = lookup_endpoint(kernel, process, frame.slot(ENDPOINT), rights)?;
    let msg = take_message(kernel, process, thread, frame)?;
    Ok((endpoint, badge, msg))
}

/// A message of `thread` did not go out: its lent capability is back under its handle.
fn give_back(kernel: &mut Kernel, thread: ThreadId, msg: &Message) {
    if msg.cap().is_none() {
        return;
    }
    let handle = tcb(thread).take_lent();
    if let Some(process) = process_of(thread)
        && let Ok(entry) = kernel.process_mut(process.id)
    {
        let _ = entry.caps.unlend(handle);
    }
}

/// A message of `sender` was delivered: its lent capability leaves its table (it moved).
fn settle_sent(kernel: &mut Kernel, sender: ThreadId, object: ObjectRef, evicted: &mut Evicted) {
    let handle = tcb(sender).take_lent();
    if let Some(process) = process_of(sender)
        && let Ok(entry) = kernel.process_mut(process.id)
        && entry.caps.settle(handle).is_ok()
    {
        kernel.release_object(object, evicted);
    }
}

/// Moves the capability of a delivered message into `receiver`'s table (a null handle if the
/// table is full: the capability is then destroyed) and settles the sender's loan.
fn move_cap(
    kernel: &mut Kernel,
    receiver: ThreadId,
    sender: ThreadId,
    cap: Option<kernel_core::cap::Capability>,
    evicted: &mut Evicted,
) -> CapHandle {
    let Some(cap) = cap else {
        return CapHandle::NULL;
    };
    let object = cap.object();
    let handle = match process_of(receiver) {
        Some(process) => kernel
            .insert_cap(process.id, cap)
            .unwrap_or(CapHandle::NULL),
        None => CapHandle::NULL,
    };
    // Inserted first, so the object never drops to zero references on the way.
    settle_sent(kernel, sender, object, evicted);
    handle
}

/// Writes a received message into `frame` (the receiver's registers): info, words, capability,
/// badge and reply token; result 0.
fn write_delivery(
    kernel: &mut Kernel,
    frame: &mut UserFrame,
    receiver: ThreadId,
    sender: ThreadId,
    delivery: Delivery,
    evicted: &mut Evicted,
) {
    let Delivery { badge, msg, reply } = delivery;
    let (info, words, cap) = msg.into_parts();
    let handle = move_cap(kernel, receiver, sender, cap, evicted);
    frame.set_result(0);
    frame.set_slot(INFO, info.into_raw());
    for (slot, word) in WORDS.into_iter().zip(words) {
        frame.set_slot(slot, word);
    }
    frame.set_slot(CAP, handle.into_raw());
    frame.set_slot(BADGE, badge);
    frame.set_slot(REPLY, reply.into_raw());
}

/// Writes a message into the registers of `receiver`, which was blocked receiving, and marks
/// it done (the caller wakes or switches to it).
#[inline(always)]
fn deliver_to_waiting(
    kernel: &mut Kernel,
    receiver: ThreadId,
    sender: ThreadId,
    delivery: Delivery,
    evicted: &mut Evicted,
) {
    // SAFETY: the endpoint took `receiver` off its receive queue, so it is blocked (not
    // running, not the sender) and the objects' lock is held.
    let target = unsafe { frame_of(receiver) };
    write_delivery(kernel, target, receiver, sender, delivery, evicted);
    complete(receiver);
}

/// Delivers a reply to `caller`: into its registers (info, words, capability; result 0), or for
/// a fault call, as the label that decides its fate. Marks it done; the caller wakes it.
fn write_reply(
    kernel: &mut Kernel,
    caller: ThreadId,
    replier: ThreadId,
    msg: Message,
    evicted: &mut Evicted,
) {
    let (info, words, cap) = msg.into_parts();
    if tcb(caller).in_fault() {
        tcb(caller).set_fault_reply(Some(info.label()));
        if let Some(cap) = cap {
            // A pager's reply to a fault carries no capability: it is destroyed.
            let object = cap.object();
            kernel.retain_object(object);
            kernel.release_object(object, evicted);
            settle_sent(kernel, replier, object, evicted);
        }
    } else {
        let handle = move_cap(kernel, caller, replier, cap, evicted);
        // SAFETY: `caller` awaits this reply, so it is blocked (not running, not the replier),
        // and the objects' lock is held.
        let frame = unsafe { frame_of(caller) };
        frame.set_result(0);
        frame.set_slot(INFO, info.into_raw());
        for (slot, word) in WORDS.into_iter().zip(words) {
            frame.set_slot(slot, word);
        }
        frame.set_slot(CAP, handle.into_raw());
    }
    complete(caller);
}

/// Completes a blocked sender whose `send` was taken by a receiver.
fn complete_sender(sender: ThreadId) {
    // SAFETY: the sender is blocked in `send` (the endpoint just took its message), not the
    // caller, and the objects' lock is held.
    unsafe { frame_of(sender) }.set_result(0);
    complete(sender);
}

/// Wakes threads whose object went away or whose partner died, with `Killed`.
pub fn wake_evicted(evicted: Evicted) {
    if evicted.is_empty() {
        super::objects::bury();
        return;
    }
    // The evicted threads' registers are written before `bury`, which may switch (it ends
    // unstarted threads): after a switch a slot could hold another thread.
    {
        let mut kernel = kernel();
        for (thread, cancelled) in &evicted {
            if let Some(Cancelled::Send { msg, .. }) = cancelled {
                give_back(&mut kernel, *thread, msg);
            }
            if tcb(*thread).in_fault() {
                tcb(*thread).set_fault_reply(None);
            } else if sched::user_top_of(*thread) != 0 {
                // SAFETY: an evicted thread was blocked on the object or partner that went
                // away; it is not the caller (which is running) and the lock is held.
                unsafe { frame_of(*thread) }.set_result(Error::Killed.into_raw() as u64);
            }
            tcb(*thread).set_waiting_on(None);
            complete(*thread);
        }
    }
    super::objects::bury();
    for (thread, _) in evicted {
        sched::wake_thread(thread);
    }
}

/// Blocks until the current operation is completed by another thread, the deadline passes or
/// the thread is killed; withdraws it in the last two cases. With `blocked_already` the thread
/// was switched away from and is back: usually its partner completed it, which is checked
/// inline (the waiting loop is out of line, so the common return stays short).
#[inline(always)]
fn wait_for_completion(me: ThreadId, deadline: Option<u64>, blocked_already: bool) -> Outcome {
    // The completer marks the thread done only after writing its registers: no lock needed.
    if blocked_already && take_completion(me) {
        return Outcome::Written;
    }
    wait_for_completion_slow(me, deadline, blocked_already)
}

/// [`wait_for_completion`] past its first check.
#[inline(never)]
fn wait_for_completion_slow(me: ThreadId, deadline: Option<u64>, blocked_already: bool) -> Outcome {
    let mut first = !blocked_already;
    loop {
        let expired = if first {
            sched::block_current(deadline)
        } else {
            deadline.is_some_and(|d| crate::platform::Machine::now_ns() >= d)
        };
        first = true;
        // The completer marks the thread done only after writing its registers: no lock needed
        // to see it (the common case, right after a hand-off).
        if take_completion(me) {
            return Outcome::Written;
        }
        let killed = sched::kill_requested();
        if !(expired || killed) {
            // Woken for nothing of ours (a stale wake): wait on.
            continue;
        }
        let mut kernel = kernel();
        if take_completion(me) {
            return Outcome::Written;
        }
        if let Some(Cancelled::Send { msg, .. }) = kernel.endpoints.cancel(me) {
            give_back(&mut kernel, me, &msg);
        }
        return Outcome::Fail(if killed {
            Error::Killed
        } else {
            Error::Timeout
        });
    }
}

/// Writes a capability-free message from the registers `from` into the registers `to`: result
/// 0, the info, and the words, those past the info's length zeroed (the normal form a
/// [`Message`] keeps; the receiver must not see the sender's stale registers).
#[inline(always)]
fn copy_words(from: &UserFrame, to: &mut UserFrame, info: MessageInfo) {
    let length = info.length();
    to.set_result(0);
    to.set_slot(INFO, info.into_raw());
    for (k, slot) in WORDS.into_iter().enumerate() {
        to.set_slot(slot, if k < length { from.slot(slot) } else { 0 });
    }
    to.set_slot(CAP, CapHandle::NULL.into_raw());
}

/// The register-only `call`: when the message carries no capability and a receiver waits, the
/// words go straight from the caller's registers into the receiver's, which is marked done.
/// Returns the receiver to switch to; `None`, with nothing changed, sends the call down the full
/// path (which also explains any error).
#[inline(always)]
fn call_registers_only(
    kernel: &mut Kernel,
    process: AddressSpaceId,
    me: ThreadId,
    frame: &UserFrame,
) -> Option<ThreadId> {
    let info = MessageInfo::from_raw(frame.slot(INFO))
        .ok()
        .filter(|info| !info.has_cap())?;
    let (endpoint, badge) =
        lookup_endpoint(kernel, process, frame.slot(ENDPOINT), Rights::CALL).ok()?;
    let (receiver, reply) = kernel.endpoints.call_waiting(endpoint, me)?;
    // SAFETY: the endpoint just took `receiver` off its receive queue, so it is blocked (not
    // running, not the caller), and the objects' lock is held.
    let target = unsafe { frame_of(receiver) };
    copy_words(frame, target, info);
    target.set_slot(BADGE, badge);
    target.set_slot(REPLY, reply.into_raw());
    complete(receiver);
    Some(receiver)
}

/// The register-only `reply_recv` (for a receive that may block): when the reply carries no
/// capability, its caller made an ordinary call (not a fault) and no sender waits, the words go
/// straight into the caller's registers, which is marked done, and the replier is queued to
/// receive. Returns the caller to switch to; `None`, with nothing changed, takes the full path.
#[inline(always)]
fn reply_recv_registers_only(
    kernel: &mut Kernel,
    process: AddressSpaceId,
    me: ThreadId,
    token: ReplyToken,
    frame: &UserFrame,
) -> Option<ThreadId> {
    let info = MessageInfo::from_raw(frame.slot(INFO))
        .ok()
        .filter(|info| !info.has_cap())?;
    let (endpoint, _) =
        lookup_endpoint(kernel, process, frame.slot(ENDPOINT), Rights::RECEIVE).ok()?;
    let caller = kernel
        .endpoints
        .reply_then_wait(endpoint, me, token, |caller| !tcb(caller).in_fault())?;
    // SAFETY: `caller` awaited this reply, so it is blocked (not running, not the replier), and
    // the objects' lock is held.
    let target = unsafe { frame_of(caller) };
    copy_words(frame, target, info);
    complete(caller);
    Some(caller)
}

/// The direct switch of `call` and `reply_recv`: blocks the current thread, runs `next` (whose
/// registers were written and which was marked done) and, once back, collects the outcome.
#[inline(always)]
fn switch_and_wait(me: ThreadId, next: ThreadId, deadline: Option<u64>) -> Outcome {
    sched::block_and_switch_to(next, deadline);
    wait_for_completion(me, deadline, true)
}

pub fn send(frame: &mut UserFrame) -> Outcome {
    let me = sched::current();
    let process = my_process();
    let timeout = Timeout::from_raw(frame.slot(TIMEOUT));
    let mut evicted = Evicted::new();
    let mut kernel = kernel();
    let (endpoint, badge, msg) =
        match endpoint_and_message(&mut kernel, process, me, frame, Rights::SEND) {
            Ok(found) => found,
            Err(error) => return Outcome::Fail(error),
        };
    clear_completion(me);
    match kernel
        .endpoints
        .send(endpoint, me, badge, msg, timeout.may_block())
    {
        Err(refused) => {
            give_back(&mut kernel, me, &refused.msg);
            Outcome::Fail(refused.error)
        }
        Ok(SendOutcome::Delivered { receiver, delivery }) => {
            deliver_to_waiting(&mut kernel, receiver, me, delivery, &mut evicted);
            drop(kernel);
            wake_evicted(evicted);
            sched::wake_thread(receiver);
            Outcome::Value(0)
        }
        Ok(SendOutcome::Blocked) => {
            drop(kernel);
            wait_for_completion(me, deadline(timeout.into_raw()), false)
        }
    }
}

pub fn recv(frame: &mut UserFrame) -> Outcome {
    let me = sched::current();
    let process = my_process();
    let timeout = Timeout::from_raw(frame.slot(TIMEOUT));
    let mut evicted = Evicted::new();
    let mut kernel = kernel();
    let (endpoint, _) =
        match lookup_endpoint(&kernel, process, frame.slot(ENDPOINT), Rights::RECEIVE) {
            Ok(found) => found,
            Err(error) => return Outcome::Fail(error),
        };
    clear_completion(me);
    match kernel.endpoints.recv(endpoint, me, timeout.may_block()) {
        Err(error) => Outcome::Fail(error),
        Ok(RecvOutcome::Received(received)) => {
            let sender = received.sender;
            write_delivery(
                &mut kernel,
                frame,
                me,
                sender,
                received.delivery,
                &mut evicted,
            );
            if received.wake_sender {
                complete_sender(sender);
            }
            drop(kernel);
            wake_evicted(evicted);
            if received.wake_sender {
                sched::wake_thread(sender);
            }
            Outcome::Written
        }
        Ok(RecvOutcome::Blocked) => {
            drop(kernel);
            wait_for_completion(me, deadline(timeout.into_raw()), false)
        }
    }
}

pub fn call(frame: &mut UserFrame) -> Outcome {
    let me = sched::current();
    let process = my_process();
    let timeout = Timeout::from_raw(frame.slot(TIMEOUT));
    let deadline = deadline(timeout.into_raw());
    // Nobody can complete an operation of a running thread that is in no queue: the mark can
    // be cleared before the lock is taken.
    clear_completion(me);
    // The objects' lock is held for this statement only (no `drop` that would copy the guard).
    let direct = call_registers_only(&mut kernel(), process, me, frame);
    if let Some(receiver) = direct {
        return switch_and_wait(me, receiver, deadline);
    }
    let mut evicted = Evicted::new();
    let mut kernel = kernel();
    let (endpoint, badge, msg) =
        match endpoint_and_message(&mut kernel, process, me, frame, Rights::CALL) {
            Ok(found) => found,
            Err(error) => return Outcome::Fail(error),
        };
    match kernel
        .endpoints
        .call(endpoint, me, badge, msg, timeout.may_block())
    {
        Err(refused) => {
            give_back(&mut kernel, me, &refused.msg);
            Outcome::Fail(refused.error)
        }
        Ok(CallOutcome::SwitchTo { receiver, delivery }) => {
            deliver_to_waiting(&mut kernel, receiver, me, delivery, &mut evicted);
            drop(kernel);
            wake_evicted(evicted);
            switch_and_wait(me, receiver, deadline)
        }
        Ok(CallOutcome::Blocked) => {
            drop(kernel);
            wait_for_completion(me, deadline, false)
        }
    }
}

pub fn reply(frame: &mut UserFrame) -> Outcome {
    let me = sched::current();
    let process = my_process();
    let token = ReplyToken::from_raw(frame.slot(REPLY));
    let mut evicted = Evicted::new();
    let mut kernel = kernel();
    let msg = match take_message(&mut kernel, process, me, frame) {
        Ok(msg) => msg,
        Err(error) => return Outcome::Fail(error),
    };
    match kernel.endpoints.reply(me, token, msg) {
        Err(refused) => {
            give_back(&mut kernel, me, &refused.msg);
            Outcome::Fail(refused.error)
        }
        Ok(replied) => {
            let caller = replied.caller;
            write_reply(&mut kernel, caller, me, replied.msg, &mut evicted);
            drop(kernel);
            wake_evicted(evicted);
            sched::wake_thread(caller);
            Outcome::Value(0)
        }
    }
}

pub fn reply_recv(frame: &mut UserFrame) -> Outcome {
    let me = sched::current();
    let process = my_process();
    let timeout = Timeout::from_raw(frame.slot(TIMEOUT));
    let deadline = deadline(timeout.into_raw());
    let token = ReplyToken::from_raw(frame.slot(REPLY));
    // As in `call`: cleared before the lock, which is held for one statement.
    clear_completion(me);
    let direct = if timeout.may_block() {
        reply_recv_registers_only(&mut kernel(), process, me, token, frame)
    } else {
        None
    };
    if let Some(caller) = direct {
        return switch_and_wait(me, caller, deadline);
    }
    let mut evicted = Evicted::new();
    let mut kernel = kernel();
    let (endpoint, _, msg) =
        match endpoint_and_message(&mut kernel, process, me, frame, Rights::RECEIVE) {
            Ok(found) => found,
            Err(error) => return Outcome::Fail(error),
        };
    match kernel
        .endpoints
        .reply_recv(endpoint, me, token, msg, timeout.may_block())
    {
        Err(refused) => {
            give_back(&mut kernel, me, &refused.msg);
            Outcome::Fail(refused.error)
        }
        Ok(ReplyRecvOutcome::Received { replied, received }) => {
            let caller = replied.caller;
            write_reply(&mut kernel, caller, me, replied.msg, &mut evicted);
            let sender = received.sender;
            write_delivery(
                &mut kernel,
                frame,
                me,
                sender,
                received.delivery,
                &mut evicted,
            );
            if received.wake_sender {
                complete_sender(sender);
            }
            drop(kernel);
            wake_evicted(evicted);
            sched::wake_thread(caller);
            if received.wake_sender {
                sched::wake_thread(sender);
            }
            Outcome::Written
        }
        Ok(ReplyRecvOutcome::SwitchToCaller { replied }) => {
            let caller = replied.caller;
            write_reply(&mut kernel, caller, me, replied.msg, &mut evicted);
            drop(kernel);
            wake_evicted(evicted);
            switch_and_wait(me, caller, deadline)
        }
        Ok(ReplyRecvOutcome::RepliedOnly { replied }) => {
            let caller = replied.caller;
            write_reply(&mut kernel, caller, me, replied.msg, &mut evicted);
            drop(kernel);
            wake_evicted(evicted);
            sched::wake_thread(caller);
            Outcome::Fail(Error::WouldBlock)
        }
    }
}

/// A call made by the kernel on behalf of a faulting thread (`fault.rs`): delivers `msg` on the
/// pager endpoint and waits for the reply. Returns the reply's label, or `None` if the call
/// failed or the pager went away without replying.
pub fn fault_call(endpoint: EndpointId, badge: Badge, msg: Message) -> Option<u32> {
    let me = sched::current();
    let mut evicted = Evicted::new();
    let mut kernel = kernel();
    tcb(me).set_in_fault(true);
    tcb(me).set_fault_reply(None);
    clear_completion(me);
    let blocked_already = match kernel.endpoints.call(endpoint, me, badge, msg, true) {
        Err(_) => {
            tcb(me).set_in_fault(false);
            return None;
        }
        Ok(CallOutcome::SwitchTo { receiver, delivery }) => {
            deliver_to_waiting(&mut kernel, receiver, me, delivery, &mut evicted);
            drop(kernel);
            wake_evicted(evicted);
            sched::block_and_switch_to(receiver, None);
            true
        }
        Ok(CallOutcome::Blocked) => {
            drop(kernel);
            false
        }
    };
    let outcome = wait_for_completion(me, None, blocked_already);
    let label = {
        // Under the lock: a replier writes the label under it.
        let _kernel = super::objects::kernel();
        tcb(me).set_in_fault(false);
        tcb(me).take_fault_reply()
    };
    match outcome {
        Outcome::Written => label,
        _ => None,
    }
}

// ---- notifications ------------------------------------------------------------------------

pub fn signal(handle: u64, bits: u64) -> Result<u64, Error> {
    let process = my_process();
    let waiter = {
        let kernel = kernel();
        let (id, badge) = lookup_notification(&kernel, process, handle, Rights::SEND)?;
        match kernel.notification(id)?.signal(bits | badge)? {
            SignalOutcome::Pending => None,
            SignalOutcome::Wake { waiter, bits } => {
                // SAFETY: the waiter is blocked in `wait`; it is not the caller; lock held.
                unsafe { frame_of(waiter) }.set_result(bits);
                tcb(waiter).set_waiting_on(None);
                complete(waiter);
                Some(waiter)
            }
        }
    };
    if let Some(waiter) = waiter {
        sched::wake_thread(waiter);
    }
    Ok(0)
}

pub fn wait(handle: u64, timeout: u64) -> Outcome {
    let me = sched::current();
    let process = my_process();
    let timeout = Timeout::from_raw(timeout);
    let deadline = deadline(timeout.into_raw());
    let id = {
        let kernel = kernel();
        let id = match lookup_notification(&kernel, process, handle, Rights::RECEIVE) {
            Ok((id, _)) => id,
            Err(error) => return Outcome::Fail(error),
        };
        clear_completion(me);
        let outcome = kernel
            .notification(id)
            .and_then(|n| n.wait(me, timeout.may_block()));
        match outcome {
            Err(error) => return Outcome::Fail(error),
            Ok(WaitOutcome::Ready(bits)) => return Outcome::Value(bits),
            Ok(WaitOutcome::Block) => tcb(me).set_waiting_on(Some(id)),
        }
        id
    };
    loop {
        let expired = sched::block_current(deadline);
        if take_completion(me) {
            return Outcome::Written;
        }
        let killed = sched::kill_requested();
        if !(expired || killed) {
            continue;
        }
        let kernel = kernel();
        if take_completion(me) {
            return Outcome::Written;
        }
        let withdrawn = kernel
            .notification(id)
            .map(|n| n.cancel_wait(me))
            .unwrap_or(true);
        tcb(me).set_waiting_on(None);
        // A kill has already withdrawn the wait (`withdraw`), so `cancel_wait` finds nothing
        // then: the thread ends all the same.
        if withdrawn || killed {
            return Outcome::Fail(if killed {
                Error::Killed
            } else {
                Error::Timeout
            });
        }
    }
}

pub fn poll(handle: u64) -> Result<u64, Error> {
    let process = my_process();
    let kernel = kernel();
    let (id, _) = lookup_notification(&kernel, process, handle, Rights::RECEIVE)?;
    Ok(kernel.notification(id)?.poll())
}

// ---- threads ------------------------------------------------------------------------------

/// Records a new thread of process `process` (not started yet).
pub fn register_thread(kernel: &mut Kernel, process: AddressSpaceId, thread: ThreadId) {
    if let Ok(entry) = kernel.process_mut(process) {
        entry.threads.push(thread);
        entry.started = true;
    }
    kernel.thread_created(thread);
}

/// True when `thread` (a live user thread) was created and never started.
pub fn never_started(thread: ThreadId) -> bool {
    let _kernel = kernel();
    !tcb(thread).started()
        && matches!(
            sched::THREADS.state(thread),
            Ok(kernel_core::thread::ThreadState::Ready)
        )
}

/// Marks `thread` started; false if it already was.
pub fn mark_started(thread: ThreadId) -> bool {
    let _kernel = kernel();
    !tcb(thread).mark_started()
}

/// Takes `thread` out of every IPC and notification wait; callers awaiting its replies are added
/// to `evicted`.
fn withdraw(kernel: &mut Kernel, thread: ThreadId, evicted: &mut Evicted) {
    let mut orphans = alloc::vec::Vec::new();
    if let Some(Cancelled::Send { msg, .. }) = kernel.endpoints.exit(thread, |o| orphans.push(o)) {
        give_back(kernel, thread, &msg);
    }
    evicted.extend(orphans.into_iter().map(|o| (o, None)));
    if let Some(id) = tcb(thread).take_waiting_on()
        && let Ok(notification) = kernel.notification(id)
    {
        notification.cancel_wait(thread);
    }
}

/// Ends the calling user thread with `code`; the last thread of a process takes the process
/// with it.
pub fn exit_current(code: i64) -> ! {
    let me = sched::current();
    let mut evicted = Evicted::new();
    {
        let mut kernel = kernel();
        withdraw(&mut kernel, me, &mut evicted);
        if let Some(process) = process_of(me) {
            let id = process.id;
            if let Ok(entry) = kernel.process_mut(id) {
                entry.threads.retain(|t| *t != me);
            }
            kernel.maybe_retire_process(id, &mut evicted);
        }
    }
    wake_evicted(evicted);
    crate::platform::Machine::disable_interrupts();
    sched::exit(code)
}

/// Kills `thread` (not the caller): withdrawn from IPC now, it ends itself when it next runs.
pub fn kill_thread(thread: ThreadId) {
    let mut evicted = Evicted::new();
    let start = {
        let mut kernel = kernel();
        withdraw(&mut kernel, thread, &mut evicted);
        !tcb(thread).mark_started()
    };
    wake_evicted(evicted);
    sched::request_kill(thread);
    if start {
        sched::start_thread(thread);
    }
}

/// Disposes of user thread `thread`, just created and never registered with a process (its
/// space was killed meanwhile): nothing names it, so it is ended (started only to end) and
/// reclaimed as soon as it has.
pub fn discard_unregistered(thread: ThreadId) {
    kill_thread(thread);
    sched::detach_user_thread(thread);
}

/// Ends every thread of process `space` but `spare` (the caller, which ends itself if it belongs
/// there): marks the process dying first, so that no thread can join it meanwhile, then kills
/// its threads one at a time until none is left unkilled (each kill may switch threads, and
/// whatever ran meanwhile cannot have added one). A process with no thread at all goes at once.
/// Each killed thread ends the next time it runs in the kernel (it is woken, or started if it
/// never was); the process goes with the last.
pub fn kill_space(space: AddressSpaceId, spare: ThreadId) {
    let mut evicted = Evicted::new();
    {
        let mut kernel = kernel();
        let Ok(entry) = kernel.process_mut(space) else {
            return;
        };
        entry.dying = true;
        if entry.threads.is_empty() {
            // Never given a thread: nothing will end it, so it goes now, as a process whose last
            // thread ended.
            if let Ok(entry) = kernel.process_mut(space) {
                entry.started = true;
            }
            kernel.maybe_retire_process(space, &mut evicted);
        }
    }
    wake_evicted(evicted);
    loop {
        let next = {
            let kernel = kernel();
            kernel.process(space).ok().and_then(|entry| {
                entry.threads.iter().copied().find(|&thread| {
                    thread != spare && !tcb(thread).kill_pending.load(Ordering::Acquire)
                })
            })
        };
        match next {
            Some(thread) => kill_thread(thread),
            None => break,
        }
    }
}

/// `SpaceKill`: ends every thread of the address space in slot `a0` (`CONTROL`), the caller's
/// own last if it is one of them.
pub fn space_kill(handle: u64) -> Outcome {
    let me = sched::current();
    let process = my_process();
    let target = {
        let kernel = kernel();
        match super::syscall::lookup_space(&kernel, process, handle, Rights::CONTROL) {
            Ok(target) => target,
            Err(error) => return Outcome::Fail(error),
        }
    };
    kill_space(target, me);
    if target == process {
        exit_current(sched::KILLED_EXIT_CODE);
    }
    Outcome::Value(0)
}

pub fn thread_kill(handle: u64) -> Outcome {
    let thread = match lookup_thread(handle) {
        Ok(thread) => thread,
        Err(error) => return Outcome::Fail(error),
    };
    if thread == sched::current() {
        exit_current(sched::KILLED_EXIT_CODE);
    }
    if matches!(
        sched::THREADS.state(thread),
        Ok(kernel_core::thread::ThreadState::Terminated)
    ) {
        return Outcome::Value(0);
    }
    kill_thread(thread);
    Outcome::Value(0)
}

pub fn thread_join(handle: u64, timeout: u64) -> Outcome {
    let me = sched::current();
    let thread = match lookup_thread(handle) {
        Ok(thread) => thread,
        Err(error) => return Outcome::Fail(error),
    };
    if thread == me {
        return Outcome::Fail(Error::InvalidArgument);
    }
    let timeout = Timeout::from_raw(timeout);
    let deadline = deadline(timeout.into_raw());
    loop {
        if !sched::set_joiner(thread, me) {
            return Outcome::Fail(Error::Busy);
        }
        let stack = sched::stack_of(thread);
        match sched::THREADS.join(thread) {
            Ok(kernel_core::thread::JoinOutcome::Exited { code, reclaimed }) => {
                if reclaimed {
                    sched::free_joined_stack(stack);
                }
                sched::reap();
                return if code == sched::KILLED_EXIT_CODE {
                    Outcome::Fail(Error::Killed)
                } else {
                    Outcome::Value(u64::from(code as u32))
                };
            }
            Ok(kernel_core::thread::JoinOutcome::Running) => {
                if !timeout.may_block() {
                    sched::clear_joiner(thread, me);
                    return Outcome::Fail(Error::WouldBlock);
                }
                let expired = sched::block_current(deadline);
                if sched::kill_requested() || expired {
                    sched::clear_joiner(thread, me);
                    return Outcome::Fail(if expired {
                        Error::Timeout
                    } else {
                        Error::Killed
                    });
                }
            }
            Err(_) => {
                sched::clear_joiner(thread, me);
                return Outcome::Fail(Error::StaleCapability);
            }
        }
    }
}
