//! Address-space identifiers (x86 PCIDs, AArch64 ASIDs) with generation rollover.
//!
//! Owns which address space may use which TLB tag. Tags are handed out in order within a
//! generation and never reused inside one; when they run out the generation advances and every
//! address space must get a new tag, after the caller has invalidated every non-global TLB entry
//! on every CPU (the scheme Linux uses on arm64). Exhaustion is therefore never an error.
//!
//! This module only does the bookkeeping: it must never flush a TLB or know how a tag reaches
//! the hardware. It is single-CPU for now: with SMP, a rollover must keep the tags of the spaces
//! running on other CPUs reserved (Linux's `reserved_asids`) and the allocator needs a lock.

/// The TLB tag an address space holds: valid only while `generation` is the allocator's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AsidTag {
    /// Allocator generation the tag was handed out in (0: never).
    pub generation: u64,
    /// The tag itself (0 when the CPU has no tags).
    pub asid: u32,
}

impl AsidTag {
    /// The tag of an address space that has never run.
    pub const UNASSIGNED: Self = Self {
        generation: 0,
        asid: 0,
    };

    /// True when the tag was ever handed out (the space may have TLB entries under `asid`).
    pub fn is_assigned(&self) -> bool {
        self.generation != 0
    }
}

/// What [`AsidAllocator::refresh`] did to a tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsidOutcome {
    /// The tag is valid in this generation: the TLB may keep what it holds for it.
    Current,
    /// The tag is new and no TLB entry can carry it: activate the space with a flush of its
    /// tag (free on x86, and what a CPU without tags does on every switch anyway).
    Assigned,
    /// The generation advanced and the tag is new. Before using it, invalidate every non-global
    /// TLB entry on every CPU: older generations' tags are being handed out again.
    Rollover,
}

/// Hands out tags `1..count`; tag 0 stays with the kernel (and with CPUs without tags).
#[derive(Debug)]
pub struct AsidAllocator {
    count: u32,
    generation: u64,
    next: u32,
}

impl AsidAllocator {
    /// An allocator for a CPU with `count` tags (x86 PCIDs: 4096; AArch64: 256 or 65536).
    ///
    /// `count <= 1` means the CPU has no tags: every space uses tag 0, and every switch to a
    /// different space yields [`AsidOutcome::Assigned`], so the switch flushes.
    pub const fn new(count: u32) -> Self {
        Self {
            count,
            generation: 1,
            next: 1,
        }
    }

    /// The current generation (starts at 1; 0 is [`AsidTag::UNASSIGNED`]'s).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// True when the CPU has tags to hand out.
    pub fn is_tagged(&self) -> bool {
        self.count > 1
    }

    /// True when `tag` is valid in the current generation.
    pub fn is_current(&self, tag: &AsidTag) -> bool {
        tag.generation == self.generation
    }

