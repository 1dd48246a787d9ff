//! The firmware's data: MNIST from `data/mnist`, each 28x28 image averaged over 2x2
//! blocks to 14x14 and quantised to 4 bits (16 grey levels), two pixels a byte.
//!
//! Shared by the firmware's build script, which writes the bytes that the firmware
//! embeds, and by the host test `tests/firmware_parity.rs`, which must train on the
//! very same bytes. Only std and flate2.

use std::io::Read;
use std::path::Path;

/// Pixels of one downsampled image.
pub const PIXELS: usize = 14 * 14;
/// Bytes of one packed image (two 4-bit pixels a byte).
pub const PACKED: usize = PIXELS / 2;
/// Training images embedded: as many as fit the Cortex-M55 board's 512 KiB of code
/// memory next to the test images and the program (see the firmware's README section).
pub const TRAIN_IMAGES: usize = 3000;
/// Test images embedded.
pub const TEST_IMAGES: usize = 1000;

/// Packed pixels and labels of one split.
pub struct Split {
    pub pixels: Vec<u8>,
    pub labels: Vec<u8>,
}

/// The first `count` images of an IDX image file and of its label file, downsampled.
pub fn load(images_gz: &Path, labels_gz: &Path, count: usize) -> Result<Split, String> {
    let images = idx(images_gz, 0x0803)?;
    let labels = idx(labels_gz, 0x0801)?;
    if images.len() < count * 784 || labels.len() < count {
        return Err(format!(
            "{} holds fewer than {count} images",
            images_gz.display()
        ));
    }
    let mut pixels = Vec::with_capacity(count * PACKED);
    for img in images.chunks_exact(784).take(count) {
        let mut levels = [0u8; PIXELS];
        for (i, level) in levels.iter_mut().enumerate() {
            let (r, c) = (2 * (i / 14), 2 * (i % 14));
            let sum: u32 = [(r, c), (r, c + 1), (r + 1, c), (r + 1, c + 1)]
                .iter()
                .map(|&(y, x)| u32::from(img[28 * y + x]))
                .sum();
            // Mean of the block (0..=255), then the nearest of 16 levels 0, 17, ..., 255.
            *level = ((sum * 15 + 2 * 255) / (4 * 255)) as u8;
        }
        pixels.extend(levels.chunks_exact(2).map(|p| p[0] | p[1] << 4));
    }
    Ok(Split {
        pixels,
        labels: labels[..count].to_vec(),
    })
}

/// The payload of a gzipped IDX file after its header, checked against `magic`.
fn idx(path: &Path, magic: u32) -> Result<Vec<u8>, String> {
    let err = |e: std::io::Error| format!("{}: {e}", path.display());
    let file = std::fs::File::open(path).map_err(err)?;
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(file)
        .read_to_end(&mut bytes)
        .map_err(err)?;
    let word = |i: usize| -> Option<u32> {
        Some(u32::from_be_bytes(
            bytes.get(4 * i..4 * i + 4)?.try_into().ok()?,
        ))
    };
    if word(0) != Some(magic) {
        return Err(format!(
            "{}: not an IDX file of magic {magic:#x}",
            path.display()
        ));
    }
    let header = 4 * (1 + (magic & 0xff) as usize);
    if bytes.len() < header {
        return Err(format!("{}: truncated header", path.display()));
    }
    Ok(bytes.split_off(header))
}
