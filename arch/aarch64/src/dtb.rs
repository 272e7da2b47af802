//! Device tree -> `BootInfo`.
//!
//! Owns the translation of the firmware's machine description into the arch-neutral
//! [`BootInfo`]: RAM, the command line, the initrd, the console UART, the GIC, the generic
//! timer's interrupts, the PSCI conduit, the CPU count and the ranges that must not become free
//! frames (kernel image, device tree, initrd, `/memreserve/`). It reads only the validated copy
//! `dtb_copy` makes, through the `fdt` crate's primitive accessors (never the helpers that
//! panic on a missing node or follow aliases recursively). Anything missing or malformed
//! becomes a warning in `BootInfo`, never a panic; without a device tree at all, the console
//! falls back to QEMU `virt`'s PL011. This module must never touch devices.

use crate::dtb_copy;
use crate::layout::{self, BOOT_HHDM_SIZE, HHDM_PHYS_LIMIT};
use crate::serial;
use fdt::Fdt;
use fdt::node::FdtNode;
use kernel_core::boot_info::{
    BootInfo, BootSource, ConsoleDevice, InterruptController, PhysRange, PsciConduit, RegionKind,
    ReservedKind, TimerInterrupts,
};

/// QEMU `virt`'s PL011: the console when the device tree does not name a usable one.
const VIRT_PL011: u64 = 0x0900_0000;

/// The GIC interrupt specifier: `<type number flags>`; type 0 is an SPI, 1 a PPI.
const DEFAULT_INTERRUPT_CELLS: usize = 3;
const SPEC_TYPE_SPI: u32 = 0;
const SPEC_TYPE_PPI: u32 = 1;
const PPI_BASE: u32 = 16;
const SPI_BASE: u32 = 32;

type Node<'b> = FdtNode<'b, 'static>;

/// Builds the boot information from the device tree at physical `dtb_phys` (0: none).
pub fn parse(dtb_phys: u64) -> BootInfo {
    let mut info = BootInfo::new(
        BootSource::DeviceTree,
        layout::HHDM_BASE,
        layout::kernel_image_phys(),
    );
    // Only the boot tables' HHDM is live until `init_kernel_space`.
    info.hhdm_limit = BOOT_HHDM_SIZE;
    info.reserve(info.kernel_image, ReservedKind::KernelImage);
    if dtb_phys == 0 {
        info.warn("no device tree (x0 = 0); only the console is known");
    } else {
        match dtb_copy::copy(dtb_phys) {
            Ok(blob) => {
                info.device_tree = Some(blob.original);
                info.reserve(blob.original, ReservedKind::DeviceTree);
                match Fdt::new(blob.copy) {
                    Ok(fdt) => describe(&mut info, &fdt),
                    Err(_) => info.warn("fdt crate rejected the checked device tree copy"),
                }
            }
            Err(reason) => info.warn(reason),
        }
    }
    if info.console.is_none() {
        info.warn("console falls back to the QEMU virt PL011 at 0x9000000");
        info.console = Some(ConsoleDevice::Pl011 { base: VIRT_PL011 });
    }
    info
}

fn describe(info: &mut BootInfo, fdt: &Fdt<'static>) {
    let Some(root) = fdt.all_nodes().next() else {
        info.warn("device tree has no root node");
        return;
    };
    for reservation in fdt.memory_reservations() {
        let (start, size) = (reservation.address() as u64, reservation.size() as u64);
        match PhysRange::from_start_len(start, size) {
            Some(range) => info.reserve(range, ReservedKind::Firmware),
            None => info.warn("device tree memory reservation wraps around; ignored"),
        }
    }
    memory(info, fdt);
    let chosen = child(root, "chosen");
    if let Some(chosen) = chosen {
        command_line(info, chosen);
        initrd(info, chosen);
    } else {
        info.warn("device tree has no /chosen node: no command line");
    }
    console(info, fdt, root, chosen);
    let interrupt_cells = interrupt_controller(info, fdt);
    timer(info, fdt, root, interrupt_cells);
    psci(info, fdt);
    cpus(info, root);
}

/// Every enabled `device_type = "memory"` node's `reg` entries, clipped to what the HHDM can
/// hold. RAM above the boot mapping is listed too: `hhdm_limit` keeps it out of the frame
/// allocator until the kernel's own tables (which map all of RAM) are live.
fn memory(info: &mut BootInfo, fdt: &Fdt<'static>) {
    let mut found = false;
    for node in fdt.all_nodes() {
        if string(node, "device_type") != Some("memory") || !enabled(node) {
            continue;
        }
        for range in reg(node) {
            found = true;
            let Some(range) = range else {
                info.warn("memory node has a malformed reg entry; ignored");
                continue;
            };
            if range.end > HHDM_PHYS_LIMIT {
                info.warn("RAM above the 128 TiB the HHDM can hold is left out");
            }
            let clipped = PhysRange {
                start: range.start.min(HHDM_PHYS_LIMIT),
                end: range.end.min(HHDM_PHYS_LIMIT),
            };
            if !clipped.is_empty() {
                info.add_memory(clipped, RegionKind::Usable);
            }
        }
    }
    if !found {
        info.warn("device tree describes no memory");
    }
}

