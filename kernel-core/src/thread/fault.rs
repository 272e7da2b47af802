//! TEST ONLY: the table's operations by name, and deliberately broken variants of them.
//!
//! Owns what the fault-injection knob of [`ThreadTable`] does: a table built with
//! [`ThreadTable::ignoring_initializing`] has one operation that forgets the rule "only the holder
//! of a slot's [`Claim`](super::Claim) moves it out of `Initializing`" (seed 003) and mistakes a
//! slot that is still being set up for a live thread. The tests run the same checks with and
//! without the fault to show that they would catch the bug (a test that passes with the fault in
//! place proves nothing). Compiled only under `cfg(test)`: a kernel has neither the knob nor its
//! cost, and this module must never be reachable from non-test code.

use super::id::{ThreadError, ThreadId, ThreadState};
use super::slot::Word;
use super::table::{JoinOutcome, SlotInfo, ThreadTable};

/// One operation of the table on a live thread's ID (everything except claim/publish/abandon,
/// which take a [`Claim`](super::Claim) instead).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    StartRunning,
    WakeToRunning,
    Preempt,
    Block,
    Wake,
    Terminate,
    LeftCpu,
    Join,
    Detach,
}

/// What a successful operation returned, in one type so that one model can drive any of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    /// `start_running`, `preempt`, `terminate`.
    Done,
    /// The `bool` of `wake_to_running`, `block`, `wake`, `left_cpu`, `detach`.
    Flag(bool),
    /// `join`.
    Joined(JoinOutcome),
}

/// The exit code [`Op::apply`] passes to `terminate`.
pub(super) const EXIT_CODE: i64 = -3;

impl Op {
    /// Every operation, for the host tests (the loom models name theirs one by one, one test each).
    #[cfg_attr(
        loom,
        expect(dead_code, reason = "only the host tests iterate over the operations")
    )]
    pub(super) const ALL: [Self; 9] = [
        Self::StartRunning,
        Self::WakeToRunning,
        Self::Preempt,
        Self::Block,
        Self::Wake,
        Self::Terminate,
        Self::LeftCpu,
        Self::Join,
        Self::Detach,
    ];

    /// Calls the operation on `table`.
    pub(super) fn apply<const N: usize>(
        self,
        table: &ThreadTable<N>,
        id: ThreadId,
    ) -> Result<Outcome, ThreadError> {
        match self {
            Self::StartRunning => table.start_running(id).map(|()| Outcome::Done),
            Self::WakeToRunning => table.wake_to_running(id).map(Outcome::Flag),
            Self::Preempt => table.preempt(id).map(|()| Outcome::Done),
            Self::Block => table.block(id).map(Outcome::Flag),
            Self::Wake => table.wake(id).map(Outcome::Flag),
            Self::Terminate => table.terminate(id, EXIT_CODE).map(|()| Outcome::Done),
            Self::LeftCpu => table.left_cpu(id).map(Outcome::Flag),
            Self::Join => table.join(id).map(Outcome::Joined),
            Self::Detach => table.detach(id).map(Outcome::Flag),
        }
    }

    /// What the correct operation answers for a slot that is `Initializing` (with the ID's
    /// generation): it changes nothing. Every operation refuses it, except `wake_to_running`, whose
    /// contract is "`Ok(false)`, nothing changed" for any thread that is not `Blocked` (its caller
    /// then takes the ordinary path, whose `wake` refuses).
    pub(super) const fn on_initializing(self) -> Result<Outcome, ThreadError> {
        match self {
            Self::WakeToRunning => Ok(Outcome::Flag(false)),
            _ => Err(ThreadError::WrongState {
                found: ThreadState::Initializing,
            }),
        }
    }

    /// What the correct operation answers for a thread that was just published (`Ready`, no flags,
    /// described by `fresh`), and the slot after it.
    pub(super) fn on_ready(self, fresh: SlotInfo) -> (Result<Outcome, ThreadError>, SlotInfo) {
        let refused = Err(ThreadError::WrongState {
            found: ThreadState::Ready,
        });
        match self {
            Self::StartRunning => (
                Ok(Outcome::Done),
                SlotInfo {
                    state: ThreadState::Running,
                    on_cpu: true,
                    ..fresh
                },
            ),
            Self::WakeToRunning | Self::LeftCpu => (Ok(Outcome::Flag(false)), fresh),
            Self::Preempt | Self::Block | Self::Terminate => (refused, fresh),
            Self::Wake => (
                Ok(Outcome::Flag(false)),
                SlotInfo {
                    wake_pending: true,
                    ..fresh
                },
            ),
            Self::Join => (Ok(Outcome::Joined(JoinOutcome::Running)), fresh),
            Self::Detach => (
                Ok(Outcome::Flag(false)),
                SlotInfo {
                    detached: true,
                    ..fresh
                },
            ),
        }
    }

    /// The broken variant: what the operation takes an `Initializing` slot word for when it
    /// ignores that state. Each is the live state from which the operation does the most harm, so
    /// that the fault is a real one and not a no-op only the return value betrays:
    ///
    /// - `start_running` runs a thread whose context is still being written;
    /// - `wake_to_running`, `wake` take it for `Blocked` and hand it a CPU or a run queue;
    /// - `preempt`, `block`, `terminate` take it for `Running` and move it on;
    /// - `join`, `detach` take it for an exited thread off its CPU and reclaim the slot, which is
    ///   exactly seed 003's cleanup: a second claim then gets the slot its claimer still sets up;
    /// - `left_cpu` takes it for a detached thread that just exited on this CPU and reclaims it
    ///   (on a plain `Terminated` word it would change nothing).
    pub(super) const fn misread(self, word: Word) -> Word {
        match self {
            Self::StartRunning => word.with_state(ThreadState::Ready),
            Self::WakeToRunning | Self::Wake => word.with_state(ThreadState::Blocked),
            Self::Preempt | Self::Block | Self::Terminate => word.with_state(ThreadState::Running),
            Self::Join | Self::Detach => word.with_state(ThreadState::Terminated),
            Self::LeftCpu => word
                .with_state(ThreadState::Terminated)
                .set(Word::ON_CPU | Word::DETACHED),
        }
    }
}
