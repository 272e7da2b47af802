//! QEMU: the command line for a boot, running it, and what its exit status means.
//!
//! Owns the base command line of each architecture (machine, CPU, memory, SMP, kernel and
//! initrd, the exit device, the firmware when it is not QEMU's own loader), the guest clocks of test and benchmark boots, where the serial
//! console goes, the decoding of the guest's exit status, and the life of a QEMU
//! process: started in its own directory, waited for with a timeout, and killed only through its
//! own `Child` handle (other QEMUs run on the same machine; never kill by name).

use crate::arch::Arch;
use crate::images::Image;
use crate::{uboot, workspace};
use anyhow::{Context, Result};
use kernel_core::hal::ExitStatus as GuestStatus;
use serde::Deserialize;
use std::ffi::OsString;
use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Memory when neither the scenario nor the command line names any.
pub const DEFAULT_MEMORY: &str = "256M";

/// The size of a `-m` value in MiB (QEMU's syntax: a number with an optional `M` or `G` suffix,
/// MiB without one), or `None` when it is not in that form.
pub fn memory_mib(value: &str) -> Option<u64> {
    let (digits, scale) = match value.char_indices().last()? {
        (at, 'M' | 'm') => (&value[..at], 1),
        (at, 'G' | 'g') => (&value[..at], 1024),
        _ => (value, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(scale)
}

/// What loads and starts the kernel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum Firmware {
    /// QEMU's own loader, `-kernel` (x86_64: the PVH note; AArch64: the arm64 Image protocol,
    /// the Image at RAM + 2 MiB).
    #[default]
    #[serde(rename = "direct")]
    Direct,
    /// U-Boot (AArch64 only, [`uboot`]): `-kernel`, `-initrd` and `-append` reach it through
    /// fw_cfg, and its `booti` moves the Image to the start of RAM.
    #[serde(rename = "u-boot")]
    UBoot,
}

/// The virtual machine one boot runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    /// `-M` value.
    pub machine: String,
    /// `-cpu` value; `None` leaves QEMU's default.
    pub cpu: Option<String>,
    /// `-m` value.
    pub memory: String,
    /// `-smp` value.
    pub smp: u32,
    /// What boots the kernel.
    pub firmware: Firmware,
    /// Appended to the command line verbatim.
    pub extra_args: Vec<String>,
}

impl Machine {
    /// The default machine of `arch`: 256 MiB, one CPU.
    pub fn default_for(arch: Arch) -> Machine {
        Machine {
            machine: arch.default_machine().to_owned(),
            cpu: arch.default_cpu().map(str::to_owned),
            memory: DEFAULT_MEMORY.to_owned(),
            smp: 1,
            firmware: Firmware::Direct,
            extra_args: Vec::new(),
        }
    }
}

/// Where the guest's serial console goes.
#[derive(Debug, Clone)]
pub enum Console {
    /// The terminal, with the QEMU monitor multiplexed on it (Ctrl-A C; Ctrl-A X quits).
    Stdio,
    /// A file (headless test runs).
    File(PathBuf),
}

impl Console {
    /// How to leave QEMU when the console is the terminal (QEMU's `mon:` multiplexer keys).
    pub fn how_to_leave(&self) -> Option<&'static str> {
        match self {
            Console::Stdio => Some(
                "QEMU: the console is this terminal; press Ctrl-A then X to quit QEMU \
                 (Ctrl-A then C switches to its monitor and back); it also exits by itself \
                 when init ends",
            ),
            Console::File(_) => None,
        }
    }
}

/// The guest clock of a boot: `-icount` makes guest time advance 2^shift ns per executed
/// instruction and skip ahead while the guest idles (`sleep=off`), independent of the host;
/// `-rtc clock=vm` makes the RTC follow it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    /// The `-icount` value.
    pub icount: &'static str,
}

impl Clock {
    /// The QEMU arguments that set this clock.
    pub fn args(self) -> [&'static str; 4] {
        ["-icount", self.icount, "-rtc", "clock=vm"]
    }

