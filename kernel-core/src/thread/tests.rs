//! Host unit tests of the thread table: every transition, legal and illegal, every operation on a
//! slot still being set up (and that the check catches an operation broken to ignore that state),
//! stale IDs, generations, join/detach/left_cpu in every order, and a std-threads stress of
//! reclaim.

use super::fault::Op;
use super::slot::Word;
use super::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::vec::Vec;

type Small = ThreadTable<4>;

/// A table with one thread brought to `state` (through legal transitions), and its ID.
fn thread_in(state: ThreadState) -> (Small, ThreadId) {
    let table = Small::new();
    let claim = table.claim().unwrap();
    let id = claim.id();
    if state == ThreadState::Initializing {
        drop(claim); // Leaks the slot in Initializing, as a dropped Claim does.
        return (table, id);
    }
    assert_eq!(table.publish(claim), id);
    match state {
        ThreadState::Ready => {}
        ThreadState::Running => table.start_running(id).unwrap(),
        ThreadState::Blocked => {
            table.start_running(id).unwrap();
            assert_eq!(table.block(id), Ok(true));
        }
        ThreadState::Terminated => {
            table.start_running(id).unwrap();
            table.terminate(id, -7).unwrap();
        }
        ThreadState::Free | ThreadState::Initializing => unreachable!(),
    }
    assert_eq!(table.state(id), Ok(state));
    (table, id)
}

#[test]
fn id_packs_index_and_generation() {
    let id = ThreadId::new(11, 3);
    assert_eq!((id.index(), id.generation()), (11, 3));
    assert_eq!(id.as_u64(), (3 << 32) | 11);
    assert_eq!(ThreadId::from_u64(id.as_u64()), id);
    assert_eq!(std::format!("{id}"), "11.3");
    assert_eq!(std::format!("{id:?}"), "ThreadId(11.3)");
    let max = ThreadId::new(u32::MAX, u32::MAX);
    assert_eq!(
        (max.index(), max.generation()),
        (u32::MAX as usize, u32::MAX)
    );
}

#[test]
fn state_bytes_round_trip() {
    for state in [
        ThreadState::Free,
        ThreadState::Initializing,
        ThreadState::Ready,
        ThreadState::Running,
        ThreadState::Blocked,
        ThreadState::Terminated,
    ] {
        assert_eq!(ThreadState::from_u8(state as u8), Some(state));
    }
    assert_eq!(ThreadState::from_u8(6), None);
}

#[test]
fn errors_display() {
    assert_eq!(
        std::format!(
            "{}",
            ThreadError::WrongState {
                found: ThreadState::Blocked
            }
        ),
        "thread is blocked, which this operation does not start from"
    );
    assert!(std::format!("{}", ThreadError::Stale).contains("stale"));
}

#[test]
fn table_is_a_static() {
    static TABLE: ThreadTable = ThreadTable::new();
    assert_eq!(TABLE.capacity(), MAX_THREADS);
    assert_eq!(TABLE.free_count(), MAX_THREADS);
}

#[test]
fn full_life_cycle() {
    let table = Small::new();
    let claim = table.claim().unwrap();
    assert_eq!((claim.index(), claim.id().generation()), (0, 1));
    assert_eq!(table.state(claim.id()), Ok(ThreadState::Initializing));
    assert_eq!(table.free_count(), 3);
    let id = table.publish(claim);
    assert_eq!(table.state(id), Ok(ThreadState::Ready));
    table.start_running(id).unwrap();
    assert!(table.slot_info(0).unwrap().on_cpu);
    table.preempt(id).unwrap();
    assert_eq!(
        table.left_cpu(id),
        Ok(false),
        "not terminated: only the mark is cleared"
    );
    assert!(!table.slot_info(0).unwrap().on_cpu);
    table.start_running(id).unwrap();
    assert_eq!(table.block(id), Ok(true));
    assert_eq!(table.state(id), Ok(ThreadState::Blocked));
    assert_eq!(table.wake(id), Ok(true));
    assert_eq!(table.state(id), Ok(ThreadState::Ready));
    table.start_running(id).unwrap();
    assert_eq!(
        table.exit_code(id),
        Err(ThreadError::WrongState {
            found: ThreadState::Running
        }),
        "no exit code before the end"
    );
    table.terminate(id, 42).unwrap();
    assert_eq!(table.exit_code(id), Ok(42), "readable until reclaimed");
    assert_eq!(
        table.join(id),
        Ok(JoinOutcome::Exited {
            code: 42,
            reclaimed: false
        })
    );
    assert_eq!(table.left_cpu(id), Ok(true));
    assert_eq!(table.state(id), Err(ThreadError::Stale));
    assert_eq!(table.exit_code(id), Err(ThreadError::Stale));
    assert_eq!(table.free_count(), 4);
    let info = table.slot_info(0).unwrap();
    assert_eq!(
        (info.state, info.generation, info.on_cpu, info.joined),
        (ThreadState::Free, 1, false, false)
    );
}

