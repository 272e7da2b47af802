//! Host tests of the scheduler: run-queue mechanics, strict priority, FIFO inside a priority, the
//! fairness bound (every ready thread of the top priority runs within one round of slices,
//! whatever its slot number, however often others block and wake), and the timer queue, each
//! checked directly and against a deliberately naive reference model driven by a deterministic
//! xorshift generator.

use super::*;
use crate::thread::{MAX_THREADS, ThreadId};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::vec::Vec;

/// Deterministic pseudo-random numbers (xorshift64*), so a failing run can be replayed.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// `n` thread IDs at high, scattered slot numbers (descending from 255 in strides of 3, wrapping),
/// with arbitrary generations. With n = 64 the lowest index is 66.
fn scattered(n: usize) -> Vec<ThreadId> {
    assert!(n <= 85);
    (0..n)
        .map(|k| ThreadId::new((MAX_THREADS - 1 - 3 * k) as u32, 1 + (k as u32 * 7) % 5))
        .collect()
}

fn id(index: u32) -> ThreadId {
    ThreadId::new(index, 1)
}

// ---------------------------------------------------------------------------------------------
// RunQueue
// ---------------------------------------------------------------------------------------------

#[test]
fn run_queue_is_fifo_inside_a_priority() {
    let mut q = RunQueue::new();
    for i in [200, 3, 77, 11] {
        q.push_back(id(i), 4).unwrap();
    }
    assert_eq!(q.len(), 4);
    assert_eq!(q.len_at(4), 4);
    let order: Vec<u32> = core::iter::from_fn(|| q.pop_highest())
        .map(|(t, p)| {
            assert_eq!(p, 4);
            t.index() as u32
        })
        .collect();
    assert_eq!(order, [200, 3, 77, 11]);
    assert!(q.is_empty());
    assert_eq!(q.pop_highest(), None);
}

#[test]
fn run_queue_pops_highest_priority_first() {
    let mut q = RunQueue::new();
    q.push_back(id(1), 0).unwrap();
    q.push_back(id(2), 7).unwrap();
    q.push_back(id(3), 3).unwrap();
    q.push_back(id(4), 7).unwrap();
    assert_eq!(q.highest_priority(), Some(7));
    let iterated: Vec<(usize, u8)> = q.iter().map(|(t, p)| (t.index(), p)).collect();
    assert_eq!(iterated, [(2, 7), (4, 7), (3, 3), (1, 0)]);
    assert_eq!(q.pop_highest(), Some((id(2), 7)));
    assert_eq!(q.pop_highest(), Some((id(4), 7)));
    assert_eq!(q.highest_priority(), Some(3));
    assert_eq!(q.pop_highest(), Some((id(3), 3)));
    assert_eq!(q.pop_highest(), Some((id(1), 0)));
    assert_eq!(q.highest_priority(), None);
}

#[test]
fn run_queue_remove_anywhere() {
    let mut q = RunQueue::new();
    for i in 10..15 {
        q.push_back(id(i), 2).unwrap();
    }
    assert!(q.remove(id(12)), "middle");
    assert!(q.remove(id(10)), "head");
    assert!(q.remove(id(14)), "tail");
    assert!(!q.remove(id(14)), "twice");
    assert!(
        !q.remove(ThreadId::new(11, 2)),
        "another generation of a queued slot"
    );
    assert!(!q.remove(ThreadId::new(9999, 1)), "out of range");
    assert_eq!(
        q.iter().map(|(t, _)| t.index()).collect::<Vec<_>>(),
        [11, 13]
    );
    assert!(q.remove(id(11)));
    assert!(q.remove(id(13)));
    assert!(q.is_empty());
    assert_eq!(
        q.highest_priority(),
        None,
        "the bitmap bit goes with the last entry"
    );
    q.push_back(id(12), 2).unwrap();
    assert_eq!(q.pop_highest(), Some((id(12), 2)));
}