    /// The kernel command-line word that tells the guest its time counts instructions (every
    /// clock here has a fixed shift), so its tests may assert timing bounds.
    pub const KERNEL_WORD: &'static str = test_catalog::EXACT_CLOCK_WORD;
}

impl fmt::Display for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "icount {}", self.icount)
    }
}

/// The clock of headless test boots: 8 ns per instruction. Time-bound tests (sleep accuracy,
/// fairness per second, lock reports within a second) then measure the kernel, not how busy the
/// host is, and repeat exactly.
pub const TEST_CLOCK: Clock = Clock {
    icount: "shift=3,sleep=off",
};

/// The clock of benchmark boots: 1 ns per instruction, so a timestamp-counter delta counts
/// instructions (deterministic, comparable across hosts and runs) rather than host time.
pub const BENCH_CLOCK: Clock = Clock {
    icount: "shift=0,sleep=off",
};

/// The full QEMU command line (program first) that boots `image` (kernel and initrd) on
/// `machine`, with the guest clock `clock` (`None`: QEMU's default, the host clock).
pub fn command_line(
    arch: Arch,
    image: &Image,
    append: &str,
    machine: &Machine,
    console: &Console,
    clock: Option<Clock>,
) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![arch.qemu_binary().into()];
    let mut push = |a: &str| args.push(a.into());
    push("-M");
    push(&machine.machine);
    if let Some(cpu) = &machine.cpu {
        push("-cpu");
        push(cpu);
    }
    push("-m");
    push(&machine.memory);
    push("-smp");
    push(&machine.smp.to_string());
    args.push("-kernel".into());
    args.push(image.boot.clone().into());
    args.push("-initrd".into());
    args.push(image.initrd.clone().into());
    args.push("-append".into());
    match clock {
        Some(_) if append.is_empty() => args.push(Clock::KERNEL_WORD.into()),
        Some(_) => args.push(format!("{append} {}", Clock::KERNEL_WORD).into()),
        None => args.push(append.into()),
    }
    args.extend(["-display", "none", "-no-reboot"].map(OsString::from));
    match console {
        Console::Stdio => args.extend(["-serial", "mon:stdio"].map(OsString::from)),
        Console::File(path) => {
            args.extend(["-monitor", "none", "-serial"].map(OsString::from));
            let mut spec = OsString::from("file:");
            spec.push(path);
            args.push(spec);
        }
    }
    if let Some(clock) = clock {
        args.extend(clock.args().map(OsString::from));
    }
    match arch {
        Arch::X86_64 => {
            args.extend(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"].map(OsString::from))
        }
        Arch::Aarch64 => args.push("-semihosting".into()),
    }
    if machine.firmware == Firmware::UBoot {
        args.extend(uboot::qemu_args(&workspace::uboot_flash()));
    }
    args.extend(machine.extra_args.iter().map(OsString::from));
    args
}

/// Appends what every failed-boot report carries: where the serial log was kept (`saved` is the
/// result of writing it to `kept`), the QEMU command line and the last lines QEMU printed itself.
pub fn append_boot_details(
    text: &mut String,
    kept: &Path,
    saved: std::io::Result<()>,
    args: &[OsString],
    qemu_output: &str,
) {
    match saved {
        Ok(()) => text.push_str(&format!("  log: {}\n", crate::workspace::display(kept))),
        Err(e) => text.push_str(&format!(
            "  log: cannot keep it at {}: {e}\n",
            kept.display()
        )),
    }
    text.push_str(&format!("  qemu: {}\n", shell_line(args)));
    let qemu_said: Vec<&str> = qemu_output
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    if !qemu_said.is_empty() {
        text.push_str("  qemu printed:\n");
        for line in qemu_said.iter().rev().take(20).rev() {
            text.push_str(&format!("    {line}\n"));
        }
    }
}

