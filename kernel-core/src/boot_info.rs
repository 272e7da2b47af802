//! The one arch-neutral description of the machine the kernel booted on.
//!
//! Owns [`BootInfo`] and its parts. The x86_64 crate fills it from PVH `hvm_start_info`, the
//! AArch64 crate from the device tree; nothing past that point ever looks at either format again.
//! This module only describes: it must never allocate, touch memory, or decide policy (which
//! frames are free is [`crate::memory_map`]'s job).

use arrayvec::ArrayVec;
use core::fmt;

/// How many memory-map entries a boot may report before the rest are dropped with a warning.
pub const MAX_MEMORY_REGIONS: usize = 128;
/// How many reserved ranges (kernel image, modules, DTB, boot tables) a boot may report.
pub const MAX_RESERVED_RANGES: usize = 16;
/// How many parse warnings are kept for the `bootinfo` stage report.
pub const MAX_WARNINGS: usize = 8;

/// A half-open range of physical addresses `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct PhysRange {
    /// First byte of the range.
    pub start: u64,
    /// One past the last byte; never below `start`.
    pub end: u64,
}

impl PhysRange {
    /// The range `[start, start + len)`, or `None` when it would wrap around the address space.
    pub fn from_start_len(start: u64, len: u64) -> Option<Self> {
        start.checked_add(len).map(|end| Self { start, end })
    }

    /// Number of bytes in the range.
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    /// True when the range holds no byte.
    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }
}

impl fmt::Display for PhysRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}..{:#x}", self.start, self.end)
    }
}

/// What the firmware says a memory-map entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegionKind {
    /// RAM the kernel may hand out.
    Usable,
    /// Anything the kernel must not touch (firmware, MMIO holes, unknown types).
    Reserved,
    /// ACPI tables; usable once they have been read.
    AcpiReclaimable,
    /// ACPI non-volatile storage; never usable.
    AcpiNvs,
    /// Memory the firmware reports as defective.
    Defective,
}

/// One entry of the firmware memory map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryRegion {
    /// The physical addresses it covers.
    pub range: PhysRange,
    /// What it is.
    pub kind: RegionKind,
}

/// Why a range inside usable RAM must not be handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReservedKind {
    /// The loaded kernel image (text, data, bss, boot stacks).
    KernelImage,
    /// The initial ramdisk or another boot module.
    BootModule,
    /// The flattened device tree blob.
    DeviceTree,
    /// Structures the boot protocol left behind that are still read (PVH start info, cmdline).
    BootData,
    /// Memory the architecture keeps away from the allocator (x86 real-mode area below 1 MiB).
    Firmware,
}

/// A range that overlaps usable RAM but is in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReservedRange {
    /// The physical addresses it covers.
    pub range: PhysRange,
    /// Who uses it.
    pub kind: ReservedKind,
}

/// The device that carries the boot console.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsoleDevice {
    /// A 16550-compatible UART behind x86 I/O ports.
    Ns16550Port {
        /// Base I/O port (COM1 is 0x3f8).
        port: u16,
    },
    /// An Arm PL011 UART at a physical MMIO address.
    Pl011 {
        /// Physical base address of its registers.
        base: u64,
    },
}

/// The interrupt controller the firmware described, when it describes one in the boot data.
/// (x86_64 finds its APICs through ACPI instead, so there this stays `None` at boot.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InterruptController {
    /// Arm GICv2: distributor and CPU interface.
    GicV2 {
        /// Distributor registers.
        distributor: PhysRange,
        /// CPU interface registers.
        cpu_interface: PhysRange,
    },
    /// Arm GICv3: distributor and redistributors.
    GicV3 {
        /// Distributor registers.
        distributor: PhysRange,
        /// Redistributor region (one frame pair per CPU).
        redistributors: PhysRange,
    },
}

/// The per-CPU timer interrupts of the Arm generic timer, as GIC INTIDs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerInterrupts {
    /// EL1 physical timer (CNTP).
    pub el1_physical: u32,
    /// EL1 virtual timer (CNTV).
    pub el1_virtual: u32,
}

/// How to make PSCI calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PsciConduit {
    /// `hvc #0`.
    Hvc,
    /// `smc #0`.
    Smc,
}

/// Which boot protocol the information came from (for the console report only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootSource {
    /// Xen PVH `hvm_start_info` (x86_64 under QEMU `-kernel`).
    Pvh,
    /// A flattened device tree (AArch64 under QEMU `-kernel`).
    DeviceTree,
}

