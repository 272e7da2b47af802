//! Booting the AArch64 `Image` through U-Boot instead of QEMU's `-kernel` loader.
//!
//! Owns what a U-Boot boot adds to a QEMU command line and the one file it needs: Debian's
//! `u-boot-qemu` build for `virt` is the firmware (`-bios`), and it boots from an environment
//! this module writes for it into the second flash bank. That environment makes the boot
//! deterministic (no autoboot delay, no distro-boot scan of disks and networks): its `bootcmd`
//! loads the Image and the initrd that QEMU's `-kernel`/`-initrd` hand to the firmware through
//! fw_cfg (`qfw load`, which also sets `bootargs` from `-append`, so the kernel gets the same
//! command line as a direct boot) to [`KERNEL_ADDR`] and [`INITRD_ADDR`], and runs
//! `booti KERNEL INITRD:SIZE ${fdtcontroladdr}` with U-Boot's own device tree. `booti` then moves
//! the Image wherever its header asks (text_offset 0, flag bit 3 clear: the start of RAM).
//!
//! This module must never decide where the kernel runs (that is U-Boot's reading of the Image
//! header) nor touch the kernel image, the initrd or the command line.

use anyhow::{Context, Result};
use std::io::Write;
use std::path::Path;

/// U-Boot for QEMU `virt` (AArch64), from Debian's `u-boot-qemu`.
pub const FIRMWARE: &str = "/usr/lib/u-boot/qemu_arm64/u-boot.bin";

/// The Debian package that carries [`FIRMWARE`].
pub const PACKAGE: &str = "u-boot-qemu";

/// Where `qfw load` puts the Image: RAM + 128 MiB, away from where `booti` moves it (the start
/// of RAM), from U-Boot's pre-relocation use of the first MiBs and from its relocated copy, heap
/// and device tree at the top of a 256 MiB RAM.
pub const KERNEL_ADDR: u64 = 0x4800_0000;

/// Where `qfw load` puts the initrd: RAM + 160 MiB, 32 MiB above [`KERNEL_ADDR`] (room for any
/// Image) and 32 MiB below the top of 256 MiB (`booti` copies the initrd up again anyway).
pub const INITRD_ADDR: u64 = 0x4a00_0000;

/// The least RAM these addresses fit in, in MiB (QEMU `virt` RAM starts at 1 GiB).
pub const MIN_MEMORY_MIB: u64 = 256;

/// QEMU `virt`'s RAM base: where `booti` puts the Image (text_offset 0, flags bit 3 clear).
const RAM_BASE: u64 = 0x4000_0000;
// The Image is loaded well away from where booti moves it and from the initrd, and the initrd
// 32 MiB below the top of the smallest RAM allowed.
const _: () = assert!(
    KERNEL_ADDR >= RAM_BASE + (32 << 20)
        && INITRD_ADDR >= KERNEL_ADDR + (32 << 20)
        && INITRD_ADDR + (32 << 20) <= RAM_BASE + (MIN_MEMORY_MIB << 20)
);

/// What the boot command prints before it loads anything: a U-Boot boot's log must contain it,
/// or U-Boot did not take this environment (bad CRC, other size) and booted some other way.
pub const BOOTCMD_MARKER: &str = "strait-u-boot: qfw load, then booti";

/// Size of the environment in flash (`CONFIG_ENV_SIZE` of Debian's `qemu_arm64` build): a CRC-32
/// of the rest, then `name=value` strings, each NUL-terminated, an empty one last, zero padding.
const ENV_SIZE: usize = 0x4_0000;

/// Size of one `virt` flash bank: QEMU wants the `-drive if=pflash` file exactly this long. The
/// environment sits at the start of the second bank (`CONFIG_ENV_ADDR` 0x4000000).
const FLASH_BANK_SIZE: u64 = 64 << 20;

/// The environment's variables, in order.
pub fn variables() -> Vec<(&'static str, String)> {
    vec![
        // Boot at once, without waiting for a key on a console nobody types on.
        ("bootdelay", "-2".to_owned()),
        (
            "bootcmd",
            format!(
                "echo {BOOTCMD_MARKER}; qfw load {KERNEL_ADDR:#x} {INITRD_ADDR:#x} && \
                 booti {KERNEL_ADDR:#x} {INITRD_ADDR:#x}:${{filesize}} ${{fdtcontroladdr}}"
            ),
        ),
    ]
}

/// The environment block as U-Boot reads it from flash (`ENV_SIZE` bytes).
pub fn environment(vars: &[(&str, String)]) -> Result<Vec<u8>> {
    let mut data = Vec::with_capacity(ENV_SIZE);
    for (name, value) in vars {
        anyhow::ensure!(
            !name.contains(['=', '\0']) && !value.contains('\0'),
            "U-Boot variable {name:?} cannot be stored"
        );
        data.extend_from_slice(format!("{name}={value}").as_bytes());
        data.push(0);
    }
    data.push(0);
    anyhow::ensure!(
        data.len() <= ENV_SIZE - 4,
        "the U-Boot environment is larger than {ENV_SIZE} bytes"
    );
    data.resize(ENV_SIZE - 4, 0);
    let mut block = crc32(&data).to_le_bytes().to_vec();
    block.extend_from_slice(&data);
    Ok(block)
}

/// Writes the flash-bank image holding [`variables`] to `path` (sparse beyond the environment).
pub fn write_flash(path: &Path) -> Result<()> {
    let block = environment(&variables())?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut file =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(&block)
        .and_then(|()| file.set_len(FLASH_BANK_SIZE))
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The QEMU arguments of a U-Boot boot: the firmware and the flash bank at `flash`.
pub fn qemu_args(flash: &Path) -> Vec<std::ffi::OsString> {
    let mut drive = std::ffi::OsString::from("if=pflash,unit=1,format=raw,readonly=on,file=");
    drive.push(flash);
    vec!["-bios".into(), FIRMWARE.into(), "-drive".into(), drive]
}

/// CRC-32 (IEEE 802.3, reflected, as zlib and U-Boot compute it).
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_is_the_ieee_one() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn environment_is_crc_then_nul_separated_variables() {
        let vars = [("a", "1".to_owned()), ("bc", "x y".to_owned())];
        let block = environment(&vars).unwrap();
        assert_eq!(block.len(), ENV_SIZE);
        assert!(block[4..].starts_with(b"a=1\0bc=x y\0\0"));
        assert!(block[16..].iter().all(|&b| b == 0));
        let crc = u32::from_le_bytes(block[..4].try_into().unwrap());
        assert_eq!(crc, crc32(&block[4..]));
        assert!(environment(&[("a=b", String::new())]).is_err());
        assert!(environment(&[("big", "x".repeat(ENV_SIZE))]).is_err());
    }

    #[test]
    fn boot_command_loads_away_from_ram_base_and_boots_with_u_boots_device_tree() {
        let vars = variables();
        let bootcmd = &vars.iter().find(|(n, _)| *n == "bootcmd").unwrap().1;
        assert_eq!(
            bootcmd,
            "echo strait-u-boot: qfw load, then booti; qfw load 0x48000000 0x4a000000 && \
             booti 0x48000000 0x4a000000:${filesize} ${fdtcontroladdr}"
        );
    }

    #[test]
    fn flash_bank_is_full_size_with_the_environment_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("env.img");
        write_flash(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), FLASH_BANK_SIZE);
        let mut first = vec![0; ENV_SIZE];
        std::io::Read::read_exact(&mut std::fs::File::open(&path).unwrap(), &mut first).unwrap();
        assert_eq!(first, environment(&variables()).unwrap());
    }
}
