//! The sending side of a flow (RFC 7016 §3.6.2): messages cut into fragments with sequence
//! numbers as packets are filled (a fragment takes the room its packet has left, so the
//! next message's first fragment fills the packet its predecessor's last one began, and a
//! session's data packets are all full: one UDP GSO run), kept until acknowledged; retransmitted when a timeout or three later
//! acknowledgements say they were lost; abandoned when their deadline passes (partial
//! reliability: late video is worth less than the next frame); limited by the receiver's
//! advertised buffer.

use std::collections::VecDeque;

use bytes::Bytes;

use super::chunk::{self, Fragment, UserData};
use super::vlu;

/// RFC 7016 §3.6.2.4: a fragment is lost after this many acknowledgements of later ones.
const NAKS_FOR_LOSS: u8 = 3;
/// Until the first acknowledgement, assume the receiver can take this much.
const INITIAL_PEER_BUFFER: u64 = 64 * 1024;

/// Fragment records a flow's queue keeps room for when it shrinks.
const MIN_QUEUE: usize = 16;

/// User Data option types (RFC 7016 §2.3.11.1).
pub(crate) const OPT_METADATA: u64 = 0x00;
pub(crate) const OPT_RETURN_ASSOCIATION: u64 = 0x0a;

/// Most bytes a message may carry before its shared payload (a Flash flow message's type
/// and timestamp: `flash::MESSAGE_HEAD`).
pub(crate) const MAX_HEAD: usize = 5;

/// Bytes a message carries before its payload, kept inline so that the payload can stay a
/// slice of bytes every viewer shares (a copy per viewer was most of an RTMFP viewer's
/// memory).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Head {
    len: u8,
    bytes: [u8; MAX_HEAD],
}

impl Head {
    /// `bytes` beyond `MAX_HEAD` are not kept (callers pass a fixed-size header).
    pub(crate) fn new(bytes: &[u8]) -> Head {
        let mut h = Head::default();
        let n = bytes.len().min(MAX_HEAD);
        h.bytes[..n].copy_from_slice(&bytes[..n]);
        h.len = n as u8;
        h
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

#[derive(Debug)]
pub(crate) struct SendFrag {
    pub seq: u64,
    pub fragment: Fragment,
    /// Sent before `data` (only a message's first fragment has one).
    pub head: Head,
    pub data: Bytes,
    pub abandoned: bool,
    pub fin: bool,
    pub in_flight: bool,
    pub ever_sent: bool,
    /// The session-wide transmission number of its last sending, to tell which fragments
    /// later acknowledgements passed over.
    pub tsn: u64,
    pub sent_at: u64,
    pub naks: u8,
    /// Abandon (if still unacknowledged) at this time.
    pub expires_at: Option<u64>,
    /// Bytes it took in its last packet (counted against the congestion window).
    pub wire_len: u64,
}

/// A queued message (or what is left of it) not yet cut into fragments: it gets sequence
/// numbers only as packets take it, each fragment as large as its packet's room allows.
#[derive(Debug)]
struct Pending {
    head: Head,
    body: Bytes,
    /// Bytes of the message (head then body) already cut into fragments.
    cut: usize,
    max_frag: usize,
    deadline: Option<u64>,
}

impl Pending {
    fn total(&self) -> usize {
        self.head.as_slice().len() + self.body.len()
    }
}

/// The smallest fragment cut from a message that does not end it: a packet with less room
/// left goes as it is rather than carry a sliver. With a chunk header (4 to ~12 bytes)
/// this stays under the session's `PAD_TO_FULL`, so such a packet is still padded to the
/// full size and does not end a UDP GSO run.
const MIN_CUT: usize = 16;

#[derive(Debug)]
pub(crate) struct SendFlow {
    pub id: u64,
    /// The option list sent with the first fragments until acknowledged.
    options: Vec<u8>,
    options_acked: bool,
    next_seq: u64,
    /// Fragments with sequence numbers, in order: in flight, lost (to resend), or never sent
    /// (an abandoned message's marker, FIN); the rest of the flow's data waits in `pending`.
    pub(crate) queue: VecDeque<SendFrag>,
    pending: VecDeque<Pending>,
    /// `close` came while messages were pending: the last fragment cut carries FIN.
    fin_owed: bool,
    /// Payload bytes in `queue` and `pending` (what `queued_bytes` reports, kept as they
    /// change rather than summed over the fragments at every call).
    queued: usize,
    /// Fragments of `queue` in flight: when all are, a packet has nothing to resend and
    /// skips the walk of the queue (it was made for every packet).
    in_flight: usize,
    pub peer_buffer: u64,
    pub closing: bool,
    /// The receiver refused the flow (its code).
    pub exception: Option<u64>,
    pub outstanding: u64,
    /// The newest transmission number ever acknowledged.
    max_acked_tsn: u64,
    /// Lower bounds of `oldest_in_flight` and `next_expiry`, lowered as fragments are sent
    /// and queued and made exact by `refresh_timers` when the session's timers run: the
    /// session's deadline, asked for after every busy worker turn, then costs no scan of
    /// the fragments (it was the worker's largest cost at 300 viewers). A stale bound only
    /// makes the session's timers run early once, which refreshes it.
    sent_floor: Option<u64>,
    expiry_floor: Option<u64>,
}

impl SendFrag {
    /// A fragment just cut, never sent.
    fn unsent(
        seq: u64,
        fragment: Fragment,
        head: Head,
        data: Bytes,
        fin: bool,
        expires_at: Option<u64>,
    ) -> Self {
        SendFrag {
            seq,
            fragment,
            head,
            data,
            abandoned: false,
            fin,
            in_flight: false,
            ever_sent: false,
            tsn: 0,
            sent_at: 0,
            naks: 0,
            expires_at,
            wire_len: 0,
        }
    }

    fn mark_sent(&mut self, now: u64, tsn: &mut u64, used: usize) {
        self.in_flight = true;
        self.ever_sent = true;
        self.naks = 0;
        self.sent_at = now;
        *tsn += 1;
        self.tsn = *tsn;
        self.wire_len = used as u64;
    }

    /// Payload bytes (head and data).
    pub(crate) fn len(&self) -> usize {
        self.head.as_slice().len() + self.data.len()
    }
}

/// What an acknowledgement did.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct AckOutcome {
    pub acked_bytes: u64,
    pub newly_lost: bool,
    pub progress: bool,
}

impl SendFlow {
    pub(crate) fn new(id: u64, metadata: &[u8], return_association: Option<u64>) -> Self {
        let mut options = Vec::new();
        vlu::put_option(OPT_METADATA, metadata, &mut options);
        if let Some(a) = return_association {
            let mut v = Vec::new();
            vlu::put(a, &mut v);
            vlu::put_option(OPT_RETURN_ASSOCIATION, &v, &mut options);
        }
        SendFlow {
            id,
            options,
            options_acked: false,
            next_seq: 1,
            queue: VecDeque::new(),
            pending: VecDeque::new(),
            fin_owed: false,
            queued: 0,
            in_flight: 0,
            peer_buffer: INITIAL_PEER_BUFFER,
            closing: false,
            exception: None,
            outstanding: 0,
            max_acked_tsn: 0,
            sent_floor: None,
            expiry_floor: None,
        }
    }

