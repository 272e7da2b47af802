//! The run queue: per-priority FIFO queues of ready threads and a bitmap of the non-empty ones.
//!
//! Owns the order in which ready threads of one CPU get that CPU: strict priority between levels,
//! first-in first-out inside a level. Every operation is O(1) (`pop_highest` finds the level with
//! one `leading_zeros` on the bitmap), and the whole structure is fixed-size arrays built by a
//! `const fn`, so it never allocates and can be used with interrupts off.
//!
//! It must never choose the next thread by scanning slot numbers from the current one: seed 004's
//! round-robin restarted its scan after the current thread and stopped at the first ready slot, so
//! thread 11, behind always-ready threads 8 and 9, never ran. Here a thread's turn depends only on
//! when it was queued, never on its slot number.
//!
//! The FIFOs are intrusive doubly-linked lists threaded through arrays indexed by slot index
//! (a thread is in at most one queue at a time), rather than rings: the same FIFO order, plus an
//! O(1) [`RunQueue::remove`] and a refusal to queue a thread twice, which a ring would accept and
//! then run that thread twice per round.

use super::PRIORITIES;
use crate::thread::{MAX_THREADS, ThreadId};
use core::fmt;

/// "No slot" in the link arrays.
const NIL: u16 = u16::MAX;

// Slot indices are stored as u16 with NIL reserved; PRIORITIES must fit the u8 bitmap.
const _: () = assert!(MAX_THREADS < NIL as usize && PRIORITIES <= 8);

/// Why a queue refused a thread. A refused call changed nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueError {
    /// The thread's slot is already in this queue (possibly under an older generation).
    AlreadyQueued,
    /// The priority is not below [`PRIORITIES`].
    InvalidPriority,
    /// The thread's slot index is not below [`MAX_THREADS`].
    InvalidIndex,
    /// The CPU already has a current thread.
    NotIdle,
}

impl fmt::Display for QueueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::AlreadyQueued => "thread already queued",
            Self::InvalidPriority => "priority out of range",
            Self::InvalidIndex => "thread index out of range",
            Self::NotIdle => "CPU already has a current thread",
        })
    }
}

/// Ready threads of one CPU, by priority ([`PRIORITIES`] levels, `PRIORITIES - 1` highest).
#[derive(Clone)]
pub struct RunQueue {
    /// The queued thread of each slot index (`None`: not queued).
    ids: [Option<ThreadId>; MAX_THREADS],
    /// Its priority (meaningful only while queued).
    prio: [u8; MAX_THREADS],
    /// Next slot index toward the tail of its level, or NIL.
    next: [u16; MAX_THREADS],
    /// Previous slot index toward the head of its level, or NIL.
    prev: [u16; MAX_THREADS],
    head: [u16; PRIORITIES],
    tail: [u16; PRIORITIES],
    /// Bit `p` set iff level `p` is non-empty.
    nonempty: u8,
    len: usize,
}

impl fmt::Debug for RunQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Default for RunQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl RunQueue {
    /// An empty queue.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            ids: [None; MAX_THREADS],
            prio: [0; MAX_THREADS],
            next: [NIL; MAX_THREADS],
            prev: [NIL; MAX_THREADS],
            head: [NIL; PRIORITIES],
            tail: [NIL; PRIORITIES],
            nonempty: 0,
            len: 0,
        }
    }

    /// Queues `id` at the back of level `prio`.
    pub fn push_back(&mut self, id: ThreadId, prio: u8) -> Result<(), QueueError> {
        let p = prio as usize;
        if p >= PRIORITIES {
            return Err(QueueError::InvalidPriority);
        }
        let i = id.index();
        if i >= MAX_THREADS {
            return Err(QueueError::InvalidIndex);
        }
        if self.ids[i].is_some() {
            return Err(QueueError::AlreadyQueued);
        }
        self.ids[i] = Some(id);
        self.prio[i] = prio;
        self.next[i] = NIL;
        self.prev[i] = self.tail[p];
        match self.tail[p] {
            NIL => self.head[p] = i as u16,
            t => self.next[t as usize] = i as u16,
        }
        self.tail[p] = i as u16;
        self.nonempty |= 1 << p;
        self.len += 1;
        Ok(())
    }

    /// Takes the thread at the head of the highest non-empty level.
    pub fn pop_highest(&mut self) -> Option<(ThreadId, u8)> {
        let p = self.highest_priority()?;
        let i = self.head[p as usize] as usize;
        let id = self.ids[i]?;
        self.unlink(i);
        Some((id, p))
    }

    /// Removes `id` wherever it is queued. False if it is not queued (or its slot is queued under
    /// another generation, which is left alone).
    pub fn remove(&mut self, id: ThreadId) -> bool {
        if !self.contains(id) {
            return false;
        }
        self.unlink(id.index());
        true
    }

    /// Whether exactly this thread (same generation) is queued.
    #[must_use]
    pub fn contains(&self, id: ThreadId) -> bool {
        self.ids
            .get(id.index())
            .is_some_and(|queued| *queued == Some(id))
    }

    /// Number of queued threads.
    #[must_use]
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Whether no thread is queued.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The highest level with a queued thread.
    #[must_use]
    pub const fn highest_priority(&self) -> Option<u8> {
        match self.nonempty {
            0 => None,
            bits => Some(7 - bits.leading_zeros() as u8),
        }
    }

    /// Number of threads queued at level `prio`. O(length of that level), for dumps and tests.
    #[must_use]
    pub fn len_at(&self, prio: u8) -> usize {
        self.iter().filter(|&(_, p)| p == prio).count()
    }

    /// The queued threads in the order they would run: highest level first, FIFO inside a level.
    pub fn iter(&self) -> impl Iterator<Item = (ThreadId, u8)> + '_ {
        (0..PRIORITIES as u8).rev().flat_map(move |p| {
            let mut i = self.head[p as usize];
            core::iter::from_fn(move || {
                let index = i as usize;
                let id = self.ids.get(index).copied().flatten()?;
                i = self.next[index];
                Some((id, p))
            })
        })
    }

    fn unlink(&mut self, i: usize) {
        let p = self.prio[i] as usize;
        let (prev, next) = (self.prev[i], self.next[i]);
        match prev {
            NIL => self.head[p] = next,
            pr => self.next[pr as usize] = next,
        }
        match next {
            NIL => self.tail[p] = prev,
            nx => self.prev[nx as usize] = prev,
        }
        if self.head[p] == NIL {
            self.nonempty &= !(1 << p);
        }
        self.ids[i] = None;
        self.next[i] = NIL;
        self.prev[i] = NIL;
        self.len -= 1;
    }
}