fn command_line(info: &mut BootInfo, chosen: Node<'_>) {
    let Some(property) = chosen.property("bootargs") else {
        return;
    };
    match core::str::from_utf8(property.value) {
        Ok(text) => info.cmdline = text.trim_end_matches('\0'),
        Err(_) => info.warn("bootargs are not valid UTF-8; command line ignored"),
    }
}

fn initrd(info: &mut BootInfo, chosen: Node<'_>) {
    let start = chosen.property("linux,initrd-start");
    let end = chosen.property("linux,initrd-end");
    match (start, end) {
        (None, None) => {}
        (Some(start), Some(end)) => match (cells_value(start.value), cells_value(end.value)) {
            (Some(start), Some(end)) if start < end => {
                let range = PhysRange { start, end };
                info.initrd = Some(range);
                info.reserve(range, ReservedKind::BootModule);
            }
            (Some(start), Some(end)) if start == end => {}
            _ => info.warn("initrd range in /chosen is malformed; initrd ignored"),
        },
        _ => info.warn("/chosen has only one of linux,initrd-start/-end; initrd ignored"),
    }
}

/// The PL011 that `/chosen/stdout-path` names, else the first enabled PL011.
fn console(info: &mut BootInfo, fdt: &Fdt<'static>, root: Node<'_>, chosen: Option<Node<'_>>) {
    let named = chosen
        .and_then(|chosen| string(chosen, "stdout-path"))
        .and_then(|path| resolve(root, path.split(':').next().unwrap_or(path)))
        .filter(|node| compatible(*node, &["arm,pl011"]) && enabled(*node));
    let node = named.or_else(|| {
        fdt.all_nodes()
            .find(|node| compatible(*node, &["arm,pl011"]) && enabled(*node))
    });
    let Some(node) = node else {
        info.warn("device tree has no PL011 UART");
        return;
    };
    match reg(node).next().flatten() {
        Some(range) if serial::usable_base(range.start) => {
            info.console = Some(ConsoleDevice::Pl011 { base: range.start });
        }
        _ => info.warn("PL011 in the device tree is not in the device window; not used"),
    }
}

/// Records the GIC; returns its `#interrupt-cells` for reading interrupt specifiers.
fn interrupt_controller(info: &mut BootInfo, fdt: &Fdt<'static>) -> usize {
    const V2: &[&str] = &[
        "arm,gic-400",
        "arm,cortex-a15-gic",
        "arm,cortex-a9-gic",
        "arm,cortex-a7-gic",
    ];
    let Some(node) = fdt
        .all_nodes()
        .find(|node| compatible(*node, &["arm,gic-v3"]) || compatible(*node, V2))
    else {
        info.warn("device tree has no GIC");
        return DEFAULT_INTERRUPT_CELLS;
    };
    let mut regs = reg(node);
    let (first, second) = (regs.next().flatten(), regs.next().flatten());
    match (first, second) {
        (Some(distributor), Some(other)) if compatible(node, &["arm,gic-v3"]) => {
            let regions = node.property("#redistributor-regions");
            if regions
                .and_then(|p| cells_value(p.value))
                .is_some_and(|n| n > 1)
            {
                info.warn("GICv3 has several redistributor regions; only the first is used");
            }
            info.interrupt_controller = Some(InterruptController::GicV3 {
                distributor,
                redistributors: other,
            });
        }
        (Some(distributor), Some(cpu_interface)) => {
            info.interrupt_controller = Some(InterruptController::GicV2 {
                distributor,
                cpu_interface,
            });
        }
        _ => info.warn("GIC node has fewer than two register ranges"),
    }
    node.interrupt_cells()
        .filter(|&cells| cells >= 3)
        .unwrap_or(DEFAULT_INTERRUPT_CELLS)
}

