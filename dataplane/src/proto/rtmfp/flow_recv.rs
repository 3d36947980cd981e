//! The receiving side of a flow (RFC 7016 §3.6.3): fragments reassembled into messages and
//! delivered in order; what the sender abandoned (its forward sequence number moved past)
//! is skipped; acknowledgements carry the cumulative ack, ranges above it, and the free
//! buffer, which bounds what the sender may have in flight (flow control).

use std::collections::BTreeMap;

use super::chunk::{self, Fragment, UserData};

/// Most ranges one acknowledgement names (the rest waits for the next one).
const MAX_ACK_RANGES: usize = 64;

#[derive(Debug)]
struct RecvFrag {
    fragment: Fragment,
    data: Vec<u8>,
    abandoned: bool,
}

#[derive(Debug)]
pub(crate) struct RecvFlow {
    pub id: u64,
    frags: BTreeMap<u64, RecvFrag>,
    /// Every sequence number at or below it is received, abandoned or delivered.
    cumulative: u64,
    /// The next sequence number to deliver.
    next_deliver: u64,
    buffered: usize,
    limit: usize,
    fin: Option<u64>,
    /// The sender's forward sequence number: missing fragments at or below it are abandoned.
    abandoned_through: u64,
    pub complete: bool,
    pub ack_due: bool,
    /// We refused the flow with this code (sent in Flow Exception instead of acks).
    pub rejected: Option<u64>,
}

/// What one fragment did.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Received {
    pub messages: Vec<Vec<u8>>,
    /// The flow ended with this fragment (everything through FIN delivered).
    pub finished: bool,
}

impl RecvFlow {
    pub(crate) fn new(id: u64, limit: usize) -> Self {
        RecvFlow {
            id,
            frags: BTreeMap::new(),
            cumulative: 0,
            next_deliver: 1,
            buffered: 0,
            limit,
            fin: None,
            abandoned_through: 0,
            complete: false,
            ack_due: false,
            rejected: None,
        }
    }

    pub(crate) fn on_data(&mut self, d: &UserData<'_>) -> Received {
        self.ack_due = true;
        let mut r = Received::default();
        if self.rejected.is_some() || self.complete {
            return r;
        }
        let fsn = d.seq - d.fsn_offset;
        if d.seq > self.cumulative && !self.frags.contains_key(&d.seq) {
            // Flow control: past the advertised window the fragment is dropped (not acked),
            // and the sender retransmits when the window opens. Empty fragments count too,
            // so that a peer cannot grow the map without bound.
            if self.buffered + d.data.len() > self.limit || self.frags.len() >= self.limit / 64 + 64
            {
                return r;
            }
            self.buffered += d.data.len();
            self.frags.insert(
                d.seq,
                RecvFrag {
                    fragment: d.fragment,
                    data: d.data.to_vec(),
                    abandoned: d.abandon,
                },
            );
            if d.fin {
                self.fin = Some(d.seq);
            }
        }
        // The sender has everything through fsn acknowledged or abandoned: whatever of it
        // never arrived will not come.
        self.abandoned_through = self.abandoned_through.max(fsn);
        self.advance_cumulative();
        self.deliver(&mut r.messages);
        if self.fin.is_some_and(|f| self.next_deliver > f) {
            self.complete = true;
            r.finished = true;
        }
        r
    }

    fn advance_cumulative(&mut self) {
        self.cumulative = self
            .cumulative
            .max(self.next_deliver - 1)
            .max(self.abandoned_through);
        while self.frags.contains_key(&(self.cumulative + 1)) {
            self.cumulative += 1;
        }
    }

    fn take(&mut self, seq: u64) -> Option<RecvFrag> {
        let f = self.frags.remove(&seq)?;
        self.buffered -= f.data.len();
        Some(f)
    }

