//! Which backend runs: CPU detection from `cpuid` and `xgetbv` (no std needed), done
//! once and cached in an atomic, and [`Isa`], the checked backend through which every
//! kernel enters a backend's `#[target_feature]` context.

use core::fmt;
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
use core::sync::atomic::{AtomicU8, Ordering};

use super::Portable;
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
use super::{Avx2, Avx512};
use crate::Error;
use crate::gemm::GemmKernel;

/// An instruction set that the kernels can run on.
///
/// [`Backend::detect`] picks the best one this CPU supports; any supported one can be
/// handed to a call explicitly (for example through [`crate::Kernels::new`]) to
/// compare backends in tests and benchmarks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// `wide`'s portable vectors: whatever the compile-time target has (SSE2 on a
    /// default x86_64 build). Runs everywhere.
    Portable,
    /// AVX2 with FMA, 8 lanes (x86_64 only).
    Avx2,
    /// AVX-512F, 16 lanes (x86_64 only).
    Avx512,
}

impl Backend {
    /// Every backend, best last.
    pub const ALL: [Backend; 3] = [Backend::Portable, Backend::Avx2, Backend::Avx512];

    /// The best backend this CPU supports. The CPU is queried once; later calls read
    /// a cached value.
    pub fn detect() -> Backend {
        if Backend::Avx512.is_supported() {
            Backend::Avx512
        } else if Backend::Avx2.is_supported() {
            Backend::Avx2
        } else {
            Backend::Portable
        }
    }

    /// Whether this CPU (and OS) can run the backend.
    pub fn is_supported(self) -> bool {
        match self {
            Backend::Portable => true,
            #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
            Backend::Avx2 => cpu_features() & HAS_AVX2 != 0,
            #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
            Backend::Avx512 => cpu_features() & HAS_AVX512 != 0,
            #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
            _ => false,
        }
    }

    /// The supported backends, in the order of [`Backend::ALL`].
    pub fn supported() -> impl Iterator<Item = Backend> {
        Backend::ALL.into_iter().filter(|b| b.is_supported())
    }

    /// `Ok(self)` if the CPU supports it, else [`Error::UnsupportedBackend`].
    pub fn check(self) -> Result<Backend, Error> {
        if self.is_supported() {
            Ok(self)
        } else {
            Err(Error::UnsupportedBackend(self))
        }
    }

    /// The lower-case name: `portable`, `avx2` or `avx512`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Portable => "portable",
            Backend::Avx2 => "avx2",
            Backend::Avx512 => "avx512",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl core::str::FromStr for Backend {
    type Err = Error;
    fn from_str(s: &str) -> Result<Backend, Error> {
        match s {
            "portable" => Ok(Backend::Portable),
            "avx2" => Ok(Backend::Avx2),
            "avx512" => Ok(Backend::Avx512),
            _ => Err(Error::InvalidParameter {
                name: "backend",
                reason: "expected portable, avx2 or avx512",
            }),
        }
    }
}

#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
const DETECTED: u8 = 1;
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
const HAS_AVX2: u8 = 2;
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
const HAS_AVX512: u8 = 4;

#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
static FEATURES: AtomicU8 = AtomicU8::new(0);

#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
fn cpu_features() -> u8 {
    let f = FEATURES.load(Ordering::Relaxed);
    if f & DETECTED != 0 {
        return f;
    }
    let f = query_cpu() | DETECTED;
    // Racing threads compute the same value; whichever store lands is correct.
    FEATURES.store(f, Ordering::Relaxed);
    f
}

/// Bits from the Intel SDM, vol. 2A, CPUID: leaf 1 ECX.FMA[12], ECX.OSXSAVE[27],
/// ECX.AVX[28]; leaf 7 EBX.AVX2[5], EBX.AVX512F[16]. XCR0 must enable the SSE and AVX
/// state (bits 1, 2) and for AVX-512 the opmask and ZMM state (bits 5, 6, 7).
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
fn query_cpu() -> u8 {
    use core::arch::x86_64::{__cpuid, __cpuid_count};
    // SAFETY: cpuid exists on every x86_64 CPU.
    #[allow(unused_unsafe)]
    let (max_leaf, l1) = unsafe { (__cpuid(0).eax, __cpuid(1)) };
    let (fma, osxsave, avx) = (
        l1.ecx >> 12 & 1 == 1,
        l1.ecx >> 27 & 1 == 1,
        l1.ecx >> 28 & 1 == 1,
    );
    if !(fma && osxsave && avx) || max_leaf < 7 {
        return 0;
    }
    // SAFETY: leaf 7 exists (max_leaf >= 7).
    #[allow(unused_unsafe)]
    let l7 = unsafe { __cpuid_count(7, 0) };
    // SAFETY: OSXSAVE is set, so xgetbv is enabled and XCR0 readable.
    let xcr0 = unsafe { xcr0() };
    let mut f = 0;
    if l7.ebx >> 5 & 1 == 1 && xcr0 & 0b110 == 0b110 {
        f |= HAS_AVX2;
        if l7.ebx >> 16 & 1 == 1 && xcr0 & 0xe6 == 0xe6 {
            f |= HAS_AVX512;
        }
    }
    f
}

/// # Safety
/// The CPU must report OSXSAVE.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[target_feature(enable = "xsave")]
unsafe fn xcr0() -> u64 {
    // SAFETY: the caller checked OSXSAVE.
    unsafe { core::arch::x86_64::_xgetbv(0) }
}

/// A computation written once over [`Simd`] (and the GEMM register tile that every
/// backend has), run on one backend by [`Isa::vectorize`]. After pulp's `WithSimd`: a
/// closure cannot be generic over the backend's type, a trait method can.
pub(crate) trait WithSimd {
    type Output;
    fn with_simd<S: GemmKernel>(self, s: S) -> Self::Output;
}

/// A backend that this CPU was checked to run: the only road to the x86 backends'
/// `#[target_feature]` code. The x86 variants hold the backend's token, and a token is
/// only made by its `try_new`, after the CPU check, so holding an `Isa` is the proof.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Isa {
    Portable,
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    Avx2(Avx2),
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    Avx512(Avx512),
}

impl Isa {
    /// `backend`, if this CPU runs it.
    pub(crate) fn new(backend: Backend) -> Option<Isa> {
        match backend {
            Backend::Portable => Some(Isa::Portable),
            #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
            Backend::Avx2 => Avx2::try_new().map(Isa::Avx2),
            #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
            Backend::Avx512 => Avx512::try_new().map(Isa::Avx512),
            #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
            _ => None,
        }
    }

    /// The best backend this CPU runs.
    pub(crate) fn best() -> Isa {
        #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
        if let Some(t) = Avx512::try_new() {
            return Isa::Avx512(t);
        } else if let Some(t) = Avx2::try_new() {
            return Isa::Avx2(t);
        }
        Isa::Portable
    }

    /// Which backend this is.
    pub(crate) fn backend(self) -> Backend {
        match self {
            Isa::Portable => Backend::Portable,
            #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
            Isa::Avx2(_) => Backend::Avx2,
            #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
            Isa::Avx512(_) => Backend::Avx512,
        }
    }

    /// Runs `w` on this backend, inside its `#[target_feature]` context.
    #[inline(always)]
    pub(crate) fn vectorize<W: WithSimd>(self, w: W) -> W::Output {
        match self {
            Isa::Portable => w.with_simd(Portable),
            #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
            Isa::Avx2(t) => t.vectorize(w),
            #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
            Isa::Avx512(t) => t.vectorize(w),
        }
    }
}
