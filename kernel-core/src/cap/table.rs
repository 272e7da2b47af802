//! The capability table of one process: fixed slots, generation-checked handles.
//!
//! Owns the life of a slot and the classification of every handle user space passes in. It must
//! never hand out a handle twice (each occupancy of a slot gets a new generation, and a slot whose
//! generation is exhausted is retired), never act on a handle without checking its generation,
//! never let a rights-widening copy through, and never leave a half-done change behind: every
//! operation checks everything that can fail before it changes anything. No allocation, no
//! locking (callers hold the owning process's lock), O(1) per operation except [`CapTable::clear`]
//! and iteration.
//!
//! # Slot generations
//!
//! Every slot starts at generation 1. Inserting hands out a handle with the slot's current
//! generation; removing the capability (delete, transfer, settling a lend) bumps it. So for a
//! handle `(index, g)` and a slot at generation `s`:
//!
//! | handle                                   | meaning                  | error                   |
//! |------------------------------------------|--------------------------|-------------------------|
//! | index out of range, `g == 0`, or `g > s` | never handed out         | `InvalidCapability`     |
//! | `g < s`                                  | its capability was removed | `StaleCapability`     |
//! | `g == s`, slot empty                     | never handed out (the slot was emptied and not refilled) | `InvalidCapability` |
//! | `g == s`, slot retired                   | removed, slot retired    | `StaleCapability`       |
//! | `g == s`, slot lent                      | in flight in a message   | `Busy`                  |
//! | `g == s`, slot held                      | valid                    | then type and rights    |
//!
//! This is exact because generations only move on when a held capability is removed: every
//! generation below a slot's current one was handed out once.
//!
//! # Lending
//!
//! A capability attached to an IPC message is *lent* ([`CapTable::lend`]) while the send is in
//! progress: the message carries a copy, and the slot keeps the original, unusable (`Busy`), so
//! that a sibling thread cannot delete or send it twice meanwhile. When the message is delivered
//! the sender's side [`settle`](CapTable::settle)s (the slot empties, the handle goes stale);
//! when the send fails it [`unlend`](CapTable::unlend)s (the same handle works again). Both
//! happen in the sender's own context, so no operation ever needs two processes' tables locked at
//! once, except [`transfer`](CapTable::transfer) and [`grant`](CapTable::grant), which take both
//! tables explicitly.

use super::MAX_CAPS;
use super::object::Capability;
use abi::{Badge, CapHandle, Error, ObjectType, Rights};
use core::fmt;

/// "No slot" in the free list.
const NIL: u16 = u16::MAX;

/// What a slot holds.
#[derive(Debug, Clone)]
enum State {
    /// Nothing; the slot is on the free list (unless retired).
    Empty,
    /// A usable capability.
    Held(Capability),
    /// A capability lent to a message in flight: unusable until settled or unlent.
    Lent(Capability),
}

#[derive(Debug, Clone)]
struct Slot {
    state: State,
    /// The generation of the current occupant, or of the next one while empty.
    generation: u32,
    /// The generation can move on no more: the slot is never reused.
    retired: bool,
    /// Next free slot (meaningful only while on the free list).
    next_free: u16,
}

/// A process's capability table: `N` slots ([`MAX_CAPS`] by default).
///
/// Slots are reused first-in first-out (the slot freed longest ago is filled first), which keeps
/// a slot's generation moving as slowly as possible; correctness never depends on it, since every
/// handle is generation-checked.
pub struct CapTable<const N: usize = MAX_CAPS> {
    slots: [Slot; N],
    free_head: u16,
    free_tail: u16,
    /// Slots that are held or lent.
    len: usize,
    /// Slots retired for good.
    retired: usize,
}

impl<const N: usize> fmt::Debug for CapTable<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CapTable")
            .field("capacity", &N)
            .field("len", &self.len)
            .field("retired", &self.retired)
            .finish()
    }
}

