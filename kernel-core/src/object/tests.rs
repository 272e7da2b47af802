//! Host tests of the object table: generations, reference counts, what goes when, and that a
//! stale ID never touches the object now in its slot.

use super::slots::GenSlots;
use super::*;
use crate::cap::{Capability, ObjectRef};
use crate::ipc::{CallOutcome, Message, RecvOutcome};
use crate::memory_map::FRAME_SIZE;
use crate::thread::ThreadId;
use abi::{Error, MessageInfo, ObjectType, Rights, UNBADGED};
use std::cell::RefCell;
use std::vec::Vec;

std::thread_local! {
    static FREED: RefCell<Vec<FrameRange>> = const { RefCell::new(Vec::new()) };
    static PENDING_CALLS: RefCell<usize> = const { RefCell::new(0) };
}

/// A host that records what the table asks of it.
struct Host;

impl ObjectHost for Host {
    /// Stands for an address space: its name, so a test can tell which one was retired.
    type Process = &'static str;

    fn free_frames(range: FrameRange) {
        FREED.with(|f| f.borrow_mut().push(range));
    }

    fn pending_added() {
        PENDING_CALLS.with(|p| *p.borrow_mut() += 1);
    }
}

fn freed() -> Vec<FrameRange> {
    FREED.with(|f| core::mem::take(&mut *f.borrow_mut()))
}

fn pending_calls() -> usize {
    PENDING_CALLS.with(|p| core::mem::take(&mut *p.borrow_mut()))
}

type Table = ObjectTable<Host>;

fn table() -> Box<Table> {
    freed();
    pending_calls();
    Box::new(Table::new())
}

fn thread(index: u32, generation: u32) -> ThreadId {
    ThreadId::new(index, generation)
}

fn message() -> Message {
    Message::new(MessageInfo::new(1, 0, false).unwrap(), [0; 4], None)
}

/// A started process named `name` with one thread, as a program loader would leave it.
fn started_process(
    t: &mut Table,
    name: &'static str,
    first: ThreadId,
) -> crate::cap::AddressSpaceId {
    let id = t.add_process(name, |_| name).unwrap();
    let entry = t.process_mut(id).unwrap();
    entry.threads.push(first);
    entry.started = true;
    id
}

use alloc::boxed::Box;

// ---- GenSlots ------------------------------------------------------------------------------

#[test]
fn slots_classify_ids_and_reuse_with_new_generations() {
    let mut s = GenSlots::<u32>::new(2);
    let (a, ga) = s.insert_with(|_, _| 10).unwrap();
    let (b, gb) = s.insert_with(|_, _| 20).unwrap();
    assert_eq!((a, ga, b, gb), (0, 1, 1, 1));
    assert_eq!(
        s.insert_with(|_, _| 30),
        Err(Error::OutOfMemory),
        "full at its limit"
    );
    assert_eq!(s.get(0, 1), Ok(&10));
    assert_eq!(
        s.get(5, 1),
        Err(Error::InvalidCapability),
        "index never used"
    );
    assert_eq!(
        s.get(0, 2),
        Err(Error::InvalidCapability),
        "generation never handed out"
    );
    assert_eq!(s.get(0, 0), Err(Error::InvalidCapability));
    assert_eq!(s.remove(0, 2), None, "a wrong generation removes nothing");
    assert_eq!(s.remove(0, 1), Some(10));
    assert_eq!(s.get(0, 1), Err(Error::StaleCapability), "removed: stale");
    let (c, gc) = s
        .insert_with(|index, generation| index * 100 + generation)
        .unwrap();
    assert_eq!(
        (c, gc),
        (0, 2),
        "the slot is reused with the next generation"
    );
    assert_eq!(s.get(0, 2), Ok(&2));
    assert_eq!(
        s.get(0, 1),
        Err(Error::StaleCapability),
        "the old ID stays stale"
    );
    assert_eq!(s.live(), 2);
    assert_eq!(
        s.iter().map(|(i, g, v)| (i, g, *v)).collect::<Vec<_>>(),
        [(0, 2, 2), (1, 1, 20)]
    );
}

#[test]
fn slots_retire_a_slot_whose_generation_is_exhausted() {
    let mut s = GenSlots::<u8>::new(1);
    s.insert_with(|_, _| 1).unwrap();
    s.force_generation(0, u32::MAX);
    assert_eq!(s.remove(0, u32::MAX), Some(1));
    assert_eq!(
        s.insert_with(|_, _| 2),
        Err(Error::OutOfMemory),
        "generation u32::MAX is never reused (it would wrap and name old IDs)"
    );
}

