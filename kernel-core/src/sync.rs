//! The atomics shim: the one place that decides whose atomics the lock-free code uses.
//!
//! Owns the choice between `core::sync::atomic` (every real build) and `loom::sync::atomic` (the
//! model-checking build, `RUSTFLAGS="--cfg loom"`). Lock-free modules import their atomics from
//! here and nowhere else, so that loom sees every access of the state machines it checks; an atomic
//! taken straight from `core` would be invisible to the model and its races unexplored. This
//! module must never hold logic: it only re-exports.
//!
//! loom's atomics have no `const fn new`, so types built on them provide a `#[cfg(loom)]`
//! non-`const` constructor next to their `const` one.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU64, Ordering};

#[cfg(not(loom))]
pub(crate) use core::sync::atomic::{AtomicU64, Ordering};