impl<const N: usize> Default for CapTable<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> CapTable<N> {
    /// An empty table: every slot free at generation 1, slot 0 filled first.
    #[must_use]
    pub const fn new() -> Self {
        // Slot indices are u16 in the free list, with NIL reserved; and there is at least one slot.
        const { assert!(N > 0 && N < NIL as usize) };
        let mut slots = [const {
            Slot {
                state: State::Empty,
                generation: 1,
                retired: false,
                next_free: NIL,
            }
        }; N];
        let mut i = 0;
        while i + 1 < N {
            slots[i].next_free = (i + 1) as u16;
            i += 1;
        }
        Self {
            slots,
            free_head: 0,
            free_tail: (N - 1) as u16,
            len: 0,
            retired: 0,
        }
    }

    /// Number of slots.
    #[must_use]
    pub const fn capacity(&self) -> usize {
        N
    }

    /// Capabilities in the table (lent ones included).
    #[must_use]
    pub const fn len(&self) -> usize {
        self.len
    }

    /// True when the table holds no capability.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Slots that can still take a capability.
    #[must_use]
    pub const fn free(&self) -> usize {
        N - self.len - self.retired
    }

    /// Puts `cap` in a free slot. [`Error::TableFull`] if there is none.
    pub fn insert(&mut self, cap: Capability) -> Result<CapHandle, Error> {
        let i = self.pop_free().ok_or(Error::TableFull)?;
        let slot = &mut self.slots[i];
        slot.state = State::Held(cap);
        self.len += 1;
        Ok(CapHandle::new(i as u32, slot.generation))
    }

    /// The capability `handle` names, whatever its type and rights.
    ///
    /// [`Error::InvalidCapability`] (forged), [`Error::StaleCapability`] (removed since) or
    /// [`Error::Busy`] (lent to a message in flight); see the module documentation.
    pub fn get(&self, handle: CapHandle) -> Result<&Capability, Error> {
        let i = self.check(handle)?;
        match &self.slots[i].state {
            State::Held(cap) => Ok(cap),
            State::Lent(_) => Err(Error::Busy),
            // `check` refused empty slots.
            State::Empty => Err(Error::InvalidCapability),
        }
    }

    /// The capability `handle` names, if it is of type `ty` and holds every right in `rights`.
    ///
    /// Errors, first failure wins: those of [`get`](Self::get), then [`Error::WrongType`], then
    /// [`Error::InsufficientRights`].
    pub fn lookup(
        &self,
        handle: CapHandle,
        ty: ObjectType,
        rights: Rights,
    ) -> Result<&Capability, Error> {
        let cap = self.get(handle)?;
        if cap.object_type() != ty {
            return Err(Error::WrongType);
        }
        if !cap.rights().contains(rights) {
            return Err(Error::InsufficientRights);
        }
        Ok(cap)
    }

    /// Copies the capability `handle` names into a new slot of this table, with `rights` (a
    /// subset of its own) and `badge` (0 keeps the source's), as [`Capability::derive`] allows.
    ///
    /// Errors, first failure wins: those of [`get`](Self::get), those of
    /// [`Capability::derive`], then [`Error::TableFull`].
    pub fn derive(
        &mut self,
        handle: CapHandle,
        rights: Rights,
        badge: Badge,
    ) -> Result<CapHandle, Error> {
        let copy = self.get(handle)?.derive(rights, badge)?;
        self.insert(copy)
    }

    /// Removes the capability `handle` names and returns it; every copy of `handle` goes stale.
    /// Needs no right: a process may always drop what it holds. Errors: those of
    /// [`get`](Self::get) (a lent capability cannot be deleted until its message is settled).
    pub fn delete(&mut self, handle: CapHandle) -> Result<Capability, Error> {
        let i = self.check_held(handle)?;
        self.vacate(i).ok_or(Error::InvalidCapability)
    }

