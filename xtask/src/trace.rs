//! `cargo xtask trace`: decoding the trace dumps of a serial log.
//!
//! Owns the host side of the trace format (the kernel side, and the line forms, are
//! `kernel_core::trace`): it gathers every `[trace]` event line of a log, drops the repeats of
//! an event printed by several dumps (a watchdog dump, then a panic dump), sorts them by time and
//! prints them in their human form. Lock events are annotated: the lock id (an address) with the
//! kernel data symbol it falls in, the call-site id with `FILE:LINE:COL`, taken from the
//! `[trace] site` lines of the log, else from a function symbol of the kernel ELF, else by reading
//! the `core::panic::Location` the id points to out of the ELF. This module only reads the log
//! and the ELF; it must never guess an annotation it cannot check.

use crate::arch::Arch;
use crate::symbolize::{self, SymbolTable};
use crate::workspace::{self, Flavor};
use anyhow::{Context, Result, bail};
use kernel_core::trace::{EventKind, TraceEvent, parse_line, parse_site_line};
use object::{Object, ObjectSection, ObjectSymbol, SectionKind, SymbolKind};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The events of a log, each once, in time order (ties keep the order the kernel printed).
///
/// An event printed by several dumps is kept as often as the dump that printed it most often:
/// two dumps overlap, but two identical events in one dump (e.g. both before the clock ran) are
/// two events.
pub fn events(log: &str) -> Vec<TraceEvent> {
    let mut order: Vec<TraceEvent> = Vec::new();
    let mut kept: HashMap<TraceEvent, usize> = HashMap::new();
    let mut in_dump: HashMap<TraceEvent, usize> = HashMap::new();
    let mut flush = |in_dump: &mut HashMap<TraceEvent, usize>, order: &mut Vec<TraceEvent>| {
        for (event, count) in in_dump.drain() {
            let have = kept.entry(event).or_default();
            if count > *have {
                order.extend(std::iter::repeat_n(event, count - *have));
                *have = count;
            }
        }
    };
    // First appearances, to keep the kernel's order among equal timestamps.
    let mut first_seen: HashMap<TraceEvent, usize> = HashMap::new();
    for line in log.lines() {
        let body = line.trim_end_matches('\r');
        if body.ends_with("[trace] begin") || body.ends_with("[trace] end") {
            flush(&mut in_dump, &mut order);
            continue;
        }
        if let Some(event) = parse_line(body) {
            let next = first_seen.len();
            first_seen.entry(event).or_insert(next);
            *in_dump.entry(event).or_default() += 1;
        }
    }
    flush(&mut in_dump, &mut order);
    order.sort_by_key(|e| (e.timestamp, first_seen[e]));
    order
}

/// The `[trace] site` lines of a log: call-site id -> `FILE:LINE:COL`.
pub fn sites(log: &str) -> HashMap<u64, String> {
    log.lines()
        .filter_map(parse_site_line)
        .map(|(id, location)| (id, location.to_owned()))
        .collect()
}

/// A sized data symbol (a `static`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct DataSymbol {
    name: String,
    start: u64,
    size: u64,
}

/// What the kernel ELF can tell about an address.
#[derive(Debug, Default)]
pub struct KernelImage {
    functions: SymbolTable,
    /// Sorted by start.
    data: Vec<DataSymbol>,
    /// Loaded sections with contents: `(address, bytes)`.
    memory: Vec<(u64, Vec<u8>)>,
}

impl KernelImage {
    /// Reads the ELF at `path`.
    pub fn load(path: &Path) -> Result<KernelImage> {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        KernelImage::from_elf(&bytes)
            .with_context(|| format!("cannot read symbols of {}", path.display()))
    }

    /// Reads an ELF image.
    pub fn from_elf(bytes: &[u8]) -> Result<KernelImage> {
        let functions = SymbolTable::from_elf(bytes)?;
        let file = object::File::parse(bytes)?;
        let mut data: Vec<DataSymbol> = file
            .symbols()
            .filter(|s| s.kind() == SymbolKind::Data && s.size() > 0)
            .filter_map(|s| {
                Some(DataSymbol {
                    name: symbolize::demangle(s.name().ok()?),
                    start: s.address(),
                    size: s.size(),
                })
            })
            .collect();
        data.sort_by_key(|s| s.start);
        let memory = file
            .sections()
            .filter(|s| {
                s.address() != 0
                    && matches!(
                        s.kind(),
                        SectionKind::ReadOnlyData
                            | SectionKind::ReadOnlyString
                            | SectionKind::Data
                            | SectionKind::Text
                    )
            })
            .filter_map(|s| Some((s.address(), s.data().ok()?.to_vec())))
            .collect();
        Ok(KernelImage {
            functions,
            data,
            memory,
        })
    }

