//! What every fuzz target of mlp-kernels reads from its input the same way.

use mlp_kernels::{Backend, Kernels};

/// The kernels of one of this CPU's backends, chosen by `byte`.
pub fn kernels(byte: u8) -> Kernels {
    let backends: Vec<Backend> = Backend::supported().collect();
    let pick = backends[usize::from(byte) % backends.len()];
    // A supported backend always makes kernels; the portable one runs everywhere.
    Kernels::new(pick).unwrap_or_default()
}

/// The bytes as little-endian f32, any bit pattern (NaN, infinities, subnormals).
pub fn floats(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}
