//! The FP/SIMD register test: fill every vector register, switch away, check nothing changed.
//!
//! Owns [`torture`], run by the `FP_WORKER` helper and by init itself in the `fp_state` test. It
//! checks that the kernel saves and restores each thread's vector registers across context
//! switches: the registers are loaded with distinct values, mutated, the thread yields *inside
//! the same assembly block* (so the values are live in the registers while other threads run),
//! mutated again and stored; the result must equal the same mutations computed in integer code.
//!
//! x86_64 (`x86_64-unknown-none` is soft-float): the assembly names `xmm0..xmm15` directly. The
//! compiler never uses them on this target, so they cannot be declared as clobbers (that needs
//! the `sse` feature) and need not be: nothing the compiler generates keeps a value there.
//! AArch64 (`aarch64-unknown-none`, hard-float): `v0..v31` are declared clobbered.
//!
//! It must never touch the FP control registers (MXCSR, FPCR): compiled code on AArch64 depends on
//! their defaults.

use abi::Syscall;

/// Vector registers of the architecture (`xmm0..15` / `v0..31`).
#[cfg(target_arch = "x86_64")]
pub const VECTOR_REGS: usize = 16;
/// Vector registers of the architecture (`xmm0..15` / `v0..31`).
#[cfg(target_arch = "aarch64")]
pub const VECTOR_REGS: usize = 32;

/// The register file image: two 64-bit lanes per register, 16-byte aligned.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(C, align(16))]
struct State([[u64; 2]; VECTOR_REGS]);

/// The first mismatch [`torture`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mismatch {
    /// The iteration after which it was seen.
    pub iteration: u32,
    /// The register number.
    pub register: usize,
    /// The lane (0 = low 64 bits).
    pub lane: usize,
    /// What integer code computed.
    pub expected: u64,
    /// What the register held.
    pub found: u64,
}

impl core::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "vector register {} lane {} after iteration {}: expected {:#x}, found {:#x}",
            self.register, self.lane, self.iteration, self.expected, self.found
        )
    }
}

/// SplitMix64: distinct, well-mixed initial values.
const fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The integer model of one mutation pass: register `i` += register `i + 1` (mod the count),
/// lane-wise, in order (so the last register adds the already-updated first one), exactly as the
/// assembly does.
fn mutate(state: &mut State) {
    for i in 0..VECTOR_REGS {
        let next = state.0[(i + 1) % VECTOR_REGS];
        for (lane, value) in state.0[i].iter_mut().enumerate() {
            *value = value.wrapping_add(next[lane]);
        }
    }
}

