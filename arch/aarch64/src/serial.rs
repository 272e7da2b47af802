//! The Arm PL011 UART that carries the boot console.
//!
//! Owns the UART's registers and the one global that says where they are. Writes poll the
//! transmit FIFO and take no lock, so they are safe from trap handlers and the panic path: on a
//! single CPU nothing else can hold the UART. With SMP, lines from different CPUs will interleave
//! byte by byte; the fix then is per-CPU line buffers flushed whole, never a lock here (a lock
//! would deadlock the trap report of a CPU that faulted while holding it). Output before
//! [`init`] is dropped. This module must never parse the device tree or decide which UART to
//! use: it is told a physical base address.

use crate::layout::{DEVICE_WINDOW_END, phys_to_virt};
use core::sync::atomic::{AtomicU64, Ordering};
use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::register_bitfields;
use tock_registers::register_structs;
use tock_registers::registers::{ReadOnly, ReadWrite, WriteOnly};

register_bitfields! [u32,
    /// Flag register.
    FR [
        /// Transmit FIFO full.
        TXFF OFFSET(5) NUMBITS(1) [],
        /// UART busy transmitting.
        BUSY OFFSET(3) NUMBITS(1) []
    ],
    /// Line control register (writing it latches IBRD/FBRD).
    LCR_H [
        /// Word length.
        WLEN OFFSET(5) NUMBITS(2) [
            EightBit = 0b11
        ],
        /// FIFOs enabled.
        FEN OFFSET(4) NUMBITS(1) [],
        /// Two stop bits (clear: one).
        STP2 OFFSET(3) NUMBITS(1) [],
        /// Parity enabled (clear: none).
        PEN OFFSET(1) NUMBITS(1) []
    ],
    /// Control register.
    CR [
        /// Receive enable.
        RXE OFFSET(9) NUMBITS(1) [],
        /// Transmit enable.
        TXE OFFSET(8) NUMBITS(1) [],
        /// UART enable.
        UARTEN OFFSET(0) NUMBITS(1) []
    ]
];

register_structs! {
    /// The PL011 register block (Arm PrimeCell UART r1p5 layout).
    Pl011 {
        (0x00 => dr: ReadWrite<u32>),
        (0x04 => _reserved0),
        (0x18 => fr: ReadOnly<u32, FR::Register>),
        (0x1c => _reserved1),
        (0x24 => ibrd: ReadWrite<u32>),
        (0x28 => fbrd: ReadWrite<u32>),
        (0x2c => lcr_h: ReadWrite<u32, LCR_H::Register>),
        (0x30 => cr: ReadWrite<u32, CR::Register>),
        (0x34 => _reserved2),
        (0x38 => imsc: ReadWrite<u32>),
        (0x3c => _reserved3),
        (0x44 => icr: WriteOnly<u32>),
        (0x48 => @END),
    }
}

/// 115200 baud from QEMU virt's 24 MHz UART clock: divisor 13.02 = 13 + 1/64. QEMU ignores the
/// rate; real hardware would want the clock from the device tree.
const IBRD_115200: u32 = 13;
const FBRD_115200: u32 = 1;
/// Every interrupt bit of ICR.
const ALL_INTERRUPTS: u32 = 0x7ff;
/// Bound on waiting for the UART to drain before reprogramming it.
const DRAIN_SPINS: u32 = 100_000;

/// HHDM virtual address of the PL011 registers, 0 until [`init`]. Also read by the nested-fault
/// path in `traps.rs`, which prints without Rust.
pub static UART_VIRT: AtomicU64 = AtomicU64::new(0);

/// Whether `base` can be the console: it must be inside the device window of the boot mapping.
pub fn usable_base(base: u64) -> bool {
    base.checked_add(size_of::<Pl011>() as u64)
        .is_some_and(|end| end <= DEVICE_WINDOW_END)
}

fn registers(virt: u64) -> &'static Pl011 {
    // SAFETY: `virt` is the HHDM address of the PL011 block stored by `init`, mapped Device memory
    // at that address for the kernel's whole life, and only accessed with volatile register ops.
    unsafe { &*(virt as *const Pl011) }
}

/// Programs the PL011 at physical `base` for 8N1 with FIFOs, TX and RX, and makes it the console.
/// Ignored when `base` is outside the device window (the caller checks [`usable_base`] first).
pub fn init(base: u64) {
    if !usable_base(base) {
        return;
    }
    let virt = phys_to_virt(base);
    let uart = registers(virt);
    uart.cr.set(0);
    for _ in 0..DRAIN_SPINS {
        if !uart.fr.is_set(FR::BUSY) {
            break;
        }
    }
    // Disabling the FIFOs flushes them.
    uart.lcr_h.set(0);
    uart.imsc.set(0);
    uart.icr.set(ALL_INTERRUPTS);
    uart.ibrd.set(IBRD_115200);
    uart.fbrd.set(FBRD_115200);
    uart.lcr_h.write(LCR_H::WLEN::EightBit + LCR_H::FEN::SET);
    uart.cr.write(CR::UARTEN::SET + CR::TXE::SET + CR::RXE::SET);
    UART_VIRT.store(virt, Ordering::Release);
}

fn put(uart: &Pl011, byte: u8) {
    while uart.fr.is_set(FR::TXFF) {
        core::hint::spin_loop();
    }
    uart.dr.set(u32::from(byte));
}

/// The console as a `core::fmt::Write` sink (for formatted reports; takes no lock).
#[derive(Debug, Clone, Copy)]
pub struct Writer;

impl core::fmt::Write for Writer {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        write(s.as_bytes());
        Ok(())
    }
}

/// Writes `bytes`, turning `\n` into `\r\n`. Drops them when no UART is set up yet.
pub fn write(bytes: &[u8]) {
    let virt = UART_VIRT.load(Ordering::Acquire);
    if virt == 0 {
        return;
    }
    let uart = registers(virt);
    for &byte in bytes {
        if byte == b'\n' {
            put(uart, b'\r');
        }
        put(uart, byte);
    }
}
