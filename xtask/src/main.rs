//! `cargo xtask`: the host-side driver of Strait.
//!
//! Owns the command line (clap) and the dispatch to one module per concept:
//!
//! - `build`: [`images`] builds the kernel images under `target/images/<arch>/`, and
//!   [`userspace`] the user programs of `servers/` and their initrd (`initrd.cpio`) next to them.
//! - `run`: [`qemu`] boots one image interactively (serial on the terminal).
//! - `test`: [`runner`] runs the host tests and boots every scenario of `tests/scenarios/`,
//!   judged by [`verdict`] from the [`console`] protocol, hints from [`stages`].
//! - `bench`: [`bench`] boots the in-guest benchmarks (kernel command line `bench`, one guest
//!   nanosecond per instruction), checks the required metrics and writes
//!   `target/bench/<arch>.json`.
//! - `symbolize`: [`symbolize`] annotates the addresses of a serial log.
//! - `trace`: [`trace`] decodes the `[trace]` dumps of a serial log.
//! - `lint`: [`lint`] runs clippy on the host crates, on each kernel target and on the user
//!   programs.
//!
//! Every boot gets the kernel image and the initrd, from QEMU's own loader or, for the AArch64
//! scenarios that ask for it, through U-Boot ([`uboot`]). Before anything is built,
//! [`toolchain`] makes sure the pinned toolchain has its targets and components; [`install`]
//! makes sure QEMU (and U-Boot) is there; [`workspace`] knows every path; [`arch`] every
//! per-architecture constant.

mod arch;
mod bench;
mod console;
mod host_tests;
mod images;
mod install;
mod lint;
mod qemu;
mod runner;
mod scenario;
mod stages;
mod symbolize;
mod toolchain;
mod trace;
mod uboot;
mod userspace;
mod verdict;
mod workspace;

use anyhow::{Context, Result};
use arch::Arch;
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Build, run, test and symbolize the Strait kernel.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// One architecture.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum ArchArg {
    #[value(name = "x86_64")]
    X86_64,
    #[value(name = "aarch64")]
    Aarch64,
}

impl From<ArchArg> for Arch {
    fn from(a: ArchArg) -> Arch {
        match a {
            ArchArg::X86_64 => Arch::X86_64,
            ArchArg::Aarch64 => Arch::Aarch64,
        }
    }
}

/// One architecture or both.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum ArchSet {
    #[value(name = "x86_64")]
    X86_64,
    #[value(name = "aarch64")]
    Aarch64,
    All,
}

