//! The thread table: a fixed array of slots and every legal transition between slot states.
//!
//! Owns who may move a slot, and when a slot is reclaimed. Lock-free (one CAS per transition, on
//! the slot word of [`super::slot`]), allocation-free after construction, so any CPU may call it
//! from any context, interrupt handlers included. It must never:
//!
//! - move a slot out of `Initializing` for anyone but the holder of its [`Claim`] (seed 003: a
//!   cleanup routine freed a slot that was still being set up, a second spawn claimed it, and two
//!   threads ended up with one mixed context);
//! - act on a stale ID: every operation compares the ID's generation with the slot's inside the
//!   same CAS that changes the slot;
//! - reclaim a `Terminated` slot twice, or while a CPU may still run on its stack, or before its
//!   joiner collected the exit code.
//!
//! Per-thread payload (kernel stack, saved registers, priority, name) is not here: the kernel keeps
//! it in arrays indexed by [`ThreadId::index`], written only by the claimer while the slot is
//! `Initializing` and immutable from [`ThreadTable::publish`] until the slot is reclaimed.
//!
//! Test builds (and only those) carry a fault-injection knob, `thread::fault`: a table can be built
//! with one operation that ignores `Initializing`, so the tests can show they catch seed 003.

use super::MAX_THREADS;
#[cfg(test)]
use super::fault::Op;
use super::id::{ThreadError, ThreadId, ThreadState};
use super::slot::{Slot, Word};
use crate::sync::Ordering::{AcqRel, Acquire, Relaxed};
use core::fmt;

/// The right to set up one claimed slot, and the only way to move it out of `Initializing`.
///
/// Returned by [`ThreadTable::claim`]; consumed by [`ThreadTable::publish`] (the thread becomes
/// `Ready`) or [`ThreadTable::abandon`] (setup failed, the slot is `Free` again). It is neither
/// `Clone` nor `Copy`, so exactly one party holds it. Dropping it instead leaks the slot in
/// `Initializing` for good: a leaked slot is a bounded loss, while freeing a slot someone may still
/// be writing is seed 003's corruption.
#[derive(Debug, PartialEq, Eq)]
#[must_use = "a dropped Claim leaks its slot in Initializing; publish or abandon it"]
pub struct Claim {
    index: u32,
    generation: u32,
}

impl Claim {
    /// The slot index: where the claimer writes the thread's payload.
    #[must_use]
    pub const fn index(&self) -> usize {
        self.index as usize
    }

    /// The ID the thread will have once published (for payload that records it, e.g. a stack's
    /// owner). The table refuses it with `WrongState` until then.
    #[must_use]
    pub const fn id(&self) -> ThreadId {
        ThreadId::new(self.index, self.generation)
    }
}

/// What [`ThreadTable::join`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinOutcome {
    /// The thread had exited; this join collected its exit code (no later join can).
    Exited {
        /// What the thread passed to [`ThreadTable::terminate`].
        code: i64,
        /// The slot was reclaimed by this join: the caller frees the thread's kernel stack. When
        /// false, a CPU was still leaving the thread's stack and its
        /// [`left_cpu`](ThreadTable::left_cpu) reclaims the slot instead.
        reclaimed: bool,
    },
    /// The thread has not exited yet (`Ready`, `Running` or `Blocked`). Nothing was recorded: the
    /// caller waits for the exit and joins again.
    Running,
}

/// A snapshot of one slot, for dumps (watchdog, panic report). Racy by nature: it is one atomic
/// load, and the slot may have moved on by the time it is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotInfo {
    /// The slot's state.
    pub state: ThreadState,
    /// The generation of the current (or, when `Free`, the last) occupancy.
    pub generation: u32,
    /// A CPU may still be running on the thread's stack.
    pub on_cpu: bool,
    /// The exit code was collected by a join.
    pub joined: bool,
    /// The thread was detached.
    pub detached: bool,
    /// A wake-up arrived while the thread was not blocked; its next `block` returns at once.
    pub wake_pending: bool,
}