/// `args` as one line a POSIX shell reads back as the same words.
pub fn shell_line(args: &[OsString]) -> String {
    args.iter()
        .map(|a| shell_quote(&a.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ")
}

fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_=,.:/+@%".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// What the guest reported through its exit device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuestExit {
    /// Every test passed (a test boot), or a benchmark boot succeeded.
    Passed,
    /// At least one test failed.
    Failed,
    /// A fatal trap or a panic.
    Crashed,
    /// A normal boot ended because init ended, with init's status (0 to
    /// `kernel_core::hal::ExitStatus::INIT_STATUS_MAX`; that largest one also stands for a
    /// killed init or an exit code out of range).
    InitExited(u8),
    /// Anything else: a reset (triple fault under `-no-reboot`), a QEMU error, a signal.
    Unexpected(String),
}

impl GuestExit {
    /// Decodes a QEMU exit code. x86_64: isa-debug-exit turns guest value v into `(v << 1) | 1`;
    /// AArch64: semihosting SYS_EXIT_EXTENDED passes v through. v
    /// (`kernel_core::hal::ExitStatus::value`): 0 passed, 1 failed, 2 crashed, 3 + s init ended
    /// with status s (s up to 124, so v up to 127).
    pub fn from_code(arch: Arch, code: Option<i32>) -> GuestExit {
        let value = match (arch, code) {
            (_, None) => return GuestExit::Unexpected("killed by a signal".to_owned()),
            (Arch::X86_64, Some(c)) if c & 1 == 1 => c >> 1,
            (Arch::X86_64, Some(c)) => {
                return GuestExit::Unexpected(format!(
                    "exit code {c} (not from isa-debug-exit: a reset, a QEMU error, or QEMU \
                     told to quit: Ctrl-A X)"
                ));
            }
            (Arch::Aarch64, Some(c)) => c,
        };
        let init_status = u32::try_from(value)
            .ok()
            .and_then(|v| v.checked_sub(GuestStatus::INIT_EXIT_BASE))
            .and_then(|s| u8::try_from(s).ok())
            .filter(|&s| s <= GuestStatus::INIT_STATUS_MAX);
        match (value, init_status) {
            (0, _) => GuestExit::Passed,
            (1, _) => GuestExit::Failed,
            (2, _) => GuestExit::Crashed,
            (_, Some(status)) => GuestExit::InitExited(status),
            _ => GuestExit::Unexpected(format!("exit code {}", code.unwrap_or_default())),
        }
    }

    fn from_status(arch: Arch, status: ExitStatus) -> GuestExit {
        GuestExit::from_code(arch, status.code())
    }

    /// The exit code `cargo xtask run` returns for this guest exit: 0 passed, 1 failed,
    /// 2 crashed, 3 anything else, and init's status when init ended a normal boot.
    pub fn process_code(&self) -> u8 {
        match self {
            GuestExit::Passed => 0,
            GuestExit::Failed => 1,
            GuestExit::Crashed => 2,
            GuestExit::InitExited(status) => *status,
            GuestExit::Unexpected(_) => 3,
        }
    }
}

impl fmt::Display for GuestExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GuestExit::Passed => f.write_str("passed"),
            GuestExit::Failed => f.write_str("failed"),
            GuestExit::Crashed => f.write_str("crashed"),
            GuestExit::InitExited(status) => write!(f, "init exited with status {status}"),
            GuestExit::Unexpected(what) => write!(f, "unexpected exit ({what})"),
        }
    }
}

/// How a headless run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// QEMU exited by itself.
    Exited(GuestExit),
    /// QEMU was still running at the deadline and was killed.
    TimedOut(Duration),
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Exited(exit) => write!(f, "exit status {exit}"),
            Outcome::TimedOut(after) => write!(f, "timed out after {}s", after.as_secs()),
        }
    }
}

/// The result of one headless run.
#[derive(Debug)]
pub struct HeadlessRun {
    /// How it ended.
    pub outcome: Outcome,
    /// The whole serial log (read after QEMU is gone; the file is buffered).
    pub serial: String,
    /// What QEMU itself printed (errors, warnings).
    pub qemu_output: String,
    /// Wall time from start to exit or kill.
    pub elapsed: Duration,
}