/// Loads `state` into the vector registers, mutates, yields (`Yield` syscall) with the values
/// live in the registers, mutates again and stores them back.
fn iterate_in_registers(state: &mut State) {
    let ptr: *mut State = state;
    // The block reads and writes exactly the 256 bytes of `*state` (16-byte aligned, exclusively
    // borrowed) through rdi, which the Yield call preserves (abi::regs: a slot Yield does not
    // write). The syscall destroys rax (declared inout), rcx and r11 (declared). The xmm
    // registers are not declared: the soft-float target never allocates them.
    #[cfg(target_arch = "x86_64")]
    // SAFETY: only `*state` and the declared registers are touched (see above).
    unsafe {
        core::arch::asm!(
            "movdqu xmm0, [rdi + 0]",
            "movdqu xmm1, [rdi + 16]",
            "movdqu xmm2, [rdi + 32]",
            "movdqu xmm3, [rdi + 48]",
            "movdqu xmm4, [rdi + 64]",
            "movdqu xmm5, [rdi + 80]",
            "movdqu xmm6, [rdi + 96]",
            "movdqu xmm7, [rdi + 112]",
            "movdqu xmm8, [rdi + 128]",
            "movdqu xmm9, [rdi + 144]",
            "movdqu xmm10, [rdi + 160]",
            "movdqu xmm11, [rdi + 176]",
            "movdqu xmm12, [rdi + 192]",
            "movdqu xmm13, [rdi + 208]",
            "movdqu xmm14, [rdi + 224]",
            "movdqu xmm15, [rdi + 240]",
            "paddq xmm0, xmm1",
            "paddq xmm1, xmm2",
            "paddq xmm2, xmm3",
            "paddq xmm3, xmm4",
            "paddq xmm4, xmm5",
            "paddq xmm5, xmm6",
            "paddq xmm6, xmm7",
            "paddq xmm7, xmm8",
            "paddq xmm8, xmm9",
            "paddq xmm9, xmm10",
            "paddq xmm10, xmm11",
            "paddq xmm11, xmm12",
            "paddq xmm12, xmm13",
            "paddq xmm13, xmm14",
            "paddq xmm14, xmm15",
            "paddq xmm15, xmm0",
            "syscall",
            "paddq xmm0, xmm1",
            "paddq xmm1, xmm2",
            "paddq xmm2, xmm3",
            "paddq xmm3, xmm4",
            "paddq xmm4, xmm5",
            "paddq xmm5, xmm6",
            "paddq xmm6, xmm7",
            "paddq xmm7, xmm8",
            "paddq xmm8, xmm9",
            "paddq xmm9, xmm10",
            "paddq xmm10, xmm11",
            "paddq xmm11, xmm12",
            "paddq xmm12, xmm13",
            "paddq xmm13, xmm14",
            "paddq xmm14, xmm15",
            "paddq xmm15, xmm0",
            "movdqu [rdi + 0], xmm0",
            "movdqu [rdi + 16], xmm1",
            "movdqu [rdi + 32], xmm2",
            "movdqu [rdi + 48], xmm3",
            "movdqu [rdi + 64], xmm4",
            "movdqu [rdi + 80], xmm5",
            "movdqu [rdi + 96], xmm6",
            "movdqu [rdi + 112], xmm7",
            "movdqu [rdi + 128], xmm8",
            "movdqu [rdi + 144], xmm9",
            "movdqu [rdi + 160], xmm10",
            "movdqu [rdi + 176], xmm11",
            "movdqu [rdi + 192], xmm12",
            "movdqu [rdi + 208], xmm13",
            "movdqu [rdi + 224], xmm14",
            "movdqu [rdi + 240], xmm15",
            in("rdi") ptr,
            inout("rax") Syscall::Yield.into_raw() => _,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    // The block reads and writes exactly the 512 bytes of `*state` (16-byte aligned, exclusively
    // borrowed) through x10, which the kernel preserves (not a slot register). The syscall number
    // goes in x8 (preserved) and the result comes back in x0 (declared); v0..v31 are declared
    // clobbered.
    #[cfg(target_arch = "aarch64")]
    // SAFETY: only `*state` and the declared registers are touched (see above).
    unsafe {
        core::arch::asm!(
            "ldp q0, q1, [x10, #0]",
            "ldp q2, q3, [x10, #32]",
            "ldp q4, q5, [x10, #64]",
            "ldp q6, q7, [x10, #96]",
            "ldp q8, q9, [x10, #128]",
            "ldp q10, q11, [x10, #160]",
            "ldp q12, q13, [x10, #192]",
            "ldp q14, q15, [x10, #224]",
            "ldp q16, q17, [x10, #256]",
            "ldp q18, q19, [x10, #288]",
            "ldp q20, q21, [x10, #320]",
            "ldp q22, q23, [x10, #352]",
            "ldp q24, q25, [x10, #384]",
            "ldp q26, q27, [x10, #416]",
            "ldp q28, q29, [x10, #448]",
            "ldp q30, q31, [x10, #480]",
            "add v0.2d, v0.2d, v1.2d",
            "add v1.2d, v1.2d, v2.2d",
            "add v2.2d, v2.2d, v3.2d",
            "add v3.2d, v3.2d, v4.2d",
            "add v4.2d, v4.2d, v5.2d",
            "add v5.2d, v5.2d, v6.2d",
            "add v6.2d, v6.2d, v7.2d",
            "add v7.2d, v7.2d, v8.2d",
            "add v8.2d, v8.2d, v9.2d",
            "add v9.2d, v9.2d, v10.2d",
            "add v10.2d, v10.2d, v11.2d",
            "add v11.2d, v11.2d, v12.2d",
            "add v12.2d, v12.2d, v13.2d",
            "add v13.2d, v13.2d, v14.2d",
            "add v14.2d, v14.2d, v15.2d",
            "add v15.2d, v15.2d, v16.2d",
            "add v16.2d, v16.2d, v17.2d",
            "add v17.2d, v17.2d, v18.2d",
            "add v18.2d, v18.2d, v19.2d",
            "add v19.2d, v19.2d, v20.2d",
            "add v20.2d, v20.2d, v21.2d",
            "add v21.2d, v21.2d, v22.2d",
            "add v22.2d, v22.2d, v23.2d",
            "add v23.2d, v23.2d, v24.2d",
            "add v24.2d, v24.2d, v25.2d",
            "add v25.2d, v25.2d, v26.2d",
            "add v26.2d, v26.2d, v27.2d",
            "add v27.2d, v27.2d, v28.2d",
            "add v28.2d, v28.2d, v29.2d",
            "add v29.2d, v29.2d, v30.2d",
            "add v30.2d, v30.2d, v31.2d",
            "add v31.2d, v31.2d, v0.2d",
            "svc #0",
            "add v0.2d, v0.2d, v1.2d",
            "add v1.2d, v1.2d, v2.2d",
            "add v2.2d, v2.2d, v3.2d",
            "add v3.2d, v3.2d, v4.2d",
            "add v4.2d, v4.2d, v5.2d",
            "add v5.2d, v5.2d, v6.2d",
            "add v6.2d, v6.2d, v7.2d",
            "add v7.2d, v7.2d, v8.2d",
            "add v8.2d, v8.2d, v9.2d",
            "add v9.2d, v9.2d, v10.2d",
            "add v10.2d, v10.2d, v11.2d",
            "add v11.2d, v11.2d, v12.2d",
            "add v12.2d, v12.2d, v13.2d",
            "add v13.2d, v13.2d, v14.2d",
            "add v14.2d, v14.2d, v15.2d",
            "add v15.2d, v15.2d, v16.2d",
            "add v16.2d, v16.2d, v17.2d",
            "add v17.2d, v17.2d, v18.2d",
            "add v18.2d, v18.2d, v19.2d",
            "add v19.2d, v19.2d, v20.2d",
            "add v20.2d, v20.2d, v21.2d",
            "add v21.2d, v21.2d, v22.2d",
            "add v22.2d, v22.2d, v23.2d",
            "add v23.2d, v23.2d, v24.2d",
            "add v24.2d, v24.2d, v25.2d",
            "add v25.2d, v25.2d, v26.2d",
            "add v26.2d, v26.2d, v27.2d",
            "add v27.2d, v27.2d, v28.2d",
            "add v28.2d, v28.2d, v29.2d",
            "add v29.2d, v29.2d, v30.2d",
            "add v30.2d, v30.2d, v31.2d",
            "add v31.2d, v31.2d, v0.2d",
            "stp q0, q1, [x10, #0]",
            "stp q2, q3, [x10, #32]",
            "stp q4, q5, [x10, #64]",
            "stp q6, q7, [x10, #96]",
            "stp q8, q9, [x10, #128]",
            "stp q10, q11, [x10, #160]",
            "stp q12, q13, [x10, #192]",
            "stp q14, q15, [x10, #224]",
            "stp q16, q17, [x10, #256]",
            "stp q18, q19, [x10, #288]",
            "stp q20, q21, [x10, #320]",
            "stp q22, q23, [x10, #352]",
            "stp q24, q25, [x10, #384]",
            "stp q26, q27, [x10, #416]",
            "stp q28, q29, [x10, #448]",
            "stp q30, q31, [x10, #480]",
            in("x10") ptr,
            in("x8") Syscall::Yield.into_raw(),
            lateout("x0") _,
            out("v0") _,
            out("v1") _,
            out("v2") _,
            out("v3") _,
            out("v4") _,
            out("v5") _,
            out("v6") _,
            out("v7") _,
            out("v8") _,
            out("v9") _,
            out("v10") _,
            out("v11") _,
            out("v12") _,
            out("v13") _,
            out("v14") _,
            out("v15") _,
            out("v16") _,
            out("v17") _,
            out("v18") _,
            out("v19") _,
            out("v20") _,
            out("v21") _,
            out("v22") _,
            out("v23") _,
            out("v24") _,
            out("v25") _,
            out("v26") _,
            out("v27") _,
            out("v28") _,
            out("v29") _,
            out("v30") _,
            out("v31") _,
            options(nostack),
        );
    }
}

/// Runs `iterations` rounds of the register test seeded with `seed`; `Ok` if every register
/// held its value across every yield, else the first [`Mismatch`].
pub fn torture(seed: u64, iterations: u32) -> Result<(), Mismatch> {
    let mut registers = State([[0; 2]; VECTOR_REGS]);
    for (i, reg) in registers.0.iter_mut().enumerate() {
        for (lane, value) in reg.iter_mut().enumerate() {
            *value = mix(seed
                .wrapping_mul(1 << 8)
                .wrapping_add((2 * i + lane) as u64));
        }
    }
    let mut model = registers;
    for iteration in 0..iterations {
        iterate_in_registers(&mut registers);
        mutate(&mut model);
        mutate(&mut model);
        if registers != model {
            for register in 0..VECTOR_REGS {
                for lane in 0..2 {
                    let (expected, found) = (model.0[register][lane], registers.0[register][lane]);
                    if expected != found {
                        return Err(Mismatch {
                            iteration,
                            register,
                            lane,
                            expected,
                            found,
                        });
                    }
                }
            }
        }
    }
    Ok(())
}
