//! The 16550 UART on COM1: the x86_64 boot console.
//!
//! Owns the COM1 I/O ports. Output is polled byte by byte and takes no lock, so it works from
//! trap handlers and the panic path; with one CPU running that is enough (SMP will need per-CPU
//! line buffering on top). It must never wait on anything but the transmitter.

use core::sync::atomic::{AtomicBool, Ordering};
use x86_64::instructions::port::Port;

/// I/O base of COM1.
pub const COM1: u16 = 0x3f8;

const DATA: u16 = 0;
const INTERRUPT_ENABLE: u16 = 1;
const FIFO_CONTROL: u16 = 2;
const LINE_CONTROL: u16 = 3;
const MODEM_CONTROL: u16 = 4;
const LINE_STATUS: u16 = 5;
const LINE_STATUS_THR_EMPTY: u8 = 1 << 5;

static READY: AtomicBool = AtomicBool::new(false);

fn outb(register: u16, value: u8) {
    // SAFETY: COM1's registers are I/O ports owned by this module; writing them has no effect
    // on memory safety.
    unsafe { Port::<u8>::new(COM1 + register).write(value) }
}

fn inb(register: u16) -> u8 {
    // SAFETY: as in `outb`; reading the line status register has no side effects.
    unsafe { Port::<u8>::new(COM1 + register).read() }
}

/// Programs COM1 for 115200 8N1 with FIFOs, interrupts off.
pub fn init() {
    outb(INTERRUPT_ENABLE, 0x00);
    outb(LINE_CONTROL, 0x80); // DLAB: the next two writes set the divisor.
    outb(DATA, 0x01); // 115200 baud.
    outb(INTERRUPT_ENABLE, 0x00);
    outb(LINE_CONTROL, 0x03); // 8 bits, no parity, one stop bit.
    outb(FIFO_CONTROL, 0xc7); // Enable and clear FIFOs.
    outb(MODEM_CONTROL, 0x03); // DTR, RTS.
    READY.store(true, Ordering::Release);
}

fn write_byte(byte: u8) {
    while inb(LINE_STATUS) & LINE_STATUS_THR_EMPTY == 0 {
        core::hint::spin_loop();
    }
    outb(DATA, byte);
}

/// Writes `bytes`, turning `\n` into `\r\n`. Dropped before [`init`].
pub fn write(bytes: &[u8]) {
    if !READY.load(Ordering::Acquire) {
        return;
    }
    for &byte in bytes {
        if byte == b'\n' {
            write_byte(b'\r');
        }
        write_byte(byte);
    }
}
