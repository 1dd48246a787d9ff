//! The dataset on 2 MiB pages, where Linux offers them.
//!
//! A batch reads 200 images from random places in the 47 MB training set (with
//! `--sparse-input`, in its 27 MB of non-zeros). On 4 KiB pages nearly every image is
//! on a page the TLB does not hold, and each such read waits for a page walk, which in
//! a virtual machine walks two page tables. Transparent huge pages cover the set with
//! a few dozen TLB entries. In the kernel's "madvise" mode (the default of several
//! distributions) a mapping gets them only when asked with `madvise(MADV_HUGEPAGE)`
//! before its pages are first written: so a buffer is reserved, advised, then filled.
//! Advice changes how memory is backed, never what it holds; where the kernel has no
//! huge pages to give, the buffer simply stays on small ones.

/// Huge pages are this large and this aligned (x86_64, and aarch64 with 4 KiB pages;
/// elsewhere the advice covers fewer pages, or is refused).
#[cfg(target_os = "linux")]
const HUGE_PAGE: usize = 2 << 20;

/// An empty vector with room for `len` elements, whose whole 2 MiB pages are advised
/// onto huge pages.
pub fn with_capacity<T>(len: usize) -> Vec<T> {
    let v = Vec::with_capacity(len);
    advise(&v);
    v
}

#[cfg(target_os = "linux")]
fn advise<T>(v: &Vec<T>) {
    // <sys/mman.h>; `madvise` is in the C library that std already links.
    const MADV_HUGEPAGE: core::ffi::c_int = 14;
    unsafe extern "C" {
        fn madvise(
            addr: *mut core::ffi::c_void,
            len: usize,
            advice: core::ffi::c_int,
        ) -> core::ffi::c_int;
    }
    let start = v.as_ptr() as usize;
    let end = start.saturating_add(v.capacity().saturating_mul(size_of::<T>()));
    // Only whole huge pages can be backed by one; their bounds are page-aligned for
    // any base page size.
    let lo = start
        .checked_next_multiple_of(HUGE_PAGE)
        .unwrap_or(usize::MAX);
    let hi = end / HUGE_PAGE * HUGE_PAGE;
    if hi > lo {
        let at = v.as_ptr().wrapping_byte_add(lo - start).cast_mut();
        // SAFETY: [lo, hi) lies inside the vector's allocation, which this process
        // owns and nothing else maps; the advice touches no byte of it. A refusal
        // (a kernel without transparent huge pages) only leaves the pages small.
        let _ = unsafe { madvise(at.cast(), hi - lo, MADV_HUGEPAGE) };
    }
}

#[cfg(not(target_os = "linux"))]
fn advise<T>(_: &Vec<T>) {}
