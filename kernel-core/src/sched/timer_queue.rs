//! The timer queue: at most one pending deadline per thread, earliest first.
//!
//! Owns the order in which sleeping (or timing-out) threads are due. It is an indexed binary
//! min-heap over fixed arrays (one entry per slot index), built by a `const fn`, so it never
//! allocates and is usable with interrupts off. Costs, n = pending deadlines <= [`MAX_THREADS`]:
//! `insert`, `cancel`, `pop_expired` O(log n) (at most 8 levels for 256 entries),
//! `next_deadline` O(1). Equal deadlines come out in insertion order (a sequence number breaks
//! ties), so sleepers with the same deadline are woken first come, first served.
//!
//! It must never wake anything itself: [`TimerQueue::pop_expired`] hands back IDs and the caller
//! wakes them through the thread table, which refuses stale IDs and makes a wake that races with
//! another wake (say, the IPC reply the timeout was guarding) harmless.

use super::run_queue::QueueError;
use crate::thread::{MAX_THREADS, ThreadId};
use core::fmt;

/// "Not in the heap" in the position array.
const NIL: u16 = u16::MAX;

const _: () = assert!(MAX_THREADS < NIL as usize);

/// Pending deadlines (in nanoseconds of the monotonic clock) of up to [`MAX_THREADS`] threads.
#[derive(Clone)]
pub struct TimerQueue {
    /// Slot indices in heap order by (deadline, seq); `heap[..len]` is live.
    heap: [u16; MAX_THREADS],
    len: usize,
    /// Where each slot index sits in `heap`, or NIL.
    pos: [u16; MAX_THREADS],
    ids: [ThreadId; MAX_THREADS],
    deadline: [u64; MAX_THREADS],
    seq: [u64; MAX_THREADS],
    next_seq: u64,
}

impl fmt::Debug for TimerQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(
                self.heap[..self.len]
                    .iter()
                    .map(|&i| (self.ids[i as usize], self.deadline[i as usize])),
            )
            .finish()
    }
}

impl Default for TimerQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl TimerQueue {
    /// An empty queue.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            heap: [0; MAX_THREADS],
            len: 0,
            pos: [NIL; MAX_THREADS],
            ids: [ThreadId::from_u64(0); MAX_THREADS],
            deadline: [0; MAX_THREADS],
            seq: [0; MAX_THREADS],
            next_seq: 0,
        }
    }

    /// Sets `id`'s deadline, replacing any pending one of its slot (a thread has at most one).
    /// Returns whether one was replaced. A deadline already past is due at the next
    /// [`pop_expired`](Self::pop_expired).
    pub fn insert(&mut self, id: ThreadId, deadline_ns: u64) -> Result<bool, QueueError> {
        let i = id.index();
        if i >= MAX_THREADS {
            return Err(QueueError::InvalidIndex);
        }
        self.ids[i] = id;
        self.deadline[i] = deadline_ns;
        self.seq[i] = self.next_seq;
        self.next_seq += 1;
        let replaced = self.pos[i] != NIL;
        let at = if replaced {
            self.pos[i] as usize
        } else {
            let at = self.len;
            self.heap[at] = i as u16;
            self.pos[i] = at as u16;
            self.len += 1;
            at
        };
        self.fix(at);
        Ok(replaced)
    }

    /// Drops `id`'s pending deadline. False if it had none (a deadline of an older generation of
    /// the slot is left alone).
    pub fn cancel(&mut self, id: ThreadId) -> bool {
        if !self.contains(id) {
            return false;
        }
        self.remove_at(self.pos[id.index()] as usize);
        true
    }

    /// Takes the earliest deadline if it is at or before `now_ns`. Call in a loop until `None`.
    pub fn pop_expired(&mut self, now_ns: u64) -> Option<ThreadId> {
        let first = *self.heap[..self.len].first()? as usize;
        if self.deadline[first] > now_ns {
            return None;
        }
        self.remove_at(0);
        Some(self.ids[first])
    }

    /// The earliest pending deadline (to program a one-shot timer).
    #[must_use]
    pub fn next_deadline(&self) -> Option<u64> {
        self.heap[..self.len]
            .first()
            .map(|&i| self.deadline[i as usize])
    }

    /// `id`'s pending deadline.
    #[must_use]
    pub fn deadline_of(&self, id: ThreadId) -> Option<u64> {
        self.contains(id).then(|| self.deadline[id.index()])
    }

    /// Whether exactly this thread (same generation) has a pending deadline.
    #[must_use]
    pub fn contains(&self, id: ThreadId) -> bool {
        let i = id.index();
        i < MAX_THREADS && self.pos[i] != NIL && self.ids[i] == id
    }

    /// Number of pending deadlines.
    #[must_use]
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Whether no deadline is pending.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether heap entry `a` is due strictly before entry `b`.
    fn before(&self, a: usize, b: usize) -> bool {
        let (i, j) = (self.heap[a] as usize, self.heap[b] as usize);
        (self.deadline[i], self.seq[i]) < (self.deadline[j], self.seq[j])
    }

    fn swap(&mut self, a: usize, b: usize) {
        self.heap.swap(a, b);
        self.pos[self.heap[a] as usize] = a as u16;
        self.pos[self.heap[b] as usize] = b as u16;
    }

    fn remove_at(&mut self, at: usize) {
        let last = self.len - 1;
        self.swap(at, last);
        self.pos[self.heap[last] as usize] = NIL;
        self.len = last;
        if at < self.len {
            self.fix(at);
        }
    }

    /// Restores the heap order around entry `at`, whose key changed (or that was just placed).
    fn fix(&mut self, mut at: usize) {
        while at > 0 && self.before(at, (at - 1) / 2) {
            self.swap(at, (at - 1) / 2);
            at = (at - 1) / 2;
        }
        loop {
            let (l, r) = (2 * at + 1, 2 * at + 2);
            let mut min = at;
            if l < self.len && self.before(l, min) {
                min = l;
            }
            if r < self.len && self.before(r, min) {
                min = r;
            }
            if min == at {
                return;
            }
            self.swap(at, min);
            at = min;
        }
    }
}
