//! Writes the 14x14, 4-bit MNIST subsets that the firmware embeds (see dataset.rs),
//! made from the repository's data/mnist, and puts memory.x on the linker's path.

#[path = "dataset.rs"]
mod dataset;

use std::path::PathBuf;

fn main() -> Result<(), String> {
    let out = PathBuf::from(std::env::var("OUT_DIR").map_err(|e| e.to_string())?);
    let mnist = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist");
    for (split, prefix, count) in [
        ("train", "train", dataset::TRAIN_IMAGES),
        ("test", "t10k", dataset::TEST_IMAGES),
    ] {
        let images = mnist.join(format!("{prefix}-images-idx3-ubyte.gz"));
        let labels = mnist.join(format!("{prefix}-labels-idx1-ubyte.gz"));
        println!("cargo:rerun-if-changed={}", images.display());
        println!("cargo:rerun-if-changed={}", labels.display());
        let data = dataset::load(&images, &labels, count)?;
        let write = |name: &str, bytes: &[u8]| {
            std::fs::write(out.join(format!("{split}-{name}.bin")), bytes)
                .map_err(|e| e.to_string())
        };
        write("pixels", &data.pixels)?;
        write("labels", &data.labels)?;
    }
    std::fs::copy("memory.x", out.join("memory.x")).map_err(|e| e.to_string())?;
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-changed=dataset.rs");
    Ok(())
}
