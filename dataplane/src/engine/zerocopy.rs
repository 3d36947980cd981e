//! Zero-copy sends (IORING_OP_SENDMSG_ZC, `live.send_zerocopy`) on one connection: which
//! bytes must outlive the send, and for how long.
//!
//! A zero-copy send completes twice. The first completion carries the bytes sent (or
//! -errno) and IORING_CQE_F_MORE when a notification will follow; the notification
//! (IORING_CQE_F_NOTIF, same user_data) comes once the kernel no longer reads the send's
//! memory, which for TCP is when the peer has acknowledged the data. Until then the
//! `Bytes` the send pointed into must stay alive, although the send queue is done with
//! them. So while any notification is outstanding, items the queue finishes go to a holder
//! here, released as a whole when the last notification arrives. With batched sends
//! (`live.send_batch_ms`) that is between batches; when it is not (a peer that acknowledges
//! slowly, no batching), sends fall back to copying once the holder reaches
//! [`MAX_HELD_BYTES`], so what one connection pins stays bounded.

use bytes::Bytes;

use crate::media::send_queue::SendQueue;

/// Bytes held past which a connection's sends copy until its holder is released.
pub(crate) const MAX_HELD_BYTES: usize = 4 << 20;
/// Holder capacity kept across releases (a batch's usual item count): the larger vector of
/// a burst (a new viewer's GOP) is given back rather than kept per connection.
const HELD_CAPACITY: usize = 16;

/// IORING_SEND_ZC_REPORT_USAGE (Linux 6.2, in the send's ioprio field): the notification
/// then says whether the kernel copied after all (it does over loopback, and for a device
/// without scatter-gather). io-uring does not export the kernel's constants.
pub(crate) const REPORT_USAGE: u16 = 1 << 3;
/// IORING_NOTIF_USAGE_ZC_COPIED, in a notification's result when REPORT_USAGE was asked for.
pub(crate) const USAGE_COPIED: u32 = 1 << 31;

/// One connection's zero-copy state.
#[derive(Debug, Default)]
pub(crate) struct ZeroCopy {
    /// Zero-copy sends whose notification has not arrived, counted from submission (not from
    /// the first completion) so that the count does not depend on the order completions are
    /// seen in.
    pending: u32,
    /// The send in flight is a zero-copy send.
    in_flight: bool,
    held: Vec<Bytes>,
    held_bytes: usize,
}

impl ZeroCopy {
    /// The next send may go zero-copy as far as this connection is concerned (configuration
    /// and batch size are the caller's part).
    pub(crate) fn has_room(&self) -> bool {
        self.held_bytes < MAX_HELD_BYTES
    }

    /// A zero-copy send was submitted for the batch in flight.
    pub(crate) fn submitted(&mut self) {
        self.pending += 1;
        self.in_flight = true;
    }

    /// The first completion of the send in flight, zero-copy or not: `n` bytes sent (0 for
    /// an error), `more` as IORING_CQE_F_MORE. Completes the batch in `queue` and returns
    /// whether the send was zero-copy.
    pub(crate) fn completed(&mut self, queue: &mut SendQueue, n: usize, more: bool) -> bool {
        // While a notification is outstanding, an item finished now may still be read by the
        // kernel: sent by this send, or the rest of an item an earlier zero-copy send began
        // (a partly sent item stays queued until its last byte goes, by whatever send).
        if self.pending > 0 {
            self.held_bytes += queue.complete_into(n, &mut self.held);
        } else {
            queue.complete(n);
        }
        let zerocopy = std::mem::take(&mut self.in_flight);
        if zerocopy && !more {
            // No notification follows: the send failed before the kernel took the memory.
            self.notified();
        }
        zerocopy
    }

    /// A notification arrived: once none is outstanding, nothing held is read any more.
    pub(crate) fn notified(&mut self) {
        self.pending = self.pending.saturating_sub(1);
        if self.pending == 0 {
            self.held.clear();
            self.held.shrink_to(HELD_CAPACITY);
            self.held_bytes = 0;
        }
    }

    /// Notifications are outstanding: the kernel may still read what this connection holds
    /// (and queues), so neither may be freed.
    pub(crate) fn outstanding(&self) -> bool {
        self.pending > 0
    }