#[test]
fn run_queue_refuses_bad_pushes() {
    let mut q = RunQueue::new();
    q.push_back(id(5), 1).unwrap();
    assert_eq!(q.push_back(id(5), 1), Err(QueueError::AlreadyQueued));
    assert_eq!(
        q.push_back(ThreadId::new(5, 9), 6),
        Err(QueueError::AlreadyQueued)
    );
    assert_eq!(
        q.push_back(id(6), PRIORITIES as u8),
        Err(QueueError::InvalidPriority)
    );
    assert_eq!(
        q.push_back(id(MAX_THREADS as u32), 1),
        Err(QueueError::InvalidIndex)
    );
    assert_eq!(q.len(), 1);
    assert!(q.contains(id(5)));
    assert!(!q.contains(ThreadId::new(5, 2)));
}

#[test]
fn run_queue_holds_every_slot() {
    let mut q = RunQueue::new();
    for i in 0..MAX_THREADS as u32 {
        q.push_back(id(i), (i % PRIORITIES as u32) as u8).unwrap();
    }
    assert_eq!(q.len(), MAX_THREADS);
    let mut last = (u8::MAX, 0);
    while let Some((t, p)) = q.pop_highest() {
        assert!(p < last.0 || (p == last.0 && t.index() > last.1));
        last = (p, t.index());
    }
}

// ---------------------------------------------------------------------------------------------
// CpuScheduler
// ---------------------------------------------------------------------------------------------

/// What a simulated thread does each time it is dispatched.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Behaviour {
    /// Runs until the scheduler preempts it.
    CpuBound,
    /// Runs one tick, blocks, and is woken `wake_after` ticks later.
    Blocker { wake_after: u32 },
}

/// Runs `ticks` timer ticks of one CPU and returns the dispatch sequence.
fn simulate(
    sched: &mut CpuScheduler,
    threads: &[(ThreadId, u8, Behaviour)],
    ticks: u32,
) -> Vec<ThreadId> {
    let behaviour: BTreeMap<ThreadId, Behaviour> =
        threads.iter().map(|&(t, _, b)| (t, b)).collect();
    let prio: BTreeMap<ThreadId, u8> = threads.iter().map(|&(t, p, _)| (t, p)).collect();
    for &(t, p, _) in threads {
        sched.enqueue(t, p).unwrap();
    }
    let mut dispatched = Vec::new();
    let mut sleeping: Vec<(ThreadId, u32)> = Vec::new();
    if let Some((t, _)) = sched.switch_out(false) {
        dispatched.push(t);
    }
    for _ in 0..ticks {
        // Wake-ups due this tick (a woken thread joins the back of its level).
        let mut preempt = false;
        sleeping.retain_mut(|(t, left)| {
            if *left == 0 {
                preempt |= sched.enqueue(*t, prio[t]).unwrap();
                false
            } else {
                *left -= 1;
                true
            }
        });
        // The current thread runs for this tick.
        let blocks = match sched.current() {
            Some((t, _)) => match behaviour[&t] {
                Behaviour::Blocker { wake_after } => {
                    sleeping.push((t, wake_after));
                    true
                }
                Behaviour::CpuBound => false,
            },
            None => false,
        };
        let next = if blocks {
            Some(sched.switch_out(false))
        } else if sched.tick() || preempt {
            Some(sched.switch_out(true))
        } else {
            None
        };
        if let Some(Some((t, _))) = next {
            dispatched.push(t);
        }
    }
    dispatched
}

/// Every thread of `must_run` appears in every window of `window` consecutive dispatches.
fn assert_windows(dispatched: &[ThreadId], must_run: &[ThreadId], window: usize) {
    assert!(
        dispatched.len() >= window * 4,
        "simulation too short: {} dispatches",
        dispatched.len()
    );
    for (start, w) in dispatched.windows(window).enumerate() {
        for t in must_run {
            assert!(
                w.contains(t),
                "thread {t} missing from dispatches {start}..{}: {w:?}",
                start + window
            );
        }
    }
}

