//! The first user programs: the `user` stage's probe and `init`, loaded from the initrd.
//!
//! Owns building a process by hand, before any user program can do it: fresh frames filled
//! through the HHDM and mapped with least privilege, the initrd mapped read-only for init, init's
//! info page (`abi::init`) and its first capabilities. The ELF and the archive are validated by
//! `strait-loader` (every header field, every segment) before a single frame is allocated, so a
//! corrupt or truncated init is a clear boot error, never a fault. It must never map a page both
//! writable and executable, and never hand init more authority than the info page lists.

use super::objects::{Kernel, kernel};
use super::{ipc, process_ref};
use crate::memory::{FRAMES, UserSpace, phys_to_virt};
use crate::platform::Machine;
use crate::sched;
use abi::Rights;
use abi::init::{
    CMDLINE_BYTES, INIT_INFO_VA, INIT_MAGIC, INIT_NAME, INIT_STACK_BYTES, INIT_STACK_TOP,
    INITRD_VA, InitInfo, USER_END, USER_START,
};
use alloc::format;
use alloc::string::String;
use kernel_core::boot_info::BootInfo;
use kernel_core::cap::{AddressSpaceId, Capability, ObjectRef};
use kernel_core::hal::Platform;
use kernel_core::memory_map::FRAME_SIZE;
use kernel_core::object::FrameRange;
use kernel_core::paging::MapFlags;
use kernel_core::thread::ThreadId;
use loader::cpio::Archive;
use loader::elf_image::{self, Limits, Machine as ElfMachine};

/// The machine `init` must be built for.
const ELF_MACHINE: ElfMachine = if cfg!(target_arch = "x86_64") {
    ElfMachine::X86_64
} else {
    ElfMachine::Aarch64
};

/// The probe program of the `user` stage: a `Null` syscall that must return 0, then an
/// instruction only the kernel may execute (`hlt`; `mrs CurrentEL`), which must fault and get the
/// probe killed. Exit code 7 means the syscall failed or the privileged instruction ran: the
/// probe was not in user mode. So the stage passes only if the probe really ran unprivileged.
#[cfg(target_arch = "x86_64")]
const PROBE_CODE: &[u8] = &[
    0xb8, 0x01, 0x00, 0x00, 0x00, // mov eax, 1 (Null)
    0x0f, 0x05, // syscall
    0x48, 0x85, 0xc0, // test rax, rax
    0x75, 0x01, // jnz fail
    0xf4, // hlt: #GP in ring 3
    0xbf, 0x07, 0x00, 0x00, 0x00, // fail: mov edi, 7
    0xb8, 0x04, 0x00, 0x00, 0x00, // mov eax, 4 (ThreadExit)
    0x0f, 0x05, // syscall
    0x0f, 0x0b, // ud2 (never reached)
];
#[cfg(target_arch = "aarch64")]
const PROBE_CODE: &[u8] = &[
    0x28, 0x00, 0x80, 0xd2, // mov x8, #1 (Null)
    0x01, 0x00, 0x00, 0xd4, // svc #0
    0x40, 0x00, 0x00, 0xb5, // cbnz x0, fail
    0x41, 0x42, 0x38, 0xd5, // mrs x1, CurrentEL: undefined at EL0
    0xe0, 0x00, 0x80, 0xd2, // fail: mov x0, #7
    0x88, 0x00, 0x80, 0xd2, // mov x8, #4 (ThreadExit)
    0x01, 0x00, 0x00, 0xd4, // svc #0
    0x00, 0x00, 0x00, 0x00, // udf #0 (never reached)
];
const PROBE_VA: u64 = 0x40_0000;
const PROBE_STACK_TOP: u64 = 0x80_0000;

/// Allocates `pages` zeroed frames, lets `fill` write them (through the HHDM), maps them at `va`
/// in process `id` with `flags` and records them (the mappings hold the references).
fn map_fresh(
    kernel: &mut Kernel,
    id: AddressSpaceId,
    va: u64,
    pages: u64,
    flags: MapFlags,
    fill: impl FnOnce(&mut [u8]),
) -> Result<(), String> {
    let process = kernel
        .process(id)
        .map_err(|e| format!("{e}"))?
        .process
        .clone();
    let space = process
        .space
        .as_ref()
        .ok_or("the process has no address space")?;
    let mut allocator = FRAMES.lock_irqsave();
    let frames = allocator.as_mut().ok_or("no frame allocator")?;
    let range = frames
        .allocate_contiguous(pages as usize, 1)
        .ok_or_else(|| format!("out of memory for {pages} pages"))?;
    let bytes = (pages * FRAME_SIZE) as usize;
    // SAFETY: the frames were just allocated (nobody else uses them) and the HHDM maps all of RAM
    // read-write; the slice covers exactly them.
    let memory =
        unsafe { core::slice::from_raw_parts_mut(phys_to_virt(range.start) as *mut u8, bytes) };
    memory.fill(0);
    fill(memory);
    for i in 0..pages {
        space
            .map(
                frames,
                va + i * FRAME_SIZE,
                range.start + i * FRAME_SIZE,
                flags,
            )
            .map_err(|e| format!("map {:#x}: {e}", va + i * FRAME_SIZE))?;
    }
    drop(allocator);
    kernel.add_frames(
        FrameRange {
            start: range.start,
            frames: pages,
        },
        true,
    );
    for i in 0..pages {
        kernel.retain_frame_page(range.start + i * FRAME_SIZE);
    }
    Ok(())
}