/// The thread table: `N` slots ([`MAX_THREADS`] in the kernel; loom models use 1 or 2).
///
/// All methods take `&self`: the table is meant to be a `static`, shared by every CPU.
pub struct ThreadTable<const N: usize = MAX_THREADS> {
    slots: [Slot; N],
    /// TEST ONLY: the one operation deliberately broken to ignore `Initializing` (see
    /// [`super::fault`]); `None` in every table but those of the tests that show the models catch
    /// the bug. Not even a field in a kernel build.
    #[cfg(test)]
    ignores_initializing: Option<Op>,
}

impl<const N: usize> fmt::Debug for ThreadTable<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadTable")
            .field("capacity", &N)
            .field("free", &self.free_count())
            .finish()
    }
}

impl<const N: usize> Default for ThreadTable<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> ThreadTable<N> {
    /// An empty table: every slot `Free`, generation 0 (the first claim of a slot hands out
    /// generation 1).
    #[cfg(not(loom))]
    #[must_use]
    pub const fn new() -> Self {
        // An index must fit the 32 bits a ThreadId gives it.
        const { assert!(N <= u32::MAX as usize) };
        Self {
            slots: [const { Slot::new() }; N],
            #[cfg(test)]
            ignores_initializing: None,
        }
    }

    /// An empty table (loom's atomics cannot be built in a `const fn`).
    #[cfg(loom)]
    #[must_use]
    pub fn new() -> Self {
        const { assert!(N <= u32::MAX as usize) };
        Self {
            slots: core::array::from_fn(|_| Slot::new()),
            #[cfg(test)]
            ignores_initializing: None,
        }
    }

    /// Number of slots.
    #[must_use]
    pub const fn capacity(&self) -> usize {
        N
    }

    /// Slots currently `Free` (O(N) loads; exact only when nothing is claiming or reclaiming).
    #[must_use]
    pub fn free_count(&self) -> usize {
        self.slots
            .iter()
            .filter(|slot| Word(slot.word.load(Relaxed)).state() == ThreadState::Free)
            .count()
    }

    /// Claims a free slot: `Free -> Initializing` by CAS, with a new generation.
    ///
    /// The slots are tried in index order; losing a CAS to another claimer just moves on.
    pub fn claim(&self) -> Result<Claim, ThreadError> {
        for (index, slot) in self.slots.iter().enumerate() {
            let word = Word(slot.read());
            if word.state() != ThreadState::Free {
                continue;
            }
            let claimed = Word::new(ThreadState::Initializing, word.next_generation());
            // Acquire: pairs with the release of the reclaim that freed the slot, so nothing the
            // previous occupancy's reclaimer did with the payload can overlap with our setup.
            if slot
                .word
                .compare_exchange(word.0, claimed.0, Acquire, Relaxed)
                .is_ok()
            {
                return Ok(Claim {
                    index: index as u32,
                    generation: claimed.generation(),
                });
            }
        }
        Err(ThreadError::TableFull)
    }

    /// Setup is complete: `Initializing -> Ready`. Returns the thread's ID; the caller queues it.
    ///
    /// # Panics
    ///
    /// If the slot is no longer `Initializing` with the claim's generation. That can only happen if
    /// something broke the rule that nobody but the claimer leaves `Initializing` (seed 003); the
    /// kernel must stop rather than run a thread whose context may be someone else's.
    pub fn publish(&self, claim: Claim) -> ThreadId {
        self.finish_setup(&claim, ThreadState::Ready);
        claim.id()
    }

    /// Setup failed: `Initializing -> Free`. The generation stays consumed, so an ID that leaked
    /// out of the failed setup (from [`Claim::id`]) never becomes valid.
    ///
    /// # Panics
    ///
    /// As [`publish`](Self::publish).
    pub fn abandon(&self, claim: Claim) {
        self.finish_setup(&claim, ThreadState::Free);
    }