    /// `len` bytes at `addr`, if one section holds them all.
    fn read(&self, addr: u64, len: u64) -> Option<&[u8]> {
        self.memory.iter().find_map(|(start, bytes)| {
            let offset = addr.checked_sub(*start)?;
            let end = offset.checked_add(len)?;
            (end <= bytes.len() as u64).then(|| &bytes[offset as usize..end as usize])
        })
    }

    /// `name+0xOFF` of the static that holds `addr`.
    fn data_symbol(&self, addr: u64) -> Option<String> {
        let end = self.data.partition_point(|s| s.start <= addr);
        let s = self.data[..end]
            .iter()
            .rev()
            .find(|s| addr - s.start < s.size)?;
        Some(if addr == s.start {
            s.name.clone()
        } else {
            format!("{}+{:#x}", s.name, addr - s.start)
        })
    }

    /// `FILE:LINE:COL` of the `core::panic::Location` at `addr`.
    fn location(&self, addr: u64) -> Option<String> {
        decode_location(addr, |a, len| self.read(a, len).map(<[u8]>::to_vec))
    }
}

/// Decodes the `core::panic::Location` at `addr`, reading memory through `read`.
///
/// Its layout is not a stable Rust interface, so this accepts it only when it checks out: a
/// pointer and a length (in either order) naming UTF-8 text that is readable, ends in `.rs`
/// (after an optional NUL terminator, which newer toolchains add) and contains no control
/// characters, followed by a line and a column that are not 0.
pub fn decode_location(addr: u64, read: impl Fn(u64, u64) -> Option<Vec<u8>>) -> Option<String> {
    let raw = read(addr, 24)?;
    let word = |i: usize| u64::from_le_bytes(raw[i * 8..i * 8 + 8].try_into().unwrap());
    let half = |i: usize| u32::from_le_bytes(raw[16 + i * 4..20 + i * 4].try_into().unwrap());
    let (line, col) = (half(0), half(1));
    if line == 0 || col == 0 {
        return None;
    }
    [(word(0), word(1)), (word(1), word(0))]
        .into_iter()
        .find_map(|(ptr, len)| {
            if len == 0 || len > 4096 {
                return None;
            }
            let bytes = read(ptr, len)?;
            let bytes = bytes.strip_suffix(&[0]).unwrap_or(&bytes);
            let file = std::str::from_utf8(bytes).ok()?;
            (file.ends_with(".rs") && !file.contains(|c: char| c.is_control()))
                .then(|| format!("{file}:{line}:{col}"))
        })
}

/// The annotation of one event: for lock events, which lock and which call site.
fn annotation(
    event: &TraceEvent,
    sites: &HashMap<u64, String>,
    image: Option<&KernelImage>,
) -> Option<String> {
    if !matches!(
        event.kind,
        EventKind::LockAcquire | EventKind::LockContended | EventKind::LockRelease
    ) {
        return None;
    }
    let lock = image.and_then(|i| i.data_symbol(event.a));
    let site = sites.get(&event.b).cloned().or_else(|| {
        let image = image?;
        // A code address (glue that passes a return address) names a function; the kernel's
        // own `SpinLock` passes the address of a `Location`.
        image
            .functions
            .locate_pc(event.b)
            .map(|l| l.to_string())
            .or_else(|| image.location(event.b))
    });
    let mut out = String::new();
    if let Some(lock) = lock {
        write!(out, "lock {lock}").unwrap();
    }
    if let Some(site) = site {
        if !out.is_empty() {
            out.push_str(", ");
        }
        write!(out, "site {site}").unwrap();
    }
    (!out.is_empty()).then_some(out)
}

/// The decoded log: one human line per event, in time order.
pub fn decode(log: &str, image: Option<&KernelImage>) -> Vec<String> {
    let sites = sites(log);
    events(log)
        .iter()
        .map(|e| match annotation(e, &sites, image) {
            Some(note) => format!("{e}  ({note})"),
            None => e.to_string(),
        })
        .collect()
}

