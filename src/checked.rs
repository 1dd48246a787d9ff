//! Slices of ranges that the entry points' checks keep in bounds.
//!
//! `x[r]` would keep a panic path that the optimiser cannot always prove dead;
//! `x.get(r).unwrap_or_default()` would hide a broken invariant. These do neither:
//! a debug build (the tests, the fuzz targets) asserts the range, and a release build
//! gives an empty slice instead of a panic path (`scripts/no-panic.sh` proves there is
//! none). Use them only where the caller's checks make the range valid; where a range
//! may legitimately miss (the row after the last, say), `get` says so.

use core::fmt::Debug;
use core::slice::SliceIndex;

/// `x[r]`, for an `r` inside `x` by the caller's checks.
#[inline(always)]
#[track_caller]
pub(crate) fn part<T, R>(x: &[T], r: R) -> &[T]
where
    R: SliceIndex<[T], Output = [T]> + Clone + Debug,
{
    match x.get(r.clone()) {
        Some(p) => p,
        None => {
            debug_assert!(false, "{r:?} outside a slice of {}", x.len());
            &[]
        }
    }
}

/// `&mut x[r]`, for an `r` inside `x` by the caller's checks.
#[inline(always)]
#[track_caller]
pub(crate) fn part_mut<T, R>(x: &mut [T], r: R) -> &mut [T]
where
    R: SliceIndex<[T], Output = [T]> + Clone + Debug,
{
    let len = x.len();
    match x.get_mut(r.clone()) {
        Some(p) => p,
        None => {
            debug_assert!(false, "{r:?} outside a slice of {len}");
            &mut []
        }
    }
}

/// `x[i]`, for an `i` inside `x` by the caller's checks; `fallback` outside.
#[inline(always)]
#[track_caller]
pub(crate) fn item<T: Copy>(x: &[T], i: usize, fallback: T) -> T {
    debug_assert!(i < x.len(), "{i} outside a slice of {}", x.len());
    x.get(i).copied().unwrap_or(fallback)
}
