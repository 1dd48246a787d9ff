//! Reading the IDX files of MNIST (and of datasets in the same format, such as
//! Fashion-MNIST), gzipped or raw.
//!
//! Format (Y. LeCun, "THE MNIST DATABASE of handwritten digits", the file-format
//! section): a big-endian magic of two zero bytes, a type byte (0x08 = u8) and the
//! number of dimensions; then each dimension as a big-endian u32; then the data, row
//! after row. Images are 3-d (count, rows, cols), labels 1-d (count).

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

/// What went wrong with which file.
#[derive(Debug)]
pub struct IdxError {
    pub path: PathBuf,
    pub what: String,
}

impl fmt::Display for IdxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.what)
    }
}

impl std::error::Error for IdxError {}

fn err(path: &Path, what: impl Into<String>) -> IdxError {
    IdxError {
        path: path.to_path_buf(),
        what: what.into(),
    }
}

/// An IDX array of u8: its dimensions and data.
#[derive(Debug, PartialEq)]
pub struct Idx {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

/// Parses IDX bytes (already decompressed); `path` only names the file in errors.
pub fn parse(bytes: &[u8], path: &Path) -> Result<Idx, IdxError> {
    let head = bytes
        .get(..4)
        .ok_or_else(|| err(path, "truncated: shorter than the 4-byte magic number"))?;
    if head[0] != 0 || head[1] != 0 {
        return Err(err(
            path,
            format!(
                "bad magic number {:02x}{:02x}{:02x}{:02x}: not an IDX file",
                head[0], head[1], head[2], head[3]
            ),
        ));
    }
    if head[2] != 0x08 {
        return Err(err(
            path,
            format!("element type 0x{:02x} is not unsigned byte (0x08)", head[2]),
        ));
    }
    let ndim = head[3] as usize;
    if ndim == 0 {
        return Err(err(path, "zero dimensions"));
    }
    let dim_bytes = bytes.get(4..4 + 4 * ndim).ok_or_else(|| {
        err(
            path,
            format!("truncated: the header declares {ndim} dimensions but ends early"),
        )
    })?;
    let dims: Vec<usize> = dim_bytes
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let len = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| err(path, format!("dimensions {dims:?} overflow")))?;
    let data = &bytes[4 + 4 * ndim..];
    if data.len() < len {
        return Err(err(
            path,
            format!(
                "truncated: dimensions {dims:?} need {len} bytes of data, found {}",
                data.len()
            ),
        ));
    }
    if data.len() > len {
        return Err(err(
            path,
            format!(
                "corrupt: {} bytes after the {len} bytes of data that {dims:?} declare",
                data.len() - len
            ),
        ));
    }
    // On huge pages where the OS offers them: batches read images at random places.
    let mut copy = crate::huge_pages::with_capacity(data.len());
    copy.extend_from_slice(data);
    Ok(Idx { dims, data: copy })
}

/// Reads an IDX file, gunzipping it when its name ends in `.gz`.
pub fn read(path: &Path) -> Result<Idx, IdxError> {
    let raw = std::fs::read(path).map_err(|e| err(path, format!("cannot read: {e}")))?;
    let bytes = if path.extension().is_some_and(|e| e == "gz") {
        if !raw.starts_with(&[0x1f, 0x8b]) {
            return Err(err(
                path,
                "named .gz but not gzip-compressed (no gzip magic 1f 8b at its start)",
            ));
        }
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| err(path, format!("corrupt gzip stream: {e}")))?;
        out
    } else {
        raw
    };
    parse(&bytes, path)
}

/// One split of a dataset: `count` images of `rows x cols` pixels and their labels.
#[derive(Debug)]
pub struct Split {
    pub count: usize,
    pub pixels_per_image: usize,
    pub images: Vec<u8>,
    pub labels: Vec<u8>,
}

/// Finds `stem`, `stem.gz` or the dotted variant (`train-images.idx3-ubyte`) in `dir`.
fn find(dir: &Path, stem: &str) -> Result<PathBuf, IdxError> {
    let dotted = stem.replacen("-idx", ".idx", 1);
    for name in [
        format!("{stem}.gz"),
        stem.to_string(),
        format!("{dotted}.gz"),
        dotted,
    ] {
        let p = dir.join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(err(
        &dir.join(format!("{stem}.gz")),
        "missing (neither the .gz nor the raw file is there)",
    ))
}

/// Loads `{split}-images-idx3-ubyte` and `{split}-labels-idx1-ubyte` from `dir` and
/// checks that they agree.
pub fn load_split(dir: &Path, split: &str) -> Result<Split, IdxError> {
    let ip = find(dir, &format!("{split}-images-idx3-ubyte"))?;
    let lp = find(dir, &format!("{split}-labels-idx1-ubyte"))?;
    let images = read(&ip)?;
    let labels = read(&lp)?;
    if images.dims.len() != 3 {
        return Err(err(
            &ip,
            format!("images must have 3 dimensions, found {:?}", images.dims),
        ));
    }
    if labels.dims.len() != 1 {
        return Err(err(
            &lp,
            format!("labels must have 1 dimension, found {:?}", labels.dims),
        ));
    }
    if images.dims[0] != labels.dims[0] {
        return Err(err(
            &lp,
            format!(
                "{} labels for {} images in {}",
                labels.dims[0],
                images.dims[0],
                ip.display()
            ),
        ));
    }
    if let Some(bad) = labels.data.iter().position(|&l| l > 9) {
        return Err(err(
            &lp,
            format!(
                "label {} at index {bad} is not a digit 0-9",
                labels.data[bad]
            ),
        ));
    }
    Ok(Split {
        count: images.dims[0],
        pixels_per_image: images.dims[1] * images.dims[2],
        images: images.data,
        labels: labels.data,
    })
}