    /// Makes `tag` valid for the current generation, before its space is switched to.
    pub fn refresh(&mut self, tag: &mut AsidTag) -> AsidOutcome {
        if self.is_current(tag) {
            return AsidOutcome::Current;
        }
        if !self.is_tagged() {
            // One shared tag: a switch to another space is a full flush on that CPU only, which
            // the switch does itself. Advancing the generation makes every other space stale, so
            // switching back to it flushes again.
            self.generation += 1;
            *tag = AsidTag {
                generation: self.generation,
                asid: 0,
            };
            return AsidOutcome::Assigned;
        }
        let outcome = if self.next >= self.count {
            self.generation += 1;
            self.next = 1;
            AsidOutcome::Rollover
        } else {
            AsidOutcome::Assigned
        };
        *tag = AsidTag {
            generation: self.generation,
            asid: self.next,
        };
        self.next += 1;
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::vec;
    use std::vec::Vec;

    #[test]
    fn tags_are_handed_out_in_order_then_roll_over() {
        let mut asids = AsidAllocator::new(3);
        let mut a = AsidTag::UNASSIGNED;
        let mut b = AsidTag::UNASSIGNED;
        let mut c = AsidTag::UNASSIGNED;
        assert!(!a.is_assigned());
        assert_eq!(asids.refresh(&mut a), AsidOutcome::Assigned);
        assert_eq!(asids.refresh(&mut b), AsidOutcome::Assigned);
        assert_eq!((a.asid, b.asid), (1, 2));
        assert_eq!(asids.refresh(&mut a), AsidOutcome::Current);
        assert_eq!(asids.refresh(&mut c), AsidOutcome::Rollover);
        assert_eq!(
            c,
            AsidTag {
                generation: 2,
                asid: 1
            }
        );
        assert!(!asids.is_current(&a) && !asids.is_current(&b));
        // Stale spaces get fresh tags, never c's.
        assert_eq!(asids.refresh(&mut b), AsidOutcome::Assigned);
        assert_eq!(b.asid, 2);
        assert_eq!(asids.refresh(&mut a), AsidOutcome::Rollover);
        assert_eq!(
            a,
            AsidTag {
                generation: 3,
                asid: 1
            }
        );
        assert_eq!(asids.generation(), 3);
    }

    #[test]
    fn a_single_tag_rolls_over_on_every_new_space() {
        let mut asids = AsidAllocator::new(2);
        let mut a = AsidTag::UNASSIGNED;
        let mut b = AsidTag::UNASSIGNED;
        assert_eq!(asids.refresh(&mut a), AsidOutcome::Assigned);
        assert_eq!(asids.refresh(&mut a), AsidOutcome::Current);
        assert_eq!(asids.refresh(&mut b), AsidOutcome::Rollover);
        assert_eq!(asids.refresh(&mut a), AsidOutcome::Rollover);
        assert_eq!((a.asid, b.asid), (1, 1));
        assert!(asids.is_current(&a) && !asids.is_current(&b));
    }

    #[test]
    fn without_tags_every_switch_to_another_space_flushes() {
        for count in [0, 1] {
            let mut asids = AsidAllocator::new(count);
            assert!(!asids.is_tagged());
            let mut a = AsidTag::UNASSIGNED;
            let mut b = AsidTag::UNASSIGNED;
            assert_eq!(asids.refresh(&mut a), AsidOutcome::Assigned);
            assert_eq!(asids.refresh(&mut a), AsidOutcome::Current);
            assert_eq!(asids.refresh(&mut b), AsidOutcome::Assigned);
            assert_eq!(asids.refresh(&mut a), AsidOutcome::Assigned);
            assert_eq!((a.asid, b.asid), (0, 0));
        }
    }

    /// Deterministic xorshift64 so failures reproduce.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    /// Random switches among spaces against a model TLB that remembers, per tag, which space
    /// filled it: a space must never run under a tag whose TLB entries belong to another one.
    #[test]
    fn random_switches_never_share_a_tag_or_see_stale_entries() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for count in [0, 1, 2, 3, 5, 8, 64] {
            for spaces in [1, 2, 4, 7, 9, 100] {
                let mut asids = AsidAllocator::new(count);
                let mut tags = vec![AsidTag::UNASSIGNED; spaces];
                let mut tlb: BTreeMap<u32, usize> = BTreeMap::new();
                let mut running: Option<usize> = None;
                let mut rollovers = 0;
                for _ in 0..2000 {
                    let s = rng.below(spaces as u64) as usize;
                    let before = asids.generation();
                    let was_current = asids.is_current(&tags[s]);
                    let outcome = asids.refresh(&mut tags[s]);
                    match outcome {
                        AsidOutcome::Current => {
                            assert!(was_current);
                            assert_eq!(asids.generation(), before);
                        }
                        AsidOutcome::Assigned => {
                            assert!(!was_current);
                            if asids.is_tagged() {
                                assert_eq!(asids.generation(), before);
                            }
                            // The switch flushes this tag.
                            tlb.remove(&tags[s].asid);
                        }
                        AsidOutcome::Rollover => {
                            assert!(asids.is_tagged());
                            assert_eq!(asids.generation(), before + 1);
                            rollovers += 1;
                            tlb.clear();
                        }
                    }
                    assert!(asids.is_current(&tags[s]));
                    if asids.is_tagged() {
                        assert!((1..count).contains(&tags[s].asid));
                    } else if running != Some(s) {
                        // Without tags the switch itself flushes everything.
                        assert_ne!(outcome, AsidOutcome::Current);
                        tlb.clear();
                    }
                    if let Some(&owner) = tlb.get(&tags[s].asid) {
                        assert_eq!(owner, s, "space {s} would see space {owner}'s entries");
                    }
                    tlb.insert(tags[s].asid, s);
                    running = Some(s);
                    // No two spaces of the current generation share a tag.
                    let current: Vec<u32> = tags
                        .iter()
                        .filter(|t| asids.is_current(t))
                        .map(|t| t.asid)
                        .collect();
                    let mut unique = current.clone();
                    unique.sort_unstable();
                    unique.dedup();
                    assert_eq!(unique.len(), current.len());
                }
                if asids.is_tagged() && spaces as u32 >= count {
                    assert!(rollovers > 0, "count {count}, spaces {spaces}");
                }
            }
        }
    }
}
