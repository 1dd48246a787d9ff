//! Peak stack use, measured: fill the free stack with a pattern at start, and later
//! find the deepest word that no longer holds it (stack painting).

use core::ptr::{addr_of, read_volatile, write_volatile};

const PAINT: u32 = 0xC0DE_5AFE;

// Symbols of cortex-m-rt's link.x: the stack grows down from `_stack_start` to
// `_stack_end`, which is the end of the statics; `__sdata` is their start.
unsafe extern "C" {
    static _stack_start: u32;
    static _stack_end: u32;
    static __sdata: u32;
}

/// Paints the stack from its limit up to a little below the current frame.
///
/// # Safety
/// Nothing may live below the current stack pointer.
pub unsafe fn paint() {
    let sp = cortex_m::register::msp::read() as usize;
    // Leave the words just below sp alone: this function's own calls use them.
    let top = (sp - 64) & !3;
    let mut p = addr_of!(_stack_end) as usize;
    while p < top {
        // SAFETY: [_stack_end, sp) is stack that nothing uses yet.
        unsafe { write_volatile(p as *mut u32, PAINT) };
        p += 4;
    }
}

/// Bytes between the top of the stack and the deepest word written since `paint`.
pub fn peak() -> usize {
    let start = addr_of!(_stack_start) as usize;
    let mut p = addr_of!(_stack_end) as usize;
    // SAFETY: every address in [_stack_end, _stack_start) is RAM.
    while p < start && unsafe { read_volatile(p as *const u32) } == PAINT {
        p += 4;
    }
    start - p
}

/// Bytes of RAM taken by statics (.data, .bss and .uninit).
pub fn static_ram() -> usize {
    addr_of!(_stack_end) as usize - addr_of!(__sdata) as usize
}