    /// Queues one message, cut into fragments of at most `max_frag` bytes (`Bytes` slices:
    /// no copy). `deadline`: abandon what is still unacknowledged at that time.
    #[cfg(test)]
    pub(crate) fn send(&mut self, message: Bytes, max_frag: usize, deadline: Option<u64>) {
        self.send_parts(Head::default(), message, max_frag, deadline)
    }

    /// Queues one message of `head` then `body`, to be cut into fragments of at most
    /// `max_frag` bytes as packets take it (`write_fragments`): the first carries the head,
    /// and every fragment's payload is a slice of `body` (no copy).
    pub(crate) fn send_parts(
        &mut self,
        head: Head,
        body: Bytes,
        max_frag: usize,
        deadline: Option<u64>,
    ) {
        if self.closing || self.exception.is_some() {
            return;
        }
        if let Some(d) = deadline {
            self.expiry_floor = Some(self.expiry_floor.map_or(d, |e| e.min(d)));
        }
        let p = Pending {
            head,
            body,
            cut: 0,
            max_frag: max_frag.max(1),
            deadline,
        };
        self.queued += p.total();
        self.pending.push_back(p);
    }

    /// Payload bytes queued or in flight.
    pub(crate) fn queued_bytes(&self) -> usize {
        self.queued
    }