#[test]
fn n_threads_of_one_priority_each_run_every_n_slices() {
    for n in [1, 2, 3, 5, 16, 17, 64] {
        let ids = scattered(n);
        let threads: Vec<_> = ids.iter().map(|&t| (t, 3, Behaviour::CpuBound)).collect();
        let mut sched = CpuScheduler::new();
        let dispatched = simulate(&mut sched, &threads, SLICE_TICKS * n as u32 * 6);
        if n == 1 {
            assert_eq!(dispatched, ids, "alone, it is never preempted");
            continue;
        }
        assert_windows(&dispatched, &ids, n);
        // And round-robin in queueing order, not slot order.
        assert_eq!(&dispatched[..n], &ids[..]);
    }
}

#[test]
fn fairness_holds_while_one_thread_blocks_and_wakes() {
    for n in [2, 16, 64] {
        for wake_after in [0, 1, 3, SLICE_TICKS * 2] {
            let ids = scattered(n);
            let blocker = ThreadId::new(4, 9);
            let mut threads: Vec<_> = ids.iter().map(|&t| (t, 5, Behaviour::CpuBound)).collect();
            threads.push((blocker, 5, Behaviour::Blocker { wake_after }));
            let mut sched = CpuScheduler::new();
            let dispatched = simulate(&mut sched, &threads, SLICE_TICKS * n as u32 * 8);
            // n CPU-bound threads plus the blocker: a round is at most n + 1 slices.
            assert_windows(&dispatched, &ids, n + 1);
            let blocker_runs = dispatched.iter().filter(|&&t| t == blocker).count();
            assert!(blocker_runs >= 4, "the blocker ran {blocker_runs} times");
        }
    }
}

/// Seed 004: threads 8 and 9 always ready, 10 and 11 behind them, and a thread 3 that is often
/// preempted. The old scan from "current + 1" never reached 11; here everyone runs every round.
#[test]
fn seed_004_thread_11_is_not_starved() {
    let ssh = ThreadId::new(3, 1);
    let users: Vec<ThreadId> = (8..12).map(|i| ThreadId::new(i, 1)).collect();
    let mut threads: Vec<_> = users.iter().map(|&t| (t, 2, Behaviour::CpuBound)).collect();
    threads.insert(0, (ssh, 2, Behaviour::Blocker { wake_after: 1 }));
    let mut sched = CpuScheduler::new();
    let dispatched = simulate(&mut sched, &threads, 2_000);
    assert_windows(&dispatched, &users, users.len() + 1);
}

#[test]
fn higher_priority_preempts_at_once() {
    let (low, other_low, high) = (id(200), id(201), id(1));
    let mut sched = CpuScheduler::new();
    assert_eq!(
        sched.enqueue(low, 1),
        Ok(true),
        "an idle CPU always switches"
    );
    assert_eq!(sched.switch_out(false), Some((low, 1)));
    assert_eq!(
        sched.enqueue(other_low, 1),
        Ok(false),
        "same priority waits for the slice"
    );
    assert!(!sched.tick());
    assert_eq!(sched.enqueue(high, 6), Ok(true), "higher priority preempts");
    assert!(sched.tick(), "and the tick agrees, slice left or not");
    assert_eq!(sched.switch_out(true), Some((high, 6)));
    // While the high thread is ready, the low ones never run, however many slices pass.
    for _ in 0..SLICE_TICKS * 10 {
        assert!(!sched.tick());
    }
    assert_eq!(sched.current(), Some((high, 6)));
    // It blocks: the preempted low thread is behind the one that was already waiting.
    assert_eq!(sched.switch_out(false), Some((other_low, 1)));
    assert_eq!(sched.queue().iter().collect::<Vec<_>>(), [(low, 1)]);
    // A lower priority arrival never preempts.
    assert_eq!(sched.enqueue(id(50), 0), Ok(false));
    for _ in 0..SLICE_TICKS * 3 {
        if sched.tick() {
            assert_eq!(sched.switch_out(true).map(|(_, p)| p), Some(1));
        }
    }
    assert!(sched.queue().contains(id(50)));
}