fn new_process(name: &str) -> Result<AddressSpaceId, String> {
    let space = {
        let mut frames = FRAMES.lock_irqsave();
        let frames = frames.as_mut().ok_or("no frame allocator")?;
        UserSpace::create(frames).map_err(|e| format!("address space: {e}"))?
    };
    super::objects::add_process(&mut kernel(), space, name)
        .map_err(|e| format!("process table: {e}"))
}

/// Creates the first thread of process `id` (not started).
fn first_thread(id: AddressSpaceId, entry: u64, sp: u64, arg: u64) -> Result<ThreadId, String> {
    let process = kernel()
        .process(id)
        .map_err(|e| format!("{e}"))?
        .process
        .clone();
    let thread = sched::create_user_thread(
        process_ref(&process),
        sched::NORMAL_PRIORITY,
        entry,
        sp,
        arg,
    )?;
    let mut kernel = kernel();
    ipc::register_thread(&mut kernel, id, thread);
    crate::tcb::tcb(thread).mark_started();
    Ok(thread)
}

/// The `user` stage: runs the probe in its own address space; it must be killed by the fault of
/// its privileged instruction (see `PROBE_CODE`).
pub fn probe() -> Result<(), String> {
    let id = new_process("probe")?;
    {
        let mut kernel = kernel();
        map_fresh(
            &mut kernel,
            id,
            PROBE_VA,
            1,
            MapFlags::READ | MapFlags::EXECUTE,
            |m| {
                m[..PROBE_CODE.len()].copy_from_slice(PROBE_CODE);
            },
        )?;
        map_fresh(
            &mut kernel,
            id,
            PROBE_STACK_TOP - FRAME_SIZE,
            1,
            MapFlags::READ | MapFlags::WRITE,
            |_| {},
        )?;
    }
    let thread = first_thread(id, PROBE_VA, PROBE_STACK_TOP, 0)?;
    start(thread);
    match sched::join(thread) {
        Ok(sched::KILLED_EXIT_CODE) if super::entered_user() => Ok(()),
        Ok(7) => Err(String::from(
            "the probe's Null syscall failed or its privileged instruction did not fault: it \
             did not run in user mode",
        )),
        other => Err(format!(
            "the probe ended with {other:?}, expected to be killed by its privileged instruction"
        )),
    }
}

/// The first process, loaded and not yet started.
#[derive(Debug, Clone, Copy)]
pub struct Init {
    /// Its thread (the boot thread joins it).
    pub thread: ThreadId,
    /// Its process (the one allowed to report user tests).
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    pub process: AddressSpaceId,
}