    /// Cuts the next fragment, of at most `len` bytes, off the first pending message and
    /// gives it the next sequence number (not yet in the queue).
    fn cut(&mut self, len: usize) -> Option<SendFrag> {
        let p = self.pending.front_mut()?;
        let (h, total) = (p.head.as_slice().len(), p.total());
        let from = p.cut;
        let to = (from + len.max(1)).min(total);
        let fragment = match (from == 0, to == total) {
            (true, true) => Fragment::Whole,
            (true, false) => Fragment::Begin,
            (false, true) => Fragment::End,
            (false, false) => Fragment::Middle,
        };
        // Offsets in the message (head then body), then in the body.
        let head = Head::new(
            p.head
                .as_slice()
                .get(from.min(h)..to.min(h))
                .unwrap_or_default(),
        );
        let data = p.body.slice(from.saturating_sub(h)..to.saturating_sub(h));
        let deadline = p.deadline;
        p.cut = to;
        let last = to == total;
        if last {
            self.pending.pop_front();
        }
        let fin = last && self.pending.is_empty() && self.fin_owed;
        if fin {
            self.fin_owed = false;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        Some(SendFrag::unsent(seq, fragment, head, data, fin, deadline))
    }

    /// A FIN fragment of its own (nothing left to carry it), queued.
    fn push_fin(&mut self) {
        self.queue.push_back(SendFrag::unsent(
            self.next_seq,
            Fragment::Whole,
            Head::default(),
            Bytes::new(),
            true,
            None,
        ));
        self.next_seq += 1;
    }

    /// Ends the flow: the last fragment (an empty one if need be) carries FIN.
    pub(crate) fn close(&mut self) {
        if self.closing {
            return;
        }
        self.closing = true;
        if !self.pending.is_empty() {
            self.fin_owed = true;
            return;
        }
        match self.queue.back_mut() {
            Some(f) if !f.ever_sent => f.fin = true,
            _ => self.push_fin(),
        }
    }

    /// Closed and everything acknowledged: the flow can go.
    pub(crate) fn is_done(&self) -> bool {
        (self.closing && self.queue.is_empty() && self.pending.is_empty())
            || self.exception.is_some()
    }

    /// The forward sequence number: everything at or below it is acknowledged or
    /// abandoned (RFC 7016 §3.6.2.3.1).
    fn fsn(&self) -> u64 {
        let mut fsn = self.queue.front().map_or(self.next_seq - 1, |f| f.seq - 1);
        for f in &self.queue {
            if f.abandoned && f.seq == fsn + 1 {
                fsn += 1;
            } else {
                break;
            }
        }
        fsn
    }

    /// Abandons fragments past their deadline; returns the bytes no longer in flight.
    /// A pending message past it goes without a trace if none of it was cut; the rest of
    /// one partly cut becomes one abandoned fragment, so the receiver learns its end was
    /// given up (as it would had the message been cut whole).
    pub(crate) fn expire(&mut self, now: u64) -> u64 {
        let mut freed = 0;
        let mut dropped = 0;
        for f in self.queue.iter_mut() {
            if !f.abandoned && f.expires_at.is_some_and(|d| d <= now) {
                f.abandoned = true;
                dropped += f.len();
                f.head = Head::default();
                f.data = Bytes::new();
                if f.in_flight {
                    f.in_flight = false;
                    self.in_flight -= 1;
                    freed += f.wire_len;
                }
            }
        }
        let mut i = 0;
        while i < self.pending.len() {
            let p = &self.pending[i];
            if p.deadline.is_none_or(|d| d > now) {
                i += 1;
                continue;
            }
            dropped += p.total() - p.cut;
            let (cut, deadline) = (p.cut, p.deadline);
            self.pending.remove(i);
            if cut == 0 {
                continue;
            }
            let fin = self.pending.is_empty() && self.fin_owed;
            self.fin_owed &= !fin;
            let end = SendFrag::unsent(
                self.next_seq,
                Fragment::End,
                Head::default(),
                Bytes::new(),
                fin,
                deadline,
            );
            self.queue.push_back(SendFrag {
                abandoned: true,
                ..end
            });
            self.next_seq += 1;
        }
        if self.fin_owed && self.pending.is_empty() {
            self.fin_owed = false;
            self.push_fin();
        }
        self.queued -= dropped.min(self.queued);
        self.outstanding = self.outstanding.saturating_sub(freed);
        freed
    }

    /// Whether a fragment is waiting to be (re)sent and the receiver has room for it.
    #[cfg(test)]
    pub(crate) fn has_sendable(&self) -> bool {
        self.queue.iter().any(|f| !f.in_flight && self.fits(f))
            || (!self.pending.is_empty() && self.window() > 0)
    }

    /// Payload bytes the receiver has room for now (one fragment always goes when nothing
    /// is in flight, as a window probe would).
    fn window(&self) -> usize {
        if self.outstanding == 0 {
            return usize::MAX;
        }
        usize::try_from(self.peer_buffer.saturating_sub(self.outstanding)).unwrap_or(usize::MAX)
    }

    fn fits(&self, f: &SendFrag) -> bool {
        // Abandoned fragments and FIN take no buffer; else the receiver must have room for
        // what is in flight plus this (one fragment always goes, as a window probe would).
        f.abandoned
            || f.len() == 0
            || self.outstanding == 0
            || self.outstanding + f.len() as u64 <= self.peer_buffer
    }

    /// Writes the next sendable fragments as chunks into `out` until `room` bytes are used
    /// (`tsn` numbers each sending; returns the bytes written): first those of the queue
    /// waiting to be (re)sent, then new ones cut from the pending messages, each as large
    /// as the room left allows, so that the packet is filled across message boundaries.
    pub(crate) fn write_fragments(
        &mut self,
        out: &mut Vec<u8>,
        mut room: usize,
        now: u64,
        tsn: &mut u64,
    ) -> usize {
        let fsn = self.fsn();
        let start_len = out.len();
        let mut prev_seq: Option<u64> = None;
        let mut i = if self.in_flight < self.queue.len() {
            0
        } else {
            self.queue.len()
        };
        while i < self.queue.len() {
            let f = &self.queue[i];
            if f.in_flight || !self.fits(f) {
                i += 1;
                continue;
            }
            let Some(used) = self.write_one(out, room, fsn, prev_seq, f) else {
                return out.len() - start_len;
            };
            room -= used;
            prev_seq = Some(f.seq);
            let f = &mut self.queue[i];
            f.mark_sent(now, tsn, used);
            self.on_sent(now, used);
            i += 1;
        }
        while let Some(p) = self.pending.front() {
            let seq = self.next_seq;
            let header = self.chunk_header_len(fsn, prev_seq, seq);
            let Some(avail) = room.checked_sub(header) else {
                break;
            };
            let left = p.total() - p.cut;
            let len = left.min(avail).min(p.max_frag).min(self.window());
            // An empty message is one empty fragment; else a fragment carries something,
            // and a cut that leaves part of the message carries at least `MIN_CUT`.
            if left > 0 && (len == 0 || (len < left && len < MIN_CUT && len < p.max_frag)) {
                break;
            }
            let Some(mut f) = self.cut(len) else {
                break;
            };
            // Cannot fail: the room was reckoned above (and if it did, the fragment waits
            // in the queue for the next packet).
            let used = self.write_one(out, room, fsn, prev_seq, &f);
            if let Some(used) = used {
                room -= used;
                prev_seq = Some(f.seq);
                f.mark_sent(now, tsn, used);
                self.on_sent(now, used);
            }
            self.queue.push_back(f);
            if used.is_none() {
                break;
            }
        }
        out.len() - start_len
    }

    /// Bytes of the chunk header a fragment numbered `seq` takes (`write_one`'s, less the
    /// fragment's payload).
    fn chunk_header_len(&self, fsn: u64, prev_seq: Option<u64>, seq: u64) -> usize {
        let mut n = 3 + 1;
        if !self.next_chunk(prev_seq, seq) {
            n += vlu::len(self.id) + vlu::len(seq) + vlu::len(seq.saturating_sub(fsn));
        }
        if !self.options_acked {
            n += self.options.len() + 1;
        }
        n
    }

    /// A Next User Data chunk only once the options are acknowledged: until then every
    /// chunk is a whole User Data chunk carrying them. RFC 7016 allows either, and librtmfp
    /// reads options only in User Data chunks (in a Next one it takes them for the message:
    /// "Unpacking type '05' unknown", 5 being the metadata option's length).
    fn next_chunk(&self, prev_seq: Option<u64>, seq: u64) -> bool {
        self.options_acked && prev_seq.is_some_and(|p| p + 1 == seq)
    }

    /// Writes `f` as a chunk if it fits in `room`; returns the bytes it took.
    fn write_one(
        &self,
        out: &mut Vec<u8>,
        room: usize,
        fsn: u64,
        prev_seq: Option<u64>,
        f: &SendFrag,
    ) -> Option<usize> {
        let d = UserData {
            flow_id: self.id,
            seq: f.seq,
            // An abandoned fragment at or below the forward sequence number says so itself.
            fsn_offset: f.seq.saturating_sub(fsn),
            fragment: f.fragment,
            abandon: f.abandoned,
            fin: f.fin,
            options: (!self.options_acked).then_some(&self.options[..]),
            data: if f.abandoned { &[] } else { &f.data },
        };
        let before = out.len();
        chunk::encode::user_data_after(
            out,
            &d,
            self.next_chunk(prev_seq, f.seq),
            f.head.as_slice(),
        );
        let used = out.len() - before;
        if used > room {
            out.truncate(before);
            return None;
        }
        Some(used)
    }

    fn on_sent(&mut self, now: u64, used: usize) {
        self.sent_floor = Some(self.sent_floor.map_or(now, |o| o.min(now)));
        self.outstanding += used as u64;
        self.in_flight += 1;
    }

    /// Applies an acknowledgement: `cumulative` and inclusive `ranges` above it, and the
    /// receiver's free buffer.
    pub(crate) fn on_ack(
        &mut self,
        buffer_bytes: u64,
        cumulative: u64,
        ranges: impl Iterator<Item = (u64, u64)>,
    ) -> AckOutcome {
        self.options_acked = true;
        self.peer_buffer = buffer_bytes;
        let mut out = AckOutcome::default();
        let mut max_tsn = self.max_acked_tsn;
        let mut acked_len = 0;
        let mut acked_in_flight = 0;
        let mut ack = |f: &SendFrag, out: &mut AckOutcome| {
            if f.in_flight {
                out.acked_bytes += f.wire_len;
                max_tsn = max_tsn.max(f.tsn);
                acked_in_flight += 1;
            }
            acked_len += f.len();
            out.progress = true;
        };
        while let Some(f) = self.queue.front() {
            if f.seq > cumulative {
                break;
            }
            ack(f, &mut out);
            self.queue.pop_front();
        }
        for (from, to) in ranges {
            // Ranges only name fragments above the cumulative ack, already popped.
            if self.queue.back().is_none_or(|b| b.seq < from) {
                continue;
            }
            self.queue.retain(|f| {
                let hit = f.seq >= from && f.seq <= to;
                if hit {
                    ack(f, &mut out);
                }
                !hit
            });
        }
        self.queued -= acked_len.min(self.queued);
        self.in_flight -= acked_in_flight.min(self.in_flight);
        self.outstanding -= out.acked_bytes.min(self.outstanding);
        self.max_acked_tsn = max_tsn;
        // A burst (a joiner's catch-up, a key frame) grows the queue; once acknowledged, its
        // room is given back rather than kept for every viewer.
        if self.queue.capacity() > 4 * self.queue.len() + MIN_QUEUE {
            self.queue.shrink_to(2 * self.queue.len() + MIN_QUEUE);
        }
        // Fragments sent before the newest acknowledged one and still unacknowledged were
        // passed over: after three such acknowledgements they count as lost.
        for f in self.queue.iter_mut() {
            if f.in_flight && f.tsn < max_tsn {
                f.naks += 1;
                if f.naks >= NAKS_FOR_LOSS {
                    f.in_flight = false;
                    self.in_flight -= 1;
                    self.outstanding -= f.wire_len.min(self.outstanding);
                    out.newly_lost = true;
                }
            }
        }
        out
    }

    /// A retransmission timeout: everything in flight is presumed lost.
    pub(crate) fn on_timeout(&mut self) {
        for f in self.queue.iter_mut() {
            f.in_flight = false;
        }
        self.in_flight = 0;
        self.outstanding = 0;
    }

    /// Makes the timer bounds exact (a scan of the queue: when the session's timers run).
    pub(crate) fn refresh_timers(&mut self) {
        self.sent_floor = self.oldest_in_flight();
        self.expiry_floor = self.next_expiry();
    }

    /// When the oldest fragment in flight was sent, and the next deadline of a fragment:
    /// lower bounds, exact after `refresh_timers`.
    pub(crate) fn timer_floors(&self) -> (Option<u64>, Option<u64>) {
        (self.sent_floor, self.expiry_floor)
    }

    fn oldest_in_flight(&self) -> Option<u64> {
        self.queue
            .iter()
            .filter(|f| f.in_flight)
            .map(|f| f.sent_at)
            .min()
    }

    fn next_expiry(&self) -> Option<u64> {
        let cut = self
            .queue
            .iter()
            .filter(|f| !f.abandoned)
            .filter_map(|f| f.expires_at);
        cut.chain(self.pending.iter().filter_map(|p| p.deadline))
            .min()
    }

    pub(crate) fn on_exception(&mut self, code: u64) {
        self.exception = Some(code);
        self.queue.clear();
        self.pending.clear();
        self.queued = 0;
        self.in_flight = 0;
        self.outstanding = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::rtmfp::chunk::{Chunk, ChunkDecoder};
    use crate::proto::rtmfp::flow_recv::RecvFlow;
    use crate::proto::rtmfp::packet::chunks;
    use proptest::prelude::*;

    fn sent(out: &[u8]) -> Vec<(u64, u64, Fragment, bool, Vec<u8>)> {
        let mut d = ChunkDecoder::default();
        chunks(out)
            .map(|c| {
                let (k, v) = c.expect("chunk");
                match d.decode(k, v).expect("decode") {
                    Chunk::UserData(u) => (
                        u.seq,
                        u.fsn_offset,
                        u.fragment,
                        u.options.is_some(),
                        u.data.to_vec(),
                    ),
                    other => panic!("{other:?}"),
                }
            })
            .collect()
    }

    #[test]
    fn fragments_acks_and_loss() {
        let mut f = SendFlow::new(3, b"TC", None);
        f.send(Bytes::from_static(b"0123456789"), 4, None);
        f.send(Bytes::from_static(b"ab"), 4, None);
        let mut out = Vec::new();
        let mut tsn = 0;
        f.write_fragments(&mut out, 1000, 0, &mut tsn);
        let s = sent(&out);
        assert_eq!(s.len(), 4);
        assert_eq!(s[0], (1, 1, Fragment::Begin, true, b"0123".to_vec()));
        assert_eq!(s[2], (3, 3, Fragment::End, true, b"89".to_vec()));
        assert_eq!(s[3].2, Fragment::Whole);
        // Ack 1 and 3..4: 2 is passed over.
        for _ in 0..2 {
            let o = f.on_ack(65536, 1, [(3, 4)].into_iter());
            assert!(!o.newly_lost);
        }
        let o = f.on_ack(65536, 1, [(3, 4)].into_iter());
        assert!(o.newly_lost, "three acks past it make it lost");
        assert!(f.has_sendable());
        out.clear();
        f.write_fragments(&mut out, 1000, 10, &mut tsn);
        let s = sent(&out);
        // Options are no longer sent once acknowledged; fsn offset is 1 (1 acked).
        assert_eq!(s, vec![(2, 1, Fragment::Middle, false, b"4567".to_vec())]);
        f.on_ack(65536, 4, std::iter::empty());
        assert!(f.queue.is_empty());
        f.close();
        assert!(!f.is_done());
        out.clear();
        f.write_fragments(&mut out, 1000, 20, &mut tsn);
        f.on_ack(65536, 5, std::iter::empty());
        assert!(f.is_done());
    }

    #[test]
    fn next_user_data_chunks_only_once_the_options_are_acknowledged() {
        let kinds = |out: &[u8]| -> Vec<u8> {
            chunks(out)
                .map(|c| c.expect("chunk").0)
                .collect::<Vec<u8>>()
        };
        let mut f = SendFlow::new(3, b"TC\x04\x00", Some(2));
        f.send(Bytes::from_static(b"0123456789"), 4, None);
        let mut out = Vec::new();
        let mut tsn = 0;
        f.write_fragments(&mut out, 1000, 0, &mut tsn);
        assert_eq!(kinds(&out), vec![chunk::kind::USER_DATA; 3]);
        assert!(sent(&out).iter().all(|s| s.3), "each carries the options");
        f.on_ack(65536, 3, std::iter::empty());
        f.send(Bytes::from_static(b"abcdefghij"), 4, None);
        out.clear();
        f.write_fragments(&mut out, 1000, 10, &mut tsn);
        assert_eq!(
            kinds(&out),
            vec![
                chunk::kind::USER_DATA,
                chunk::kind::NEXT_USER_DATA,
                chunk::kind::NEXT_USER_DATA
            ]
        );
        assert!(sent(&out).iter().all(|s| !s.3));
    }

    #[test]
    fn timer_floors_are_lower_bounds_that_a_refresh_makes_exact() {
        let mut f = SendFlow::new(1, b"", None);
        assert_eq!(f.timer_floors(), (None, None));
        f.send(Bytes::from_static(b"a"), 100, Some(500));
        f.send(Bytes::from_static(b"b"), 100, Some(600));
        assert_eq!(f.timer_floors(), (None, Some(500)));
        let mut out = Vec::new();
        let mut tsn = 0;
        f.write_fragments(&mut out, 1000, 10, &mut tsn);
        assert_eq!(f.timer_floors(), (Some(10), Some(500)));
        // The first is acknowledged: the bounds stay until refreshed, never too late.
        f.on_ack(65536, 1, std::iter::empty());
        assert_eq!(f.timer_floors(), (Some(10), Some(500)));
        f.refresh_timers();
        assert_eq!(f.timer_floors(), (Some(10), Some(600)));
        f.on_timeout();
        f.refresh_timers();
        assert_eq!(f.timer_floors(), (None, Some(600)));
        out.clear();
        f.write_fragments(&mut out, 1000, 40, &mut tsn);
        assert_eq!(f.timer_floors(), (Some(40), Some(600)));
        f.expire(600);
        f.refresh_timers();
        assert_eq!(f.timer_floors(), (None, None));
    }

    #[test]
    fn deadlines_abandon_and_move_the_forward_sequence_number() {
        let mut f = SendFlow::new(1, b"", None);
        f.send(Bytes::from_static(b"late"), 100, Some(50));
        f.send(Bytes::from_static(b"fresh"), 100, None);
        let mut out = Vec::new();
        let mut tsn = 0;
        f.write_fragments(&mut out, 1000, 0, &mut tsn);
        f.expire(60);
        assert_eq!(f.fsn(), 1);
        f.on_timeout();
        out.clear();
        f.write_fragments(&mut out, 1000, 70, &mut tsn);
        let s = sent(&out);
        // The abandoned fragment goes again without data; the fresh one says fsn = 1.
        assert_eq!(s[0].4, b"");
        assert_eq!((s[1].0, s[1].1), (2, 1));
    }

    #[test]
    fn a_head_goes_before_a_shared_body_that_is_not_copied() {
        let mut f = SendFlow::new(1, b"", None);
        let body = Bytes::from(vec![3u8; 10]);
        f.send_parts(Head::new(b"\x09abcd"), body.clone(), 6, None);
        assert_eq!(f.queued_bytes(), 15);
        let mut out = Vec::new();
        let mut tsn = 0;
        f.write_fragments(&mut out, 1000, 0, &mut tsn);
        // 15 bytes in fragments of 6: the head and 1 body byte, then 6, then 3.
        let lens: Vec<usize> = f.queue.iter().map(|q| q.len()).collect();
        assert_eq!(lens, [6, 6, 3]);
        let (a, b) = (body.as_ptr() as usize, body.as_ptr() as usize + body.len());
        for q in &f.queue {
            let p = q.data.as_ptr() as usize;
            assert!(
                q.data.is_empty() || (p >= a && p + q.data.len() <= b),
                "a slice"
            );
        }
        let wire: Vec<u8> = sent(&out).into_iter().flat_map(|s| s.4).collect();
        let mut want = b"\x09abcd".to_vec();
        want.extend_from_slice(&body);
        assert_eq!(wire, want, "the receiver reassembles head then body");
        // A head longer than a fragment still makes progress (one byte of body at least).
        let mut g = SendFlow::new(2, b"", None);
        g.send_parts(Head::new(b"12345"), Bytes::from_static(b"xy"), 3, None);
        out.clear();
        g.write_fragments(&mut out, 1000, 0, &mut tsn);
        let lens: Vec<usize> = g.queue.iter().map(|q| q.len()).collect();
        assert_eq!(lens, [3, 3, 1]);
        let wire: Vec<u8> = sent(&out).into_iter().flat_map(|s| s.4).collect();
        assert_eq!(wire, b"12345xy");
    }

    #[test]
    fn receiver_buffer_limits_what_is_in_flight() {
        let mut f = SendFlow::new(1, b"", None);
        for _ in 0..10 {
            f.send(Bytes::from(vec![0u8; 100]), 100, None);
        }
        f.on_ack(250, 0, std::iter::empty());
        let mut out = Vec::new();
        let mut tsn = 0;
        f.write_fragments(&mut out, 10_000, 0, &mut tsn);
        assert!(f.outstanding <= 250 + 120, "{}", f.outstanding);
        assert!(f.queue.iter().filter(|q| q.in_flight).count() < 10);
    }
    /// Feeds the chunks of one packet to a receiving flow; returns the messages delivered.
    fn receive(r: &mut RecvFlow, packet: &[u8]) -> Vec<Vec<u8>> {
        let mut d = ChunkDecoder::default();
        let mut got = Vec::new();
        for c in chunks(packet) {
            let (k, v) = c.expect("chunk");
            if let Chunk::UserData(u) = d.decode(k, v).expect("decode") {
                got.extend(r.on_data(&u).messages);
            }
        }
        got
    }

    fn message(i: usize, len: usize) -> Bytes {
        Bytes::from((0..len).map(|j| (i * 7 + j) as u8).collect::<Vec<u8>>())
    }

    #[test]
    fn packets_are_filled_across_messages() {
        let sizes = [3000, 100, 700, 2500, 50, 1, 999, 1200];
        let mut f = SendFlow::new(1, b"", None);
        for (i, &n) in sizes.iter().enumerate() {
            f.send_parts(Head::new(&[i as u8]), message(i, n), usize::MAX, None);
        }
        let mut r = RecvFlow::new(1, 1 << 20);
        f.on_ack(1 << 20, 0, std::iter::empty());
        let (room, mut tsn, mut got, mut used) = (1000, 0, Vec::new(), Vec::new());
        loop {
            let mut out = Vec::new();
            let n = f.write_fragments(&mut out, room, 0, &mut tsn);
            if n == 0 {
                break;
            }
            used.push(n);
            got.extend(receive(&mut r, &out));
        }
        let want: Vec<Vec<u8>> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let mut m = vec![i as u8];
                m.extend_from_slice(&message(i, n));
                m
            })
            .collect();
        assert_eq!(got, want, "every message, whole and in order");
        let total: usize = sizes.iter().sum::<usize>() + sizes.len();
        assert!(used.len() <= total / (room - 30) + 1, "{used:?}");
        // Every packet but the last is full, or short of it by less than a sliver and a
        // chunk header (which the session pads).
        for &n in &used[..used.len() - 1] {
            assert!(n + MIN_CUT + 12 > room && n <= room, "{used:?}");
        }
    }