    fn deliver(&mut self, out: &mut Vec<Vec<u8>>) {
        loop {
            let Some(first) = self.frags.get(&self.next_deliver) else {
                if self.next_deliver > self.abandoned_through {
                    return;
                }
                // A gap the sender abandoned: skip to what follows it.
                let next_here = self
                    .frags
                    .range(self.next_deliver..)
                    .next()
                    .map_or(u64::MAX, |(s, _)| *s);
                self.next_deliver = next_here.min(self.abandoned_through + 1);
                continue;
            };
            if first.abandoned || matches!(first.fragment, Fragment::Middle | Fragment::End) {
                // Abandoned, or the rest of a message whose start was abandoned.
                self.take(self.next_deliver);
                self.next_deliver += 1;
                continue;
            }
            if first.fragment == Fragment::Whole {
                if let Some(f) = self.take(self.next_deliver) {
                    if !f.data.is_empty() || self.fin != Some(self.next_deliver) {
                        out.push(f.data);
                    }
                }
                self.next_deliver += 1;
                continue;
            }
            // Begin: deliverable once every fragment through its End is here.
            let mut end = self.next_deliver + 1;
            loop {
                match self.frags.get(&end) {
                    Some(f) if !f.abandoned && f.fragment == Fragment::Middle => end += 1,
                    Some(f) if !f.abandoned && f.fragment == Fragment::End => break,
                    Some(_) => {
                        // A new message (or an abandoned piece) before this one's End: the
                        // sender abandoned the rest of it.
                        for s in self.next_deliver..end {
                            self.take(s);
                        }
                        self.next_deliver = end;
                        break;
                    }
                    None if end <= self.abandoned_through => {
                        // A piece of it was abandoned: the message is lost.
                        for s in self.next_deliver..end {
                            self.take(s);
                        }
                        self.next_deliver = end;
                        break;
                    }
                    None => return,
                }
            }
            if self.next_deliver == end {
                continue;
            }
            let mut msg = Vec::new();
            for s in self.next_deliver..=end {
                if let Some(f) = self.take(s) {
                    msg.extend_from_slice(&f.data);
                }
            }
            out.push(msg);
            self.next_deliver = end + 1;
        }
    }

    /// Fragments are waiting above a hole (a loss to report at once).
    pub(crate) fn has_gap(&self) -> bool {
        self.frags
            .keys()
            .next_back()
            .is_some_and(|&s| s > self.cumulative)
    }

    /// Free buffer in the 1024-byte blocks acknowledgements count.
    pub(crate) fn buffer_blocks(&self) -> u64 {
        (self.limit.saturating_sub(self.buffered) / 1024) as u64
    }

    /// Appends this flow's acknowledgement chunk (or Flow Exception) to `out`.
    pub(crate) fn write_ack(&mut self, out: &mut Vec<u8>) {
        self.ack_due = false;
        if let Some(code) = self.rejected {
            chunk::encode::flow_vlus(out, chunk::kind::FLOW_EXCEPTION, &[self.id, code]);
            return;
        }
        let mut ranges: Vec<(u64, u64)> = Vec::new();
        for &s in self.frags.keys() {
            if s <= self.cumulative + 1 {
                continue;
            }
            if let Some(r) = ranges.last_mut().filter(|r| r.1 + 1 == s) {
                r.1 = s;
            } else if ranges.len() == MAX_ACK_RANGES {
                break;
            } else {
                ranges.push((s, s));
            }
        }
        chunk::encode::ack_ranges(out, self.id, self.buffer_blocks(), self.cumulative, &ranges);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ud(seq: u64, fsn_offset: u64, fragment: Fragment, data: &[u8]) -> UserData<'_> {
        UserData {
            flow_id: 1,
            seq,
            fsn_offset,
            fragment,
            abandon: false,
            fin: false,
            options: None,
            data,
        }
    }

    #[test]
    fn reassembles_in_order_whatever_the_arrival_order() {
        let mut f = RecvFlow::new(1, 64 * 1024);
        assert!(f
            .on_data(&ud(3, 3, Fragment::End, b"c"))
            .messages
            .is_empty());
        assert!(f
            .on_data(&ud(4, 4, Fragment::Whole, b"d"))
            .messages
            .is_empty());
        assert!(f
            .on_data(&ud(1, 1, Fragment::Begin, b"a"))
            .messages
            .is_empty());
        let mut out = Vec::new();
        f.write_ack(&mut out);
        // flow 1, 63 free blocks, cumulative 1, range 3..4
        assert_eq!(&out[3..], &[1, 63, 1, 0, 1]);
        let r = f.on_data(&ud(2, 2, Fragment::Middle, b"b"));
        assert_eq!(r.messages, vec![b"abc".to_vec(), b"d".to_vec()]);
        assert_eq!(f.cumulative, 4);
        assert_eq!(f.buffered, 0);
    }