    fn finish_setup(&self, claim: &Claim, to: ThreadState) {
        let expected = Word::new(ThreadState::Initializing, claim.generation);
        let slot = &self.slots[claim.index()];
        // Release: the payload the claimer wrote is visible to whoever sees the new state with an
        // acquire (the scheduler's `start_running`, the next claimer after an abandon).
        if let Err(found) = slot.word.compare_exchange(
            expected.0,
            Word::new(to, claim.generation).0,
            AcqRel,
            Acquire,
        ) {
            let found = Word(found);
            panic!(
                "thread table corrupted: slot {} left initializing without its claimer (claim generation {}, found {} generation {})",
                claim.index,
                claim.generation,
                found.state(),
                found.generation()
            );
        }
    }

    /// `Ready -> Running`, marking the thread on a CPU (its stack is in use until
    /// [`left_cpu`](Self::left_cpu)).
    pub fn start_running(&self, id: ThreadId) -> Result<(), ThreadError> {
        self.transition(id, |word| {
            #[cfg(test)]
            let word = self.fault(Op::StartRunning, word);
            match word.state() {
                ThreadState::Ready => {
                    Ok((word.with_state(ThreadState::Running).set(Word::ON_CPU), ()))
                }
                found => Err(ThreadError::WrongState { found }),
            }
        })
    }

    /// `Blocked -> Running` in one step, for a thread handed the CPU directly (the IPC switch to
    /// a partner): [`wake`](Self::wake) then [`start_running`](Self::start_running), with no
    /// moment in between at which it is `Ready` but in no run queue. Returns `Ok(true)` when it
    /// is now `Running` on a CPU. `Ok(false)` changes nothing (the thread was not `Blocked`; a
    /// wake-up is *not* recorded): the caller takes the ordinary path, starting with `wake`.
    pub fn wake_to_running(&self, id: ThreadId) -> Result<bool, ThreadError> {
        self.transition(id, |word| {
            #[cfg(test)]
            let word = self.fault(Op::WakeToRunning, word);
            match word.state() {
                ThreadState::Blocked => Ok((
                    word.with_state(ThreadState::Running)
                        .clear(Word::WAKE_PENDING)
                        .set(Word::ON_CPU),
                    true,
                )),
                _ => Ok((word, false)),
            }
        })
    }

    /// `Running -> Ready`: the thread's slice ended or it yielded. The caller re-queues it.
    pub fn preempt(&self, id: ThreadId) -> Result<(), ThreadError> {
        self.transition(id, |word| {
            #[cfg(test)]
            let word = self.fault(Op::Preempt, word);
            match word.state() {
                ThreadState::Running => Ok((word.with_state(ThreadState::Ready), ())),
                found => Err(ThreadError::WrongState { found }),
            }
        })
    }

    /// `Running -> Blocked`, unless a wake-up is pending.
    ///
    /// Returns `Ok(true)` when the thread is now `Blocked` (the caller switches away and does not
    /// queue it), `Ok(false)` when a [`wake`](Self::wake) arrived since the thread last blocked: the
    /// pending wake-up is consumed, the thread stays `Running` and must re-check what it waits
    /// for. This is what makes "check the condition, then block" free of lost wake-ups: a wake that
    /// lands between the check and the block is remembered, not dropped.
    pub fn block(&self, id: ThreadId) -> Result<bool, ThreadError> {
        self.transition(id, |word| {
            #[cfg(test)]
            let word = self.fault(Op::Block, word);
            match word.state() {
                ThreadState::Running if word.has(Word::WAKE_PENDING) => {
                    Ok((word.clear(Word::WAKE_PENDING), false))
                }
                ThreadState::Running => Ok((word.with_state(ThreadState::Blocked), true)),
                found => Err(ThreadError::WrongState { found }),
            }
        })
    }