/// The generic timer's EL1 physical and virtual PPIs, from the raw `interrupts` cells (in the
/// binding's order: secure physical, non-secure physical, virtual, hypervisor).
fn timer(info: &mut BootInfo, fdt: &Fdt<'static>, root: Node<'_>, gic_cells: usize) {
    let Some(node) = fdt
        .all_nodes()
        .find(|node| compatible(*node, &["arm,armv8-timer", "arm,armv7-timer"]))
    else {
        info.warn("device tree has no generic timer node");
        return;
    };
    // The interrupt parent's #interrupt-cells, from the node's own interrupt-parent or the
    // root's (QEMU sets it on the root); the GIC's when neither resolves.
    let cells = node
        .interrupt_parent()
        .or_else(|| root.interrupt_parent())
        .and_then(|parent| parent.interrupt_cells())
        .filter(|&cells| cells >= 3)
        .unwrap_or(gic_cells);
    let Some(raw) = node.property("interrupts").map(|p| p.value) else {
        info.warn("generic timer node has no interrupts");
        return;
    };
    let intid = |index: usize| -> Option<u32> {
        let at = index * cells * 4;
        let kind = u32::from_be_bytes(raw.get(at..at + 4)?.try_into().ok()?);
        let number = u32::from_be_bytes(raw.get(at + 4..at + 8)?.try_into().ok()?);
        match kind {
            SPEC_TYPE_PPI if number < 16 => Some(PPI_BASE + number),
            SPEC_TYPE_SPI if number < 988 => Some(SPI_BASE + number),
            _ => None,
        }
    };
    match (intid(1), intid(2)) {
        (Some(el1_physical), Some(el1_virtual)) => {
            info.timer = Some(TimerInterrupts {
                el1_physical,
                el1_virtual,
            });
        }
        _ => info.warn("generic timer interrupts are malformed"),
    }
}

fn psci(info: &mut BootInfo, fdt: &Fdt<'static>) {
    let Some(node) = fdt.all_nodes().find(|node| {
        compatible(*node, &["arm,psci-1.0", "arm,psci-0.2", "arm,psci"]) && enabled(*node)
    }) else {
        info.warn("device tree has no PSCI node");
        return;
    };
    match string(node, "method") {
        Some("hvc") => info.psci = Some(PsciConduit::Hvc),
        Some("smc") => info.psci = Some(PsciConduit::Smc),
        _ => info.warn("PSCI method is neither hvc nor smc"),
    }
}

fn cpus(info: &mut BootInfo, root: Node<'_>) {
    let count = child(root, "cpus").map_or(0, |cpus| {
        cpus.children()
            .filter(|cpu| base_name(cpu.name) == "cpu" && enabled(*cpu))
            .count()
    });
    match u32::try_from(count) {
        Ok(count) if count > 0 => info.cpu_count = count,
        _ => info.warn("device tree lists no CPUs; assuming one"),
    }
}

/// The node name without its `@unit-address`.
fn base_name(name: &str) -> &str {
    name.split('@').next().unwrap_or(name)
}

/// The child of `node` called `name` (with or without its unit address).
fn child<'b>(node: Node<'b>, name: &str) -> Option<Node<'b>> {
    node.children()
        .find(|c| c.name == name || (!name.contains('@') && base_name(c.name) == name))
}

/// The node an absolute path or an `/aliases` entry names (one level of alias, no recursion).
fn resolve<'b>(root: Node<'b>, path: &str) -> Option<Node<'b>> {
    let path = if path.starts_with('/') {
        path
    } else {
        string(child(root, "aliases")?, path)?
    };
    let mut node = root;
    for part in path.split('/').filter(|part| !part.is_empty()) {
        node = child(node, part)?;
    }
    Some(node)
}

/// A string property without its terminating NUL; `None` when absent or not UTF-8.
fn string<'b>(node: Node<'b>, name: &str) -> Option<&'static str> {
    let value = node.property(name)?.value;
    core::str::from_utf8(value)
        .ok()
        .map(|s| s.trim_end_matches('\0'))
}

/// Whether the node's `compatible` list contains one of `names`.
fn compatible(node: Node<'_>, names: &[&str]) -> bool {
    node.property("compatible").is_some_and(|property| {
        property
            .value
            .split(|&b| b == 0)
            .any(|entry| names.iter().any(|name| name.as_bytes() == entry))
    })
}

/// A node is in use unless its `status` says otherwise.
fn enabled(node: Node<'_>) -> bool {
    matches!(string(node, "status"), None | Some("okay" | "ok"))
}

/// A one- or two-cell big-endian number (`linux,initrd-start` may be either).
fn cells_value(value: &[u8]) -> Option<u64> {
    match *value {
        [a, b, c, d] => Some(u64::from(u32::from_be_bytes([a, b, c, d]))),
        [a, b, c, d, e, f, g, h] => Some(u64::from_be_bytes([a, b, c, d, e, f, g, h])),
        _ => None,
    }
}

/// The node's `reg` entries as physical ranges (`None` for an entry without a size or one
/// that wraps); empty when it has no `reg` or cells wider than two.
fn reg(node: Node<'_>) -> impl Iterator<Item = Option<PhysRange>> {
    node.reg().into_iter().flatten().map(|region| {
        let start = region.starting_address as u64;
        PhysRange::from_start_len(start, region.size? as u64)
    })
}
