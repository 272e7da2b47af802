//! loom models of the notification word: every interleaving of a signal racing a wait, a poll, a
//! timeout (cancel) or a destruction (reset), checking that no bit is lost or delivered twice and
//! that exactly one party wakes a waiter.
//!
//! Run with:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test -p strait-kernel-core --release --target-dir target/loom ipc::
//! ```

use super::*;
use crate::thread::ThreadId;
use abi::Error;
use loom::sync::Arc;
use loom::thread;

const ME: ThreadId = ThreadId::new(1, 1);

/// A signal races the wait: either the wait finds the bit, or it blocks and the signal wakes it
/// with the bit. Never "blocked with the bit pending" (a lost wake-up).
#[test]
fn signal_vs_wait() {
    loom::model(|| {
        let n = Arc::new(Notification::new());
        let signaller = {
            let n = n.clone();
            thread::spawn(move || n.signal(0b10).unwrap())
        };
        let waited = n.wait(ME, true).unwrap();
        let signalled = signaller.join().unwrap();
        match (waited, signalled) {
            (WaitOutcome::Ready(bits), SignalOutcome::Pending) => assert_eq!(bits, 0b10),
            (WaitOutcome::Block, SignalOutcome::Wake { waiter, bits }) => {
                assert_eq!((waiter, bits), (ME, 0b10));
            }
            other => panic!("bit lost or duplicated: {other:?}"),
        }
        assert_eq!((n.peek(), n.waiter()), (0, None));
    });
}

/// Two signals race the wait: the bits reach the waiter or stay pending, each exactly once.
#[test]
fn two_signals_vs_wait() {
    loom::model(|| {
        let n = Arc::new(Notification::new());
        let signallers: [_; 2] = core::array::from_fn(|i| {
            let n = n.clone();
            thread::spawn(move || n.signal(1 << i).unwrap())
        });
        let waited = n.wait(ME, true).unwrap();
        let outcomes = signallers.map(|s| s.join().unwrap());
        let woken: u64 = outcomes
            .iter()
            .map(|o| match o {
                SignalOutcome::Wake { waiter, bits } => {
                    assert_eq!(*waiter, ME);
                    *bits
                }
                SignalOutcome::Pending => 0,
            })
            .sum();
        let wakes = outcomes
            .iter()
            .filter(|o| matches!(o, SignalOutcome::Wake { .. }))
            .count();
        let taken = match waited {
            WaitOutcome::Ready(bits) => {
                assert_eq!(wakes, 0, "woke a thread that did not block");
                bits
            }
            WaitOutcome::Block => {
                assert_eq!(wakes, 1, "a blocked waiter is woken exactly once");
                woken
            }
        };
        let rest = n.poll();
        assert_eq!(taken & rest, 0, "a bit delivered twice");
        assert_eq!(taken | rest, 0b11, "a bit lost");
    });
}

/// A signal races a poll: the bit is taken by the poll or stays pending, once.
#[test]
fn signal_vs_poll() {
    loom::model(|| {
        let n = Arc::new(Notification::new());
        n.signal(0b1).unwrap();
        let signaller = {
            let n = n.clone();
            thread::spawn(move || n.signal(0b100).unwrap())
        };
        let polled = n.poll();
        assert_eq!(signaller.join().unwrap(), SignalOutcome::Pending);
        let rest = n.poll();
        assert_eq!(polled & rest, 0);
        assert_eq!(polled | rest, 0b101);
        assert_ne!(polled, 0, "the bit pending before the poll is taken");
    });
}

/// A signal races the waiter's timeout: exactly one of them wins. If the timeout wins, the bit is
/// pending; if the signal wins, the timeout withdraws nothing and the wake carries the bit.
#[test]
fn signal_vs_cancel() {
    loom::model(|| {
        let n = Arc::new(Notification::new());
        assert_eq!(n.wait(ME, true), Ok(WaitOutcome::Block));
        let signaller = {
            let n = n.clone();
            thread::spawn(move || n.signal(0b1).unwrap())
        };
        let cancelled = n.cancel_wait(ME);
        match (cancelled, signaller.join().unwrap()) {
            (true, SignalOutcome::Pending) => assert_eq!(n.poll(), 0b1),
            (false, SignalOutcome::Wake { waiter, bits }) => {
                assert_eq!((waiter, bits), (ME, 0b1));
                assert_eq!(n.poll(), 0);
            }
            other => panic!("timeout and signal both (or neither) won: {other:?}"),
        }
        assert_eq!(n.waiter(), None);
    });
}

/// Two threads wait at once: one registers, the other is refused, never both.
#[test]
fn wait_vs_wait() {
    loom::model(|| {
        let n = Arc::new(Notification::new());
        let other = {
            let n = n.clone();
            thread::spawn(move || n.wait(ThreadId::new(2, 1), true))
        };
        let mine = n.wait(ME, true);
        let theirs = other.join().unwrap();
        match (mine, theirs) {
            (Ok(WaitOutcome::Block), Err(Error::Busy)) => assert_eq!(n.waiter(), Some(ME)),
            (Err(Error::Busy), Ok(WaitOutcome::Block)) => {
                assert_eq!(n.waiter(), Some(ThreadId::new(2, 1)));
            }
            other => panic!("{other:?}"),
        }
    });
}

/// A signal races the destruction of the notification: the blocked waiter is woken by exactly one
/// of them.
#[test]
fn signal_vs_reset() {
    loom::model(|| {
        let n = Arc::new(Notification::new());
        assert_eq!(n.wait(ME, true), Ok(WaitOutcome::Block));
        let signaller = {
            let n = n.clone();
            thread::spawn(move || n.signal(0b1).unwrap())
        };
        let reset = n.reset();
        match (reset, signaller.join().unwrap()) {
            (Some(waiter), SignalOutcome::Pending) => assert_eq!(waiter, ME),
            (None, SignalOutcome::Wake { waiter, .. }) => assert_eq!(waiter, ME),
            other => panic!("waiter woken twice or never: {other:?}"),
        }
        assert_eq!(n.waiter(), None);
    });
}