    /// Wakes a thread: `Blocked -> Ready`, returning `Ok(true)`; the caller queues it.
    ///
    /// Idempotent and race-free against [`block`](Self::block): on a `Running` or `Ready` thread it
    /// records a pending wake-up (its next `block` returns at once) and returns `Ok(false)`;
    /// on a `Terminated` one it does nothing and returns `Ok(false)`. Any number of concurrent
    /// wakes of one blocked thread yield exactly one `Ok(true)`, so it is queued once.
    pub fn wake(&self, id: ThreadId) -> Result<bool, ThreadError> {
        self.transition(id, |word| {
            #[cfg(test)]
            let word = self.fault(Op::Wake, word);
            match word.state() {
                ThreadState::Blocked => Ok((
                    word.with_state(ThreadState::Ready)
                        .clear(Word::WAKE_PENDING),
                    true,
                )),
                ThreadState::Running | ThreadState::Ready => {
                    Ok((word.set(Word::WAKE_PENDING), false))
                }
                ThreadState::Terminated => Ok((word, false)),
                found => Err(ThreadError::WrongState { found }),
            }
        })
    }

    /// `Running -> Terminated`, recording `exit_code` for the joiner. Called for the current thread
    /// by the CPU running it. The slot stays `Terminated` (and the stack in use) until the
    /// scheduler's [`left_cpu`](Self::left_cpu) and a join or detach.
    pub fn terminate(&self, id: ThreadId, exit_code: i64) -> Result<(), ThreadError> {
        let slot = self.slot(id)?;
        self.transition(id, |word| {
            #[cfg(test)]
            let word = self.fault(Op::Terminate, word);
            match word.state() {
                ThreadState::Running => {
                    // Only the running thread writes its exit code, and the CAS below (release)
                    // publishes it to the joiner's acquire load of `Terminated`. If the CAS loses (a
                    // flag changed), this runs again with the same value; if the state is not
                    // `Running` nothing is stored.
                    slot.exit_code.store(exit_code as u64, Relaxed);
                    Ok((
                        word.with_state(ThreadState::Terminated)
                            .clear(Word::WAKE_PENDING),
                        (),
                    ))
                }
                found => Err(ThreadError::WrongState { found }),
            }
        })
    }

    /// The scheduler switched away from this thread and the switch completed: no CPU runs on its
    /// stack any more. Clears the on-CPU mark.
    ///
    /// Must be called after the last switch away from a thread (the one after `terminate`); may be
    /// called after every switch away (the thread is then `Ready`, `Blocked` or `Terminated`).
    /// Returns `Ok(true)` if this reclaimed the slot (`Terminated`, and joined or detached): the
    /// caller frees the kernel stack. `Ok(false)` if the mark was already clear.
    ///
    /// Whoever reclaims must have read the payload it needs (the stack) before the call, or read it
    /// only from a copy: once the slot is `Free` a new claimer may overwrite the payload arrays.
    pub fn left_cpu(&self, id: ThreadId) -> Result<bool, ThreadError> {
        self.transition(id, |word| {
            #[cfg(test)]
            let word = self.fault(Op::LeftCpu, word);
            match word.state() {
                ThreadState::Ready | ThreadState::Blocked | ThreadState::Terminated => {
                    if !word.has(Word::ON_CPU) {
                        Ok((word, false))
                    } else if word.state() == ThreadState::Terminated
                        && word.has(Word::JOINED | Word::DETACHED)
                    {
                        Ok((word.freed(), true))
                    } else {
                        Ok((word.clear(Word::ON_CPU), false))
                    }
                }
                found => Err(ThreadError::WrongState { found }),
            }
        })
    }

