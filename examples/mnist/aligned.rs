//! A zeroed `f32` buffer whose first element sits on a 64-byte boundary.
//!
//! A `Vec<f32>` as large as W1 (612 KiB) comes from `mmap` and starts 16 bytes past a
//! page (glibc), so every 64-byte load of a row crosses two cache lines. The sparse
//! first layer reads W1^T's rows and writes dW1^T's rows at scattered row indices,
//! one 64-byte vector after another, and pays for each crossing; the dense GEMM packs
//! its operands and hardly notices. See BENCHMARKS.md ("aligned rows").

use std::alloc::{Layout, alloc_zeroed, dealloc, handle_alloc_error};
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

/// The alignment: one cache line, one AVX-512 vector.
const ALIGN: usize = 64;

pub struct Floats {
    ptr: NonNull<f32>,
    len: usize,
}

// SAFETY: `Floats` owns its elements exclusively, as a `Vec<f32>` does.
unsafe impl Send for Floats {}
// SAFETY: shared access only reads through `&[f32]`.
unsafe impl Sync for Floats {}

impl Floats {
    /// `len` zeros.
    pub fn zeros(len: usize) -> Floats {
        let Some(layout) = Self::layout(len) else {
            return Floats {
                ptr: NonNull::dangling(),
                len: 0,
            };
        };
        // SAFETY: the layout has a non-zero size (checked by `layout`).
        let raw = unsafe { alloc_zeroed(layout) };
        match NonNull::new(raw.cast::<f32>()) {
            Some(ptr) => Floats { ptr, len },
            None => handle_alloc_error(layout),
        }
    }

    /// A copy of `src`.
    pub fn from_slice(src: &[f32]) -> Floats {
        let mut f = Floats::zeros(src.len());
        f.copy_from_slice(src);
        f
    }

    /// The layout of `len` floats, `None` for none (nothing is allocated then).
    fn layout(len: usize) -> Option<Layout> {
        let bytes = len.checked_mul(size_of::<f32>())?;
        if bytes == 0 {
            return None;
        }
        match Layout::from_size_align(bytes, ALIGN) {
            Ok(l) => Some(l),
            // More than isize::MAX bytes: the allocator's own refusal.
            Err(_) => handle_alloc_error(Layout::new::<f32>()),
        }
    }
}

impl Drop for Floats {
    fn drop(&mut self) {
        if let Some(layout) = Self::layout(self.len) {
            // SAFETY: allocated in `zeros` with this very layout.
            unsafe { dealloc(self.ptr.as_ptr().cast(), layout) }
        }
    }
}

impl Deref for Floats {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        // SAFETY: `len` initialised floats at `ptr` (or none at a dangling pointer).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl DerefMut for Floats {
    fn deref_mut(&mut self) -> &mut [f32] {
        // SAFETY: as `deref`, and `&mut self` is exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Clone for Floats {
    fn clone(&self) -> Floats {
        Floats::from_slice(self)
    }
}
