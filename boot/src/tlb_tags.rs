//! The machine's TLB tags (PCIDs, ASIDs): the one allocator every user address space draws
//! from, and the switch between address spaces.
//!
//! Owns [`TLB_TAGS`]: kernel-core's `AsidAllocator` behind a lock, plus a copy of its generation
//! that the context-switch path reads without the lock. A space whose tag is of that generation
//! is activated with no lock at all (`AddressSpace::switch_to_cached`); any other takes the lock
//! and gets a fresh tag. Only [`TlbTags::switch_to`] may refresh a tag, so the copy is never
//! behind the allocator. A CPU without tags (x86 without PCID) needs no allocator at all: every
//! switch flushes. Single CPU, like the allocator: with SMP a rollover on one CPU must not
//! race another CPU's lock-free switch. It must never be used with interrupts enabled between
//! reading the copy and activating (a preemption could roll the generation over in between):
//! the switch masks them itself.

use crate::ktrace::KLock;
use crate::memory::UserSpace;
use crate::platform::Machine;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use kernel_core::hal::Platform;
use kernel_core::paging::AsidAllocator;

/// The allocator and the last generation it was seen at.
pub struct TlbTags {
    allocator: KLock<AsidAllocator>,
    /// The allocator's generation after the last switch that used it (written under its lock).
    generation: AtomicU64,
    /// The CPU has tags (set once by [`init`](Self::init)).
    tagged: AtomicBool,
}

/// Every user address space's tags (set up by the `paging` stage).
pub static TLB_TAGS: TlbTags = TlbTags {
    allocator: KLock::new_quiet("asids", AsidAllocator::new(1)),
    generation: AtomicU64::new(0),
    tagged: AtomicBool::new(false),
};

impl TlbTags {
    /// Starts over with `count` tags (the CPU's; at most 1 means untagged), before any user
    /// address space has run.
    pub fn init(&self, count: u32) {
        let mut allocator = self.allocator.lock_irqsave();
        *allocator = AsidAllocator::new(count);
        self.generation
            .store(allocator.generation(), Ordering::Relaxed);
        self.tagged.store(allocator.is_tagged(), Ordering::Relaxed);
    }

    /// Makes `space` this CPU's user address space: under its tag without any lock when the tag
    /// is current, otherwise with a fresh tag (and whatever flush that needs).
    pub fn switch_to(&self, space: &UserSpace) {
        if !self.tagged.load(Ordering::Relaxed) {
            space.switch_to_untagged();
            return;
        }
        let enabled = Machine::disable_interrupts();
        if !space.switch_to_cached(self.generation.load(Ordering::Relaxed)) {
            self.switch_to_locked(space);
        }
        Machine::restore_interrupts(enabled);
    }

    /// The switch for a space without a current tag: takes the allocator. Out of line, so that
    /// the common switch above stays small.
    #[inline(never)]
    fn switch_to_locked(&self, space: &UserSpace) {
        let mut allocator = self.allocator.lock();
        space.switch_to(&mut allocator);
        self.generation
            .store(allocator.generation(), Ordering::Relaxed);
    }

    /// Whether the CPU has tags, and the current generation (tests).
    #[cfg(feature = "testing")]
    pub fn snapshot(&self) -> (bool, u64) {
        let allocator = self.allocator.lock_irqsave();
        (allocator.is_tagged(), allocator.generation())
    }
}
