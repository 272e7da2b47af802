//! The virtual region that holds kernel stacks, carved into equal slots with a guard page each.
//!
//! Owns which slot is in use and who owns it. Slot `i` spans `slot_pages` pages starting at
//! `base + i * slot_pages * 4 KiB`; its lowest page is the guard and stays unmapped, the rest is
//! the stack. The arithmetic is what lets a trap handler turn a faulting address into "stack
//! overflow of slot i, thread X" without a lock: claims and owners are atomics. This module only
//! decides addresses; mapping the pages is the architecture's job, and it must never map a
//! guard page.

use core::sync::atomic::{AtomicU64, Ordering};

/// Bytes per page.
const PAGE: u64 = 4096;
/// How many slots a region has (kernel threads are bounded by this many stacks).
pub const MAX_SLOTS: usize = 4096;
const WORDS: usize = MAX_SLOTS / 64;

/// The addresses of one claimed slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// Slot index.
    pub index: usize,
    /// The guard page (unmapped).
    pub guard: u64,
    /// Lowest stack byte (just above the guard page).
    pub bottom: u64,
    /// One past the highest stack byte: the initial stack pointer.
    pub top: u64,
}

/// A region of kernel-stack slots.
#[derive(Debug)]
pub struct StackRegion {
    base: u64,
    slot_pages: u64,
    in_use: [AtomicU64; WORDS],
    owners: [AtomicU64; MAX_SLOTS],
}

impl StackRegion {
    /// A region at `base` (page aligned) of [`MAX_SLOTS`] slots of `slot_pages` pages each
    /// (at least 2: the guard and one stack page).
    pub const fn new(base: u64, slot_pages: u64) -> Self {
        assert!(base.is_multiple_of(PAGE) && slot_pages >= 2);
        Self {
            base,
            slot_pages,
            in_use: [const { AtomicU64::new(0) }; WORDS],
            owners: [const { AtomicU64::new(0) }; MAX_SLOTS],
        }
    }

    fn slot_bytes(&self) -> u64 {
        self.slot_pages * PAGE
    }

    /// The addresses of slot `index`.
    pub fn slot(&self, index: usize) -> Slot {
        let guard = self.base + index as u64 * self.slot_bytes();
        Slot {
            index,
            guard,
            bottom: guard + PAGE,
            top: guard + self.slot_bytes(),
        }
    }

    /// Claims a free slot for `owner`; `None` when all are taken.
    pub fn claim(&self, owner: u64) -> Option<Slot> {
        for (word_index, word) in self.in_use.iter().enumerate() {
            let mut current = word.load(Ordering::Relaxed);
            while current != u64::MAX {
                let bit = (!current).trailing_zeros() as usize;
                match word.compare_exchange_weak(
                    current,
                    current | (1 << bit),
                    Ordering::Acquire,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        let index = word_index * 64 + bit;
                        self.owners[index].store(owner, Ordering::Release);
                        return Some(self.slot(index));
                    }
                    Err(seen) => current = seen,
                }
            }
        }
        None
    }

    /// Returns slot `index`. Returns false (and changes nothing) when it was not claimed.
    pub fn release(&self, index: usize) -> bool {
        if index >= MAX_SLOTS {
            return false;
        }
        let mask = 1u64 << (index % 64);
        self.in_use[index / 64].fetch_and(!mask, Ordering::Release) & mask != 0
    }

    /// Number of slots claimed right now.
    pub fn claimed(&self) -> usize {
        self.in_use
            .iter()
            .map(|w| w.load(Ordering::Relaxed).count_ones() as usize)
            .sum()
    }

    /// If `addr` lies in the guard page of a claimed slot, that slot and its owner. Lock-free, so
    /// trap handlers may call it.
    pub fn guard_hit(&self, addr: u64) -> Option<(Slot, u64)> {
        let offset = addr.checked_sub(self.base)?;
        let index = (offset / self.slot_bytes()) as usize;
        if index >= MAX_SLOTS || offset % self.slot_bytes() >= PAGE {
            return None;
        }
        let claimed = self.in_use[index / 64].load(Ordering::Acquire) & (1 << (index % 64)) != 0;
        claimed.then(|| (self.slot(index), self.owners[index].load(Ordering::Acquire)))
    }

    /// Records `owner` as the thread on the claimed slot whose guard page starts at `guard` (a
    /// stack handed from a reclaimed thread to a new one). Returns false (and changes nothing)
    /// if no claimed slot has that guard.
    pub fn reassign(&self, guard: u64, owner: u64) -> bool {
        match self.guard_hit(guard) {
            Some((slot, _)) if slot.guard == guard => {
                self.owners[slot.index].store(owner, Ordering::Release);
                true
            }
            _ => false,
        }
    }

    /// One past the last byte of the whole region.
    pub fn end(&self) -> u64 {
        self.base + MAX_SLOTS as u64 * self.slot_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: u64 = 0xffff_fe00_0000_0000;

    #[test]
    fn reassign_renames_the_owner_of_a_claimed_slot_only() {
        let region = StackRegion::new(0x1000_0000, 4);
        let slot = region.claim(7).unwrap();
        assert!(region.reassign(slot.guard, 9));
        assert_eq!(
            region.guard_hit(slot.guard).map(|(_, owner)| owner),
            Some(9)
        );
        assert!(!region.reassign(slot.guard + 8, 10), "not a guard start");
        assert!(region.release(slot.index));
        assert!(
            !region.reassign(slot.guard, 11),
            "a released slot has no owner to rename"
        );
    }

    #[test]
    fn slots_are_disjoint_and_guard_hits_name_the_owner() {
        let region = StackRegion::new(BASE, 16);
        let a = region.claim(7).unwrap();
        let b = region.claim(8).unwrap();
        assert_eq!(a.guard, BASE);
        assert_eq!(a.top, b.guard);
        assert_eq!(a.top - a.bottom, 15 * PAGE);
        assert_eq!(region.guard_hit(a.guard + 100), Some((a, 7)));
        assert_eq!(region.guard_hit(b.guard + PAGE - 1), Some((b, 8)));
        assert_eq!(
            region.guard_hit(a.bottom),
            None,
            "stack pages are not guard pages"
        );
        assert_eq!(region.guard_hit(BASE - 1), None);
        assert_eq!(region.claimed(), 2);
    }

    #[test]
    fn released_slots_are_reused_and_unclaimed_guards_do_not_match() {
        let region = StackRegion::new(BASE, 4);
        let a = region.claim(1).unwrap();
        assert!(region.release(a.index));
        assert!(!region.release(a.index), "double release is refused");
        assert_eq!(region.guard_hit(a.guard), None);
        assert_eq!(region.claim(2).unwrap().index, a.index);
    }

    #[test]
    fn exhaustion_is_none_not_a_panic() {
        let region = StackRegion::new(BASE, 2);
        for i in 0..MAX_SLOTS {
            assert_eq!(region.claim(i as u64).unwrap().index, i);
        }
        assert_eq!(region.claim(0), None);
        assert!(!region.release(MAX_SLOTS));
    }
}
