//! loom models of the thread table: every interleaving (and every outcome the memory model allows)
//! of a few racing operations on a 1- or 2-slot table, checking the state-machine rules on the real
//! [`ThreadTable`].
//!
//! Run with (as `cargo xtask test` does):
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test -p strait-kernel-core --release --target-dir target/loom --lib loom_tests
//! ```
//!
//! The claimed-slot models (`*_vs_claimed_slot`, one per operation) check seed 003's rule: a slot
//! that is `Initializing` is left alone by every operation but its claimer's publish or abandon.
//! Each is also run against a table where that one operation is deliberately broken to ignore
//! `Initializing` ([`super::fault`]), and must fail there (`*_ignoring_initializing_is_caught`): a
//! model that passes whatever the table does proves nothing.
//!
//! The tables are tiny on purpose: the rules are per slot (a race needs only one slot to fight
//! over, two to show claims spread), and loom's search grows exponentially with the number of
//! atomic operations. Every model takes at most a few seconds in release mode (the longest,
//! `claim_vs_claim_vs_abandon`, about ten); models use at most three threads, main included.

use super::fault::Op;
use super::*;
use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, Ordering};
use loom::thread;

/// A table with one thread already `Running` (made before the racing threads start).
fn running<const N: usize>() -> (Arc<ThreadTable<N>>, ThreadId) {
    let table = Arc::new(ThreadTable::<N>::new());
    let id = table.publish(table.claim().unwrap());
    table.start_running(id).unwrap();
    (table, id)
}

/// Two spawners claim at once: never the same slot.
#[test]
fn claim_vs_claim_one_slot() {
    loom::model(|| {
        let table = Arc::new(ThreadTable::<1>::new());
        let other = table.clone();
        let theirs = thread::spawn(move || other.claim().map(|claim| other.publish(claim)));
        let mine = table.claim().map(|claim| table.publish(claim));
        let theirs = theirs.join().unwrap();
        match (mine, theirs) {
            (Ok(_), Err(e)) | (Err(e), Ok(_)) => assert_eq!(e, ThreadError::TableFull),
            other => panic!("one slot, two claims: {other:?}"),
        }
        assert_eq!(table.free_count(), 0);
    });
}

/// Three spawners on two slots, one of which gives its slot back: two successful claims are never
/// on the same slot, and every slot ends up either published or free again.
#[test]
fn claim_vs_claim_vs_abandon() {
    loom::model(|| {
        let table = Arc::new(ThreadTable::<2>::new());
        let t1 = table.clone();
        let abandoner = thread::spawn(move || {
            if let Ok(claim) = t1.claim() {
                t1.abandon(claim);
            }
        });
        let t2 = table.clone();
        let second = thread::spawn(move || t2.claim().map(|claim| t2.publish(claim)));
        let third = table.claim().map(|claim| table.publish(claim));
        abandoner.join().unwrap();
        let second = second.join().unwrap();
        if let (Ok(a), Ok(b)) = (second, third) {
            assert_ne!(a.index(), b.index());
        }
        // The abandoner holds at most one of the two slots at any time, so at least one of the
        // other two claims succeeds.
        let published = [second, third].iter().filter(|r| r.is_ok()).count();
        assert!(published >= 1);
        assert_eq!(table.free_count(), 2 - published);
    });
}

/// The thread exits while its joiner polls: the joiner sees the exit code (published by the
/// terminate CAS, read with no other synchronisation) and the slot is reclaimed exactly once, by
/// whichever of the joiner and the CPU leaving the stack comes last.
#[test]
fn terminate_and_left_cpu_vs_join() {
    loom::model(|| {
        let (table, id) = running::<1>();
        let cpu = table.clone();
        let exiting = thread::spawn(move || {
            cpu.terminate(id, -42).unwrap();
            cpu.left_cpu(id).unwrap()
        });
        let joined = loop {
            match table.join(id).unwrap() {
                JoinOutcome::Running => thread::yield_now(),
                JoinOutcome::Exited { code, reclaimed } => {
                    assert_eq!(code, -42);
                    break reclaimed;
                }
            }
        };
        let left = exiting.join().unwrap();
        assert!(
            joined ^ left,
            "reclaimed by join: {joined}, by left_cpu: {left}"
        );
        assert_eq!(table.free_count(), 1);
        assert_eq!(table.state(id), Err(ThreadError::Stale));
    });
}