    /// Moves the capability `handle` names into `to`, with the same rights and badge; returns its
    /// handle there. `handle` goes stale.
    ///
    /// Errors, first failure wins: those of [`get`](Self::get), [`Error::InsufficientRights`]
    /// without [`Rights::GRANT`], [`Error::TableFull`] if `to` has no free slot. On error neither
    /// table changed.
    ///
    /// (A move within one table is a [`delete`](Self::delete) followed by an
    /// [`insert`](Self::insert), which cannot fail, since the delete freed a slot.)
    pub fn transfer<const M: usize>(
        &mut self,
        handle: CapHandle,
        to: &mut CapTable<M>,
    ) -> Result<CapHandle, Error> {
        let i = self.check_grantable(handle)?;
        if to.free() == 0 {
            return Err(Error::TableFull);
        }
        let cap = self.vacate(i).ok_or(Error::InvalidCapability)?;
        // Cannot fail: `to` had a free slot, and nothing ran in between.
        to.insert(cap)
    }

    /// Copies the capability `handle` names into `to` with `rights` (a subset of its own; the
    /// badge is kept); returns the copy's handle there. The source is unchanged.
    ///
    /// Errors, first failure wins: those of [`get`](Self::get), [`Error::InsufficientRights`]
    /// without [`Rights::GRANT`] or if `rights` is not a subset, [`Error::TableFull`]. On error
    /// `to` is unchanged.
    pub fn grant<const M: usize>(
        &self,
        handle: CapHandle,
        rights: Rights,
        to: &mut CapTable<M>,
    ) -> Result<CapHandle, Error> {
        let i = self.check_grantable(handle)?;
        let State::Held(cap) = &self.slots[i].state else {
            return Err(Error::Busy);
        };
        to.insert(cap.derive(rights, abi::UNBADGED)?)
    }

    /// Lends the capability `handle` names to a message: returns a copy for the message and
    /// makes the slot unusable ([`Error::Busy`]) until [`settle`](Self::settle) (delivered) or
    /// [`unlend`](Self::unlend) (not delivered).
    ///
    /// Errors, first failure wins: those of [`get`](Self::get) (so a capability cannot be lent
    /// twice), [`Error::InsufficientRights`] without [`Rights::GRANT`].
    pub fn lend(&mut self, handle: CapHandle) -> Result<Capability, Error> {
        let i = self.check_grantable(handle)?;
        let slot = &mut self.slots[i];
        match core::mem::replace(&mut slot.state, State::Empty) {
            State::Held(cap) => {
                slot.state = State::Lent(cap.clone());
                Ok(cap)
            }
            // `check_grantable` accepts held slots only; put back whatever was there.
            other => {
                slot.state = other;
                Err(Error::Busy)
            }
        }
    }

    /// The message carrying a lent capability was delivered: the slot empties and `handle` goes
    /// stale. [`Error::InvalidArgument`] if the capability is held, not lent; otherwise the
    /// errors of [`get`](Self::get) for a handle that names nothing.
    pub fn settle(&mut self, handle: CapHandle) -> Result<(), Error> {
        let i = self.check_lent(handle)?;
        self.vacate(i).map(drop).ok_or(Error::InvalidCapability)
    }

    /// The message carrying a lent capability was not delivered: `handle` works again, with the
    /// capability exactly as it was. Errors as for [`settle`](Self::settle).
    pub fn unlend(&mut self, handle: CapHandle) -> Result<(), Error> {
        let i = self.check_lent(handle)?;
        let slot = &mut self.slots[i];
        if let State::Lent(cap) = core::mem::replace(&mut slot.state, State::Empty) {
            slot.state = State::Held(cap);
        }
        Ok(())
    }

