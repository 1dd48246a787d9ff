//! The crate's one error type. It never allocates, so it works under `no_std`.

use core::fmt;

use crate::simd::Backend;

/// Everything that a kernel of this crate can refuse.
///
/// Every public function checks its inputs before it touches memory and returns one of
/// these instead of panicking.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// A slice or a dimension does not have the size the call needs.
    ShapeMismatch {
        /// Which argument, e.g. `"grad"` or `"targets"`.
        what: &'static str,
        /// The size the call needed.
        expected: usize,
        /// The size it was given.
        found: usize,
    },
    /// A class index is neither in `0..classes` nor the ignore index.
    ClassOutOfRange {
        /// The row (sample) that holds the index.
        row: usize,
        /// The index found.
        class: i64,
        /// The number of classes.
        classes: usize,
    },
    /// The caller's scratch slice is shorter than the call needs.
    WorkspaceTooSmall {
        /// The length needed (see the matching `*_workspace_len` function).
        needed: usize,
        /// The length given.
        found: usize,
    },
    /// A hyper-parameter is outside its domain (a negative learning rate, nesterov
    /// without momentum, label smoothing outside `[0, 1]`, ...).
    InvalidParameter {
        /// The parameter's name.
        name: &'static str,
        /// What it must satisfy.
        reason: &'static str,
    },
    /// The CPU running the program lacks the instruction set of the chosen backend.
    UnsupportedBackend(Backend),
    /// A compressed-sparse-row matrix breaks its layout (see [`CsrRef`](crate::CsrRef)).
    InvalidSparse {
        /// The row where the fault was found.
        row: usize,
        /// What is wrong there.
        reason: &'static str,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::ShapeMismatch {
                what,
                expected,
                found,
            } => {
                write!(
                    f,
                    "shape mismatch for `{what}`: expected {expected}, found {found}"
                )
            }
            Error::ClassOutOfRange {
                row,
                class,
                classes,
            } => write!(
                f,
                "class index {class} in row {row} is out of range for {classes} classes"
            ),
            Error::WorkspaceTooSmall { needed, found } => {
                write!(f, "workspace too small: needs {needed} floats, got {found}")
            }
            Error::InvalidParameter { name, reason } => {
                write!(f, "invalid parameter `{name}`: {reason}")
            }
            Error::UnsupportedBackend(b) => {
                write!(f, "backend {b} is not supported by this CPU")
            }
            Error::InvalidSparse { row, reason } => {
                write!(f, "invalid sparse matrix at row {row}: {reason}")
            }
        }
    }
}

impl core::error::Error for Error {}

/// Returns `Err(ShapeMismatch)` unless `found == expected`.
#[inline]
pub(crate) fn check_len(what: &'static str, expected: usize, found: usize) -> Result<(), Error> {
    if expected == found {
        Ok(())
    } else {
        Err(Error::ShapeMismatch {
            what,
            expected,
            found,
        })
    }
}