    #[test]
    fn forward_sequence_number_skips_abandoned_messages() {
        let mut f = RecvFlow::new(1, 1 << 20);
        f.on_data(&ud(1, 1, Fragment::Whole, b"a"));
        // 2 (Begin) and 3 (Middle) never arrive; 4 (End) does; then 5 says fsn = 3.
        assert!(f
            .on_data(&ud(4, 4, Fragment::End, b"x"))
            .messages
            .is_empty());
        let r = f.on_data(&ud(5, 2, Fragment::Whole, b"e"));
        assert_eq!(r.messages, vec![b"e".to_vec()]);
        assert_eq!(f.cumulative, 5);
    }

    #[test]
    fn fin_completes_and_window_limits() {
        let mut f = RecvFlow::new(1, 2048);
        assert_eq!(f.buffer_blocks(), 2);
        // Out of order so it stays buffered.
        f.on_data(&ud(2, 2, Fragment::Whole, &[0; 2000]));
        assert_eq!(f.buffer_blocks(), 0);
        // No room: dropped (not acknowledged).
        f.on_data(&ud(3, 3, Fragment::Whole, &[0; 100]));
        assert!(!f.frags.contains_key(&3));
        let r = f.on_data(&ud(1, 1, Fragment::Whole, b"a"));
        assert_eq!(r.messages.len(), 2);
        let mut fin = ud(3, 3, Fragment::Whole, b"");
        fin.fin = true;
        let r = f.on_data(&fin);
        assert!(r.finished && r.messages.is_empty());
        assert!(f.complete);
    }

    proptest! {
        /// Any arrival order, with duplicates, of the fragments of any messages delivers
        /// exactly those messages, in order, once.
        #[test]
        fn reassembly_delivers_every_message_once_in_order(
            sizes in proptest::collection::vec(1usize..5, 1..12),
            order in proptest::collection::vec(any::<u16>(), 0..80),
        ) {
            let mut frags = Vec::new();
            let mut msgs = Vec::new();
            let mut seq = 1u64;
            for (m, &n) in sizes.iter().enumerate() {
                let mut msg = Vec::new();
                for i in 0..n {
                    let fragment = match (n, i) {
                        (1, _) => Fragment::Whole,
                        (_, 0) => Fragment::Begin,
                        (_, i) if i + 1 == n => Fragment::End,
                        _ => Fragment::Middle,
                    };
                    let data = vec![m as u8, i as u8];
                    msg.extend_from_slice(&data);
                    frags.push((seq, fragment, data));
                    seq += 1;
                }
                msgs.push(msg);
            }
            // Arrival: the shuffled indices, then everything (retransmissions).
            let mut arrivals: Vec<usize> = order.iter().map(|&o| o as usize % frags.len()).collect();
            arrivals.extend(0..frags.len());
            let mut f = RecvFlow::new(1, 1 << 20);
            let mut got = Vec::new();
            for i in arrivals {
                let (s, fr, d) = &frags[i];
                got.extend(f.on_data(&ud(*s, *s, *fr, d)).messages);
            }
            prop_assert_eq!(got, msgs);
            prop_assert_eq!(f.buffered, 0);
        }

        #[test]
        fn arbitrary_fragments_never_panic(
            frags in proptest::collection::vec((1u64..40, 0u64..40, 0u8..4, any::<bool>(), any::<bool>(), 0usize..300), 0..60),
        ) {
            let mut f = RecvFlow::new(1, 4096);
            let data = [7u8; 300];
            for (seq, off, fr, abandon, fin, len) in frags {
                let fragment = [Fragment::Whole, Fragment::Begin, Fragment::Middle, Fragment::End][fr as usize];
                let d = UserData { flow_id: 1, seq, fsn_offset: off.min(seq), fragment, abandon, fin, options: None, data: &data[..len] };
                f.on_data(&d);
                let mut out = Vec::new();
                f.write_ack(&mut out);
                prop_assert!(f.buffered <= 4096 + 300);
            }
        }
    }
}