    /// Collects a thread's exit code. There is one joiner: once a join returned
    /// [`JoinOutcome::Exited`], later joins fail with `AlreadyJoined` (or `Stale` once reclaimed).
    /// A detached thread cannot be joined (`Detached`).
    pub fn join(&self, id: ThreadId) -> Result<JoinOutcome, ThreadError> {
        let slot = self.slot(id)?;
        self.transition(id, |word| {
            #[cfg(test)]
            let word = self.fault(Op::Join, word);
            if word.has(Word::DETACHED) {
                return Err(ThreadError::Detached);
            }
            if word.has(Word::JOINED) {
                return Err(ThreadError::AlreadyJoined);
            }
            match word.state() {
                ThreadState::Ready | ThreadState::Running | ThreadState::Blocked => {
                    Ok((word, JoinOutcome::Running))
                }
                ThreadState::Terminated => {
                    // Read before the CAS: after it the slot may be free and reused, and the next
                    // occupancy may write its own exit code. Our acquire load of `Terminated` (this
                    // generation) orders this read after the thread's store.
                    let code = slot.exit_code.load(Relaxed) as i64;
                    if word.has(Word::ON_CPU) {
                        Ok((
                            word.set(Word::JOINED),
                            JoinOutcome::Exited {
                                code,
                                reclaimed: false,
                            },
                        ))
                    } else {
                        Ok((
                            word.freed(),
                            JoinOutcome::Exited {
                                code,
                                reclaimed: true,
                            },
                        ))
                    }
                }
                found => Err(ThreadError::WrongState { found }),
            }
        })
    }

    /// Detaches a thread: nobody will join it, and its slot is reclaimed as soon as it has
    /// terminated and left its CPU. Returns `Ok(true)` if that is already the case and this call
    /// reclaimed the slot (the caller frees the stack, see [`left_cpu`](Self::left_cpu)).
    pub fn detach(&self, id: ThreadId) -> Result<bool, ThreadError> {
        self.transition(id, |word| {
            #[cfg(test)]
            let word = self.fault(Op::Detach, word);
            if word.has(Word::DETACHED) {
                return Err(ThreadError::Detached);
            }
            if word.has(Word::JOINED) {
                return Err(ThreadError::AlreadyJoined);
            }
            match word.state() {
                ThreadState::Terminated if !word.has(Word::ON_CPU) => Ok((word.freed(), true)),
                ThreadState::Ready
                | ThreadState::Running
                | ThreadState::Blocked
                | ThreadState::Terminated => Ok((word.set(Word::DETACHED), false)),
                found => Err(ThreadError::WrongState { found }),
            }
        })
    }

    /// The state of a live thread: one load, for diagnostics and tests. It may be out of date by
    /// the time the caller looks at it; decisions go through the transitions.
    pub fn state(&self, id: ThreadId) -> Result<ThreadState, ThreadError> {
        let word = Word(self.slot(id)?.word.load(Acquire));
        if word.generation() != id.generation() || word.state() == ThreadState::Free {
            return Err(ThreadError::Stale);
        }
        Ok(word.state())
    }

    /// The code `id` ended with, while it is `Terminated` and not yet reclaimed (for reports such
    /// as `ThreadState`; only a join collects it). The slot may be reclaimed and reused right
    /// after this returns: a caller that reads other per-slot records with it looks at
    /// [`state`](Self::state) again afterwards.
    pub fn exit_code(&self, id: ThreadId) -> Result<i64, ThreadError> {
        let slot = self.slot(id)?;
        let word = Word(slot.word.load(Acquire));
        if word.generation() != id.generation() || word.state() == ThreadState::Free {
            return Err(ThreadError::Stale);
        }
        match word.state() {
            // The acquire load of `Terminated` orders this read after the thread's store.
            ThreadState::Terminated => Ok(slot.exit_code.load(Relaxed) as i64),
            found => Err(ThreadError::WrongState { found }),
        }
    }

    /// A snapshot of slot `index` for dumps; `None` if the index is outside the table.
    #[must_use]
    pub fn slot_info(&self, index: usize) -> Option<SlotInfo> {
        let word = Word(self.slots.get(index)?.word.load(Acquire));
        Some(SlotInfo {
            state: word.state(),
            generation: word.generation(),
            on_cpu: word.has(Word::ON_CPU),
            joined: word.has(Word::JOINED),
            detached: word.has(Word::DETACHED),
            wake_pending: word.has(Word::WAKE_PENDING),
        })
    }