    #[cfg(test)]
    fn held_bytes(&self) -> usize {
        self.held_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::send_queue::QueueLimits;
    use crate::media::tag::FrameKind;

    fn queue_of(items: &[(u8, usize)]) -> SendQueue {
        let mut q = SendQueue::new(QueueLimits::default());
        for &(tag, len) in items {
            q.push_control(Bytes::from(vec![tag; len]));
        }
        q
    }

    fn batch(q: &mut SendQueue) -> usize {
        let mut iov = Vec::new();
        q.next_batch(&mut iov, 64, 1 << 20)
    }

    #[test]
    fn held_until_the_notification() {
        let mut q = queue_of(&[(1, 100), (2, 100)]);
        let mut zc = ZeroCopy::default();
        assert_eq!(batch(&mut q), 200);
        zc.submitted();
        assert!(zc.completed(&mut q, 200, true));
        assert!(q.is_empty());
        assert_eq!(zc.held_bytes(), 200);
        assert!(zc.outstanding());
        zc.notified();
        assert!(!zc.outstanding());
        assert_eq!(zc.held_bytes(), 0);
    }

    #[test]
    fn overlapping_sends_release_after_the_last_notification() {
        let mut q = queue_of(&[(1, 100), (2, 100)]);
        let mut zc = ZeroCopy::default();
        batch(&mut q);
        zc.submitted();
        zc.completed(&mut q, 100, true);
        batch(&mut q);
        zc.submitted();
        zc.notified(); // the first send's
        assert_eq!(zc.held_bytes(), 100);
        zc.completed(&mut q, 100, true);
        assert_eq!(zc.held_bytes(), 200);
        zc.notified();
        assert_eq!(zc.held_bytes(), 0);
        assert!(!zc.outstanding());
    }

    #[test]
    fn a_partly_sent_item_finished_by_a_copying_send_is_held_too() {
        let mut q = queue_of(&[(1, 100)]);
        let mut zc = ZeroCopy::default();
        batch(&mut q);
        zc.submitted();
        // The zero-copy send took 40 bytes: the item stays queued (alive), nothing is held.
        zc.completed(&mut q, 40, true);
        assert_eq!(zc.held_bytes(), 0);
        assert!(!q.is_empty());
        // A copying send finishes it while the notification is outstanding: the kernel may
        // still read its first 40 bytes, so it is held.
        batch(&mut q);
        assert!(!zc.completed(&mut q, 60, false));
        assert_eq!(zc.held_bytes(), 100);
        assert!(zc.outstanding());
        zc.notified();
        assert_eq!(zc.held_bytes(), 0);
    }

    #[test]
    fn copying_sends_drop_at_once_when_nothing_is_outstanding() {
        let mut q = queue_of(&[(1, 100)]);
        let mut zc = ZeroCopy::default();
        batch(&mut q);
        assert!(!zc.completed(&mut q, 100, false));
        assert_eq!(zc.held_bytes(), 0);
        assert!(q.is_empty());
    }

    #[test]
    fn failed_sends_with_and_without_a_notification() {
        let mut q = queue_of(&[(1, 100)]);
        let mut zc = ZeroCopy::default();
        // Refused outright: no notification follows.
        batch(&mut q);
        zc.submitted();
        assert!(zc.completed(&mut q, 0, false));
        assert!(!zc.outstanding());
        // Failed after the kernel took the memory (cancelled, reset): one follows.
        batch(&mut q);
        zc.submitted();
        assert!(zc.completed(&mut q, 0, true));
        assert!(zc.outstanding());
        assert_eq!(q.queued_bytes(), 100);
        zc.notified();
        assert!(!zc.outstanding());
    }

    #[test]
    fn a_full_holder_stops_zero_copy_until_released() {
        let mut q = SendQueue::new(QueueLimits::default());
        let mut zc = ZeroCopy::default();
        let chunk = MAX_HELD_BYTES / 4;
        for i in 0..6u32 {
            q.push_media(Bytes::from(vec![0; chunk]), i, FrameKind::VideoKey);
        }
        let mut iov = Vec::new();
        let mut sends = 0;
        while zc.has_room() {
            assert!(q.next_batch(&mut iov, 64, chunk) > 0);
            zc.submitted();
            zc.completed(&mut q, chunk, true);
            sends += 1;
        }
        assert_eq!(sends, 4);
        assert_eq!(zc.held_bytes(), MAX_HELD_BYTES);
        for _ in 0..sends {
            zc.notified();
        }
        assert!(zc.has_room());
    }
}
