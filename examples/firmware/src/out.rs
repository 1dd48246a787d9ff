//! Text output over semihosting without `core::fmt`, which has no panic-free float
//! formatting (its Grisu and Dragon code keeps bounds checks and asserts), and without
//! `hprintln!`, whose shared stream sits in a `RefCell`. With this, the firmware has no
//! panic path at all, and `--features no-panic-proof` makes the linker prove it.
//!
//! Floats are printed with six decimals, then their bits in hex, which the host test
//! (`tests/firmware_parity.rs`) compares exactly: the decimals are for reading.

use core::num::NonZeroU64;

use cortex_m_semihosting::hio::{self, HostStream};

/// The host's stdout, or nowhere if the debugger gives none.
pub struct Out(Option<HostStream>);

impl Out {
    pub fn open() -> Out {
        Out(hio::hstdout().ok())
    }

    /// Writes `s`; a failed write is dropped, as there is nowhere to report it.
    pub fn str(&mut self, s: &str) -> &mut Out {
        if let Some(h) = &mut self.0 {
            let _ = h.write_all(s.as_bytes());
        }
        self
    }

    pub fn line(&mut self) -> &mut Out {
        self.str("\n")
    }

    /// `n` in decimal, at least `width` digits (zero-padded).
    pub fn uint(&mut self, n: u64, width: usize) -> &mut Out {
        self.digits(n, NonZeroU64::new(10).unwrap_or(NonZeroU64::MIN), width)
    }

    /// `n` in lower-case hex, at least `width` digits (zero-padded).
    pub fn hex(&mut self, n: u64, width: usize) -> &mut Out {
        self.digits(n, NonZeroU64::new(16).unwrap_or(NonZeroU64::MIN), width)
    }

    /// `x` with six decimals (rounded half up in f64) and its bits:
    /// `0.805362 (bits 3f4e2c39)`; from 1e12 on as `d.dddddde+N`; `NaN`, `inf` and
    /// `-inf` as such.
    pub fn float(&mut self, x: f32) -> &mut Out {
        if x.is_nan() {
            self.str("NaN");
        } else if x.is_infinite() {
            self.str(if x > 0.0 { "inf" } else { "-inf" });
        } else {
            if x.is_sign_negative() {
                self.str("-");
            }
            // Below 1e12 the micro-units fit a u64; above, a power of ten comes out.
            let (mut v, mut e) = (f64::from(x.abs()), 0u64);
            if v >= 1e12 {
                while v >= 10.0 {
                    v /= 10.0;
                    e += 1;
                }
            }
            let micros = (v * 1e6 + 0.5) as u64;
            self.uint(micros / 1_000_000, 1).str(".").uint(micros % 1_000_000, 6);
            if e > 0 {
                self.str("e+").uint(e, 1);
            }
        }
        self.str(" (bits ").hex(u64::from(x.to_bits()), 8).str(")")
    }

    /// (A `NonZeroU64` base: its division and remainder have no zero check to panic.)
    fn digits(&mut self, mut n: u64, base: NonZeroU64, width: usize) -> &mut Out {
        // 64 binary digits at most; fewer in any base used here.
        let mut buf = [b'0'; 64];
        let mut used = 0;
        for slot in buf.iter_mut().rev() {
            if n == 0 && used >= width.max(1) {
                break;
            }
            *slot = b"0123456789abcdef"
                .get((n % base) as usize)
                .copied()
                .unwrap_or(b'?');
            n /= base;
            used += 1;
        }
        let start = buf.len() - used;
        let text = buf.get(start..).unwrap_or_default();
        self.str(core::str::from_utf8(text).unwrap_or("?"))
    }
}