/// terminate + left_cpu vs join vs detach: whatever the order, the slot is reclaimed exactly once
/// and a joiner that gets the exit code gets the right one.
#[test]
fn terminate_and_left_cpu_vs_join_vs_detach() {
    loom::model(|| {
        let (table, id) = running::<1>();
        let cpu = table.clone();
        let exiting = thread::spawn(move || {
            cpu.terminate(id, 7).unwrap();
            cpu.left_cpu(id).unwrap()
        });
        let joiner = table.clone();
        let joining = thread::spawn(move || match joiner.join(id) {
            Ok(JoinOutcome::Exited { code, reclaimed }) => {
                assert_eq!(code, 7);
                reclaimed
            }
            Ok(JoinOutcome::Running) | Err(ThreadError::Detached | ThreadError::Stale) => false,
            Err(e) => panic!("join: {e}"),
        });
        let detached = match table.detach(id) {
            Ok(reclaimed) => reclaimed,
            Err(ThreadError::AlreadyJoined | ThreadError::Stale) => false,
            Err(e) => panic!("detach: {e}"),
        };
        let left = exiting.join().unwrap();
        let joined = joining.join().unwrap();
        let reclaims = [left, joined, detached].iter().filter(|&&r| r).count();
        assert_eq!(
            reclaims, 1,
            "left_cpu {left}, join {joined}, detach {detached}"
        );
        assert_eq!(table.free_count(), 1);
    });
}

/// The sleeper checks its condition and blocks; a waker sets the condition and wakes, and a second
/// waker wakes for no reason (so the first waker may find a wake-up already pending). The sleeper never ends up blocked with the condition set (no lost
/// wake-up), and it is made ready at most once (it would be queued twice otherwise).
#[test]
fn wake_vs_block() {
    loom::model(|| {
        let (table, id) = running::<1>();
        let condition = Arc::new(AtomicBool::new(false));
        let (t1, c1) = (table.clone(), condition.clone());
        let waker = thread::spawn(move || {
            c1.store(true, Ordering::Release);
            t1.wake(id).unwrap()
        });
        let t2 = table.clone();
        let spurious = thread::spawn(move || t2.wake(id).unwrap());
        // The sleeper's wait loop: block until the condition holds; a block that returns false
        // (a wake-up was pending) means "look again".
        let blocked = loop {
            if condition.load(Ordering::Acquire) {
                break false;
            }
            if table.block(id).unwrap() {
                break true;
            }
        };
        let readied = [waker.join().unwrap(), spurious.join().unwrap()]
            .iter()
            .filter(|&&r| r)
            .count();
        let state = table.state(id).unwrap();
        assert_ne!(state, ThreadState::Blocked, "lost wake-up");
        assert_eq!(readied, usize::from(blocked));
        assert_eq!(
            state,
            if blocked {
                ThreadState::Ready
            } else {
                ThreadState::Running
            }
        );
    });
}

/// The IPC direct switch (`wake_to_running`, falling back to `wake`) races with an ordinary wake
/// (a timer) of the same blocked thread: exactly one of them takes it out of `Blocked`; it ends
/// `Running` if the switch won, `Ready` (to be queued by the waker) otherwise, and a wake that
/// found it already taken is remembered as pending, never lost.
#[test]
fn wake_to_running_vs_wake() {
    loom::model(|| {
        let (table, id) = running::<1>();
        assert!(table.block(id).unwrap());
        let other = table.clone();
        let timer = thread::spawn(move || other.wake(id).unwrap());
        let switched = table.wake_to_running(id).unwrap();
        let fallback = !switched && table.wake(id).unwrap();
        let queued = timer.join().unwrap();
        assert_eq!(
            usize::from(switched) + usize::from(fallback) + usize::from(queued),
            1,
            "the thread left Blocked exactly once"
        );
        let info = table.slot_info(id.index()).unwrap();
        if switched {
            assert_eq!(info.state, ThreadState::Running);
            assert!(
                info.on_cpu && info.wake_pending,
                "the timer's wake is pending"
            );
        } else {
            assert_eq!(info.state, ThreadState::Ready);
            assert!(info.wake_pending, "the switch's fallback wake is pending");
        }
    });
}

