//! Kernel-core's `Mapper` driven with both real formats against emulated memory.
//!
//! Owns the proof that the encodings and the walker agree: what the mapper writes is read back
//! bit for bit by the format, blocks split into the same translations, and teardown returns
//! every table. It must never test one format's bits (each format's own module does that).

use crate::{Aarch64Format, X86_64Format};
use kernel_core::paging::emulated::{CountingFrames, EmulatedMemory};
use kernel_core::paging::{
    ENTRIES, FrameSource, Half, MapError, MapFlags, Mapper, PAGE_SIZE, PageTableFormat, ROOT_LEVEL,
    TableMemory, level_size,
};
use std::collections::BTreeSet;
use std::vec::Vec;

const R: MapFlags = MapFlags::READ;
const W: MapFlags = MapFlags::WRITE;
const X: MapFlags = MapFlags::EXECUTE;
const U: MapFlags = MapFlags::USER;
const G: MapFlags = MapFlags::GLOBAL;
const GIB: u64 = 1 << 30;
const MIB2: u64 = 2 << 20;

fn frame(i: u64) -> u64 {
    0x80_0000_0000 + i * PAGE_SIZE
}

/// Every table reachable from `root` through `F`'s table entries, root included.
fn reachable<F: PageTableFormat>(mem: &EmulatedMemory, root: u64) -> BTreeSet<u64> {
    let mut out = BTreeSet::new();
    let mut stack = Vec::from([(root, ROOT_LEVEL)]);
    while let Some((table, level)) = stack.pop() {
        assert!(out.insert(table), "table {table:#x} reachable twice");
        for &e in mem.table(table).expect("reachable table exists") {
            if level > 0 && F::is_present(e) && F::is_table(e, level) {
                stack.push((F::address(e), level - 1));
            }
        }
    }
    out
}

/// Nothing leaked and nothing freed while linked; freed tables are forgotten.
fn check<F: PageTableFormat>(mem: &mut EmulatedMemory, frames: &CountingFrames, root: u64) {
    assert_eq!(reachable::<F>(mem, root), frames.live().collect());
    mem.retain_live(frames);
}

/// The raw leaf the mapper wrote for `va` at `level`.
fn raw_leaf<F: PageTableFormat>(mem: &EmulatedMemory, root: u64, va: u64, level: u8) -> u64 {
    let mut table = root;
    for current in (level + 1..=ROOT_LEVEL).rev() {
        let entry = mem.read(table, F::index(va, current));
        assert!(F::is_table(entry, current));
        table = F::address(entry);
    }
    mem.read(table, F::index(va, level))
}

fn user_pages<F: PageTableFormat>() -> Vec<u64> {
    let mut out = Vec::from([0, F::USER_END - PAGE_SIZE]);
    for boundary in [MIB2, GIB, 512 * GIB] {
        out.extend([boundary - PAGE_SIZE, boundary]);
    }
    out
}