#[test]
fn illegal_transitions_are_refused_and_change_nothing() {
    use ThreadState::*;
    type Op = fn(&Small, ThreadId) -> Result<(), ThreadError>;
    let ops: [(&str, Op, &[ThreadState]); 8] = [
        ("start_running", |t, id| t.start_running(id), &[Ready]),
        ("preempt", |t, id| t.preempt(id), &[Running]),
        ("block", |t, id| t.block(id).map(drop), &[Running]),
        (
            "wake",
            |t, id| t.wake(id).map(drop),
            &[Ready, Running, Blocked, Terminated],
        ),
        ("terminate", |t, id| t.terminate(id, 1), &[Running]),
        (
            "left_cpu",
            |t, id| t.left_cpu(id).map(drop),
            &[Ready, Blocked, Terminated],
        ),
        (
            "join",
            |t, id| t.join(id).map(drop),
            &[Ready, Running, Blocked, Terminated],
        ),
        (
            "detach",
            |t, id| t.detach(id).map(drop),
            &[Ready, Running, Blocked, Terminated],
        ),
    ];
    for state in [Initializing, Ready, Running, Blocked, Terminated] {
        for (name, op, legal_from) in ops {
            let (table, id) = thread_in(state);
            let before = table.slot_info(id.index());
            let result = op(&table, id);
            if legal_from.contains(&state) {
                assert!(result.is_ok(), "{name} from {state}: {result:?}");
            } else {
                assert_eq!(
                    result,
                    Err(ThreadError::WrongState { found: state }),
                    "{name} from {state}"
                );
                assert_eq!(
                    table.slot_info(id.index()),
                    before,
                    "{name} from {state} changed the slot"
                );
            }
        }
    }
}

#[test]
fn wake_before_block_is_not_lost() {
    let (table, id) = thread_in(ThreadState::Running);
    // The waker runs between the thread's "condition false?" check and its block.
    assert_eq!(table.wake(id), Ok(false));
    assert!(table.slot_info(0).unwrap().wake_pending);
    assert_eq!(
        table.block(id),
        Ok(false),
        "the pending wake-up must cancel the block"
    );
    assert_eq!(table.state(id), Ok(ThreadState::Running));
    assert_eq!(table.block(id), Ok(true), "the wake-up is consumed once");

    // Same while the thread was preempted between check and block.
    let (table, id) = thread_in(ThreadState::Running);
    table.preempt(id).unwrap();
    assert_eq!(table.wake(id), Ok(false));
    table.start_running(id).unwrap();
    assert_eq!(table.block(id), Ok(false));
}

#[test]
fn wake_to_running_is_wake_then_start_running_or_nothing() {
    let (table, id) = thread_in(ThreadState::Blocked);
    assert_eq!(table.wake_to_running(id), Ok(true));
    assert_eq!(table.state(id), Ok(ThreadState::Running));
    let info = table.slot_info(0).unwrap();
    assert!(info.on_cpu && !info.wake_pending);
    // Not blocked: nothing changes, and no wake-up is recorded (the caller then wakes it).
    for state in [
        ThreadState::Initializing,
        ThreadState::Ready,
        ThreadState::Running,
        ThreadState::Terminated,
    ] {
        let (table, id) = thread_in(state);
        let before = table.slot_info(0).unwrap();
        assert_eq!(table.wake_to_running(id), Ok(false), "{state:?}");
        assert_eq!(table.state(id), Ok(state));
        assert_eq!(table.slot_info(0).unwrap(), before, "{state:?}");
    }
    // A stale ID is refused.
    let (table, id) = thread_in(ThreadState::Blocked);
    let stale = ThreadId::new(id.index() as u32, id.generation() + 1);
    assert_eq!(table.wake_to_running(stale), Err(ThreadError::Stale));
    assert_eq!(table.state(id), Ok(ThreadState::Blocked));
}

