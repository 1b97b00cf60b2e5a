//! The global allocator: mimalloc, asked the way its version 3 is fast.
//!
//! The `mimalloc` crate hands every Rust allocation to `mi_malloc_aligned`,
//! alignment included. mimalloc v3 serves that from its plain free lists
//! only on a fast path (a small block that happens to be free and aligned)
//! or when the block size is a power of two; anything else, such as every
//! allocation over 1 KiB that is not a power of two and every small one
//! that arrives when its page is full, goes through an over-allocating
//! path: slower (about 1,300 of a proxied request's 33,500 instructions)
//! and in a larger block than needed. Yet every mimalloc block is already
//! aligned to 16 bytes whenever its size is a multiple of 16, and to 8
//! otherwise (`MI_MAX_ALIGN_SIZE`; on 64-bit targets small size classes
//! are 16-byte multiples above 8 bytes and a page's first block is
//! 16-aligned). So a layout whose alignment is at most 16 and divides its
//! size goes to plain `mi_malloc`; only larger alignments (tokio's
//! 128-byte aligned tasks) use the aligned calls. ADR 0011.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys as mi;

/// The alignment every mimalloc block of a multiple of this size has.
const NATURAL_ALIGN: usize = 16;

/// mimalloc as the global allocator (see the module docs).
pub struct MiMalloc;

/// Whether a block of `size` bytes from plain `mi_malloc` is aligned
/// enough for `align`: its size class is then a multiple of `align`.
#[inline(always)]
fn natural(size: usize, align: usize) -> bool {
    align <= NATURAL_ALIGN && size.is_multiple_of(align)
}

// SAFETY: every path returns a block from mimalloc of at least the layout's
// size and alignment (see `natural`; the aligned calls honour any power of
// two), or null on failure; `dealloc` and `realloc` only receive pointers
// these functions returned, which `mi_free` / `mi_realloc*` accept.
unsafe impl GlobalAlloc for MiMalloc {
    #[inline]
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        // SAFETY: plain C allocation calls with a size and a power-of-two
        // alignment; no pointer is passed in.
        unsafe {
            if natural(l.size(), l.align()) {
                mi::mi_malloc(l.size()) as *mut u8
            } else {
                mi::mi_malloc_aligned(l.size(), l.align()) as *mut u8
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        // SAFETY: as in `alloc`.
        unsafe {
            if natural(l.size(), l.align()) {
                mi::mi_zalloc(l.size()) as *mut u8
            } else {
                mi::mi_zalloc_aligned(l.size(), l.align()) as *mut u8
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, p: *mut u8, _l: Layout) {
        // SAFETY: `p` came from this allocator (GlobalAlloc's contract),
        // so from mimalloc, which frees aligned and plain blocks alike.
        unsafe { mi::mi_free(p as *mut c_void) }
    }

    #[inline]
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `p` came from this allocator with layout `l`; the new
        // block keeps `l`'s alignment by the same rule as `alloc`.
        unsafe {
            if natural(new_size, l.align()) {
                mi::mi_realloc(p as *mut c_void, new_size) as *mut u8
            } else {
                mi::mi_realloc_aligned(p as *mut c_void, new_size, l.align()) as *mut u8
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every size up to 5 KiB at every alignment up to 256 comes back
    /// aligned and writable, also after growing and shrinking, from an
    /// allocator that already holds blocks of every size class (so the
    /// pages of the plain path are in use).
    #[test]
    fn blocks_are_aligned_for_every_layout() {
        let a = MiMalloc;
        let mut held = Vec::new();
        for size in 1..=5 * 1024usize {
            for shift in 0..=8 {
                let align = 1usize << shift;
                let size = size.next_multiple_of(align.min(size.next_power_of_two()));
                let l = Layout::from_size_align(size, align).unwrap();
                // SAFETY: a non-zero size; the block is checked, written
                // within its size, and freed with its layout below.
                unsafe {
                    let p = if size % 3 == 0 {
                        a.alloc_zeroed(l)
                    } else {
                        a.alloc(l)
                    };
                    assert!(!p.is_null());
                    assert_eq!(p as usize % align, 0, "size {size} align {align}");
                    if size % 3 == 0 {
                        assert!(std::slice::from_raw_parts(p, size).iter().all(|&b| b == 0));
                    }
                    p.write_bytes(0xA5, size);
                    let grown = a.realloc(p, l, size * 2 + 8);
                    assert!(!grown.is_null());
                    assert_eq!(grown as usize % align, 0, "grown {size} align {align}");
                    assert_eq!(*grown.add(size - 1), 0xA5);
                    if size % 7 == 0 {
                        held.push((grown, Layout::from_size_align(size * 2 + 8, align).unwrap()));
                    } else {
                        a.dealloc(grown, Layout::from_size_align(size * 2 + 8, align).unwrap());
                    }
                }
            }
        }
        for (p, l) in held {
            // SAFETY: allocated above with this layout.
            unsafe { a.dealloc(p, l) };
        }
    }
}