#[test]
fn slice_is_counted_in_ticks() {
    let mut sched = CpuScheduler::with_slice_ticks(3);
    sched.enqueue(id(1), 2).unwrap();
    sched.enqueue(id(2), 2).unwrap();
    assert_eq!(sched.switch_out(false), Some((id(1), 2)));
    assert_eq!(sched.slice_left(), 3);
    assert!(!sched.tick());
    assert!(!sched.tick());
    assert!(sched.tick(), "third tick ends the slice");
    assert_eq!(sched.switch_out(true), Some((id(2), 2)));
    assert_eq!(sched.queue().iter().collect::<Vec<_>>(), [(id(1), 2)]);
    assert_eq!(sched.dispatches(), 2);
}

#[test]
fn used_up_slice_without_competitor_keeps_running() {
    let mut sched = CpuScheduler::with_slice_ticks(2);
    sched.enqueue(id(1), 4).unwrap();
    sched.switch_out(false);
    sched.enqueue(id(2), 3).unwrap();
    for _ in 0..10 {
        assert!(!sched.tick(), "only a lower priority waits");
    }
    assert_eq!(sched.slice_left(), 0);
    sched.enqueue(id(3), 4).unwrap();
    assert!(
        sched.tick(),
        "an equal priority arrived after the slice was used up"
    );
    assert_eq!(sched.switch_out(true), Some((id(3), 4)));
}

#[test]
fn idle_cpu() {
    let mut sched = CpuScheduler::with_slice_ticks(0);
    assert!(sched.is_idle());
    assert!(!sched.tick());
    assert_eq!(sched.switch_out(true), None, "nothing to run: idle thread");
    assert_eq!(sched.enqueue(id(9), 0), Ok(true));
    assert!(sched.tick());
    assert_eq!(sched.switch_out(false), Some((id(9), 0)));
    assert_eq!(
        sched.slice_left(),
        1,
        "a zero slice is rounded up to one tick"
    );
    assert_eq!(sched.switch_out(false), None);
    assert!(sched.is_idle());
}

#[test]
fn adopt_and_enqueue_errors() {
    let mut sched = CpuScheduler::new();
    assert_eq!(sched.adopt(id(0), 8), Err(QueueError::InvalidPriority));
    sched.adopt(id(0), 7).unwrap();
    assert_eq!(sched.adopt(id(1), 7), Err(QueueError::NotIdle));
    assert_eq!(
        sched.enqueue(id(0), 7),
        Err(QueueError::AlreadyQueued),
        "the current thread is not queued"
    );
    assert_eq!(sched.enqueue(id(1), 8), Err(QueueError::InvalidPriority));
    sched.enqueue(id(1), 7).unwrap();
    assert!(sched.remove(id(1)));
    assert!(!sched.remove(id(1)));
    assert_eq!(sched.switch_out(true), Some((id(0), 7)));
}