/// Runs `args` (from [`command_line`] with [`Console::File`] `serial`) with its working
/// directory `dir`, killing it after `timeout`. QEMU's own stdout and stderr go to `dir`.
pub fn run_headless(
    arch: Arch,
    args: &[OsString],
    dir: &Path,
    serial: &Path,
    timeout: Duration,
) -> Result<HeadlessRun> {
    let out_path = dir.join("qemu-output.txt");
    let out = File::create(&out_path).context("cannot create the QEMU output file")?;
    let err = out.try_clone()?;
    let start = Instant::now();
    let mut child = Command::new(&args[0])
        .args(&args[1..])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .with_context(|| format!("cannot start {}", args[0].to_string_lossy()))?;
    let outcome = loop {
        if let Some(status) = child.try_wait()? {
            break Outcome::Exited(GuestExit::from_status(arch, status));
        }
        if start.elapsed() >= timeout {
            // Only this child, through its own handle: other QEMUs run on this machine.
            child.kill().context("cannot kill QEMU")?;
            child.wait()?;
            break Outcome::TimedOut(timeout);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let elapsed = start.elapsed();
    let serial = std::fs::read(serial)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let qemu_output = std::fs::read(&out_path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    Ok(HeadlessRun {
        outcome,
        serial,
        qemu_output,
        elapsed,
    })
}

/// Runs `args` attached to the terminal and returns the guest's exit.
pub fn run_interactive(arch: Arch, args: &[OsString]) -> Result<GuestExit> {
    let status = Command::new(&args[0])
        .args(&args[1..])
        .status()
        .with_context(|| format!("cannot start {}", args[0].to_string_lossy()))?;
    Ok(GuestExit::from_status(arch, status))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(boot: &str, initrd: &str) -> Image {
        Image {
            elf: "kernel.elf".into(),
            boot: boot.into(),
            initrd: initrd.into(),
        }
    }

    #[test]
    fn x86_64_headless_command_line() {
        let args = command_line(
            Arch::X86_64,
            &image("/i/kernel.elf", "/i/initrd.cpio"),
            "test=all",
            &Machine::default_for(Arch::X86_64),
            &Console::File("/tmp/d/serial.log".into()),
            Some(TEST_CLOCK),
        );
        assert_eq!(
            shell_line(&args),
            "qemu-system-x86_64 -M q35 -m 256M -smp 1 -kernel /i/kernel.elf \
             -initrd /i/initrd.cpio -append 'test=all clock=icount' \
             -display none -no-reboot -monitor none -serial file:/tmp/d/serial.log \
             -icount shift=3,sleep=off -rtc clock=vm \
             -device isa-debug-exit,iobase=0xf4,iosize=0x04"
        );
    }

    #[test]
    fn bench_boots_differ_from_test_boots_only_in_the_clock() {
        let line = |append, clock| {
            shell_line(&command_line(
                Arch::Aarch64,
                &image("k.img", "i.cpio"),
                append,
                &Machine::default_for(Arch::Aarch64),
                &Console::File("s.log".into()),
                Some(clock),
            ))
        };
        assert_eq!(
            line("bench", BENCH_CLOCK),
            "qemu-system-aarch64 -M virt,gic-version=3 -cpu cortex-a72 -m 256M -smp 1 \
             -kernel k.img -initrd i.cpio -append 'bench clock=icount' -display none -no-reboot \
             -monitor none -serial file:s.log -icount shift=0,sleep=off -rtc clock=vm \
             -semihosting"
        );
        assert_eq!(
            line("bench", BENCH_CLOCK).replace("shift=0", "shift=3"),
            line("bench", TEST_CLOCK)
        );
        assert_eq!(BENCH_CLOCK.to_string(), "icount shift=0,sleep=off");
    }

    #[test]
    fn aarch64_command_line_with_overrides() {
        let machine = Machine {
            machine: "virt,gic-version=2".into(),
            cpu: Some("cortex-a53".into()),
            memory: "3G".into(),
            smp: 4,
            firmware: Firmware::Direct,
            extra_args: vec!["-d".into(), "int".into()],
        };
        let args = command_line(
            Arch::Aarch64,
            &image("k.img", "i.cpio"),
            "",
            &machine,
            &Console::Stdio,
            None,
        );
        assert_eq!(
            shell_line(&args),
            "qemu-system-aarch64 -M virt,gic-version=2 -cpu cortex-a53 -m 3G -smp 4 -kernel k.img \
             -initrd i.cpio -append '' -display none -no-reboot -serial mon:stdio -semihosting \
             -d int"
        );
    }

    #[test]
    fn u_boot_boots_the_same_images_with_the_firmware_and_its_flash_bank_added() {
        let direct = Machine::default_for(Arch::Aarch64);
        let uboot = Machine {
            firmware: Firmware::UBoot,
            ..direct.clone()
        };
        let line = |machine: &Machine| {
            shell_line(&command_line(
                Arch::Aarch64,
                &image("k.img", "i.cpio"),
                "test=all",
                machine,
                &Console::File("s.log".into()),
                Some(TEST_CLOCK),
            ))
        };
        let flash = workspace::uboot_flash();
        assert_eq!(
            line(&uboot),
            format!(
                "{} -bios /usr/lib/u-boot/qemu_arm64/u-boot.bin -drive \
                 if=pflash,unit=1,format=raw,readonly=on,file={}",
                line(&direct),
                flash.display()
            )
        );
    }

    #[test]
    fn memory_sizes_read_like_qemu() {
        assert_eq!(memory_mib("256M"), Some(256));
        assert_eq!(memory_mib("3G"), Some(3072));
        assert_eq!(memory_mib("64m"), Some(64));
        assert_eq!(memory_mib("512"), Some(512));
        for bad in ["", "M", "1.5G", "-1M", "12T", "0x100M"] {
            assert_eq!(memory_mib(bad), None, "{bad}");
        }
    }

    #[test]
    fn shell_quoting_survives_spaces_quotes_and_control_bytes() {
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("x\u{7f}"), "'x\u{7f}'");
    }

    #[test]
    fn exit_codes_decode_per_architecture() {
        use GuestExit::*;
        let x86 = |c| GuestExit::from_code(Arch::X86_64, Some(c));
        assert_eq!((x86(1), x86(3), x86(5)), (Passed, Failed, Crashed));
        assert!(matches!(x86(0), Unexpected(_)));
        assert!(matches!(x86(2), Unexpected(_)));
        let arm = |c| GuestExit::from_code(Arch::Aarch64, Some(c));
        assert_eq!((arm(0), arm(1), arm(2)), (Passed, Failed, Crashed));
        assert!(matches!(arm(128), Unexpected(_)));
        assert!(matches!(arm(-1), Unexpected(_)));
        assert!(matches!(
            GuestExit::from_code(Arch::Aarch64, None),
            Unexpected(_)
        ));
    }

    #[test]
    fn init_statuses_come_back_from_the_kernel_values() {
        for status in [0u8, 1, 2, 42, 123, GuestStatus::INIT_STATUS_MAX] {
            let v = GuestStatus::InitExited(status).value();
            // What QEMU's process exit status holds: 8 bits.
            let x86 = i32::try_from(((v << 1) | 1) & 0xff).unwrap();
            let arm = i32::try_from(v & 0xff).unwrap();
            for (arch, code) in [(Arch::X86_64, x86), (Arch::Aarch64, arm)] {
                let exit = GuestExit::from_code(arch, Some(code));
                assert_eq!(exit, GuestExit::InitExited(status), "{arch} {status}");
                assert_eq!(exit.process_code(), status);
                assert_eq!(
                    exit.to_string(),
                    format!("init exited with status {status}")
                );
            }
        }
        for status in [
            GuestStatus::Passed,
            GuestStatus::Failed,
            GuestStatus::Crashed,
        ] {
            let v = i32::try_from(status.value()).unwrap();
            assert!(!matches!(
                GuestExit::from_code(Arch::X86_64, Some((v << 1) | 1)),
                GuestExit::InitExited(_)
            ));
        }
    }
}
