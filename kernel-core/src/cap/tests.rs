//! Host tests of the capability table: every error case of every operation (what the userspace
//! `cap_errors` test will exercise through syscalls), "a failed operation changes nothing", slot
//! reuse and generation exhaustion, and a deterministic randomized run against a model.

use super::*;
use crate::thread::ThreadId;
use abi::{CapHandle, Error, ObjectType, Rights, UNBADGED};
use std::collections::BTreeMap;
use std::vec::Vec;

type Small = CapTable<4>;

fn endpoint(n: u32) -> Capability {
    Capability::full(ObjectRef::Endpoint(EndpointId::new(n, 1)))
}

fn notification(n: u32) -> Capability {
    Capability::full(ObjectRef::Notification(NotificationId::new(n, 1)))
}

fn frames() -> Capability {
    Capability::full(ObjectRef::FrameRange {
        start: 0x20_0000,
        frames: 4,
    })
}

/// Everything observable about a table: its handles, capabilities and counters.
fn snapshot<const N: usize>(table: &CapTable<N>) -> (Vec<(CapHandle, Capability)>, usize, usize) {
    let caps = table.iter().map(|(h, c)| (h, c.clone())).collect();
    (caps, table.len(), table.free())
}

// --- objects and capabilities ----------------------------------------------------------------

#[test]
fn object_ids_pack_index_and_generation() {
    let id = EndpointId::new(9, 4);
    assert_eq!((id.index(), id.generation()), (9, 4));
    assert_eq!(EndpointId::from_u64(id.as_u64()), id);
    assert_eq!(std::format!("{id:?}"), "EndpointId(9.4)");
    assert_eq!(
        std::format!("{}", AddressSpaceId::new(u32::MAX, 1)),
        "4294967295.1"
    );
}

#[test]
fn object_refs_know_their_type() {
    let refs = [
        (
            ObjectRef::Endpoint(EndpointId::new(0, 1)),
            ObjectType::Endpoint,
        ),
        (
            ObjectRef::Notification(NotificationId::new(0, 1)),
            ObjectType::Notification,
        ),
        (
            ObjectRef::AddressSpace(AddressSpaceId::new(0, 1)),
            ObjectType::AddressSpace,
        ),
        (ObjectRef::Thread(ThreadId::new(0, 1)), ObjectType::Thread),
        (
            ObjectRef::FrameRange {
                start: 0,
                frames: 1,
            },
            ObjectType::FrameRange,
        ),
        (ObjectRef::Irq(33), ObjectType::Irq),
    ];
    for (object, ty) in refs {
        assert_eq!(object.object_type(), ty);
        let cap = Capability::full(object);
        assert_eq!(cap.rights(), ty.rights());
        assert_eq!(cap.badge(), UNBADGED);
    }
}

#[test]
fn new_capabilities_drop_meaningless_rights() {
    let cap = Capability::new(ObjectRef::Endpoint(EndpointId::new(0, 1)), Rights::all());
    assert_eq!(cap.rights(), ObjectType::Endpoint.rights());
    assert!(!cap.rights().contains(Rights::MAP));
}

#[test]
fn derive_only_shrinks_rights() {
    let cap = endpoint(0);
    let send = cap.derive(Rights::SEND, UNBADGED).unwrap();
    assert_eq!(send.rights(), Rights::SEND);
    assert_eq!(send.object(), cap.object());
    // Back up to what the original had: refused.
    assert_eq!(
        send.derive(Rights::SEND | Rights::CALL, UNBADGED),
        Err(Error::InsufficientRights)
    );
    // A right the type never has: refused the same way.
    assert_eq!(
        cap.derive(Rights::MAP, UNBADGED),
        Err(Error::InsufficientRights)
    );
    assert_eq!(
        cap.derive(Rights::empty(), UNBADGED).unwrap().rights(),
        Rights::empty()
    );
}