/// An old ID is used while its slot is reclaimed and reused: every operation with it either acts
/// on the old (terminated, detached) thread, harmlessly, or is refused as stale; the new thread is
/// never touched.
#[test]
fn stale_id_after_reuse() {
    loom::model(|| {
        let (table, old) = running::<1>();
        table.terminate(old, 3).unwrap();
        assert_eq!(table.detach(old), Ok(false));
        let cpu = table.clone();
        let reuser = thread::spawn(move || {
            assert_eq!(cpu.left_cpu(old), Ok(true));
            cpu.publish(cpu.claim().unwrap())
        });
        match table.wake(old) {
            Ok(false) | Err(ThreadError::Stale) => {}
            other => panic!("wake(old): {other:?}"),
        }
        match table.join(old) {
            Err(ThreadError::Detached | ThreadError::Stale) => {}
            other => panic!("join(old): {other:?}"),
        }
        match table.start_running(old) {
            Err(
                ThreadError::WrongState {
                    found: ThreadState::Terminated,
                }
                | ThreadError::Stale,
            ) => {}
            other => panic!("start_running(old): {other:?}"),
        }
        let new = reuser.join().unwrap();
        assert_eq!(
            (new.index(), new.generation()),
            (old.index(), old.generation() + 1)
        );
        let info = table.slot_info(0).unwrap();
        assert_eq!(info.state, ThreadState::Ready);
        assert!(
            !info.on_cpu && !info.joined && !info.detached && !info.wake_pending,
            "{info:?}"
        );
        assert_eq!(table.state(old), Err(ThreadError::Stale));
    });
}

/// How the claimer in [`claimed_slot_model`] ends its setup.
#[derive(Debug, Clone, Copy)]
enum Setup {
    Publish,
    Abandon,
}

/// Every check of [`claimed_slot_model`] that fails says this, so that a test of a broken variant
/// can tell "the model caught the fault" from any other panic.
const CAUGHT: &str = "claimed-slot model";

/// Slot 0 as the claim protocol says it is: state and generation, updated by each claimer right
/// after the CAS that changed it.
///
/// A plain `std` mutex, not a loom object: it is the model's bookkeeping, not code under test.
/// loom switches threads only at its own operations, so an update made right after a table
/// operation's final CAS (with no loom operation in between) happens atomically with that CAS,
/// and a read right after the racer's operation sees the slot exactly as that operation's CAS did.
/// It adds no interleavings to explore.
type Ghost = std::sync::Arc<std::sync::Mutex<(ThreadState, u32)>>;

/// What the tests learn from all the executions of one model, to show it is not vacuous.
#[derive(Debug, Default)]
struct Seen {
    /// Some execution had the racer's operation land while the slot was `Initializing`.
    initializing: std::sync::atomic::AtomicBool,
    /// Some execution had it land on the thread just published.
    published: std::sync::atomic::AtomicBool,
}

/// A thread just published as `id`: `Ready`, no flags.
fn fresh(id: ThreadId) -> SlotInfo {
    SlotInfo {
        state: ThreadState::Ready,
        generation: id.generation(),
        on_cpu: false,
        joined: false,
        detached: false,
        wake_pending: false,
    }
}

/// Claims the only slot of `table` and records it in `ghost`, checking that nobody else holds it.
fn claim(table: &ThreadTable<1>, ghost: &Ghost) -> Result<Claim, ThreadError> {
    let claim = table.claim()?;
    let mut slot = ghost.lock().unwrap();
    assert_eq!(
        slot.0,
        ThreadState::Free,
        "{CAUGHT}: slot claimed as {:?} while {slot:?}, two setups of one slot (seed 003)",
        claim.id()
    );
    *slot = (ThreadState::Initializing, claim.id().generation());
    Ok(claim)
}