// ---- frames --------------------------------------------------------------------------------

#[test]
fn frame_range_goes_back_at_its_last_reference_only() {
    let mut t = table();
    let range = FrameRange {
        start: 0x10_0000,
        frames: 4,
    };
    t.add_frames(range, true);
    let cap = ObjectRef::FrameRange {
        start: range.start,
        frames: 4,
    };
    t.retain_object(cap);
    t.retain_frame_page(range.start + 3 * FRAME_SIZE);
    t.retain_frame_page(range.start + 4 * FRAME_SIZE); // outside: not counted
    let mut evicted = Evicted::new();
    t.release_object(cap, &mut evicted);
    assert!(freed().is_empty(), "a mapped page still holds the range");
    assert_eq!(t.object_counts().frame_records, 1);
    t.release_frame_page(range.start + 3 * FRAME_SIZE);
    assert_eq!(freed(), [range], "freed with its last reference");
    assert_eq!(t.object_counts().frame_records, 0);
    t.release_frame_page(range.start);
    assert!(freed().is_empty(), "a released range is not freed twice");
}

#[test]
fn a_range_the_allocator_never_owned_is_forgotten_not_freed() {
    let mut t = table();
    t.add_frames(
        FrameRange {
            start: 0x20_0000,
            frames: 1,
        },
        false,
    );
    t.retain_frame_page(0x20_0000);
    t.release_frame_page(0x20_0000);
    assert!(freed().is_empty());
    assert_eq!(t.object_counts().frame_records, 0);
}

// ---- endpoints -----------------------------------------------------------------------------

#[test]
fn endpoint_goes_with_its_last_capability_and_evicts_its_queue() {
    let mut t = table();
    let e = t.create_endpoint().unwrap();
    let cap = ObjectRef::Endpoint(e);
    t.retain_object(cap);
    t.retain_object(cap);
    let receiver = thread(3, 1);
    assert!(matches!(
        t.endpoints.recv(e, receiver, true),
        Ok(RecvOutcome::Blocked)
    ));
    let mut evicted = Evicted::new();
    t.release_object(cap, &mut evicted);
    assert!(evicted.is_empty());
    assert_eq!(t.object_counts().endpoints, 1);
    t.release_object(cap, &mut evicted);
    assert_eq!(evicted.len(), 1);
    assert_eq!(evicted[0].0, receiver);
    assert_eq!(t.object_counts().endpoints, 0);
    assert!(
        t.endpoints
            .call(e, thread(4, 1), UNBADGED, message(), true)
            .is_err()
    );
}

#[test]
fn a_stale_endpoint_id_never_touches_the_next_endpoint_in_its_slot() {
    let mut t = table();
    let old = t.create_endpoint().unwrap();
    t.retain_object(ObjectRef::Endpoint(old));
    let mut evicted = Evicted::new();
    t.release_object(ObjectRef::Endpoint(old), &mut evicted);
    // The free list is FIFO: cycle endpoints until the old slot comes round again.
    let new = loop {
        let e = t.create_endpoint().unwrap();
        if e.index() == old.index() {
            break e;
        }
        t.retain_object(ObjectRef::Endpoint(e));
        t.release_object(ObjectRef::Endpoint(e), &mut evicted);
    };
    assert_ne!(new, old, "the slot is reused with a new generation");
    t.retain_object(ObjectRef::Endpoint(new));
    // A stale capability (one a destroyed budget left behind, say) is released and copied.
    t.retain_object(ObjectRef::Endpoint(old));
    t.release_object(ObjectRef::Endpoint(old), &mut evicted);
    t.release_object(ObjectRef::Endpoint(old), &mut evicted);
    assert_eq!(
        t.object_counts().endpoints,
        1,
        "the new endpoint keeps its one reference"
    );
    let caller = thread(1, 1);
    assert!(matches!(
        t.endpoints.call(new, caller, UNBADGED, message(), true),
        Ok(CallOutcome::Blocked)
    ));
    t.release_object(ObjectRef::Endpoint(new), &mut evicted);
    assert_eq!(t.object_counts().endpoints, 0);
    assert_eq!(evicted.len(), 1, "its queued caller is evicted");
}

// ---- notifications -------------------------------------------------------------------------