#[test]
fn badges_are_set_once_and_only_where_they_mean_something() {
    let badged = endpoint(0).derive(Rights::SEND, 7).unwrap();
    assert_eq!(badged.badge(), 7);
    // Kept by a further copy, never changed.
    assert_eq!(badged.derive(Rights::SEND, UNBADGED).unwrap().badge(), 7);
    assert_eq!(badged.derive(Rights::SEND, 8), Err(Error::InvalidArgument));
    assert_eq!(badged.derive(Rights::SEND, 7), Err(Error::InvalidArgument));
    // Types that take no badge.
    assert_eq!(
        frames().derive(Rights::READ, 1),
        Err(Error::InvalidArgument)
    );
    // A notification badge must be signallable bits.
    assert_eq!(
        notification(0).derive(Rights::SEND, 1 << 63),
        Err(Error::InvalidArgument)
    );
    assert_eq!(
        notification(0)
            .derive(Rights::SEND, 1 << 62)
            .unwrap()
            .badge(),
        1 << 62
    );
    // Rights are checked before the badge.
    assert_eq!(
        badged.derive(Rights::RECEIVE, 9),
        Err(Error::InsufficientRights)
    );
}

// --- insert, get, lookup ---------------------------------------------------------------------

#[test]
fn insert_then_get_and_lookup() {
    let mut table = Small::new();
    assert!(table.is_empty());
    let h = table.insert(endpoint(1)).unwrap();
    assert_eq!((h.index(), h.generation()), (0, 1));
    assert_eq!(table.get(h), Ok(&endpoint(1)));
    assert_eq!(
        table.lookup(h, ObjectType::Endpoint, Rights::CALL | Rights::SEND),
        Ok(&endpoint(1))
    );
    assert_eq!(
        table.lookup(h, ObjectType::Endpoint, Rights::empty()),
        Ok(&endpoint(1))
    );
    assert_eq!((table.len(), table.free()), (1, 3));
}

#[test]
fn forged_handles_are_invalid() {
    let mut table = Small::new();
    let h = table.insert(endpoint(1)).unwrap();
    let forged = [
        CapHandle::NULL,
        CapHandle::from_raw(1),
        CapHandle::from_raw(0xffff_ffff),
        // Index out of range, with a plausible generation.
        CapHandle::new(4, 1),
        CapHandle::new(u32::MAX, 1),
        // Generation 0 of a live slot.
        CapHandle::new(0, 0),
        // A generation the slot never reached.
        CapHandle::new(0, 2),
        CapHandle::new(0, u32::MAX),
        // A slot never used.
        CapHandle::new(1, 1),
        CapHandle::from_raw(u64::MAX),
    ];
    for handle in forged {
        assert_eq!(table.get(handle), Err(Error::InvalidCapability), "{handle}");
        assert_eq!(
            table.lookup(handle, ObjectType::Endpoint, Rights::empty()),
            Err(Error::InvalidCapability)
        );
        assert_eq!(table.delete(handle), Err(Error::InvalidCapability));
        assert_eq!(
            table.derive(handle, Rights::empty(), UNBADGED),
            Err(Error::InvalidCapability)
        );
        assert_eq!(table.lend(handle), Err(Error::InvalidCapability));
        assert_eq!(table.settle(handle), Err(Error::InvalidCapability));
        assert_eq!(table.unlend(handle), Err(Error::InvalidCapability));
    }
    assert_eq!(table.get(h), Ok(&endpoint(1)));
    assert_eq!(table.len(), 1);
}

#[test]
fn deleted_handles_are_stale_even_after_the_slot_is_reused() {
    let mut table = CapTable::<1>::new();
    let old = table.insert(endpoint(1)).unwrap();
    assert_eq!(table.delete(old), Ok(endpoint(1)));
    assert_eq!(table.get(old), Err(Error::StaleCapability));
    // The freed slot at its new generation was never handed out yet.
    assert_eq!(
        table.get(CapHandle::new(0, 2)),
        Err(Error::InvalidCapability)
    );
    let new = table.insert(notification(2)).unwrap();
    assert_eq!((new.index(), new.generation()), (0, 2));
    assert_eq!(table.get(old), Err(Error::StaleCapability));
    assert_eq!(table.delete(old), Err(Error::StaleCapability));
    assert_eq!(table.get(new), Ok(&notification(2)));
}