/// Publishes `claim` (the real `publish` panics if the slot left `Initializing` behind its back).
fn publish(table: &ThreadTable<1>, ghost: &Ghost, claim: Claim) -> ThreadId {
    let id = table.publish(claim);
    *ghost.lock().unwrap() = (ThreadState::Ready, id.generation());
    id
}

/// The rule of seed 003, for operation `op` on the real table: nobody but the claimer moves a slot
/// out of `Initializing`.
///
/// One slot. The claimer (this thread) claims it, then publishes or abandons it per `setup`; the
/// window between the two is where it would write the thread's payload. A competing spawner claims
/// and publishes concurrently. A racing CPU applies `op` to the ID the first claim hands out
/// ([`Claim::id`] leaked into the payload, or forged: an older generation would be refused as
/// stale before any state is looked at, see `stale_id_after_reuse`). In every execution:
///
/// - `op` answers exactly what the state it met calls for: `Stale` on a free slot or another
///   occupancy, [`Op::on_initializing`] (a refusal) on the slot being set up, [`Op::on_ready`] on
///   the published thread;
/// - the claimer's `publish` or `abandon` succeeds (the real table panics if the slot was moved);
/// - no two spawners ever hold the slot at once, and the slot ends as the protocol says: `Free`
///   iff nothing was published, otherwise the published thread, untouched but for `op`'s effect
///   when it met that thread.
///
/// `broken` builds the table with that operation ignoring `Initializing` (see [`super::fault`]).
fn claimed_slot_model(op: Op, setup: Setup, broken: Option<Op>, seen: std::sync::Arc<Seen>) {
    use std::sync::atomic::Ordering::Relaxed;
    loom::model(move || {
        let seen = seen.clone();
        // A `std` Arc: loom's counts every clone and drop as an atomic operation to interleave,
        // which multiplies the executions without checking anything of the table.
        let table = std::sync::Arc::new(match broken {
            None => ThreadTable::<1>::new(),
            Some(broken) => ThreadTable::<1>::ignoring_initializing(broken),
        });
        let target = table.next_id(0);
        let ghost: Ghost = std::sync::Arc::new(std::sync::Mutex::new((ThreadState::Free, 0)));

        // The racer checks its answer at once, before any other thread can run (no loom operation
        // between its final CAS and the check), so a broken operation is reported by this check
        // even in executions where the claimer's `publish` would panic next.
        let racer = {
            let (table, ghost, seen) = (table.clone(), ghost.clone(), seen.clone());
            thread::spawn(move || {
                let answer = op.apply(&*table, target);
                let met = *ghost.lock().unwrap();
                let expected = match met {
                    (ThreadState::Initializing, g) if g == target.generation() => {
                        seen.initializing.store(true, Relaxed);
                        op.on_initializing()
                    }
                    (ThreadState::Ready, g) if g == target.generation() => {
                        seen.published.store(true, Relaxed);
                        op.on_ready(fresh(target)).0
                    }
                    _ => Err(ThreadError::Stale),
                };
                assert_eq!(
                    answer, expected,
                    "{CAUGHT}: {op:?}({target}) on slot 0 {met:?}"
                );
                met
            })
        };
        let competitor = {
            let (table, ghost) = (table.clone(), ghost.clone());
            thread::spawn(move || {
                let claim = claim(&table, &ghost)?;
                Ok(publish(&table, &ghost, claim))
            })
        };
        let mine = claim(&table, &ghost).map(|claim| match setup {
            Setup::Publish => Some(publish(&table, &ghost, claim)),
            Setup::Abandon => {
                let generation = claim.id().generation();
                table.abandon(claim);
                *ghost.lock().unwrap() = (ThreadState::Free, generation);
                None
            }
        });
        let theirs = competitor.join().unwrap();
        let met = racer.join().unwrap();

        // Who got the slot: one spawner, or both one after the other if the first gave it back.
        let reused = ThreadId::new(0, target.generation() + 1);
        let published = match (mine, theirs) {
            (Ok(Some(id)), Err(ThreadError::TableFull)) | (Err(ThreadError::TableFull), Ok(id))
                if id == target =>
            {
                Some(id)
            }
            (Ok(None), Ok(id)) if id == reused => Some(id),
            (Ok(None), Err(ThreadError::TableFull)) => None,
            claims => panic!("{CAUGHT}: claims {claims:?}"),
        };
        // The slot as the protocol left it, plus `op`'s effect if it met the published thread.
        let after = match published {
            None => SlotInfo {
                state: ThreadState::Free,
                ..fresh(target)
            },
            Some(id) if met == (ThreadState::Ready, target.generation()) => {
                op.on_ready(fresh(id)).1
            }
            Some(id) => fresh(id),
        };
        assert_eq!(
            table.slot_info(0),
            Some(after),
            "{CAUGHT}: slot 0 after {op:?} met it {met:?}"
        );
        assert_eq!(
            table.free_count(),
            usize::from(published.is_none()),
            "{CAUGHT}: free count"
        );
    });
}

