//! A provided-buffer ring: the kernel picks a buffer for each multishot receive, so a
//! worker needs memory for the receives actually in progress, not one buffer per connection.

use std::alloc::{self, Layout};
use std::io;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;
use io_uring::IoUring;

pub(crate) struct BufRing {
    ring: *mut BufRingEntry,
    ring_layout: Layout,
    entries: u16,
    buf_size: usize,
    bufs: Box<[u8]>,
    tail: u16,
    /// `tail` as last published.
    published: u16,
    pub(crate) bgid: u16,
}

impl BufRing {
    /// `entries` must be a power of two (a kernel rule).
    pub(crate) fn new(
        ring: &IoUring,
        entries: u16,
        buf_size: usize,
        bgid: u16,
    ) -> io::Result<Self> {
        if !entries.is_power_of_two() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "buffer ring size must be a power of two",
            ));
        }
        let ring_layout = Layout::from_size_align(
            usize::from(entries) * std::mem::size_of::<BufRingEntry>(),
            4096,
        )
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        // SAFETY: the layout has a non-zero size.
        let ring_ptr = unsafe { alloc::alloc_zeroed(ring_layout) }.cast::<BufRingEntry>();
        if ring_ptr.is_null() {
            return Err(io::Error::new(
                io::ErrorKind::OutOfMemory,
                "buffer ring allocation failed",
            ));
        }
        let bufs = vec![0u8; usize::from(entries) * buf_size].into_boxed_slice();
        let mut this = BufRing {
            ring: ring_ptr,
            ring_layout,
            entries,
            buf_size,
            bufs,
            tail: 0,
            published: 0,
            bgid,
        };
        // SAFETY: the ring memory lives as long as `this`, and `Io` unregisters it before
        // dropping it (see `Io::drop`).
        unsafe {
            ring.submitter()
                .register_buf_ring_with_flags(ring_ptr as u64, entries, bgid, 0)?;
        }
        for bid in 0..entries {
            this.push(bid);
        }
        this.publish();
        Ok(this)
    }

    /// The bytes the kernel wrote into buffer `bid`.
    pub(crate) fn buffer(&self, bid: u16, len: usize) -> &[u8] {
        let start = usize::from(bid) * self.buf_size;
        let len = len.min(self.buf_size);
        self.bufs.get(start..start + len).unwrap_or(&[])
    }

    /// Hands buffer `bid` back to the kernel (visible after `publish`).
    pub(crate) fn recycle(&mut self, bid: u16) {
        if bid < self.entries {
            self.push(bid);
        }
    }

    fn push(&mut self, bid: u16) {
        let mask = self.entries - 1;
        let addr = self.bufs.as_ptr() as u64 + (usize::from(bid) * self.buf_size) as u64;
        // SAFETY: the index is masked into the ring, which has `entries` slots.
        let entry = unsafe { &mut *self.ring.add(usize::from(self.tail & mask)) };
        entry.set_addr(addr);
        entry.set_len(self.buf_size as u32);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    /// Makes recycled buffers visible to the kernel with one release store; returns how many
    /// this made available.
    pub(crate) fn publish(&mut self) -> u16 {
        // SAFETY: the tail field lives inside the first ring entry, which we own; the kernel
        // reads it concurrently, hence the atomic store.
        unsafe {
            let tail = BufRingEntry::tail(self.ring).cast::<AtomicU16>();
            (*tail).store(self.tail, Ordering::Release);
        }
        let made = self.tail.wrapping_sub(self.published);
        self.published = self.tail;
        made
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout; the kernel no longer references it
        // (unregistered by `Io::drop`, or the ring is already gone).
        unsafe { alloc::dealloc(self.ring.cast(), self.ring_layout) };
    }
}