#[test]
fn notification_goes_with_its_last_capability_and_its_waiter_is_evicted() {
    let mut t = table();
    let n = t.create_notification().unwrap();
    t.retain_object(ObjectRef::Notification(n));
    let waiter = thread(7, 2);
    assert!(t.notification(n).unwrap().wait(waiter, true).is_ok());
    let mut evicted = Evicted::new();
    t.release_object(ObjectRef::Notification(n), &mut evicted);
    assert_eq!(evicted.len(), 1);
    assert_eq!(evicted[0].0, waiter);
    assert!(evicted[0].1.is_none());
    assert_eq!(t.notification(n).err(), Some(Error::StaleCapability));
    let again = t.create_notification().unwrap();
    assert_eq!(again.index(), n.index());
    t.retain_object(ObjectRef::Notification(again));
    t.release_object(ObjectRef::Notification(n), &mut evicted);
    assert!(
        t.notification(again).is_ok(),
        "a stale release leaves the new one alone"
    );
}

#[test]
fn notification_table_is_bounded() {
    let mut t = table();
    for _ in 0..MAX_NOTIFICATIONS {
        t.create_notification().unwrap();
    }
    assert_eq!(t.create_notification(), Err(Error::OutOfMemory));
}

// ---- processes -----------------------------------------------------------------------------

#[test]
fn a_process_that_never_ran_goes_with_its_last_capability() {
    let mut t = table();
    let p = t.add_process("fresh", |_| "fresh").unwrap();
    let cap = ObjectRef::AddressSpace(p);
    t.retain_object(cap);
    t.retain_object(cap);
    let mut evicted = Evicted::new();
    t.release_object(cap, &mut evicted);
    assert!(t.process(p).is_ok());
    t.release_object(cap, &mut evicted);
    assert_eq!(t.process(p).err(), Some(Error::StaleCapability));
    assert_eq!(pending_calls(), 1);
    let pending = t.take_pending();
    assert_eq!(
        pending.retired,
        ["fresh"],
        "its payload waits for the caller to drop it"
    );
    assert!(t.take_pending().retired.is_empty());
}

#[test]
fn a_started_process_stays_while_a_thread_lives_and_goes_with_the_last() {
    let mut t = table();
    let first = thread(1, 1);
    let p = started_process(&mut t, "app", first);
    let cap = ObjectRef::AddressSpace(p);
    t.retain_object(cap);
    let mut evicted = Evicted::new();
    t.release_object(cap, &mut evicted);
    assert!(
        t.process(p).is_ok(),
        "nobody names it, but a thread still runs in it"
    );
    t.process_mut(p).unwrap().threads.clear();
    t.maybe_retire_process(p, &mut evicted);
    assert_eq!(t.process(p).err(), Some(Error::StaleCapability));
    assert_eq!(t.take_pending().retired, ["app"]);
    assert_eq!(t.object_counts().processes, 0);
}

#[test]
fn a_retired_process_releases_every_capability_it_held() {
    let mut t = table();
    let p = started_process(&mut t, "holder", thread(1, 1));
    let e = t.create_endpoint().unwrap();
    t.insert_cap(p, Capability::full(ObjectRef::Endpoint(e)))
        .unwrap();
    let n = t.create_notification().unwrap();
    t.insert_cap(p, Capability::full(ObjectRef::Notification(n)))
        .unwrap();
    let range = FrameRange {
        start: 0x40_0000,
        frames: 2,
    };
    t.add_frames(range, true);
    t.insert_cap(
        p,
        Capability::full(ObjectRef::FrameRange {
            start: range.start,
            frames: 2,
        }),
    )
    .unwrap();
    // A second process that never ran, named only from the first one's table.
    let child = t.add_process("child", |_| "child").unwrap();
    assert_eq!(
        t.insert_cap(child, Capability::full(ObjectRef::AddressSpace(p))),
        Err(Error::InvalidArgument),
        "a process that never ran holds no process"
    );
    t.insert_cap(p, Capability::full(ObjectRef::AddressSpace(child)))
        .unwrap();
    let t1 = thread(9, 3);
    t.thread_created(t1);
    t.insert_cap(p, Capability::full(ObjectRef::Thread(t1)))
        .unwrap();
    let counts = t.object_counts();
    assert_eq!(
        (
            counts.endpoints,
            counts.notifications,
            counts.processes,
            counts.frame_records
        ),
        (1, 1, 2, 1)
    );

    t.process_mut(p).unwrap().threads.clear();
    let mut evicted = Evicted::new();
    t.maybe_retire_process(p, &mut evicted);
    let counts = t.object_counts();
    assert_eq!(
        (
            counts.endpoints,
            counts.notifications,
            counts.processes,
            counts.frame_records
        ),
        (0, 0, 0, 0),
        "everything it alone named went with it"
    );
    assert_eq!(freed(), [range]);
    let pending = t.take_pending();
    assert_eq!(pending.retired, ["child", "holder"]);
    assert_eq!(
        pending.detached,
        [t1],
        "the thread nobody names any more is detached"
    );
}

