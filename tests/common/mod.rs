//! Helpers shared by the integration tests: the backends to run, a seeded generator.
#![allow(dead_code)]

use mlp_kernels::{Backend, Kernels};

/// Every backend this machine supports, as kernels; prints their names once per test
/// binary so that the test log shows what ran.
pub fn kernels() -> Vec<Kernels> {
    let ks: Vec<Kernels> = Backend::supported()
        .filter_map(|b| Kernels::new(b).ok())
        .collect();
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let names: Vec<&str> = ks.iter().map(|k| k.backend().name()).collect();
        eprintln!("backends under test: {}", names.join(", "));
    });
    ks
}

/// Distance in units in the last place between two f32 of the same sign or zero.
pub fn ulp_distance(a: f32, b: f32) -> u64 {
    let key = |x: f32| {
        let i = x.to_bits() as i32;
        if i < 0 {
            i64::from(i32::MIN) - i64::from(i)
        } else {
            i64::from(i)
        }
    };
    (key(a) - key(b)).unsigned_abs()
}

/// A small deterministic generator (SplitMix64) for tests that must not depend on
/// rand's stream.
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64)
    }
}

impl rand_core::TryRng for SplitMix {
    type Error = core::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok((SplitMix::next_u64(self) >> 32) as u32)
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        Ok(SplitMix::next_u64(self))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        for c in dst.chunks_mut(8) {
            let b = SplitMix::next_u64(self).to_le_bytes();
            c.copy_from_slice(&b[..c.len()]);
        }
        Ok(())
    }
}

/// Whether this platform can start a thread. Tests that need one call it first and
/// return, saying so, where it cannot (wasm32 without threads, some embedded Linux).
pub fn threads_available(test: &str) -> bool {
    let ok = std::thread::Builder::new()
        .spawn(|| {})
        .is_ok_and(|h| h.join().is_ok());
    if !ok {
        eprintln!("{test}: skipped, this platform cannot start a thread");
    }
    ok
}

/// A fresh directory under the temp dir, or `None` (said on stderr) where the platform
/// has none to write to.
pub fn temp_dir(test: &str, name: &str) -> Option<std::path::PathBuf> {
    let d = std::env::temp_dir().join(format!("mlp-kernels-{name}-{}", std::process::id()));
    match std::fs::create_dir_all(&d) {
        Ok(()) => Some(d),
        Err(e) => {
            eprintln!("{test}: skipped, no temp dir ({}: {e})", d.display());
            None
        }
    }
}