/// The models of `op` pass on the real table, and they are not vacuous: in some execution the
/// racer's operation met the slot while it was being set up, and in some it met the published
/// thread.
fn claimed_slot_holds(op: Op) {
    for setup in [Setup::Publish, Setup::Abandon] {
        let seen = std::sync::Arc::new(Seen::default());
        claimed_slot_model(op, setup, None, seen.clone());
        assert!(
            seen.initializing.load(std::sync::atomic::Ordering::Relaxed)
                && seen.published.load(std::sync::atomic::Ordering::Relaxed),
            "{op:?}, {setup:?}: the model never reached both states: {seen:?}"
        );
    }
}

/// The same models fail when `op` is deliberately broken to ignore `Initializing`, and it is the
/// racer's own check that fails: the broken operation is reported for its wrong answer on the slot
/// being set up, before the claimer's `publish` (which refuses a slot moved behind its back) gets
/// to run, so the model does not rely on that self-check of the table. Each setup must catch it on
/// its own.
fn claimed_slot_catches(op: Op) {
    for setup in [Setup::Publish, Setup::Abandon] {
        let failure = std::panic::catch_unwind(|| {
            claimed_slot_model(op, setup, Some(op), std::sync::Arc::default());
        })
        .expect_err("the model passed with the operation ignoring Initializing");
        let message = failure
            .downcast_ref::<std::string::String>()
            .map_or("<not a string>", std::string::String::as_str);
        let caught = std::format!("{CAUGHT}: {op:?}(0.1) on slot 0 (Initializing, 1)");
        assert!(
            message.contains(&caught),
            "{op:?} ignoring Initializing, {setup:?}: the model failed for another reason: \
             {message}"
        );
    }
}

/// One model per operation: `$holds` runs it on the real table, `$caught` on a table where that
/// operation ignores `Initializing`, and expects the model to fail.
macro_rules! claimed_slot_tests {
    ($($op:ident: $holds:ident, $caught:ident;)*) => {$(
        #[test]
        fn $holds() {
            claimed_slot_holds(Op::$op);
        }

        #[test]
        fn $caught() {
            claimed_slot_catches(Op::$op);
        }
    )*};
}

claimed_slot_tests! {
    Join: join_vs_claimed_slot, join_ignoring_initializing_is_caught;
    Detach: detach_vs_claimed_slot, detach_ignoring_initializing_is_caught;
    Wake: wake_vs_claimed_slot, wake_ignoring_initializing_is_caught;
    LeftCpu: left_cpu_vs_claimed_slot, left_cpu_ignoring_initializing_is_caught;
    Terminate: terminate_vs_claimed_slot, terminate_ignoring_initializing_is_caught;
    StartRunning: start_running_vs_claimed_slot, start_running_ignoring_initializing_is_caught;
    Block: block_vs_claimed_slot, block_ignoring_initializing_is_caught;
    Preempt: preempt_vs_claimed_slot, preempt_ignoring_initializing_is_caught;
    WakeToRunning: wake_to_running_vs_claimed_slot, wake_to_running_ignoring_initializing_is_caught;
}