/// The ELF to annotate with: `elf`, or the image of `arch`, or of the architecture guessed from
/// the lock addresses; `None` when nothing names one (the decode then goes without).
fn image_path(
    events: &[TraceEvent],
    arch: Option<Arch>,
    elf: Option<PathBuf>,
    flavor: Flavor,
) -> Option<PathBuf> {
    if elf.is_some() {
        return elf;
    }
    let arch = arch.or_else(|| {
        events
            .iter()
            .filter(|e| e.kind == EventKind::LockAcquire)
            .find_map(|e| Arch::of_kernel_address(e.a))
    })?;
    Some(workspace::image_elf(arch, flavor))
}

/// `cargo xtask trace LOGFILE [--arch X | --elf PATH]`.
pub fn run(logfile: &Path, arch: Option<Arch>, elf: Option<PathBuf>) -> Result<ExitCode> {
    let bytes =
        std::fs::read(logfile).with_context(|| format!("cannot read {}", logfile.display()))?;
    let log = String::from_utf8_lossy(&bytes);
    let events = events(&log);
    if events.is_empty() {
        bail!("no [trace] event lines in {}", logfile.display());
    }
    let explicit = arch.is_some() || elf.is_some();
    let image = match image_path(&events, arch, elf, Flavor::of_log(&log)) {
        Some(path) if explicit => Some(KernelImage::load(&path)?),
        Some(path) => match KernelImage::load(&path) {
            Ok(image) => Some(image),
            Err(e) => {
                eprintln!("note: no symbols ({e:#}); pass --arch or --elf");
                None
            }
        },
        None => None,
    };
    for line in decode(&log, image.as_ref()) {
        println!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kernel_core::trace::{PerCpuTrace, write_site_line};

    fn ev(timestamp: u64, cpu: u32, kind: EventKind, a: u64, b: u64) -> TraceEvent {
        TraceEvent {
            timestamp,
            cpu,
            kind,
            a,
            b,
        }
    }

    /// A kernel dump, as `PerCpuTrace::dump` prints it, inside a serial log.
    fn dumped(events: &[TraceEvent]) -> String {
        let trace = PerCpuTrace::<4, 16>::new();
        for e in events {
            trace.record(e.cpu, *e);
        }
        let mut out = String::new();
        trace.dump(&mut out).unwrap();
        out.replace('\n', "\r\n")
    }

    #[test]
    fn decodes_a_dump_in_time_order() {
        let log = format!(
            "[stage] sched ok\n{}[lock] 'x' contended\n",
            dumped(&[
                ev(300, 1, EventKind::Irq, 27, 0),
                ev(100, 0, EventKind::Switch, (1 << 32) | 3, (2 << 32) | 7),
                ev(200, 0, EventKind::Syscall, 4, (2 << 32) | 7),
            ])
        );
        assert_eq!(
            decode(&log, None),
            [
                "t=100 cpu0 switch 3.1 -> 7.2",
                "t=200 cpu0 syscall 4 by 7.2",
                "t=300 cpu1 irq 27",
            ]
        );
    }

    #[test]
    fn overlapping_dumps_count_each_event_once() {
        let early = [
            ev(0, 0, EventKind::Log, 1, 1),
            ev(0, 0, EventKind::Log, 1, 1),
            ev(5, 0, EventKind::Log, 2, 2),
        ];
        let mut late = early.to_vec();
        late.push(ev(9, 1, EventKind::Log, 3, 3));
        let log = format!("{}boom\n{}", dumped(&early), dumped(&late));
        let events = events(&log);
        assert_eq!(
            events
                .iter()
                .map(|e| (e.timestamp, e.a))
                .collect::<Vec<_>>(),
            [(0, 1), (0, 1), (5, 2), (9, 3)]
        );
    }

    #[test]
    fn lock_events_are_annotated_from_site_lines() {
        #[track_caller]
        fn here() -> &'static std::panic::Location<'static> {
            std::panic::Location::caller()
        }
        let site = here();
        let mut log = dumped(&[ev(1, 0, EventKind::LockContended, 0x4000, 0x1234)]);
        write_site_line(&mut log, 0x1234, site).unwrap();
        assert_eq!(
            decode(&log, None),
            [format!(
                "t=1 cpu0 lock-contended lock 0x4000 at site 0x1234  (site {site})"
            )]
        );
    }

    fn image() -> KernelImage {
        let mut text = vec![0u8; 0x100];
        // A `Location` at 0x9000 whose file name sits at 0x9100 (with the NUL newer toolchains
        // add), line 42, column 7.
        let mut rodata = vec![0u8; 0x200];
        let file = b"kernel-core/src/x.rs\0";
        rodata[0..8].copy_from_slice(&0x9100u64.to_le_bytes());
        rodata[8..16].copy_from_slice(&(file.len() as u64).to_le_bytes());
        rodata[16..20].copy_from_slice(&42u32.to_le_bytes());
        rodata[20..24].copy_from_slice(&7u32.to_le_bytes());
        rodata[0x100..0x100 + file.len()].copy_from_slice(file);
        text[0] = 0xc3;
        KernelImage {
            functions: SymbolTable::from_symbols(vec![symbolize::Symbol {
                name: "kernel::f".into(),
                start: 0x1000,
                size: 0x100,
            }]),
            data: vec![DataSymbol {
                name: "boot::CONSOLE".into(),
                start: 0x8000,
                size: 0x40,
            }],
            memory: vec![(0x1000, text), (0x9000, rodata)],
        }
    }

    #[test]
    fn lock_events_are_annotated_from_the_elf() {
        let image = image();
        let log = dumped(&[
            ev(1, 0, EventKind::LockAcquire, 0x8000, 0x9000),
            ev(2, 0, EventKind::LockRelease, 0x8008, 0x1010),
            ev(3, 0, EventKind::LockAcquire, 0x7000, 0x9004),
        ]);
        assert_eq!(
            decode(&log, Some(&image)),
            [
                "t=1 cpu0 lock-acquire lock 0x8000 at site 0x9000  (lock boot::CONSOLE, site \
             kernel-core/src/x.rs:42:7)",
                "t=2 cpu0 lock-release lock 0x8008 taken at site 0x1010  (lock boot::CONSOLE+0x8, \
             site <kernel::f+0x10>)",
                "t=3 cpu0 lock-acquire lock 0x7000 at site 0x9004",
            ]
        );
    }

    #[test]
    fn decodes_the_real_location_layout_of_this_toolchain() {
        // Read a live `Location` of this process through /proc/self/mem: the check that
        // `decode_location` understands what the pinned compiler really emits.
        use std::os::unix::fs::FileExt;
        let Ok(mem) = std::fs::File::open("/proc/self/mem") else {
            eprintln!("no /proc/self/mem: skipped");
            return;
        };
        let read = |addr: u64, len: u64| {
            let mut buf = vec![0u8; usize::try_from(len).ok()?];
            mem.read_exact_at(&mut buf, addr).ok()?;
            Some(buf)
        };
        let here = std::panic::Location::caller();
        let addr = std::ptr::from_ref(here).addr() as u64;
        assert_eq!(decode_location(addr, read), Some(here.to_string()));
        assert_eq!(decode_location(addr + 8, read), None);
    }

    #[test]
    fn reads_data_symbols_of_a_real_elf() {
        static MARKER: [u64; 4] = [1, 2, 3, 4];
        let exe = std::env::current_exe().unwrap();
        let image = KernelImage::load(&exe).unwrap();
        let sym = image
            .data
            .iter()
            .find(|s| s.name.ends_with("reads_data_symbols_of_a_real_elf::MARKER"))
            .expect("the test binary has a symbol for MARKER");
        assert_eq!(sym.size, 32);
        assert_eq!(
            image.data_symbol(sym.start + 8).unwrap(),
            format!("{}+0x8", sym.name)
        );
        assert!(std::hint::black_box(&MARKER)[0] == 1);
    }

    #[test]
    fn the_image_is_guessed_from_lock_addresses() {
        let x86 = [ev(1, 0, EventKind::LockAcquire, 0xffff_ffff_8020_0000, 0)];
        assert_eq!(
            image_path(&x86, None, None, Flavor::Test),
            Some(workspace::image_elf(Arch::X86_64, Flavor::Test))
        );
        assert_eq!(
            image_path(&x86, Some(Arch::Aarch64), None, Flavor::Normal),
            Some(workspace::image_elf(Arch::Aarch64, Flavor::Normal))
        );
        assert_eq!(
            image_path(&x86, None, Some("k.elf".into()), Flavor::Test),
            Some(PathBuf::from("k.elf"))
        );
        assert_eq!(
            image_path(&[ev(1, 0, EventKind::Irq, 1, 0)], None, None, Flavor::Test),
            None
        );
    }
}