#[test]
fn wakes_are_idempotent() {
    let (table, id) = thread_in(ThreadState::Blocked);
    assert_eq!(table.wake(id), Ok(true));
    assert_eq!(
        table.wake(id),
        Ok(false),
        "a second wake must not queue it twice"
    );
    assert_eq!(table.state(id), Ok(ThreadState::Ready));
    let (table, id) = thread_in(ThreadState::Terminated);
    assert_eq!(table.wake(id), Ok(false));
    assert!(!table.slot_info(0).unwrap().wake_pending);
}

#[test]
fn join_then_exit() {
    let (table, id) = thread_in(ThreadState::Running);
    assert_eq!(table.join(id), Ok(JoinOutcome::Running));
    assert_eq!(
        table.join(id),
        Ok(JoinOutcome::Running),
        "a pending join records nothing"
    );
    table.terminate(id, i64::MIN).unwrap();
    assert_eq!(table.left_cpu(id), Ok(false), "not joined yet: no reclaim");
    assert_eq!(table.state(id), Ok(ThreadState::Terminated));
    assert_eq!(
        table.join(id),
        Ok(JoinOutcome::Exited {
            code: i64::MIN,
            reclaimed: true
        })
    );
    assert_eq!(table.join(id), Err(ThreadError::Stale));
    assert_eq!(table.free_count(), 4);
}

#[test]
fn join_while_still_on_cpu() {
    let (table, id) = thread_in(ThreadState::Terminated);
    assert_eq!(
        table.join(id),
        Ok(JoinOutcome::Exited {
            code: -7,
            reclaimed: false
        })
    );
    assert_eq!(table.join(id), Err(ThreadError::AlreadyJoined));
    assert_eq!(table.detach(id), Err(ThreadError::AlreadyJoined));
    assert_eq!(table.free_count(), 3);
    assert_eq!(table.left_cpu(id), Ok(true));
    assert_eq!(table.left_cpu(id), Err(ThreadError::Stale));
    assert_eq!(table.free_count(), 4);
}

#[test]
fn detach_while_running() {
    let (table, id) = thread_in(ThreadState::Running);
    assert_eq!(table.detach(id), Ok(false));
    assert_eq!(table.detach(id), Err(ThreadError::Detached));
    assert_eq!(table.join(id), Err(ThreadError::Detached));
    table.terminate(id, 0).unwrap();
    assert_eq!(table.join(id), Err(ThreadError::Detached));
    assert_eq!(table.left_cpu(id), Ok(true));
    assert_eq!(table.free_count(), 4);
}

#[test]
fn detach_after_exit() {
    // Off CPU first: detach reclaims.
    let (table, id) = thread_in(ThreadState::Terminated);
    assert_eq!(table.left_cpu(id), Ok(false));
    assert_eq!(table.left_cpu(id), Ok(false), "left_cpu is idempotent");
    assert_eq!(table.detach(id), Ok(true));
    assert_eq!(table.detach(id), Err(ThreadError::Stale));
    // Still on CPU: left_cpu reclaims.
    let (table, id) = thread_in(ThreadState::Terminated);
    assert_eq!(table.detach(id), Ok(false));
    assert_eq!(table.left_cpu(id), Ok(true));
    assert_eq!(table.free_count(), 4);
}

#[test]
fn stale_ids_are_refused_after_reuse() {
    let table = ThreadTable::<1>::new();
    let old = table.publish(table.claim().unwrap());
    table.start_running(old).unwrap();
    table.terminate(old, 5).unwrap();
    table.detach(old).unwrap();
    assert_eq!(table.left_cpu(old), Ok(true));
    let new = table.publish(table.claim().unwrap());
    assert_eq!((new.index(), new.generation()), (0, old.generation() + 1));
    assert_eq!(table.start_running(old), Err(ThreadError::Stale));
    assert_eq!(table.preempt(old), Err(ThreadError::Stale));
    assert_eq!(table.block(old), Err(ThreadError::Stale));
    assert_eq!(table.wake(old), Err(ThreadError::Stale));
    assert_eq!(table.terminate(old, 9), Err(ThreadError::Stale));
    assert_eq!(table.left_cpu(old), Err(ThreadError::Stale));
    assert_eq!(table.join(old), Err(ThreadError::Stale));
    assert_eq!(table.detach(old), Err(ThreadError::Stale));
    assert_eq!(table.state(old), Err(ThreadError::Stale));
    let info = table.slot_info(0).unwrap();
    assert_eq!(
        (info.state, info.detached, info.wake_pending),
        (ThreadState::Ready, false, false)
    );
    // Out-of-range indices and the raw value 0 are never valid.
    assert_eq!(table.state(ThreadId::new(1, 1)), Err(ThreadError::Stale));
    assert_eq!(table.wake(ThreadId::from_u64(0)), Err(ThreadError::Stale));
    assert_eq!(table.slot_info(1), None);
}

