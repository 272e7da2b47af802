//! Frame-pointer backtraces, walked the same way on both architectures.
//!
//! Owns the stopping rules of a stack walk. With frame pointers forced on (`-C
//! force-frame-pointers=yes`), x86_64 (`rbp`) and AArch64 (`x29`) share one frame-record layout:
//! the word at `fp` is the caller's frame pointer and the word at `fp + 8` is the return address.
//! Reading a word is the caller's job (it knows which addresses are safe to dereference); this
//! module must never read memory itself.

/// Deepest walk; a corrupt chain that loops forever is cut off here.
pub const MAX_FRAMES: usize = 32;

/// Walks the frame-record chain that starts at `fp`, calling `visit(depth, return_address)` for
/// each frame. `read_word(addr)` returns the word at `addr`, or `None` when `addr` must not be
/// read (outside every kernel stack, unmapped). The walk stops at a null or misaligned frame
/// pointer, at a chain that does not move strictly towards older frames (up the stack), at a null
/// return address, at an unreadable word, or after [`MAX_FRAMES`] frames. Returns the number of
/// frames visited.
pub fn walk(
    mut fp: u64,
    read_word: impl Fn(u64) -> Option<u64>,
    mut visit: impl FnMut(usize, u64),
) -> usize {
    let mut depth = 0;
    while depth < MAX_FRAMES && fp != 0 && fp.is_multiple_of(8) {
        let Some(return_address) = fp.checked_add(8).and_then(&read_word) else {
            break;
        };
        let Some(caller_fp) = read_word(fp) else {
            break;
        };
        if return_address == 0 {
            break;
        }
        visit(depth, return_address);
        depth += 1;
        if caller_fp <= fp {
            break;
        }
        fp = caller_fp;
    }
    depth
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::vec::Vec;

    fn memory(words: &[(u64, u64)]) -> BTreeMap<u64, u64> {
        words.iter().copied().collect()
    }

    fn collect(fp: u64, mem: &BTreeMap<u64, u64>) -> Vec<u64> {
        let mut frames = Vec::new();
        walk(fp, |a| mem.get(&a).copied(), |_, ra| frames.push(ra));
        frames
    }

    #[test]
    fn walks_a_well_formed_chain_to_its_null_end() {
        let mem = memory(&[
            (0x1000, 0x1100),
            (0x1008, 0xaa),
            (0x1100, 0),
            (0x1108, 0xbb),
        ]);
        assert_eq!(collect(0x1000, &mem), [0xaa, 0xbb]);
    }

    #[test]
    fn stops_at_a_loop_a_misaligned_pointer_and_unreadable_memory() {
        let looping = memory(&[(0x1000, 0x1000), (0x1008, 0xaa)]);
        assert_eq!(collect(0x1000, &looping), [0xaa]);
        let backwards = memory(&[
            (0x2000, 0x1000),
            (0x2008, 0xaa),
            (0x1000, 0),
            (0x1008, 0xbb),
        ]);
        assert_eq!(collect(0x2000, &backwards), [0xaa]);
        assert!(collect(0x1003, &looping).is_empty());
        assert!(collect(0x5000, &looping).is_empty());
        assert!(collect(0, &looping).is_empty());
    }

    #[test]
    fn a_cycle_through_high_addresses_is_cut_at_max_frames() {
        let mem: BTreeMap<u64, u64> = (0..100u64)
            .flat_map(|i| {
                [
                    (0x1000 + i * 16, 0x1000 + (i + 1) * 16),
                    (0x1008 + i * 16, 0x10 + i),
                ]
            })
            .collect();
        assert_eq!(collect(0x1000, &mem).len(), MAX_FRAMES);
    }
}
