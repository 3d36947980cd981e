//! An instance's heap, with its memory budget kept by the allocator itself. QuickJS's own
//! limit refuses an allocation over the budget, but then the error it throws may itself
//! not fit, and the script sees a bare `null` it cannot tell from `throw null`; this
//! allocator refuses instead and remembers it did, so an overrun is always known as one.
//!
//! Its count of bytes held is shared with the context, which reads it after every entry:
//! QuickJS's own figure (`JS_ComputeMemoryUsage`) walks every object of the heap, and
//! after each connect that walk was most of the script thread's time.

use std::cell::Cell;
use std::ptr;
use std::rc::Rc;

use rquickjs::allocator::{Allocator, RustAllocator};

pub(super) struct BudgetedHeap {
    inner: RustAllocator,
    /// Bytes held (usable sizes of what `inner` handed out and has not taken back).
    used: Rc<Cell<usize>>,
    limit: usize,
    /// Set when an allocation was refused for the budget (the host reads and clears it).
    refused: Rc<Cell<bool>>,
}

impl BudgetedHeap {
    pub(super) fn new(limit: usize, used: Rc<Cell<usize>>, refused: Rc<Cell<bool>>) -> Self {
        BudgetedHeap {
            inner: RustAllocator,
            used,
            limit,
            refused,
        }
    }

    fn admits(&mut self, more: usize) -> bool {
        let ok = self
            .used
            .get()
            .checked_add(more)
            .is_some_and(|n| n <= self.limit);
        if !ok {
            self.refused.set(true);
        }
        ok
    }

    fn add(&self, n: usize) {
        self.used.set(self.used.get().saturating_add(n));
    }

    fn sub(&self, n: usize) {
        self.used.set(self.used.get().saturating_sub(n));
    }
}

// SAFETY: every pointer handed out comes from `RustAllocator` (whose contract this keeps)
// and goes back to it; the wrapper only counts sizes and refuses requests.
unsafe impl Allocator for BudgetedHeap {
    fn alloc(&mut self, size: usize) -> *mut u8 {
        if !self.admits(size) {
            return ptr::null_mut();
        }
        let p = self.inner.alloc(size);
        if !p.is_null() {
            // SAFETY: `p` was just allocated by `inner`.
            self.add(unsafe { RustAllocator::usable_size(p) });
        }
        p
    }

    fn calloc(&mut self, count: usize, size: usize) -> *mut u8 {
        let Some(total) = count.checked_mul(size) else {
            return ptr::null_mut();
        };
        if !self.admits(total) {
            return ptr::null_mut();
        }
        let p = self.inner.calloc(count, size);
        if !p.is_null() {
            // SAFETY: `p` was just allocated by `inner`.
            self.add(unsafe { RustAllocator::usable_size(p) });
        }
        p
    }

    unsafe fn dealloc(&mut self, ptr: *mut u8) {
        // SAFETY: the caller passes a pointer of ours, that is of `inner`.
        unsafe {
            self.sub(RustAllocator::usable_size(ptr));
            self.inner.dealloc(ptr);
        }
    }

    unsafe fn realloc(&mut self, ptr: *mut u8, new_size: usize) -> *mut u8 {
        if ptr.is_null() {
            return self.alloc(new_size);
        }
        // SAFETY: the caller passes a pointer of ours, that is of `inner`.
        unsafe {
            let old = RustAllocator::usable_size(ptr);
            if new_size > old && !self.admits(new_size - old) {
                return ptr::null_mut();
            }
            let p = self.inner.realloc(ptr, new_size);
            if !p.is_null() {
                self.sub(old);
                self.add(RustAllocator::usable_size(p));
            }
            p
        }
    }

    unsafe fn usable_size(ptr: *mut u8) -> usize {
        // SAFETY: as the caller guarantees for us.
        unsafe { RustAllocator::usable_size(ptr) }
    }
}