#[test]
fn wrong_type_and_insufficient_rights() {
    let mut table = Small::new();
    let ep = table.insert(endpoint(1)).unwrap();
    let send_only = table.derive(ep, Rights::SEND, UNBADGED).unwrap();
    assert_eq!(
        table.lookup(ep, ObjectType::Notification, Rights::empty()),
        Err(Error::WrongType)
    );
    assert_eq!(
        table.lookup(send_only, ObjectType::Endpoint, Rights::CALL),
        Err(Error::InsufficientRights)
    );
    assert_eq!(
        table.lookup(
            send_only,
            ObjectType::Endpoint,
            Rights::SEND | Rights::RECEIVE
        ),
        Err(Error::InsufficientRights)
    );
    // Precedence: validity, then type, then rights.
    assert_eq!(
        table.lookup(send_only, ObjectType::FrameRange, Rights::MAP),
        Err(Error::WrongType)
    );
    table.delete(send_only).unwrap();
    assert_eq!(
        table.lookup(send_only, ObjectType::FrameRange, Rights::MAP),
        Err(Error::StaleCapability)
    );
}

// --- derive, delete, capacity ----------------------------------------------------------------

#[test]
fn derive_refusals_change_nothing() {
    let mut table = CapTable::<2>::new();
    let ep = table.insert(endpoint(1)).unwrap();
    let before = snapshot(&table);
    assert_eq!(
        table.derive(ep, Rights::all(), UNBADGED),
        Err(Error::InsufficientRights)
    );
    assert_eq!(
        table.derive(ep, Rights::SEND, 0).map(|_| ()),
        Ok(()),
        "a plain copy works"
    );
    let before_full = snapshot(&table);
    assert_ne!(before, before_full);
    // Table now full.
    assert_eq!(
        table.derive(ep, Rights::SEND, UNBADGED),
        Err(Error::TableFull)
    );
    assert_eq!(snapshot(&table), before_full);
}

#[test]
fn deleting_one_copy_leaves_the_others() {
    let mut table = Small::new();
    let a = table.insert(endpoint(1)).unwrap();
    let b = table.derive(a, Rights::SEND, 5).unwrap();
    assert_eq!(table.delete(a), Ok(endpoint(1)));
    assert_eq!(table.get(b).unwrap().badge(), 5);
    assert_eq!(table.len(), 1);
}

#[test]
fn full_table_refuses_and_reuses_oldest_free_slot_first() {
    let mut table = Small::new();
    let handles: Vec<_> = (0..4).map(|n| table.insert(endpoint(n)).unwrap()).collect();
    assert_eq!(table.insert(endpoint(9)), Err(Error::TableFull));
    assert_eq!(table.free(), 0);
    table.delete(handles[2]).unwrap();
    table.delete(handles[0]).unwrap();
    let first = table.insert(endpoint(10)).unwrap();
    let second = table.insert(endpoint(11)).unwrap();
    assert_eq!((first.index(), first.generation()), (2, 2));
    assert_eq!((second.index(), second.generation()), (0, 2));
    assert_eq!(table.insert(endpoint(12)), Err(Error::TableFull));
}

#[test]
fn exhausted_generation_retires_the_slot() {
    let mut table = CapTable::<2>::new();
    table.set_generation(0, u32::MAX - 1);
    let a = table.insert(endpoint(1)).unwrap();
    assert_eq!(a.generation(), u32::MAX - 1);
    table.delete(a).unwrap();
    // Slot 1 is next in the free list; slot 0 went to the back at generation MAX.
    let b = table.insert(endpoint(2)).unwrap();
    let c = table.insert(endpoint(3)).unwrap();
    assert_eq!((b.index(), c.index(), c.generation()), (1, 0, u32::MAX));
    table.delete(c).unwrap();
    // Slot 0 is retired: stale, not reused, capacity gone for good.
    assert_eq!(table.get(c), Err(Error::StaleCapability));
    assert_eq!(table.get(a), Err(Error::StaleCapability));
    assert_eq!(table.free(), 0);
    assert_eq!(table.insert(endpoint(4)), Err(Error::TableFull));
    table.delete(b).unwrap();
    let d = table.insert(endpoint(5)).unwrap();
    assert_eq!((d.index(), d.generation()), (1, 2));
    assert_eq!(
        std::format!("{table:?}"),
        "CapTable { capacity: 2, len: 1, retired: 1 }"
    );
}