fn map_protect_unmap<F: PageTableFormat>() {
    let mut mem = EmulatedMemory::new();
    let mut frames = CountingFrames::new(usize::MAX);
    let mut mapper = Mapper::<F>::new(&mut mem, &mut frames, Half::User).unwrap();
    let root = mapper.root();
    let pages = user_pages::<F>();
    for (i, &va) in pages.iter().enumerate() {
        let f = frame(i as u64);
        mapper.map(&mut mem, &mut frames, va, f, R | W | U).unwrap();
        assert_eq!(
            raw_leaf::<F>(&mem, root, va, 0),
            F::leaf_entry(f, R | W | U, 0),
            "the mapper writes exactly the format's leaf"
        );
        let t = mapper.translate(&mem, va + 0x18).unwrap();
        assert_eq!((t.phys, t.flags, t.level), (f + 0x18, R | W | U, 0));
        mapper
            .protect(&mut mem, &mut frames, va, R | X | U)
            .unwrap();
        assert_eq!(mapper.translate(&mem, va).unwrap().flags, R | X | U);
    }
    check::<F>(&mut mem, &frames, root);
    // A user tree refuses kernel addresses, with either rights: on AArch64 the kernel address
    // would alias a user one (same 48 index bits).
    for flags in [R | U, R] {
        assert_eq!(
            mapper.map(&mut mem, &mut frames, F::KERNEL_START, frame(9), flags),
            Err(MapError::NotUserAddress)
        );
    }
    assert_eq!(mapper.translate(&mem, F::KERNEL_START), None);
    assert_eq!(
        mapper.map(&mut mem, &mut frames, 0x5000, frame(9), R | W | X | U),
        Err(MapError::WriteAndExecute)
    );
    assert_eq!(
        mapper.map(&mut mem, &mut frames, 0x5000, F::PHYS_LIMIT, R | U),
        Err(MapError::PhysicalTooHigh)
    );
    for (i, &va) in pages.iter().enumerate() {
        assert_eq!(mapper.unmap(&mut mem, &mut frames, va), Ok(frame(i as u64)));
        assert_eq!(mapper.translate(&mem, va), None);
    }
    check::<F>(&mut mem, &frames, root);
    assert_eq!(
        frames.outstanding(),
        1,
        "every table but the root was freed"
    );

    // Kernel pages at both ends of the kernel half, in a kernel tree.
    let mut kernel_tree = Mapper::<F>::new(&mut mem, &mut frames, Half::Kernel).unwrap();
    let kernel = [F::KERNEL_START, u64::MAX - (PAGE_SIZE - 1)];
    for (i, &va) in kernel.iter().enumerate() {
        let f = frame(100 + i as u64);
        kernel_tree
            .map(&mut mem, &mut frames, va, f, R | W | G)
            .unwrap();
        assert_eq!(
            raw_leaf::<F>(&mem, kernel_tree.root(), va, 0),
            F::leaf_entry(f, R | W | G, 0)
        );
        assert_eq!(kernel_tree.translate(&mem, va).unwrap().flags, R | W | G);
    }
    for flags in [R | U, R] {
        assert!(
            kernel_tree
                .map(&mut mem, &mut frames, 0x5000, frame(9), flags)
                .is_err()
        );
    }
    assert_eq!(kernel_tree.translate(&mem, 0), None);
    for (i, &va) in kernel.iter().enumerate() {
        assert_eq!(
            kernel_tree.unmap(&mut mem, &mut frames, va),
            Ok(frame(100 + i as u64))
        );
    }
    // The kernel tree keeps the tables linked from its root (shared on x86).
    let kernel_root = kernel_tree.root();
    let linked = (0..ENTRIES)
        .filter(|&s| F::is_present(mem.read(kernel_root, s)))
        .count();
    assert_eq!(linked, 2);
    assert_eq!(frames.outstanding(), 1 + 1 + linked);
}

fn huge_map_and_split<F: PageTableFormat>() {
    let mut mem = EmulatedMemory::new();
    let mut frames = CountingFrames::new(usize::MAX);
    let mut mapper = Mapper::<F>::new(&mut mem, &mut frames, Half::Kernel).unwrap();
    let root = mapper.root();
    // An HHDM-like run: 1 GiB blocks, then 2 MiB blocks, read-write no-execute, global.
    let hhdm = F::KERNEL_START + 64 * GIB;
    for i in 0..4 {
        mapper
            .map_huge(&mut mem, &mut frames, hhdm + i * GIB, i * GIB, R | W | G, 2)
            .unwrap();
    }
    let image = F::KERNEL_START + 1000 * GIB;
    mapper
        .map_huge(&mut mem, &mut frames, image, 0x4020_0000, R | X | G, 1)
        .unwrap();
    assert_eq!(
        raw_leaf::<F>(&mem, root, image, 1),
        F::leaf_entry(0x4020_0000, R | X | G, 1)
    );
    let t = mapper.translate(&mem, hhdm + 2 * GIB + 0x1234).unwrap();
    assert_eq!((t.phys, t.flags, t.level), (2 * GIB + 0x1234, R | W | G, 2));
    let t = mapper.translate(&mem, image + MIB2 - 1).unwrap();
    assert_eq!((t.phys, t.level), (0x4020_0000 + MIB2 - 1, 1));
    check::<F>(&mut mem, &frames, root);

    // A guard page punched into the HHDM splits 1 GiB -> 2 MiB -> 4 KiB.
    let before = frames.outstanding();
    let guard = hhdm + GIB + 3 * MIB2 + 7 * PAGE_SIZE;
    assert_eq!(
        mapper.unmap(&mut mem, &mut frames, guard),
        Ok(GIB + 3 * MIB2 + 7 * PAGE_SIZE)
    );
    assert_eq!(frames.outstanding(), before + 2);
    assert_eq!(mapper.translate(&mem, guard), None);
    for (va, level) in [
        (guard - PAGE_SIZE, 0),
        (guard + PAGE_SIZE, 0),
        (hhdm + GIB, 1),
        (hhdm + 2 * GIB - 1, 1),
        (hhdm + 2 * GIB, 2),
    ] {
        let t = mapper.translate(&mem, va).unwrap();
        assert_eq!((t.phys, t.flags, t.level), (va - hhdm, R | W | G, level));
        assert_eq!(
            raw_leaf::<F>(&mem, root, va, level),
            F::leaf_entry((va - hhdm) & !(level_size(level) - 1), R | W | G, level),
            "split leaves are the format's own leaves"
        );
    }
    // Protect inside the kernel-image block: read-only, still executable.
    mapper
        .protect(&mut mem, &mut frames, image + PAGE_SIZE, R)
        .unwrap();
    assert_eq!(mapper.translate(&mem, image + PAGE_SIZE).unwrap().flags, R);
    assert_eq!(mapper.translate(&mem, image).unwrap().flags, R | X | G);
    check::<F>(&mut mem, &frames, root);

    // Out of frames while splitting leaves the block exactly as it was.
    let target = hhdm + 3 * GIB + 5 * PAGE_SIZE;
    let block = raw_leaf::<F>(&mem, root, target, 2);
    let base = frames.outstanding();
    for extra in 0..2 {
        frames.set_capacity(base + extra);
        assert_eq!(
            mapper.unmap(&mut mem, &mut frames, target),
            Err(MapError::OutOfFrames)
        );
        assert_eq!(raw_leaf::<F>(&mem, root, target, 2), block);
        check::<F>(&mut mem, &frames, root);
    }
}