impl ArchSet {
    fn arches(self) -> Vec<Arch> {
        match self {
            ArchSet::X86_64 => vec![Arch::X86_64],
            ArchSet::Aarch64 => vec![Arch::Aarch64],
            ArchSet::All => Arch::ALL.to_vec(),
        }
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build the kernel images and the initrd of the user programs into target/images/<arch>/.
    Build {
        /// Architecture to build.
        #[arg(long, value_enum, default_value = "all")]
        arch: ArchSet,
    },
    /// Build and boot the kernel in QEMU with the serial console on this terminal
    /// (Ctrl-A X quits QEMU, Ctrl-A C toggles its monitor). A normal boot ends when init ends,
    /// and the command exits with init's status.
    Run {
        /// Architecture to boot.
        #[arg(long, value_enum, default_value = "x86_64")]
        arch: ArchArg,
        /// Kernel command line (e.g. "test=all").
        #[arg(long, default_value = "")]
        append: String,
        /// Print the QEMU command line and exit (nothing is built or run).
        #[arg(long)]
        print_cmd: bool,
        /// Number of CPUs.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        smp: Option<u32>,
        /// Guest memory (QEMU -m syntax, e.g. 512M, 3G).
        #[arg(long)]
        memory: Option<String>,
        /// QEMU CPU model (default: `max` on x86_64, which has SMEP and SMAP; `cortex-a72` on
        /// aarch64).
        #[arg(long)]
        cpu: Option<String>,
        /// Extra QEMU arguments, after `--`.
        #[arg(last = true)]
        qemu_args: Vec<String>,
    },
    /// Run the host tests, build the images and boot every scenario of tests/scenarios/.
    Test {
        /// Architectures to boot.
        #[arg(long, value_enum, default_value = "all")]
        arch: ArchSet,
        /// Run only this scenario (repeatable).
        #[arg(long = "scenario", value_name = "NAME")]
        scenarios: Vec<String>,
        /// Boot each scenario this many times (to expose flakes).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
        repeat: u32,
        /// Override every scenario's CPU count.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        smp: Option<u32>,
        /// QEMUs running at once (default: the number of CPUs).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        jobs: Option<u64>,
        /// Skip `cargo test -p strait-kernel-core`.
        #[arg(long)]
        no_host_tests: bool,
    },
    /// Build the images, boot the in-guest benchmarks headless (kernel command line `bench`,
    /// clock `-icount shift=0,sleep=off`) and write target/bench/<arch>.json.
    Bench {
        /// Architectures to benchmark.
        #[arg(long, value_enum, default_value = "all")]
        arch: ArchSet,
        /// Kill QEMU after this many seconds of wall time per architecture.
        #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
        timeout_secs: u64,
    },
    /// Run clippy (warnings denied) on the host crates, on each kernel target and on the user
    /// programs of each architecture.
    Lint {
        /// Architectures to lint (kernel and user targets).
        #[arg(long, value_enum, default_value = "all")]
        arch: ArchSet,
    },
    /// Annotate the addresses of [trap], [backtrace] and [panic] lines of a serial log with the
    /// functions they are in.
    Symbolize {
        /// The serial log.
        logfile: PathBuf,
        /// Use target/images/<arch>/kernel.elf (default: guessed from the addresses).
        #[arg(long, value_enum, conflicts_with = "elf")]
        arch: Option<ArchArg>,
        /// The kernel ELF to take symbols from.
        #[arg(long)]
        elf: Option<PathBuf>,
    },
    /// Decode the [trace] dumps of a serial log into readable events, in time order, with lock
    /// call sites named.
    Trace {
        /// The serial log.
        logfile: PathBuf,
        /// Use target/images/<arch>/kernel.elf (default: guessed from the lock addresses).
        #[arg(long, value_enum, conflicts_with = "elf")]
        arch: Option<ArchArg>,
        /// The kernel ELF to take symbols from.
        #[arg(long)]
        elf: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(command: Command) -> Result<ExitCode> {
    match command {
        Command::Build { arch } => {
            toolchain::ensure()?;
            for a in arch.arches() {
                images::build(a)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Run {
            arch,
            append,
            print_cmd,
            smp,
            memory,
            cpu,
            qemu_args,
        } => {
            let opts = RunOptions {
                print_cmd,
                smp,
                memory,
                cpu,
                qemu_args,
            };
            run(arch.into(), &append, opts)
        }
        Command::Test {
            arch,
            scenarios,
            repeat,
            smp,
            jobs,
            no_host_tests,
        } => {
            toolchain::ensure()?;
            let jobs = match jobs {
                Some(j) => usize::try_from(j).unwrap_or(usize::MAX),
                None => std::thread::available_parallelism().map_or(1, |n| n.get()),
            };
            let opts = runner::Options {
                arches: arch.arches(),
                scenarios,
                repeat,
                smp,
                jobs,
                host_tests: !no_host_tests,
            };
            Ok(if runner::run(&opts)? {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Bench { arch, timeout_secs } => {
            toolchain::ensure()?;
            let opts = bench::Options {
                arches: arch.arches(),
                timeout: Duration::from_secs(timeout_secs),
            };
            let failed = bench::run(&opts)?;
            if failed.is_empty() {
                Ok(ExitCode::SUCCESS)
            } else {
                let names: Vec<&str> = failed.iter().map(|a| a.name()).collect();
                eprintln!("bench failed: {}", names.join(", "));
                Ok(ExitCode::FAILURE)
            }
        }
        Command::Lint { arch } => {
            toolchain::ensure()?;
            let failed = lint::run(&arch.arches())?;
            if failed.is_empty() {
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("clippy failed: {}", failed.join(", "));
                Ok(ExitCode::FAILURE)
            }
        }
        Command::Symbolize { logfile, arch, elf } => {
            symbolize_log(&logfile, arch.map(Into::into), elf)
        }
        Command::Trace { logfile, arch, elf } => trace::run(&logfile, arch.map(Into::into), elf),
    }
}

/// The options of `cargo xtask run` beyond the architecture and the command line.
struct RunOptions {
    print_cmd: bool,
    smp: Option<u32>,
    memory: Option<String>,
    cpu: Option<String>,
    qemu_args: Vec<String>,
}

/// `cargo xtask run`: boots one architecture with the console on the terminal and returns the
/// guest's exit as a process exit code (`GuestExit::process_code`: init's status when init ended
/// a normal boot).
fn run(arch: Arch, append: &str, opts: RunOptions) -> Result<ExitCode> {
    let machine = run_machine(arch, &opts);
    let flavor = workspace::Flavor::of_cmdline(append);
    let image = images::Image::paths_of(arch, flavor);
    let console = qemu::Console::Stdio;
    let args = qemu::command_line(arch, &image, append, &machine, &console, None);
    if opts.print_cmd {
        println!("{}", qemu::shell_line(&args));
        return Ok(ExitCode::SUCCESS);
    }
    toolchain::ensure()?;
    install::ensure_qemu(&[arch])?;
    match flavor {
        workspace::Flavor::Normal => images::build(arch)?,
        workspace::Flavor::Test => images::build_test(arch)?,
    };
    eprintln!("{}", qemu::shell_line(&args));
    if let Some(how) = console.how_to_leave() {
        eprintln!("{how}");
    }
    let exit = qemu::run_interactive(arch, &args)?;
    match &exit {
        qemu::GuestExit::InitExited(status) => {
            eprintln!("{exit}");
            if *status == kernel_core::hal::ExitStatus::INIT_STATUS_MAX {
                eprintln!(
                    "  (status {status} also stands for a killed init or an exit code outside \
                     0..{status}: the console's `[init]` line says which)"
                );
            }
        }
        _ => eprintln!("guest exit: {exit}"),
    }
    Ok(ExitCode::from(exit.process_code()))
}

/// The machine `run` boots: the default one with the CPU of [`Arch::run_cpu`], and what the
/// options override.
fn run_machine(arch: Arch, opts: &RunOptions) -> qemu::Machine {
    let default = qemu::Machine::default_for(arch);
    qemu::Machine {
        cpu: opts.cpu.clone().or(arch.run_cpu().map(str::to_owned)),
        memory: opts.memory.clone().unwrap_or(default.memory.clone()),
        smp: opts.smp.unwrap_or(default.smp),
        extra_args: opts.qemu_args.clone(),
        ..default
    }
}

fn symbolize_log(
    logfile: &std::path::Path,
    arch: Option<Arch>,
    elf: Option<PathBuf>,
) -> Result<ExitCode> {
    let bytes =
        std::fs::read(logfile).with_context(|| format!("cannot read {}", logfile.display()))?;
    let log = console::ConsoleLog::parse(&String::from_utf8_lossy(&bytes));
    let elf = match elf {
        Some(elf) => elf,
        None => {
            let arch = match arch {
                Some(a) => a,
                None => symbolize::first_report_address(&log.lines)
                    .and_then(Arch::of_kernel_address)
                    .context(
                        "cannot tell the architecture from the log's addresses; pass --arch or --elf",
                    )?,
            };
            workspace::image_elf(arch, workspace::Flavor::of_log(&log.text))
        }
    };
    let table = symbolize::SymbolTable::load(&elf)?;
    print!("{}", symbolize::annotate_log(&log, &table));
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(cpu: Option<&str>) -> RunOptions {
        RunOptions {
            print_cmd: true,
            smp: Some(2),
            memory: None,
            cpu: cpu.map(str::to_owned),
            qemu_args: vec!["-s".into()],
        }
    }

    #[test]
    fn run_boots_x86_64_on_a_cpu_with_smep_and_smap_unless_told_otherwise() {
        let machine = run_machine(Arch::X86_64, &options(None));
        assert_eq!(machine.cpu.as_deref(), Some("max"));
        assert_eq!((machine.smp, machine.memory.as_str()), (2, "256M"));
        assert_eq!(machine.extra_args, ["-s"]);
        let chosen = run_machine(Arch::X86_64, &options(Some("qemu64")));
        assert_eq!(chosen.cpu.as_deref(), Some("qemu64"));
        let arm = run_machine(Arch::Aarch64, &options(None));
        assert_eq!(arm.cpu.as_deref(), Some("cortex-a72"));
    }
}