    #[test]
    fn an_expired_message_partly_sent_ends_with_an_abandoned_fragment() {
        let mut f = SendFlow::new(1, b"", None);
        f.on_ack(1 << 20, 0, std::iter::empty());
        f.send(message(0, 3000), usize::MAX, Some(50));
        f.send(message(1, 300), usize::MAX, Some(50));
        f.send(message(2, 200), usize::MAX, None);
        assert_eq!(f.queued_bytes(), 3500);
        let mut r = RecvFlow::new(1, 1 << 20);
        let (mut out, mut tsn) = (Vec::new(), 0);
        f.write_fragments(&mut out, 1000, 0, &mut tsn);
        assert!(receive(&mut r, &out).is_empty());
        // The first message is partly cut; at its deadline the rest of it is one abandoned
        // fragment, the second (never cut) goes without a trace.
        f.expire(60);
        assert_eq!(f.queued_bytes(), 200);
        f.on_timeout();
        let mut got = Vec::new();
        for now in 70..80 {
            out.clear();
            f.write_fragments(&mut out, 1000, now, &mut tsn);
            got.extend(receive(&mut r, &out));
        }
        assert_eq!(got, vec![message(2, 200).to_vec()]);
        let last = f.queue.back().expect("sent");
        f.on_ack(1 << 20, last.seq, std::iter::empty());
        assert_eq!(f.queued_bytes(), 0);
        assert!(f.queue.is_empty());
    }