// --- transfer and grant ----------------------------------------------------------------------

#[test]
fn transfer_moves_with_rights_and_badge() {
    let mut from = Small::new();
    let mut to = CapTable::<2>::new();
    let ep = from.insert(endpoint(1)).unwrap();
    let badged = from.derive(ep, Rights::SEND | Rights::GRANT, 3).unwrap();
    let moved = from.transfer(badged, &mut to).unwrap();
    assert_eq!(from.get(badged), Err(Error::StaleCapability));
    let cap = to.get(moved).unwrap();
    assert_eq!(
        (cap.rights(), cap.badge()),
        (Rights::SEND | Rights::GRANT, 3)
    );
    assert_eq!((from.len(), to.len()), (1, 1));
}

#[test]
fn transfer_refusals_change_neither_table() {
    let mut from = Small::new();
    let mut to = CapTable::<1>::new();
    let ep = from.insert(endpoint(1)).unwrap();
    let no_grant = from.derive(ep, Rights::SEND, UNBADGED).unwrap();
    to.insert(notification(0)).unwrap();
    let (from_before, to_before) = (snapshot(&from), snapshot(&to));
    for (handle, error) in [
        (no_grant, Error::InsufficientRights),
        (ep, Error::TableFull),
        (CapHandle::NULL, Error::InvalidCapability),
        (CapHandle::new(3, 1), Error::InvalidCapability),
    ] {
        assert_eq!(from.transfer(handle, &mut to), Err(error), "{handle}");
        assert_eq!(from.grant(handle, Rights::SEND, &mut to).err(), Some(error));
        assert_eq!(snapshot(&from), from_before);
        assert_eq!(snapshot(&to), to_before);
    }
    from.delete(no_grant).unwrap();
    assert_eq!(
        from.transfer(no_grant, &mut to),
        Err(Error::StaleCapability)
    );
}

#[test]
fn grant_copies_with_fewer_rights_and_keeps_the_source() {
    let mut from = Small::new();
    let mut to = Small::new();
    let ep = from.insert(endpoint(1)).unwrap();
    let badged = from
        .derive(ep, Rights::all() & ObjectType::Endpoint.rights(), 4)
        .unwrap();
    let copy = from.grant(badged, Rights::CALL, &mut to).unwrap();
    assert_eq!(to.get(copy).unwrap().rights(), Rights::CALL);
    assert_eq!(to.get(copy).unwrap().badge(), 4);
    assert!(from.get(badged).is_ok());
    assert_eq!(
        from.grant(badged, Rights::MAP, &mut to),
        Err(Error::InsufficientRights)
    );
    assert_eq!(to.len(), 1);
}

// --- lending ---------------------------------------------------------------------------------

#[test]
fn a_lent_capability_is_busy_until_settled_or_unlent() {
    let mut table = Small::new();
    let mut other = Small::new();
    let ep = table.insert(endpoint(1)).unwrap();
    let copy = table.lend(ep).unwrap();
    assert_eq!(copy, endpoint(1));
    assert_eq!(table.get(ep), Err(Error::Busy));
    assert_eq!(
        table.lookup(ep, ObjectType::Endpoint, Rights::SEND),
        Err(Error::Busy)
    );
    assert_eq!(table.delete(ep), Err(Error::Busy));
    assert_eq!(table.lend(ep), Err(Error::Busy));
    assert_eq!(table.derive(ep, Rights::SEND, UNBADGED), Err(Error::Busy));
    assert_eq!(table.transfer(ep, &mut other), Err(Error::Busy));
    assert_eq!(table.grant(ep, Rights::SEND, &mut other), Err(Error::Busy));
    assert_eq!(table.len(), 1, "a lent capability still occupies its slot");
    assert_eq!(table.iter().count(), 1);

    // Not delivered: the same handle works again.
    table.unlend(ep).unwrap();
    assert_eq!(table.get(ep), Ok(&endpoint(1)));
    assert_eq!(table.unlend(ep), Err(Error::InvalidArgument));
    assert_eq!(table.settle(ep), Err(Error::InvalidArgument));

    // Delivered: the handle goes stale.
    table.lend(ep).unwrap();
    table.settle(ep).unwrap();
    assert_eq!(table.get(ep), Err(Error::StaleCapability));
    assert_eq!(table.settle(ep), Err(Error::StaleCapability));
    assert!(table.is_empty());
    assert_eq!(other.len(), 0);
}