fn destroy_accounting<F: PageTableFormat>() {
    let mut mem = EmulatedMemory::new();
    let mut frames = CountingFrames::new(usize::MAX);
    // A kernel root whose kernel half is populated, copied into every user root (x86 style;
    // harmless for AArch64, whose user slots cover the whole root and so copy nothing).
    let mut kernel = Mapper::<F>::new(&mut mem, &mut frames, Half::Kernel).unwrap();
    let kernel_slots = F::user_root_slots().end..ENTRIES;
    kernel
        .populate_root(&mut mem, &mut frames, kernel_slots.clone())
        .unwrap();
    let start = frames.outstanding();
    for cycle in 0..1000u64 {
        let mut space = Mapper::<F>::new(&mut mem, &mut frames, Half::User).unwrap();
        for slot in kernel_slots.clone() {
            let entry = mem.read(kernel.root(), slot);
            mem.write(space.root(), slot, entry);
        }
        let mut mapped = BTreeSet::new();
        for (i, va) in user_pages::<F>().into_iter().enumerate() {
            let va = va ^ (cycle % 4 * PAGE_SIZE);
            let f = frame(i as u64 + cycle);
            space.map(&mut mem, &mut frames, va, f, R | W | U).unwrap();
            mapped.insert(f);
        }
        if cycle % 10 == 0 {
            space
                .map_huge(&mut mem, &mut frames, 7 * GIB, 0x20_0000, R | U, 1)
                .unwrap();
            mapped.extend((0..512).map(|i| 0x20_0000 + i * PAGE_SIZE));
        }
        let mut released = BTreeSet::new();
        space.destroy(&mut mem, &mut frames, F::user_root_slots(), |f| {
            assert!(released.insert(f), "{f:#x} released twice");
        });
        assert_eq!(released, mapped);
        assert_eq!(frames.outstanding(), start, "cycle {cycle}");
        mem.retain_live(&frames);
    }
    // The shared kernel tables are intact.
    check::<F>(&mut mem, &frames, kernel.root());
    let before = frames.outstanding();
    kernel.destroy(&mut mem, &mut frames, 0..ENTRIES, |_| {});
    assert_eq!(before, start);
    assert_eq!(frames.outstanding(), 0);
    assert!(frames.allocate().is_some());
}

#[test]
fn aarch64_halves_alias_in_the_index_but_x86_halves_do_not() {
    // Why a tree serves one half: TTBR0 and TTBR1 trees are indexed by the same bits.
    assert_eq!(
        Aarch64Format::index(0, ROOT_LEVEL),
        Aarch64Format::index(Aarch64Format::KERNEL_START, ROOT_LEVEL)
    );
    assert_ne!(
        X86_64Format::index(0, ROOT_LEVEL),
        X86_64Format::index(X86_64Format::KERNEL_START, ROOT_LEVEL)
    );
}

#[test]
fn x86_64_map_protect_unmap() {
    map_protect_unmap::<X86_64Format>();
}

#[test]
fn aarch64_map_protect_unmap() {
    map_protect_unmap::<Aarch64Format>();
}

#[test]
fn x86_64_huge_map_and_split() {
    huge_map_and_split::<X86_64Format>();
}

#[test]
fn aarch64_huge_map_and_split() {
    huge_map_and_split::<Aarch64Format>();
}

#[test]
fn x86_64_destroy_accounting() {
    destroy_accounting::<X86_64Format>();
}

#[test]
fn aarch64_destroy_accounting() {
    destroy_accounting::<Aarch64Format>();
}