    #[test]
    fn close_with_messages_pending_puts_fin_on_the_last_fragment() {
        let mut f = SendFlow::new(1, b"", None);
        f.send(message(0, 1500), usize::MAX, None);
        f.close();
        assert!(!f.is_done());
        let mut r = RecvFlow::new(1, 1 << 20);
        let (mut tsn, mut finished) = (0, false);
        for now in 0..4 {
            let mut out = Vec::new();
            f.write_fragments(&mut out, 1000, now, &mut tsn);
            let mut d = ChunkDecoder::default();
            for c in chunks(&out) {
                let (k, v) = c.expect("chunk");
                if let Chunk::UserData(u) = d.decode(k, v).expect("decode") {
                    finished |= r.on_data(&u).finished;
                }
            }
        }
        assert!(finished);
        assert_eq!(f.queue.iter().filter(|q| q.fin).count(), 1);
        f.on_ack(
            1 << 20,
            f.queue.back().map_or(0, |q| q.seq),
            std::iter::empty(),
        );
        assert!(f.is_done());
        // Closed with its message expired before any of it was cut: FIN goes alone.
        let mut g = SendFlow::new(2, b"", None);
        g.send(message(0, 10), usize::MAX, Some(5));
        g.close();
        g.expire(5);
        assert_eq!(g.queue.len(), 1);
        assert!(g.queue[0].fin && g.queue[0].data.is_empty());
    }