    fn slot(&self, id: ThreadId) -> Result<&Slot, ThreadError> {
        self.slots.get(id.index()).ok_or(ThreadError::Stale)
    }

    /// The one CAS loop behind every operation on a live thread.
    ///
    /// Reads the slot word, refuses a stale ID (generation differs, or the slot is `Free`: a freed
    /// slot keeps its last generation until the next claim), and lets `step` decide the new word
    /// and the result. Every outcome is then installed by a CAS from the word it was computed from,
    /// including "nothing changes" and errors (a CAS to the same value): if the slot moved
    /// meanwhile, the CAS fails and the decision is taken again from the fresh word. So each
    /// operation takes effect at one point in the word's modification order (it is linearizable),
    /// never on a stale read, and even a no-op is a release/acquire RMW in that order. That is what
    /// makes a wake that finds a wake-up already pending still synchronize with the thread that
    /// consumes it: on a weakly ordered CPU a plain load could read the word from before the
    /// consumption, report "already pending", and lose the wake-up.
    #[inline(always)]
    fn transition<R>(
        &self,
        id: ThreadId,
        mut step: impl FnMut(Word) -> Result<(Word, R), ThreadError>,
    ) -> Result<R, ThreadError> {
        let slot = self.slot(id)?;
        let mut current = slot.read();
        loop {
            let word = Word(current);
            let outcome =
                if word.generation() != id.generation() || word.state() == ThreadState::Free {
                    Err(ThreadError::Stale)
                } else {
                    step(word)
                };
            let new = match &outcome {
                Ok((new, _)) => *new,
                Err(_) => word,
            };
            // AcqRel: release publishes what the caller did before (exit code, payload), acquire
            // orders what it does after (a reclaimer freeing the stack) behind every earlier
            // transition of this occupancy.
            match slot.word.compare_exchange(current, new.0, AcqRel, Acquire) {
                Ok(_) => return outcome.map(|(_, result)| result),
                Err(actual) => current = actual,
            }
        }
    }

    /// TEST ONLY: a table whose operation `op` is deliberately broken: it ignores `Initializing`,
    /// taking such a slot for the live state [`Op::misread`] names. For the tests that show the
    /// models and host tests catch that bug class.
    #[cfg(test)]
    pub(super) fn ignoring_initializing(op: Op) -> Self {
        Self {
            ignores_initializing: Some(op),
            ..Self::new()
        }
    }

    /// TEST ONLY: the word operation `op` decides on. The slot's own, unless `op` is the one this
    /// table breaks and the slot is `Initializing`. Called first thing in every operation's step,
    /// after [`transition`](Self::transition) refused stale IDs (the fault is about the state
    /// check, not the generation check).
    #[cfg(test)]
    fn fault(&self, op: Op, word: Word) -> Word {
        if self.ignores_initializing == Some(op) && word.state() == ThreadState::Initializing {
            op.misread(word)
        } else {
            word
        }
    }

    /// TEST ONLY: the ID the next claim of slot `index` will hand out (the generation after the
    /// slot's current one). What a racing CPU holds when it acts on a slot that is still being set
    /// up: the claimer leaked [`Claim::id`] into the payload, or it was forged.
    #[cfg(test)]
    pub(super) fn next_id(&self, index: usize) -> ThreadId {
        let word = Word(self.slots[index].word.load(Acquire));
        ThreadId::new(index as u32, word.next_generation())
    }

    /// TEST ONLY: sets the generation of a `Free` slot, to test generation wrap-around without
    /// four billion claims.
    #[cfg(all(test, not(loom)))]
    pub(super) fn set_free_generation(&self, index: usize, generation: u32) {
        let slot = &self.slots[index];
        assert_eq!(Word(slot.word.load(Acquire)).state(), ThreadState::Free);
        slot.word.store(
            Word::new(ThreadState::Free, generation).0,
            crate::sync::Ordering::Release,
        );
    }
}
