//! A counting allocator for `benches/allocations-per-request.sh`: every call into the heap,
//! counted, so allocations per request can be measured on a real run (issue 13). Callgrind
//! counts calls into mimalloc too (docs/BENCHMARKS.md); this is the independent check, with
//! real sockets and no emulation.
//!
//! Built only with the `alloc-count` feature (`cargo build --release --features alloc-count`),
//! which makes [`Counting`] the global allocator of the binary and of
//! `examples/bare-pingora.rs`, and adds `consentgate_allocations_total` and
//! `consentgate_allocated_bytes_total` to `/metrics`. A normal build neither counts nor shows
//! them: each count is an atomic add on every allocation.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicU64, Ordering};

/// Declares the global allocator of the binary and of `examples/bare-pingora.rs`: mimalloc,
/// wrapped in [`Counting`] in a build with the `alloc-count` feature (one place, so the proxy
/// and the pingora floor it is compared with are always counted alike).
#[macro_export]
macro_rules! global_allocator {
    () => {
        #[cfg(not(feature = "alloc-count"))]
        #[global_allocator]
        static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

        #[cfg(feature = "alloc-count")]
        #[global_allocator]
        static GLOBAL: $crate::alloc_count::Counting<mimalloc::MiMalloc> =
            $crate::alloc_count::Counting(mimalloc::MiMalloc);
    };
}

/// Allocations (`alloc`, `alloc_zeroed` and `realloc`: each is a call a request pays for).
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
/// Bytes asked for by those calls (for `realloc`, the new size).
static BYTES: AtomicU64 = AtomicU64::new(0);

/// Wraps an allocator and counts the calls that take memory.
pub struct Counting<A>(pub A);

impl<A> Counting<A> {
    fn count(size: usize) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(size as u64, Ordering::Relaxed);
    }
}

// SAFETY: every call is passed unchanged to the wrapped allocator; counting touches only two
// atomics and never allocates.
unsafe impl<A: GlobalAlloc> GlobalAlloc for Counting<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Self::count(layout.size());
        unsafe { self.0.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Self::count(layout.size());
        unsafe { self.0.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        Self::count(new_size);
        unsafe { self.0.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { self.0.dealloc(ptr, layout) }
    }
}

/// Allocations and bytes counted so far in this process.
pub fn totals() -> (u64, u64) {
    (
        ALLOCATIONS.load(Ordering::Relaxed),
        BYTES.load(Ordering::Relaxed),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wrapper counts what it hands out, through a real allocator (not the global one, so
    /// other tests running at the same time do not change the figures).
    #[test]
    fn counts_each_call_that_takes_memory() {
        let a = Counting(std::alloc::System);
        let (n0, b0) = totals();
        let layout = Layout::from_size_align(100, 8).unwrap();
        unsafe {
            let p = a.alloc(layout);
            let p = a.realloc(p, layout, 300);
            a.dealloc(p, Layout::from_size_align(300, 8).unwrap());
            let z = a.alloc_zeroed(layout);
            assert_eq!(*z, 0);
            a.dealloc(z, layout);
        }
        let (n1, b1) = totals();
        // At least ours: with the feature on, the global allocator counts into the same totals.
        assert!(n1 - n0 >= 3, "{n0} -> {n1}");
        assert!(b1 - b0 >= 500, "{b0} -> {b1}");
    }
}
