//! The census of kernel resources: how many of each thing the kernel hands out are in use, so
//! that a boot can prove user space gave every one of them back.
//!
//! Owns what is counted (free thread slots, free frames, live endpoints, notifications,
//! processes and frame records, and kernel heap bytes) and the comparison. Counting reclaims
//! what is pending first (dead kernel stacks, retired processes), so a count never includes
//! something merely not yet collected. It must never be taken while holding the kernel objects'
//! lock or the frame allocator's (it takes both).
//!
//! TLB tags (ASIDs) are not counted: the allocator hands them out by generation and takes them
//! back wholesale at a rollover, so "tags in use" has no baseline to return to; a space's tag is
//! released with the space, which the process count covers.

use crate::{memory, sched, user};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// What each entry of [`Census::counts`] counts.
const NAMES: [&str; 7] = [
    "free thread slots",
    "free frames",
    "endpoints",
    "notifications",
    "processes",
    "frame records",
    "kernel heap bytes",
];

/// The index of the free-frame count in [`NAMES`].
const FREE_FRAMES: usize = 1;

/// One count of every resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Census {
    counts: [usize; NAMES.len()],
}

impl Census {
    /// Counts now, after reclaiming what is pending.
    pub fn take() -> Census {
        sched::reap();
        user::objects::bury();
        sched::trim_stack_cache();
        let frames = memory::FRAMES
            .lock_irqsave()
            .as_ref()
            .map_or(0, |f| f.free_frames());
        let objects = user::objects::kernel().object_counts();
        Census {
            counts: [
                sched::THREADS.free_count(),
                frames,
                objects.endpoints,
                objects.notifications,
                objects.processes,
                objects.frame_records,
                memory::heap_bytes_in_use(),
            ],
        }
    }

    /// This census with the free frames that something between `before` and `after` kept for
    /// good taken off: the kernel tests grow the kernel's own page tables for new stack slots,
    /// which are never freed. Nothing else may change in between: a thread slot, object or heap
    /// byte the kernel tests did not give back is a leak, and so are frames that came back from
    /// nowhere; either is an error that names the counts.
    pub fn minus_frames_kept(self, before: Census, after: Census) -> Result<Census, String> {
        let mut changed = Census {
            counts: after.counts,
        };
        changed.counts[FREE_FRAMES] = before.counts[FREE_FRAMES];
        changed
            .compare(&before)
            .map_err(|d| format!("the kernel tests kept {d}"))?;
        let kept = before.counts[FREE_FRAMES]
            .checked_sub(after.counts[FREE_FRAMES])
            .ok_or_else(|| {
                format!(
                    "the kernel tests freed {} frames they never took",
                    after.counts[FREE_FRAMES] - before.counts[FREE_FRAMES]
                )
            })?;
        let mut counts = self.counts;
        counts[FREE_FRAMES] = counts[FREE_FRAMES]
            .checked_sub(kept)
            .ok_or("the kernel tests kept more frames than were free")?;
        Ok(Census { counts })
    }

    /// The free thread slots and free frames (for the one-line report).
    pub fn slots_and_frames(&self) -> (usize, usize) {
        (self.counts[0], self.counts[FREE_FRAMES])
    }

    /// `Ok` when this census equals `expected`, else which counts differ and by how much.
    pub fn compare(&self, expected: &Census) -> Result<(), String> {
        let differences: Vec<String> = NAMES
            .iter()
            .zip(self.counts.iter().zip(&expected.counts))
            .filter(|(_, (got, want))| got != want)
            .map(|(name, (got, want))| format!("{name} {got} (expected {want})"))
            .collect();
        if differences.is_empty() {
            Ok(())
        } else {
            Err(differences.join(", "))
        }
    }
}