#[test]
fn ids_of_free_slots_are_stale() {
    let table = Small::new();
    // Generation 0 of a never-claimed slot.
    assert_eq!(table.state(ThreadId::new(2, 0)), Err(ThreadError::Stale));
    // The generation of a slot that was reclaimed and not reused yet.
    let id = table.publish(table.claim().unwrap());
    table.start_running(id).unwrap();
    table.terminate(id, 0).unwrap();
    table.left_cpu(id).unwrap();
    assert_eq!(
        table.join(id),
        Ok(JoinOutcome::Exited {
            code: 0,
            reclaimed: true
        })
    );
    assert_eq!(table.slot_info(0).unwrap().generation, id.generation());
    assert_eq!(table.wake(id), Err(ThreadError::Stale));
}

#[test]
fn table_full_and_abandon() {
    let table = Small::new();
    let mut claims: Vec<Claim> = (0..4).map(|_| table.claim().unwrap()).collect();
    assert_eq!(table.claim(), Err(ThreadError::TableFull));
    assert_eq!(table.free_count(), 0);
    let third = claims.remove(2);
    let leaked = third.id();
    assert_eq!(table.state(leaked), Ok(ThreadState::Initializing));
    assert_eq!(
        table.wake(leaked),
        Err(ThreadError::WrongState {
            found: ThreadState::Initializing
        })
    );
    table.abandon(third);
    assert_eq!(
        table.state(leaked),
        Err(ThreadError::Stale),
        "an abandoned claim's ID never becomes valid"
    );
    let again = table.claim().unwrap();
    assert_eq!((again.index(), again.id().generation()), (2, 2));
    for claim in claims.into_iter().chain([again]) {
        table.publish(claim);
    }
    assert_eq!(table.claim(), Err(ThreadError::TableFull));
}

#[test]
fn generation_wraps_and_skips_zero() {
    let table = ThreadTable::<1>::new();
    table.set_free_generation(0, u32::MAX - 1);
    let claim = table.claim().unwrap();
    assert_eq!(claim.id().generation(), u32::MAX);
    table.abandon(claim);
    let claim = table.claim().unwrap();
    assert_eq!(
        claim.id().generation(),
        1,
        "generation 0 is never handed out"
    );
    let id = table.publish(claim);
    assert_eq!(
        table.state(ThreadId::new(0, u32::MAX)),
        Err(ThreadError::Stale)
    );
    assert_eq!(table.state(ThreadId::new(0, 0)), Err(ThreadError::Stale));
    assert_eq!(table.state(id), Ok(ThreadState::Ready));
    assert_eq!(Word::new(ThreadState::Free, u32::MAX).next_generation(), 1);
}

/// Whether `op`, applied to a slot being set up (with the ID its claim hands out, as a racing CPU
/// could hold it), leaves it alone: it gives the answer of [`Op::on_initializing`] (a refusal), the
/// slot is untouched, and its claimer can still publish it (publish panics otherwise). The host
/// half of the loom models' check, one thread at a time. Once published, `op` answers and acts as
/// [`Op::on_ready`] says, which the loom models take for granted.
fn leaves_initializing_alone(table: &Small, op: Op) -> bool {
    let forged = table.next_id(0);
    let claim = table.claim().unwrap();
    assert_eq!(claim.id(), forged, "next_id is the ID the claim hands out");
    let before = table.slot_info(0);
    let answer = op.apply(table, forged);
    if answer != op.on_initializing() || table.slot_info(0) != before {
        // Whatever the broken operation did, the claim is void: publishing it would panic.
        drop(claim);
        return false;
    }
    assert_eq!(table.publish(claim), forged);
    let fresh = table.slot_info(0).unwrap();
    let (answer, after) = op.on_ready(fresh);
    assert_eq!(
        op.apply(table, forged),
        answer,
        "{op:?} on a published thread"
    );
    assert_eq!(
        table.slot_info(0),
        Some(after),
        "{op:?} on a published thread"
    );
    true
}

