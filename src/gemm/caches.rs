//! The data caches of the CPU we run on, read once with `cpuid` and kept.
//!
//! Intel: leaf 4, one sub-leaf per cache (Intel SDM vol. 2A, CPUID, "Deterministic
//! Cache Parameters Leaf"). AMD: leaf 0x8000_001D, the same layout, when leaf
//! 0x8000_0001 ECX bit 22 (TopologyExtensions) says it exists (AMD APM vol. 3,
//! appendix E). In both, a cache holds (ways) x (partitions) x (line size) x (sets)
//! bytes, each field stored minus one: EBX[31:22], EBX[21:12], EBX[11:0], ECX.
//! Elsewhere, or when the leaves say nothing, the sizes of a small modern core are
//! assumed ([`Caches::FALLBACK`]).

use core::sync::atomic::{AtomicU32, Ordering};

/// Sizes in bytes of the level 1 data, level 2 and level 3 caches (per core for L1d
/// and L2, as `cpuid` reports them; 0 for an L3 that is not there), and L1d's
/// associativity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caches {
    /// Level 1 data cache, bytes.
    pub l1d: usize,
    /// Ways of the level 1 data cache.
    pub l1d_ways: usize,
    /// Level 2 cache, bytes.
    pub l2: usize,
    /// Level 3 cache, bytes (0 when there is none).
    pub l3: usize,
}

impl Caches {
    /// Assumed where `cpuid` cannot tell: 32 KiB 8-way L1d, 1 MiB L2, no L3 (Zen 4's
    /// first two levels; Arm Cortex-A cores of the same class are close).
    pub const FALLBACK: Caches = Caches {
        l1d: 32 * 1024,
        l1d_ways: 8,
        l2: 1024 * 1024,
        l3: 0,
    };

    /// The caches of this CPU, read on the first call and kept.
    pub fn detect() -> Caches {
        // KiB in 32-bit atomics (every target has those); 0 means not yet read.
        static L1D: AtomicU32 = AtomicU32::new(0);
        static WAYS: AtomicU32 = AtomicU32::new(0);
        static L2: AtomicU32 = AtomicU32::new(0);
        static L3: AtomicU32 = AtomicU32::new(0);
        let l1d = L1D.load(Ordering::Relaxed);
        if l1d != 0 {
            return Caches {
                l1d: l1d as usize * 1024,
                l1d_ways: WAYS.load(Ordering::Relaxed) as usize,
                l2: L2.load(Ordering::Relaxed) as usize * 1024,
                l3: L3.load(Ordering::Relaxed) as usize * 1024,
            };
        }
        let c = read().unwrap_or(Caches::FALLBACK);
        let kib = |b: usize| u32::try_from(b / 1024).unwrap_or(u32::MAX);
        // Racing threads store the same values; L1D last, as the "read" flag.
        WAYS.store(c.l1d_ways as u32, Ordering::Relaxed);
        L2.store(kib(c.l2), Ordering::Relaxed);
        L3.store(kib(c.l3), Ordering::Relaxed);
        L1D.store(kib(c.l1d).max(1), Ordering::Relaxed);
        c
    }
}

/// Whether `cpuid` names Intel as the vendor, read on the first call and kept.
pub(crate) fn intel() -> bool {
    // 0: not yet read, 1: no, 2: yes.
    static INTEL: core::sync::atomic::AtomicU8 = core::sync::atomic::AtomicU8::new(0);
    match INTEL.load(Ordering::Relaxed) {
        0 => {
            let yes = vendor_is_intel();
            INTEL.store(1 + u8::from(yes), Ordering::Relaxed);
            yes
        }
        v => v == 2,
    }
}

#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
fn vendor_is_intel() -> bool {
    // SAFETY: cpuid leaf 0 exists on every x86_64 CPU.
    #[allow(unused_unsafe)]
    let l0 = unsafe { core::arch::x86_64::__cpuid(0) };
    [l0.ebx, l0.edx, l0.ecx] == INTEL_VENDOR
}

#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
fn vendor_is_intel() -> bool {
    false
}

/// "GenuineIntel" as cpuid leaf 0 gives it in EBX, EDX, ECX.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
const INTEL_VENDOR: [u32; 3] = [0x756e_6547, 0x4965_6e69, 0x6c65_746e];

#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
fn read() -> Option<Caches> {
    use core::arch::x86_64::{__cpuid, __cpuid_count};
    // SAFETY (every cpuid here): cpuid exists on every x86_64 CPU, and a leaf is only
    // asked for after the maximum leaf says it exists.
    #[allow(unused_unsafe)]
    let l0 = unsafe { __cpuid(0) };
    let vendor = [l0.ebx, l0.edx, l0.ecx];
    let intel = vendor == INTEL_VENDOR;
    let amd = vendor == [0x6874_7541, 0x6974_6e65, 0x444d_4163]; // "AuthenticAMD"
    let leaf = if intel && l0.eax >= 4 {
        4
    } else if amd {
        #[allow(unused_unsafe)]
        let ext = unsafe { __cpuid(0x8000_0000) };
        #[allow(unused_unsafe)]
        let topo = ext.eax >= 0x8000_001d && unsafe { __cpuid(0x8000_0001) }.ecx >> 22 & 1 == 1;
        if !topo {
            return None;
        }
        0x8000_001d
    } else {
        return None;
    };
    let mut c = Caches {
        l1d: 0,
        l1d_ways: 0,
        l2: 0,
        l3: 0,
    };
    for sub in 0..16 {
        #[allow(unused_unsafe)]
        let r = unsafe { __cpuid_count(leaf, sub) };
        let kind = r.eax & 0x1f; // 1 data, 2 instruction, 3 unified, 0 no more
        if kind == 0 {
            break;
        }
        if kind == 2 {
            continue;
        }
        let ways = (r.ebx >> 22) as usize + 1;
        let bytes = ways
            * ((r.ebx >> 12 & 0x3ff) as usize + 1)
            * ((r.ebx & 0xfff) as usize + 1)
            * (r.ecx as usize + 1);
        match r.eax >> 5 & 7 {
            1 => {
                c.l1d = bytes;
                c.l1d_ways = ways;
            }
            2 => c.l2 = bytes,
            3 => c.l3 = bytes,
            _ => {}
        }
    }
    (c.l1d >= 4096 && c.l2 >= c.l1d).then_some(c)
}

#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
fn read() -> Option<Caches> {
    None
}
