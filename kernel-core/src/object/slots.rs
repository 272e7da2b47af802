//! A table of generation-checked slots: the storage every kernel object kind that user space can
//! name lives in.
//!
//! Owns the rule that turns an index and a generation into "live", "stale" or "never existed".
//! Every occupancy of a slot gets a new generation, so an ID kept after its object went away is
//! refused instead of naming the next occupant; a slot whose generation is exhausted is retired
//! and never reused. The table reserves its whole capacity the first time it is used, so its heap
//! footprint does not depend on how many objects were ever alive at once. It must never hand out
//! a generation twice and never decide anything about the objects it stores.

use abi::Error;
use alloc::vec::Vec;

/// One slot: its current generation and, while occupied, the object.
#[derive(Debug)]
struct Slot<T> {
    generation: u32,
    value: Option<T>,
}

/// Up to `limit` objects of type `T`, each named by `(index, generation)`.
#[derive(Debug)]
pub struct GenSlots<T> {
    slots: Vec<Slot<T>>,
    limit: usize,
    live: usize,
}

impl<T> GenSlots<T> {
    /// An empty table that holds at most `limit` objects at once (no allocation yet).
    #[must_use]
    pub const fn new(limit: usize) -> Self {
        Self {
            slots: Vec::new(),
            limit,
            live: 0,
        }
    }

    /// How many objects are stored.
    #[must_use]
    pub const fn live(&self) -> usize {
        self.live
    }

    /// Allocates the whole table now (it never grows or shrinks afterwards), so that the heap in
    /// use does not change with the first object. `OutOfMemory` if the heap cannot hold it.
    pub fn reserve(&mut self) -> Result<(), Error> {
        if self.slots.capacity() < self.limit {
            self.slots
                .try_reserve_exact(self.limit - self.slots.len())
                .map_err(|_| Error::OutOfMemory)?;
        }
        Ok(())
    }

    /// Stores the object `make` builds from its new `(index, generation)`. `OutOfMemory` when
    /// every slot is taken or the table cannot be allocated; `make` is not called then.
    pub fn insert_with(&mut self, make: impl FnOnce(u32, u32) -> T) -> Result<(u32, u32), Error> {
        self.reserve()?;
        let index = match self
            .slots
            .iter()
            .position(|s| s.value.is_none() && s.generation < u32::MAX)
        {
            Some(index) => index,
            None if self.slots.len() < self.limit => {
                self.slots.push(Slot {
                    generation: 0,
                    value: None,
                });
                self.slots.len() - 1
            }
            None => return Err(Error::OutOfMemory),
        };
        let slot = &mut self.slots[index];
        slot.generation += 1;
        // Indices fit: `limit` is a table size far below 2^32.
        let index = index as u32;
        slot.value = Some(make(index, slot.generation));
        self.live += 1;
        Ok((index, slot.generation))
    }

    /// The object in slot `index` at `generation`: `InvalidCapability` if that slot never held
    /// it, `StaleCapability` if it held it once and it is gone.
    pub fn get(&self, index: usize, generation: u32) -> Result<&T, Error> {
        self.check(index, generation)?;
        self.slots[index]
            .value
            .as_ref()
            .ok_or(Error::StaleCapability)
    }

    /// [`get`](Self::get), mutably.
    pub fn get_mut(&mut self, index: usize, generation: u32) -> Result<&mut T, Error> {
        self.check(index, generation)?;
        self.slots[index]
            .value
            .as_mut()
            .ok_or(Error::StaleCapability)
    }

    /// The one rule of [`get`](Self::get): `Ok` when slot `index` holds its object at
    /// `generation`.
    fn check(&self, index: usize, generation: u32) -> Result<(), Error> {
        let slot = self.slots.get(index).ok_or(Error::InvalidCapability)?;
        if generation == 0 || generation > slot.generation {
            Err(Error::InvalidCapability)
        } else if generation < slot.generation || slot.value.is_none() {
            Err(Error::StaleCapability)
        } else {
            Ok(())
        }
    }

    /// Takes the object out of slot `index` at `generation` (the ID goes stale).
    pub fn remove(&mut self, index: usize, generation: u32) -> Option<T> {
        let slot = self.slots.get_mut(index)?;
        if slot.generation != generation {
            return None;
        }
        let value = slot.value.take()?;
        self.live -= 1;
        Some(value)
    }

    /// Every stored object with its `(index, generation)`.
    #[cfg(test)]
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u32, u32, &T)> + '_ {
        self.slots.iter().enumerate().filter_map(|(index, slot)| {
            slot.value
                .as_ref()
                .map(|value| (index as u32, slot.generation, value))
        })
    }

    /// Test hook: makes slot `index`'s generation `generation` (to reach exhaustion quickly).
    #[cfg(test)]
    pub(crate) fn force_generation(&mut self, index: usize, generation: u32) {
        self.slots[index].generation = generation;
    }
}