/// Loads `init` (or the entry `name`) from the initrd into a new process and creates its thread
/// (not started).
pub fn load_init(info: &BootInfo, name: Option<&str>) -> Result<Init, String> {
    let name = name.unwrap_or(INIT_NAME);
    let initrd = info.initrd.ok_or(
        "no initrd: boot with -initrd (cargo xtask builds target/images/<arch>/initrd.cpio)",
    )?;
    let len = initrd.end - initrd.start;
    // SAFETY: the initrd is RAM the boot information reserved for it (never handed to the frame
    // allocator), mapped by the HHDM; nothing writes it.
    let archive_bytes = unsafe {
        core::slice::from_raw_parts(phys_to_virt(initrd.start) as *const u8, len as usize)
    };
    let archive = Archive::new(archive_bytes).map_err(|e| format!("initrd: {e}"))?;
    let elf = archive
        .find(name)
        .map_err(|e| format!("initrd: {e}"))?
        .ok_or_else(|| format!("initrd: there is no `{name}` in the archive"))?;
    let limits = Limits {
        user_start: USER_START,
        user_end: INITRD_VA,
        page_size: FRAME_SIZE,
        max_file_bytes: 64 << 20,
    };
    let plan =
        elf_image::plan(elf.data, ELF_MACHINE, &limits).map_err(|e| format!("{name}: {e}"))?;
    crate::kprintln!(
        "[init] {} bytes, entry {:#x}, {} segments; initrd {} bytes",
        elf.data.len(),
        plan.entry,
        plan.segments().len(),
        len
    );

    let id = new_process(name)?;
    let mut kernel = kernel();
    for segment in plan.segments() {
        let (start, end) = plan.page_range(segment);
        let mut flags = MapFlags::empty();
        if segment.flags.read {
            flags |= MapFlags::READ;
        }
        if segment.flags.write {
            flags |= MapFlags::WRITE;
        }
        if segment.flags.execute {
            flags |= MapFlags::EXECUTE;
        }
        let offset = (segment.vaddr - start) as usize;
        let bytes = elf_image::segment_bytes(elf.data, segment);
        map_fresh(
            &mut kernel,
            id,
            start,
            (end - start) / FRAME_SIZE,
            flags,
            |m| {
                m[offset..offset + bytes.len()].copy_from_slice(bytes);
            },
        )?;
    }
    map_fresh(
        &mut kernel,
        id,
        INIT_STACK_TOP - INIT_STACK_BYTES,
        INIT_STACK_BYTES / FRAME_SIZE,
        MapFlags::READ | MapFlags::WRITE,
        |_| {},
    )?;
    // The initrd, read-only: its frames stay the boot module's (never freed).
    let pages = len.div_ceil(FRAME_SIZE);
    if initrd.start.is_multiple_of(FRAME_SIZE) {
        let process = kernel
            .process(id)
            .map_err(|e| format!("{e}"))?
            .process
            .clone();
        let space = process.space.as_ref().ok_or("no address space")?;
        {
            let mut frames = FRAMES.lock_irqsave();
            let frames = frames.as_mut().ok_or("no frame allocator")?;
            for i in 0..pages {
                space
                    .map(
                        frames,
                        INITRD_VA + i * FRAME_SIZE,
                        initrd.start + i * FRAME_SIZE,
                        MapFlags::READ,
                    )
                    .map_err(|e| format!("map the initrd: {e}"))?;
            }
        }
        kernel.add_frames(
            FrameRange {
                start: initrd.start,
                frames: pages,
            },
            false,
        );
        for i in 0..pages {
            kernel.retain_frame_page(initrd.start + i * FRAME_SIZE);
        }
    } else {
        map_fresh(&mut kernel, id, INITRD_VA, pages, MapFlags::READ, |m| {
            m[..archive_bytes.len()].copy_from_slice(archive_bytes);
        })?;
    }
    drop(kernel);
    // The thread first: a process that has never had a thread holds no process capability.
    let thread = first_thread(id, plan.entry, INIT_STACK_TOP, INIT_INFO_VA)?;
    let mut kernel = super::objects::kernel();
    let own_space = kernel
        .insert_cap(id, Capability::full(ObjectRef::AddressSpace(id)))
        .map_err(|e| format!("init's capabilities: {e}"))?;
    let own_thread = kernel
        .insert_cap(
            id,
            Capability::new(ObjectRef::Thread(thread), Rights::CONTROL | Rights::GRANT),
        )
        .map_err(|e| format!("init's capabilities: {e}"))?;
    // The boot thread joins init: a reference that no capability deletion can take away (else
    // init's thread would be detached, and reclaimed before the join, when its table goes).
    kernel.retain_object(ObjectRef::Thread(thread));
    let mut page = InitInfo {
        magic: INIT_MAGIC,
        own_space,
        own_thread,
        initrd_len: len,
        cmdline_len: 0,
        cmdline: [0; CMDLINE_BYTES],
    };
    let cmdline = init_cmdline(info.cmdline);
    let n = cmdline.len().min(CMDLINE_BYTES);
    page.cmdline[..n].copy_from_slice(&cmdline.as_bytes()[..n]);
    page.cmdline_len = n as u64;
    map_fresh(&mut kernel, id, INIT_INFO_VA, 1, MapFlags::READ, |m| {
        // SAFETY: `InitInfo` is `repr(C)` plain data (words and bytes, no padding) and smaller
        // than the page; reading it as bytes is sound.
        let bytes = unsafe {
            core::slice::from_raw_parts(
                (&raw const page).cast::<u8>(),
                core::mem::size_of::<InitInfo>(),
            )
        };
        m[..bytes.len()].copy_from_slice(bytes);
    })?;
    const { assert!(USER_END > INITRD_VA) };
    Ok(Init {
        thread,
        process: id,
    })
}

/// The command line init sees: the kernel's, except that a kernel built without tests drops
/// the `test=` words (it ignores them itself, and init must not run tests nobody can report).
fn init_cmdline(line: &str) -> String {
    if cfg!(feature = "testing") {
        return String::from(line);
    }
    let mut kept = String::new();
    for word in line
        .split_ascii_whitespace()
        .filter(|w| kernel_core::cmdline::TestSelection::from_word(w).is_none())
    {
        if !kept.is_empty() {
            kept.push(' ');
        }
        kept.push_str(word);
    }
    kept
}

/// Starts init's thread.
pub fn start(thread: ThreadId) {
    let enabled = Machine::disable_interrupts();
    sched::start_thread(thread);
    Machine::restore_interrupts(enabled);
}