#[test]
fn lending_needs_grant() {
    let mut table = Small::new();
    let ep = table.insert(endpoint(1)).unwrap();
    let no_grant = table.derive(ep, Rights::SEND, UNBADGED).unwrap();
    assert_eq!(table.lend(no_grant), Err(Error::InsufficientRights));
    assert!(table.get(no_grant).is_ok());
}

#[test]
fn clear_releases_everything_and_makes_every_handle_stale() {
    let mut table = Small::new();
    let a = table.insert(endpoint(1)).unwrap();
    let b = table.insert(notification(2)).unwrap();
    table.lend(b).unwrap();
    let mut released = Vec::new();
    table.clear(|h, cap| released.push((h, cap)));
    assert_eq!(released, [(a, endpoint(1)), (b, notification(2))]);
    assert!(table.is_empty());
    assert_eq!(table.free(), 4);
    assert_eq!(table.get(a), Err(Error::StaleCapability));
    assert_eq!(table.get(b), Err(Error::StaleCapability));
    assert!(table.insert(frames()).is_ok());
}

// --- randomized model check ------------------------------------------------------------------

/// xorshift64*: deterministic, so a failure reproduces from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What the model knows about a handle the table handed out.
#[derive(Debug, Clone, PartialEq)]
enum Status {
    Held(Capability),
    Lent(Capability),
    Gone,
}

/// The model of one table: every handle ever issued and its status. It knows nothing of slots or
/// generations, only the contract: a handle never issued is invalid, a removed one stale.
struct Model {
    capacity: usize,
    handles: BTreeMap<u64, Status>,
    /// Handles whose capability is in the table (held or lent), and those whose is gone: what
    /// `pick` chooses from.
    live: Vec<u64>,
    gone: Vec<u64>,
}

impl Model {
    fn new(capacity: usize) -> Self {
        Self {
            capacity,
            handles: BTreeMap::new(),
            live: Vec::new(),
            gone: Vec::new(),
        }
    }

    fn len(&self) -> usize {
        self.live.len()
    }

    fn status(&self, handle: CapHandle) -> Option<&Status> {
        self.handles.get(&handle.into_raw())
    }

    /// What `get` must answer.
    fn get(&self, handle: CapHandle) -> Result<&Capability, Error> {
        match self.status(handle) {
            None => Err(Error::InvalidCapability),
            Some(Status::Gone) => Err(Error::StaleCapability),
            Some(Status::Lent(_)) => Err(Error::Busy),
            Some(Status::Held(cap)) => Ok(cap),
        }
    }

    fn grantable(&self, handle: CapHandle) -> Result<&Capability, Error> {
        let cap = self.get(handle)?;
        if cap.rights().contains(Rights::GRANT) {
            Ok(cap)
        } else {
            Err(Error::InsufficientRights)
        }
    }

    fn issued(&mut self, handle: CapHandle, cap: Capability) {
        assert!(handle.index() < self.capacity as u32 && handle.generation() != 0);
        let previous = self.handles.insert(handle.into_raw(), Status::Held(cap));
        assert_eq!(previous, None, "handle {handle} handed out twice");
        self.live.push(handle.into_raw());
    }

    fn set(&mut self, handle: CapHandle, status: Status) {
        let raw = handle.into_raw();
        if matches!(status, Status::Gone) {
            self.live.retain(|&h| h != raw);
            self.gone.push(raw);
        }
        self.handles.insert(raw, status);
    }