#[test]
fn every_operation_leaves_an_initializing_slot_alone() {
    for op in Op::ALL {
        assert!(leaves_initializing_alone(&Small::new(), op), "{op:?}");
        // Also when the slot had an earlier (abandoned) occupancy: generation 2.
        let table = Small::new();
        table.abandon(table.claim().unwrap());
        assert!(
            leaves_initializing_alone(&table, op),
            "{op:?}, generation 2"
        );
    }
}

/// The fault knob breaks exactly the operation it names, and the host check above catches it:
/// the check is not one that passes whatever the table does.
#[test]
fn each_broken_operation_is_caught_and_only_it() {
    for broken in Op::ALL {
        for op in Op::ALL {
            let table = Small::ignoring_initializing(broken);
            assert_eq!(
                leaves_initializing_alone(&table, op),
                op != broken,
                "{op:?} on a table where {broken:?} ignores Initializing"
            );
        }
    }
}

/// Seed 003 on one CPU: a join that ignores `Initializing` reclaims a slot under its claimer, a
/// second spawn claims it, and the first claimer's publish must refuse to run a thread whose context
/// may be the other one's.
#[test]
#[should_panic(expected = "left initializing without its claimer")]
fn publish_detects_a_stolen_slot() {
    let table = Small::ignoring_initializing(Op::Join);
    let claim = table.claim().unwrap();
    assert!(matches!(
        table.join(claim.id()),
        Ok(JoinOutcome::Exited {
            reclaimed: true,
            ..
        })
    ));
    let second = table.claim().unwrap();
    assert_eq!(
        second.index(),
        claim.index(),
        "the same slot, claimed twice"
    );
    table.publish(claim);
}

/// Many OS threads create, run and end threads while a reaper joins or detaches them, racing with
/// each thread's `left_cpu`. Every slot must be reclaimed exactly once and every joiner must see
/// the right exit code.
#[test]
fn stress_reclaim_exactly_once() {
    const WORKERS: usize = 4;
    const PER_WORKER: usize = 2_000;
    static TABLE: ThreadTable<8> = ThreadTable::new();
    let reclaims = AtomicUsize::new(0);
    let (to_reaper, from_workers) = mpsc::channel::<ThreadId>();
    std::thread::scope(|s| {
        let reclaims = &reclaims;
        s.spawn(move || {
            let mut pending = Vec::new();
            let mut received = 0;
            while received < WORKERS * PER_WORKER || !pending.is_empty() {
                while let Ok(id) = from_workers.try_recv() {
                    received += 1;
                    // Detach about a third, join the rest.
                    if (id.generation() as usize + id.index()).is_multiple_of(3) {
                        if TABLE.detach(id).unwrap() {
                            reclaims.fetch_add(1, Ordering::Relaxed);
                        }
                    } else {
                        pending.push(id);
                    }
                }
                pending.retain(|&id| match TABLE.join(id).unwrap() {
                    JoinOutcome::Running => true,
                    JoinOutcome::Exited { code, reclaimed } => {
                        assert_eq!(
                            code,
                            id.as_u64() as i64,
                            "joiner saw another thread's exit code"
                        );
                        if reclaimed {
                            reclaims.fetch_add(1, Ordering::Relaxed);
                        }
                        false
                    }
                });
                std::thread::yield_now();
            }
        });
        for _ in 0..WORKERS {
            let to_reaper = to_reaper.clone();
            s.spawn(move || {
                for n in 0..PER_WORKER {
                    let claim = loop {
                        match TABLE.claim() {
                            Ok(claim) => break claim,
                            Err(ThreadError::TableFull) => std::thread::yield_now(),
                            Err(e) => panic!("{e}"),
                        }
                    };
                    let id = TABLE.publish(claim);
                    to_reaper.send(id).unwrap();
                    TABLE.start_running(id).unwrap();
                    if n % 2 == 0 {
                        assert_eq!(TABLE.wake(id), Ok(false));
                        assert_eq!(TABLE.block(id), Ok(false));
                    }
                    TABLE.terminate(id, id.as_u64() as i64).unwrap();
                    if TABLE.left_cpu(id).unwrap() {
                        reclaims.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
        drop(to_reaper);
    });
    assert_eq!(reclaims.load(Ordering::Relaxed), WORKERS * PER_WORKER);
    assert_eq!(TABLE.free_count(), 8);
}