/// Everything the kernel learns from the boot protocol, in one arch-neutral form.
#[derive(Debug, Clone)]
pub struct BootInfo {
    /// Where this came from.
    pub source: BootSource,
    /// The firmware memory map, in the order the firmware gave it.
    pub memory: ArrayVec<MemoryRegion, MAX_MEMORY_REGIONS>,
    /// Ranges inside RAM that are in use at boot and must not become free frames.
    pub reserved: ArrayVec<ReservedRange, MAX_RESERVED_RANGES>,
    /// The kernel command line (`-append`); empty when none was given or it was not valid UTF-8.
    pub cmdline: &'static str,
    /// The initial ramdisk (`-initrd`), if any.
    pub initrd: Option<PhysRange>,
    /// Physical address of the ACPI RSDP, if the firmware gave one.
    pub acpi_rsdp: Option<u64>,
    /// The device tree blob, if the machine was described by one.
    pub device_tree: Option<PhysRange>,
    /// The boot console device.
    pub console: Option<ConsoleDevice>,
    /// The interrupt controller, when the boot data describes it.
    pub interrupt_controller: Option<InterruptController>,
    /// Generic timer interrupts (AArch64).
    pub timer: Option<TimerInterrupts>,
    /// PSCI conduit (AArch64).
    pub psci: Option<PsciConduit>,
    /// Number of CPUs the boot data describes (1 when it does not say).
    pub cpu_count: u32,
    /// Virtual address at which physical address 0 is mapped (the HHDM base).
    pub hhdm_offset: u64,
    /// Exclusive upper bound of the physical addresses the boot-time HHDM reaches; frames at or
    /// above it cannot be touched yet and are left out of the allocator. `u64::MAX` when the
    /// arch maps all of RAM from the start.
    pub hhdm_limit: u64,
    /// Physical range of the loaded kernel image.
    pub kernel_image: PhysRange,
    /// What the parser rejected or dropped, for the `bootinfo` stage report.
    pub warnings: ArrayVec<&'static str, MAX_WARNINGS>,
}

impl BootInfo {
    /// An empty description; the arch parser fills it in.
    pub fn new(source: BootSource, hhdm_offset: u64, kernel_image: PhysRange) -> Self {
        Self {
            source,
            memory: ArrayVec::new(),
            reserved: ArrayVec::new(),
            cmdline: "",
            initrd: None,
            acpi_rsdp: None,
            device_tree: None,
            console: None,
            interrupt_controller: None,
            timer: None,
            psci: None,
            cpu_count: 1,
            hhdm_offset,
            hhdm_limit: u64::MAX,
            kernel_image,
            warnings: ArrayVec::new(),
        }
    }

    /// Records a parse warning; extra warnings past [`MAX_WARNINGS`] are dropped silently because
    /// the first ones already say what went wrong.
    pub fn warn(&mut self, warning: &'static str) {
        let _ = self.warnings.try_push(warning);
    }

    /// Adds a memory-map entry, or records a warning when the map is full or the entry is empty.
    pub fn add_memory(&mut self, range: PhysRange, kind: RegionKind) {
        if range.is_empty() {
            self.warn("empty memory-map entry ignored");
        } else if self.memory.try_push(MemoryRegion { range, kind }).is_err() {
            self.warn("memory map has too many entries; the rest were ignored");
        }
    }

    /// Adds a reserved range, or records a warning when the table is full.
    pub fn reserve(&mut self, range: PhysRange, kind: ReservedKind) {
        if range.is_empty() {
            return;
        }
        if self
            .reserved
            .try_push(ReservedRange { range, kind })
            .is_err()
        {
            self.warn("too many reserved ranges; some boot data may be overwritten");
        }
    }

    /// Total bytes of RAM the firmware reports as usable (before reservations are taken out).
    pub fn usable_bytes(&self) -> u64 {
        self.memory
            .iter()
            .filter(|r| r.kind == RegionKind::Usable)
            .map(|r| r.range.len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_start_len_refuses_wraparound() {
        assert_eq!(PhysRange::from_start_len(u64::MAX - 1, 4), None);
        assert_eq!(
            PhysRange::from_start_len(0x1000, 0x2000),
            Some(PhysRange {
                start: 0x1000,
                end: 0x3000
            })
        );
    }

    #[test]
    fn overflowing_the_memory_map_is_a_warning_not_a_panic() {
        let mut info = BootInfo::new(BootSource::Pvh, 0, PhysRange { start: 0, end: 0 });
        for i in 0..(MAX_MEMORY_REGIONS as u64 + 3) {
            info.add_memory(
                PhysRange {
                    start: i * 0x1000,
                    end: (i + 1) * 0x1000,
                },
                RegionKind::Usable,
            );
        }
        assert_eq!(info.memory.len(), MAX_MEMORY_REGIONS);
        assert_eq!(info.warnings.len(), 3);
        assert_eq!(info.usable_bytes(), MAX_MEMORY_REGIONS as u64 * 0x1000);
    }

    #[test]
    fn empty_regions_are_dropped_with_a_warning() {
        let mut info = BootInfo::new(BootSource::DeviceTree, 0, PhysRange { start: 0, end: 0 });
        info.add_memory(PhysRange { start: 5, end: 5 }, RegionKind::Usable);
        assert!(info.memory.is_empty());
        assert_eq!(info.warnings.len(), 1);
    }
}