#[test]
fn process_table_is_bounded_and_refuses_without_building_the_payload() {
    let mut t = table();
    for _ in 0..MAX_PROCESSES {
        t.add_process("p", |_| "p").unwrap();
    }
    let mut built = false;
    assert_eq!(
        t.add_process("one too many", |_| {
            built = true;
            "x"
        }),
        Err(Error::OutOfMemory)
    );
    assert!(
        !built,
        "the caller keeps what the payload would have wrapped"
    );
}

#[test]
fn cap_lookup_checks_process_then_handle_type_and_rights() {
    let mut t = table();
    let p = t.add_process("p", |_| "p").unwrap();
    let e = t.create_endpoint().unwrap();
    let handle = t
        .insert_cap(p, Capability::new(ObjectRef::Endpoint(e), Rights::SEND))
        .unwrap();
    assert!(
        t.cap(p, handle.into_raw(), ObjectType::Endpoint, Rights::SEND)
            .is_ok()
    );
    assert_eq!(
        t.cap(p, handle.into_raw(), ObjectType::Endpoint, Rights::RECEIVE)
            .err(),
        Some(Error::InsufficientRights)
    );
    assert_eq!(
        t.cap(p, handle.into_raw(), ObjectType::Notification, Rights::SEND)
            .err(),
        Some(Error::WrongType)
    );
    let gone = crate::cap::AddressSpaceId::new(p.index() as u32, p.generation() + 1);
    assert_eq!(
        t.cap(gone, handle.into_raw(), ObjectType::Endpoint, Rights::SEND)
            .err(),
        Some(Error::InvalidCapability)
    );
}

// ---- threads -------------------------------------------------------------------------------

#[test]
fn a_thread_is_detached_when_its_last_capability_goes_and_stale_ids_do_not_count() {
    let mut t = table();
    let old = thread(5, 1);
    let mut evicted = Evicted::new();
    t.thread_created(old);
    t.retain_object(ObjectRef::Thread(old));
    t.retain_object(ObjectRef::Thread(old));
    t.release_object(ObjectRef::Thread(old), &mut evicted);
    assert!(t.take_pending().detached.is_empty());
    t.release_object(ObjectRef::Thread(old), &mut evicted);
    assert_eq!(t.take_pending().detached, [old]);
    // The slot's next thread: the old ID's capabilities neither add to nor take from it, even
    // when one is copied (retained) after the new thread got the slot.
    let new = thread(5, 2);
    t.thread_created(new);
    t.retain_object(ObjectRef::Thread(new));
    t.retain_object(ObjectRef::Thread(old));
    t.release_object(ObjectRef::Thread(old), &mut evicted);
    assert!(t.take_pending().detached.is_empty());
    t.release_object(ObjectRef::Thread(new), &mut evicted);
    assert_eq!(
        t.take_pending().detached,
        [new],
        "the new thread is detached with its own last capability"
    );
    t.release_object(ObjectRef::Thread(old), &mut evicted);
    assert!(t.take_pending().detached.is_empty());
}

#[test]
fn processes_that_never_ran_cannot_keep_each_other_alive() {
    let mut t = table();
    let a = t.add_process("a", |_| "a").unwrap();
    let b = t.add_process("b", |_| "b").unwrap();
    t.retain_object(ObjectRef::AddressSpace(a));
    t.retain_object(ObjectRef::AddressSpace(b));
    // Neither may name itself or the other: the cycle that would pin both cannot be made.
    for (owner, named) in [(a, a), (a, b), (b, a), (b, b)] {
        assert_eq!(
            t.insert_cap(owner, Capability::full(ObjectRef::AddressSpace(named))),
            Err(Error::InvalidArgument)
        );
    }
    let mut evicted = Evicted::new();
    t.release_object(ObjectRef::AddressSpace(a), &mut evicted);
    t.release_object(ObjectRef::AddressSpace(b), &mut evicted);
    assert_eq!(
        t.object_counts().processes,
        0,
        "both go with their creator's capabilities"
    );
    // Once a process has had a thread it may hold processes (it retires when its threads end).
    let c = started_process(&mut t, "c", thread(2, 1));
    assert!(
        t.insert_cap(c, Capability::full(ObjectRef::AddressSpace(c)))
            .is_ok()
    );
}