    proptest! {
        /// Whatever the sends, packet sizes, acknowledgements and deadlines, the queued
        /// byte count is the sum of what the flow holds, the count in flight is the
        /// fragments', and nothing panics.
        #[test]
        fn queued_bytes_is_what_the_flow_holds(
            ops in proptest::collection::vec((0u8..5, 0usize..3000), 1..60),
        ) {
            let mut f = SendFlow::new(1, b"TC", None);
            let (mut tsn, mut now) = (0, 0);
            for (op, n) in ops {
                now += 10;
                match op {
                    0 => f.send_parts(Head::new(b"\x09abcd"), message(n, n), usize::MAX, Some(now + (n as u64 % 200))),
                    1 => {
                        let mut out = Vec::new();
                        f.write_fragments(&mut out, n, now, &mut tsn);
                        prop_assert!(out.len() <= n);
                    }
                    2 => {
                        let c = f.queue.get(n % 4).map_or(0, |q| q.seq);
                        f.on_ack((n as u64) * 64, c, [(c + 2, c + 3)].into_iter());
                    }
                    3 => { f.expire(now); }
                    _ => f.on_timeout(),
                }
                let held: usize = f.queue.iter().map(|q| q.len()).sum::<usize>()
                    + f.pending.iter().map(|p| p.total() - p.cut).sum::<usize>();
                prop_assert_eq!(f.queued_bytes(), held);
                prop_assert_eq!(f.in_flight, f.queue.iter().filter(|q| q.in_flight).count());
            }
        }
    }
}