    /// Every capability (lent ones included) with its current handle, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (CapHandle, &Capability)> + '_ {
        self.slots.iter().enumerate().filter_map(|(i, slot)| {
            let handle = CapHandle::new(i as u32, slot.generation);
            match &slot.state {
                State::Held(cap) | State::Lent(cap) => Some((handle, cap)),
                State::Empty => None,
            }
        })
    }

    /// Empties the table (when its process goes away), handing every capability, lent ones
    /// included, with the handle it had, to `release`. Every handle goes stale.
    pub fn clear(&mut self, mut release: impl FnMut(CapHandle, Capability)) {
        for i in 0..N {
            let handle = CapHandle::new(i as u32, self.slots[i].generation);
            if let Some(cap) = self.vacate(i) {
                release(handle, cap);
            }
        }
    }

    /// The slot index `handle` names, if it is held or lent under that generation.
    fn check(&self, handle: CapHandle) -> Result<usize, Error> {
        let i = handle.index() as usize;
        let Some(slot) = self.slots.get(i) else {
            return Err(Error::InvalidCapability);
        };
        let g = handle.generation();
        if g == 0 || g > slot.generation {
            Err(Error::InvalidCapability)
        } else if g < slot.generation {
            Err(Error::StaleCapability)
        } else if matches!(slot.state, State::Empty) {
            // Same generation, nothing in it: either never filled since its last removal (the
            // handle was never issued) or retired (the handle was, and its capability removed).
            Err(if slot.retired {
                Error::StaleCapability
            } else {
                Error::InvalidCapability
            })
        } else {
            Ok(i)
        }
    }

    /// The slot index, if `handle` names a held (not lent) capability.
    fn check_held(&self, handle: CapHandle) -> Result<usize, Error> {
        let i = self.check(handle)?;
        match self.slots[i].state {
            State::Held(_) => Ok(i),
            _ => Err(Error::Busy),
        }
    }

    /// The slot index, if `handle` names a held capability with GRANT.
    fn check_grantable(&self, handle: CapHandle) -> Result<usize, Error> {
        let i = self.check_held(handle)?;
        match &self.slots[i].state {
            State::Held(cap) if cap.rights().contains(Rights::GRANT) => Ok(i),
            _ => Err(Error::InsufficientRights),
        }
    }

    /// The slot index, if `handle` names a lent capability.
    fn check_lent(&self, handle: CapHandle) -> Result<usize, Error> {
        let i = self.check(handle)?;
        match self.slots[i].state {
            State::Lent(_) => Ok(i),
            _ => Err(Error::InvalidArgument),
        }
    }

    fn pop_free(&mut self) -> Option<usize> {
        if self.free_head == NIL {
            return None;
        }
        let i = self.free_head as usize;
        self.free_head = self.slots[i].next_free;
        if self.free_head == NIL {
            self.free_tail = NIL;
        }
        self.slots[i].next_free = NIL;
        Some(i)
    }

    /// Empties slot `i` (held or lent), moves its generation on and returns its capability. The
    /// slot goes to the back of the free list, or is retired if its generation is exhausted. An
    /// empty slot is left alone (`None`).
    fn vacate(&mut self, i: usize) -> Option<Capability> {
        let slot = &mut self.slots[i];
        let cap = match core::mem::replace(&mut slot.state, State::Empty) {
            State::Held(cap) | State::Lent(cap) => cap,
            State::Empty => return None,
        };
        self.len -= 1;
        if slot.generation == u32::MAX {
            // Reusing the slot would need generation 0 (never valid) or a wrap to 1 (handles of
            // the first occupancy would come back to life). Losing a slot after 4 billion reuses
            // is the cheaper price.
            slot.retired = true;
            self.retired += 1;
        } else {
            slot.generation += 1;
            self.push_free(i);
        }
        Some(cap)
    }

    fn push_free(&mut self, i: usize) {
        self.slots[i].next_free = NIL;
        match self.free_tail {
            NIL => self.free_head = i as u16,
            tail => self.slots[tail as usize].next_free = i as u16,
        }
        self.free_tail = i as u16;
    }

    /// Test hook: sets the generation of free slot `index` (to reach generation exhaustion without
    /// 4 billion operations).
    #[cfg(all(test, not(loom)))]
    pub(super) fn set_generation(&mut self, index: usize, generation: u32) {
        assert!(matches!(self.slots[index].state, State::Empty));
        self.slots[index].generation = generation;
    }
}