/// Random block / wake / yield / terminate / spawn at one priority. Whenever a thread is queued
/// with `k` threads ahead of it, it must be dispatched within `k + 1` dispatches: that is the
/// "within one round" bound, since `k + 1` never exceeds the number of live threads.
#[test]
fn random_simulation_keeps_the_round_bound() {
    for seed in 1..=20u64 {
        let mut rng = XorShift(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let mut sched = CpuScheduler::with_slice_ticks(1 + (seed % 4) as u32);
        let mut free: Vec<u32> = (0..MAX_THREADS as u32).rev().collect();
        let mut generation = 1;
        let mut blocked: Vec<ThreadId> = Vec::new();
        let mut live = 0usize;
        // Thread -> (dispatch count when queued, threads ahead of it + 1).
        let mut deadline: BTreeMap<ThreadId, (u64, u64)> = BTreeMap::new();
        let mut max_wait = 0;
        // Records that `t` was queued at position `position` (1 = head), which is at most the number of
        // live threads: the bound is one round.
        let queued = |sched: &CpuScheduler,
                      deadline: &mut BTreeMap<ThreadId, (u64, u64)>,
                      t: ThreadId,
                      position: usize,
                      live: usize| {
            assert!(
                position <= live,
                "seed {seed}: position {position} with {live} live threads"
            );
            deadline.insert(t, (sched.dispatches(), position as u64));
        };
        let check = |sched: &CpuScheduler, deadline: &mut BTreeMap<ThreadId, (u64, u64)>| {
            if let Some((t, _)) = sched.current() {
                let (at, ahead) = deadline
                    .remove(&t)
                    .expect("dispatched a thread that was not queued");
                let waited = sched.dispatches() - at;
                assert!(
                    waited <= ahead,
                    "seed {seed}: {t} waited {waited} dispatches with {ahead} ahead"
                );
                waited
            } else {
                0
            }
        };
        for _ in 0..20_000 {
            match rng.below(100) {
                // Spawn a thread at a random free slot (scattered slot numbers).
                0..=4 if !free.is_empty() => {
                    let slot = free.swap_remove(rng.below(free.len()));
                    generation += 1;
                    let t = ThreadId::new(slot, generation);
                    live += 1;
                    sched.enqueue(t, 4).unwrap();
                    queued(&sched, &mut deadline, t, sched.queue().len(), live);
                }
                // Wake a random blocked thread.
                5..=24 if !blocked.is_empty() => {
                    let t = blocked.swap_remove(rng.below(blocked.len()));
                    sched.enqueue(t, 4).unwrap();
                    queued(&sched, &mut deadline, t, sched.queue().len(), live);
                }
                // The current thread blocks, terminates or yields.
                25..=45 => {
                    let roll = rng.below(3);
                    if let Some((t, _)) = sched.current() {
                        let runnable = roll == 0;
                        match roll {
                            0 => {
                                queued(&sched, &mut deadline, t, sched.queue().len() + 1, live);
                            }
                            1 => blocked.push(t),
                            _ => {
                                live -= 1;
                                free.push(t.index() as u32);
                            }
                        }
                        sched.switch_out(runnable);
                        max_wait = max_wait.max(check(&sched, &mut deadline));
                    }
                }
                // A timer tick.
                _ => {
                    if sched.tick() {
                        if let Some((t, _)) = sched.current() {
                            queued(&sched, &mut deadline, t, sched.queue().len() + 1, live);
                        }
                        sched.switch_out(true);
                        max_wait = max_wait.max(check(&sched, &mut deadline));
                    }
                }
            }
        }
        assert!(
            max_wait > 5,
            "seed {seed}: the simulation never built a queue (max wait {max_wait})"
        );
    }
}

/// Random operations on every priority, compared step by step with an obviously correct model: a
/// `VecDeque` per priority and a linear search for the highest non-empty one.
#[test]
fn random_operations_match_reference_model() {
    let mut rng = XorShift(0x5eed);
    let mut sched = CpuScheduler::with_slice_ticks(2);
    let mut model: [VecDeque<ThreadId>; PRIORITIES] = Default::default();
    let mut model_current: Option<(ThreadId, u8)> = None;
    let mut model_slice = 0u32;
    let mut prio_of: BTreeMap<ThreadId, u8> = BTreeMap::new();
    let mut outside: BTreeSet<u32> = (0..64).map(|i| i * 4 + 1).collect();
    for step in 0..50_000 {
        match rng.below(10) {
            0..=2 => {
                if let Some(&slot) = outside.iter().nth(rng.below(outside.len().max(1))) {
                    outside.remove(&slot);
                    let t = ThreadId::new(slot, step);
                    let p = rng.below(PRIORITIES) as u8;
                    prio_of.insert(t, p);
                    let preempt = sched.enqueue(t, p).unwrap();
                    model[p as usize].push_back(t);
                    assert_eq!(
                        preempt,
                        model_current.is_none_or(|(_, cp)| p > cp),
                        "step {step}"
                    );
                }
            }
            3 => {
                let all: Vec<ThreadId> = model.iter().flatten().copied().collect();
                if !all.is_empty() {
                    let t = all[rng.below(all.len())];
                    assert!(sched.remove(t));
                    model[prio_of[&t] as usize].retain(|&x| x != t);
                    outside.insert(t.index() as u32);
                }
            }
            4..=6 => {
                let runnable = rng.below(2) == 0;
                if let Some((t, p)) = model_current.take() {
                    if runnable {
                        model[p as usize].push_back(t);
                    } else {
                        outside.insert(t.index() as u32);
                    }
                }
                model_current = (0..PRIORITIES)
                    .rev()
                    .find_map(|p| model[p].pop_front().map(|t| (t, p as u8)));
                model_slice = if model_current.is_some() { 2 } else { 0 };
                assert_eq!(sched.switch_out(runnable), model_current, "step {step}");
            }
            _ => {
                let waiting = (0..PRIORITIES)
                    .rev()
                    .find(|&p| !model[p].is_empty())
                    .map(|p| p as u8);
                let expect = match model_current {
                    None => waiting.is_some(),
                    Some((_, cp)) => {
                        model_slice = model_slice.saturating_sub(1);
                        waiting.is_some_and(|w| w > cp || (model_slice == 0 && w >= cp))
                    }
                };
                assert_eq!(sched.tick(), expect, "step {step}");
            }
        }
        let flat: Vec<(ThreadId, u8)> = (0..PRIORITIES)
            .rev()
            .flat_map(|p| model[p].iter().map(move |&t| (t, p as u8)))
            .collect();
        assert_eq!(
            sched.queue().iter().collect::<Vec<_>>(),
            flat,
            "step {step}"
        );
        assert_eq!(sched.queue().len(), flat.len());
        assert_eq!(sched.current(), model_current);
    }
}

// ---------------------------------------------------------------------------------------------
// TimerQueue
// ---------------------------------------------------------------------------------------------

#[test]
fn timers_pop_earliest_first_and_only_when_due() {
    let mut q = TimerQueue::new();
    assert_eq!(q.next_deadline(), None);
    assert_eq!(q.insert(id(7), 300), Ok(false));
    assert_eq!(q.insert(id(200), 100), Ok(false));
    assert_eq!(q.insert(id(3), 200), Ok(false));
    assert_eq!(q.next_deadline(), Some(100));
    assert_eq!(q.pop_expired(99), None);
    assert_eq!(q.pop_expired(100), Some(id(200)));
    assert_eq!(q.pop_expired(250), Some(id(3)));
    assert_eq!(q.pop_expired(250), None);
    assert_eq!(q.len(), 1);
    assert_eq!(q.pop_expired(u64::MAX), Some(id(7)));
    assert!(q.is_empty());
}

#[test]
fn timer_reinsert_replaces_and_cancel_checks_generation() {
    let mut q = TimerQueue::new();
    q.insert(id(1), 50).unwrap();
    q.insert(id(2), 60).unwrap();
    assert_eq!(q.insert(id(1), 70), Ok(true), "one deadline per thread");
    assert_eq!(q.len(), 2);
    assert_eq!(q.deadline_of(id(1)), Some(70));
    assert_eq!(q.next_deadline(), Some(60));
    assert!(
        !q.cancel(ThreadId::new(2, 2)),
        "another generation of the slot is left alone"
    );
    assert!(q.cancel(id(2)));
    assert!(!q.cancel(id(2)));
    assert_eq!(q.next_deadline(), Some(70));
    assert_eq!(
        q.insert(ThreadId::new(MAX_THREADS as u32, 1), 1),
        Err(QueueError::InvalidIndex)
    );
    assert!(!q.cancel(ThreadId::new(MAX_THREADS as u32, 1)));
    assert_eq!(q.pop_expired(1_000), Some(id(1)));
}

#[test]
fn equal_deadlines_come_out_in_insertion_order() {
    let mut q = TimerQueue::new();
    let order = [90, 4, 250, 17, 33, 128];
    for i in order {
        q.insert(id(i), 1_000).unwrap();
    }
    let popped: Vec<usize> = core::iter::from_fn(|| q.pop_expired(1_000))
        .map(|t| t.index())
        .collect();
    assert_eq!(popped, order.map(|i| i as usize));
}

#[test]
fn timer_queue_holds_every_slot_and_past_deadlines_fire_at_once() {
    let mut q = TimerQueue::new();
    for i in 0..MAX_THREADS as u32 {
        q.insert(id(i), u64::from((i * 37) % 101)).unwrap();
    }
    assert_eq!(q.len(), MAX_THREADS);
    let mut last = 0;
    let mut n = 0;
    while let Some(t) = q.pop_expired(0).or_else(|| q.pop_expired(u64::MAX)) {
        let d = u64::from((t.index() as u32 * 37) % 101);
        assert!(d >= last);
        last = d;
        n += 1;
    }
    assert_eq!(n, MAX_THREADS);
}

/// Random inserts, re-inserts, cancels and pops compared with a `BTreeMap` keyed by
/// (deadline, insertion number).
#[test]
fn timer_queue_matches_reference_model() {
    let mut rng = XorShift(0xdead_beef);
    let mut q = TimerQueue::new();
    let mut model: BTreeMap<(u64, u64), ThreadId> = BTreeMap::new();
    let mut key_of: BTreeMap<usize, (u64, u64)> = BTreeMap::new();
    let mut now = 0u64;
    for seq in 0..100_000u64 {
        let slot = rng.below(MAX_THREADS) as u32;
        let t = ThreadId::new(slot, 1);
        match rng.below(4) {
            0 | 1 => {
                let deadline = now + rng.below(1_000) as u64;
                let replaced = q.insert(t, deadline).unwrap();
                let old = key_of.insert(t.index(), (deadline, seq));
                assert_eq!(replaced, old.is_some());
                if let Some(old) = old {
                    model.remove(&old);
                }
                model.insert((deadline, seq), t);
            }
            2 => {
                let had = key_of.remove(&t.index());
                assert_eq!(q.cancel(t), had.is_some());
                if let Some(key) = had {
                    model.remove(&key);
                }
            }
            _ => {
                now += rng.below(50) as u64;
                loop {
                    let expect = model
                        .first_key_value()
                        .filter(|((d, _), _)| *d <= now)
                        .map(|(&k, &t)| (k, t));
                    let got = q.pop_expired(now);
                    assert_eq!(got, expect.map(|(_, t)| t));
                    let Some((key, t)) = expect else { break };
                    model.remove(&key);
                    key_of.remove(&t.index());
                }
            }
        }
        assert_eq!(q.len(), model.len());
        assert_eq!(
            q.next_deadline(),
            model.first_key_value().map(|((d, _), _)| *d)
        );
    }
}

#[test]
fn hand_off_keeps_the_slice_so_a_calling_pair_cannot_starve_the_queue() {
    let mut cpu = CpuScheduler::with_slice_ticks(3);
    cpu.enqueue(id(1), 4).unwrap();
    cpu.enqueue(id(2), 4).unwrap();
    assert_eq!(cpu.switch_out(false), Some((id(1), 4)));
    // Thread 1 calls thread 3 (blocked in recv), which replies to 1, and so on: each hand-off
    // continues the same slice.
    assert!(!cpu.tick());
    cpu.hand_off(id(3), 4);
    assert_eq!(cpu.current(), Some((id(3), 4)));
    assert!(!cpu.tick());
    cpu.hand_off(id(1), 4);
    // The slice of the pair is used up: thread 2, queued all along, gets the CPU.
    assert!(cpu.tick());
    assert_eq!(cpu.switch_out(true), Some((id(2), 4)));
}