    fn clear(&mut self) {
        for raw in self.live.drain(..) {
            self.handles.insert(raw, Status::Gone);
            self.gone.push(raw);
        }
    }
}

fn random_cap(rng: &mut Rng) -> Capability {
    let n = rng.below(4) as u32;
    let object = match rng.below(4) {
        0 => ObjectRef::Endpoint(EndpointId::new(n, 1)),
        1 => ObjectRef::Notification(NotificationId::new(n, 1)),
        2 => ObjectRef::Thread(ThreadId::new(n, 1)),
        _ => ObjectRef::FrameRange {
            start: u64::from(n) << 12,
            frames: 1,
        },
    };
    let rights = Rights::from_bits_truncate(rng.next() as u32);
    Capability::new(object, rights)
}

fn random_rights(rng: &mut Rng) -> Rights {
    Rights::from_bits_truncate(rng.next() as u32)
}

fn random_badge(rng: &mut Rng) -> u64 {
    match rng.below(4) {
        0 => 1 << 63,
        1 => rng.below(3) + 1,
        _ => UNBADGED,
    }
}

/// A handle to act on: mostly one that is in the table (held or lent), else one whose capability
/// is gone, or a forgery.
fn pick(rng: &mut Rng, model: &Model, capacity: usize) -> CapHandle {
    let candidates = if rng.below(4) != 0 {
        &model.live
    } else {
        &model.gone
    };
    if !candidates.is_empty() && rng.below(4) != 0 {
        return CapHandle::from_raw(candidates[rng.below(candidates.len() as u64) as usize]);
    }
    let index = rng.below(capacity as u64 + 2) as u32;
    let generation = match rng.below(4) {
        0 => 0,
        1 => u32::MAX,
        _ => rng.below(6) as u32,
    };
    CapHandle::new(index, generation)
}

/// What `derive` must answer, short of table space.
fn expected_derive(
    model: &Model,
    handle: CapHandle,
    rights: Rights,
    badge: u64,
) -> Result<Capability, Error> {
    model.get(handle)?.derive(rights, badge)
}

fn run_model(seed: u64, steps: usize) {
    const N: usize = 8;
    const M: usize = 4;
    let mut rng = Rng(seed);
    let mut table = CapTable::<N>::new();
    let mut other = CapTable::<M>::new();
    let mut model = Model::new(N);
    let mut other_model = Model::new(M);

    for step in 0..steps {
        let handle = pick(&mut rng, &model, N);
        let ctx = || std::format!("seed {seed} step {step} handle {handle}");
        match rng.below(11) {
            0 => {
                let cap = random_cap(&mut rng);
                match table.insert(cap.clone()) {
                    Ok(h) => model.issued(h, cap),
                    Err(e) => {
                        assert_eq!(e, Error::TableFull, "{}", ctx());
                        assert_eq!(model.len(), N, "{}", ctx());
                    }
                }
            }
            2 => assert_eq!(table.get(handle), model.get(handle), "{}", ctx()),
            3 => {
                let ty = ObjectType::ALL[rng.below(6) as usize];
                let rights = random_rights(&mut rng) & ty.rights();
                let expected = model.get(handle).and_then(|cap| {
                    if cap.object_type() != ty {
                        Err(Error::WrongType)
                    } else if !cap.rights().contains(rights) {
                        Err(Error::InsufficientRights)
                    } else {
                        Ok(cap)
                    }
                });
                assert_eq!(table.lookup(handle, ty, rights), expected, "{}", ctx());
            }
            1 | 4 => {
                let rights = if rng.below(4) == 0 {
                    random_rights(&mut rng)
                } else {
                    model
                        .get(handle)
                        .map_or(Rights::empty(), |c| c.rights() & random_rights(&mut rng))
                };
                let badge = random_badge(&mut rng);
                let expected = expected_derive(&model, handle, rights, badge);
                match (table.derive(handle, rights, badge), expected) {
                    (Ok(h), Ok(cap)) => model.issued(h, cap),
                    (Err(Error::TableFull), Ok(_)) => assert_eq!(model.len(), N, "{}", ctx()),
                    (got, want) => assert_eq!(got.err(), want.err(), "{}", ctx()),
                }
            }
            5 => {
                let expected = model.get(handle).cloned();
                assert_eq!(table.delete(handle), expected, "{}", ctx());
                if expected.is_ok() {
                    model.set(handle, Status::Gone);
                }
            }
            6 => {
                let expected = model.grantable(handle).cloned();
                assert_eq!(table.lend(handle), expected, "{}", ctx());
                if let Ok(cap) = expected {
                    model.set(handle, Status::Lent(cap));
                }
            }
            7 | 10 => {
                let settle = rng.below(2) == 0;
                let expected = match model.status(handle) {
                    None => Err(Error::InvalidCapability),
                    Some(Status::Gone) => Err(Error::StaleCapability),
                    Some(Status::Held(_)) => Err(Error::InvalidArgument),
                    Some(Status::Lent(cap)) => Ok(cap.clone()),
                };
                let got = if settle {
                    table.settle(handle)
                } else {
                    table.unlend(handle)
                };
                assert_eq!(got, expected.clone().map(drop), "{}", ctx());
                if let Ok(cap) = expected {
                    model.set(
                        handle,
                        if settle {
                            Status::Gone
                        } else {
                            Status::Held(cap)
                        },
                    );
                }
            }
            8 => {
                let expected = model.grantable(handle).cloned();
                let before = (snapshot(&table), snapshot(&other));
                match (table.transfer(handle, &mut other), expected) {
                    (Ok(h), Ok(cap)) => {
                        model.set(handle, Status::Gone);
                        other_model.issued(h, cap);
                    }
                    (Err(Error::TableFull), Ok(_)) => {
                        assert_eq!(other_model.len(), M, "{}", ctx());
                        assert_eq!((snapshot(&table), snapshot(&other)), before);
                    }
                    (got, want) => {
                        assert_eq!(got.err(), want.err(), "{}", ctx());
                        assert_eq!((snapshot(&table), snapshot(&other)), before);
                    }
                }
            }
            9 => {
                let rights = if rng.below(4) == 0 {
                    random_rights(&mut rng)
                } else {
                    model
                        .get(handle)
                        .map_or(Rights::empty(), |c| c.rights() & random_rights(&mut rng))
                };
                let expected = model
                    .grantable(handle)
                    .and_then(|cap| cap.derive(rights, UNBADGED));
                match (table.grant(handle, rights, &mut other), expected) {
                    (Ok(h), Ok(cap)) => other_model.issued(h, cap),
                    (Err(Error::TableFull), Ok(_)) => {
                        assert_eq!(other_model.len(), M, "{}", ctx());
                    }
                    (got, want) => assert_eq!(got.err(), want.err(), "{}", ctx()),
                }
            }
            _ => unreachable!(),
        }
        // The other table drains now and then, so transfers into it keep succeeding.
        if rng.below(40) == 0 {
            let mut released = 0;
            other.clear(|h, cap| {
                assert_eq!(other_model.get(h).ok(), Some(&cap));
                released += 1;
            });
            assert_eq!(released, other_model.len());
            other_model.clear();
        }
        assert_eq!(table.len(), model.len(), "seed {seed} step {step}");
        assert_eq!(table.free(), N - model.len(), "seed {seed} step {step}");
        assert_eq!(other.len(), other_model.len(), "seed {seed} step {step}");
    }

    // Finally every handle ever issued answers as the model says.
    for (&raw, status) in &model.handles {
        let handle = CapHandle::from_raw(raw);
        let expected = match status {
            Status::Held(cap) => Ok(cap),
            Status::Lent(_) => Err(Error::Busy),
            Status::Gone => Err(Error::StaleCapability),
        };
        assert_eq!(table.get(handle), expected, "seed {seed} final {handle}");
    }
}

#[test]
fn randomized_against_a_model() {
    for seed in 1..=40u64 {
        run_model(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15), 3000);
    }
}
