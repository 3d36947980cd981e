//! One multicast output's state, sans-IO: the muxed frames of its stream in (shared
//! `Bytes`, never copied), the next send out as a list of byte ranges cut into datagrams
//! (one `sendmsg` with UDP GSO carries many), its completion and the time (milliseconds,
//! passed in) back.
//!
//! - It starts on a place a decoder can start (tables and a key frame), and starts again
//!   there whenever it lost its place: the publisher left, the queue overflowed, or a send
//!   failed.
//! - Batched like viewers' sends: what arrives within `batch_ms` (`live.send_batch_ms`) of
//!   the oldest unsent frame goes in one send.
//! - Never slows the stream: what it cannot send is dropped, bounded by `MAX_QUEUED`.
//! - Paced: with a rate, a send takes no more than the credit earned since the last one
//!   (a token bucket holding at most `BURST_MS` of the rate).
//! - A failed send (no route, interface down) backs off, doubling to a ceiling, and the
//!   output resumes on a key frame once sends work again.

use std::collections::VecDeque;

use bytes::Bytes;

use crate::proto::mpegts::muxer::Muxed;
use crate::proto::mpegts::{rtp, CLOCK_HZ, TS_PACKET_SIZE};
use crate::relay::backoff;

/// Bytes waiting to be sent past which the output drops them all and resumes on the next
/// key frame: a few seconds of an ordinary stream.
pub(crate) const MAX_QUEUED: usize = 4 * 1024 * 1024;
/// The pacing bucket holds this much of the rate: bursts of a few datagrams, not of a
/// whole key frame.
const BURST_MS: u64 = 10;
/// UDP GSO sends at most 64 segments and 64 KiB in one call.
const MAX_SEGMENTS: usize = 64;
const MAX_GSO_BYTES: usize = 65_000;

/// Where the output is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// Waiting for a place to start (tables and a key frame).
    WaitingForKey,
    Sending,
    /// A send failed with this errno; the next attempt is at `retry_at` (milliseconds).
    BackingOff {
        errno: i32,
        retry_at: u64,
    },
}

/// Counters for the control socket and /metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct OutputStats {
    pub(crate) datagrams: u64,
    pub(crate) bytes: u64,
    /// Bytes dropped: the queue overflowed or a send failed.
    pub(crate) dropped_bytes: u64,
    pub(crate) failures: u64,
}

/// One send: byte ranges (RTP headers and slices of shared frames) in order, cut into
/// datagrams of `segment` bytes (the last may be shorter).
#[derive(Debug, Default)]
pub(crate) struct Send {
    pub(crate) parts: Vec<Part>,
    pub(crate) segment: usize,
    pub(crate) datagrams: usize,
    pub(crate) bytes: usize,
}

/// One piece of a send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Part {
    /// An RTP header, by its index in the output's header buffer.
    Header(usize),
    Data(Bytes),
}

pub(crate) struct Output {
    /// TS packets per datagram, and whether each datagram gets an RTP header.
    packets: usize,
    rtp: bool,
    /// Bits per second (0: unpaced).
    rate: u64,
    /// Unsent bytes wait this long for more before a send (0: sent at the next poll).
    batch_ms: u64,
    /// Batches end on the multiples of `batch_ms` of the clock rather than `batch_ms` after
    /// their first byte: every aligned output of a worker (one clock) sends in the same
    /// loop turn, so N outputs cost the worker one wake-up per batch, not N.
    aligned: bool,
    /// When `poll_send` first saw the oldest unsent bytes.
    unsent_since: Option<u64>,
    state: State,
    /// Muxed frames not yet sent (the front one from `front_offset`), each with the 90 kHz
    /// time of its RTMP timestamp for the RTP header.
    queue: VecDeque<(Bytes, u32)>,
    front_offset: usize,
    queued: usize,
    /// The send in flight (or the last one; reused). Its bytes leave the queue only when
    /// it completes, unless the queue was dropped meanwhile (`flight_in_queue` false).
    send: Send,
    in_flight: bool,
    flight_in_queue: bool,
    /// RTP headers of the send in flight (the kernel reads them in place).
    headers: Vec<[u8; rtp::HEADER_LEN]>,
    sequence: u16,
    ssrc: u32,
    /// Pacing credit in bytes and when it was last topped up.
    credit: u64,
    credit_at: u64,
    failures: u32,
    pub(crate) stats: OutputStats,
}

impl Output {
    pub(crate) fn new(packets: usize, rtp: bool, rate: u64, batch_ms: u64, ssrc: u32) -> Self {
        Output {
            packets: packets.clamp(1, 7),
            rtp,
            rate,
            batch_ms,
            aligned: false,
            unsent_since: None,
            state: State::WaitingForKey,
            queue: VecDeque::new(),
            front_offset: 0,
            queued: 0,
            send: Send::default(),
            in_flight: false,
            flight_in_queue: false,
            headers: Vec::new(),
            sequence: 0,
            ssrc,
            credit: 0,
            credit_at: 0,
            failures: 0,
            stats: OutputStats::default(),
        }
    }

    /// Batches aligned on the clock (see `aligned`): a frame still waits at most
    /// `batch_ms`.
    pub(crate) fn aligned(mut self) -> Self {
        self.aligned = true;
        self
    }

    /// When a batch whose first byte was seen at `since` is due.
    fn batch_due(&self, since: u64) -> u64 {
        if self.aligned && self.batch_ms > 0 {
            (since / self.batch_ms + 1) * self.batch_ms
        } else {
            since + self.batch_ms
        }
    }

    pub(crate) fn state(&self) -> State {
        self.state
    }

    /// A muxed frame of the stream. Before a start (or after losing its place) only a
    /// frame that starts with the tables and a key frame is taken.
    pub(crate) fn offer(&mut self, m: &Muxed) {
        match self.state {
            State::BackingOff { .. } => return,
            State::WaitingForKey if !m.key => return,
            State::WaitingForKey => self.state = State::Sending,
            State::Sending => {}
        }
        if self.queued + m.bytes.len() > MAX_QUEUED {
            self.drop_queue();
            self.state = State::WaitingForKey;
            return self.offer(m);
        }
        let rtp_time = (u64::from(m.timestamp) * CLOCK_HZ / 1000) as u32;
        self.queued += m.bytes.len();
        self.queue.push_back((m.bytes.clone(), rtp_time));
    }

    /// The stream's source went away: what is queued still goes, then the output waits
    /// for the next source's first key frame (the muxer flags the discontinuity).
    pub(crate) fn source_left(&mut self) {
        if self.state == State::Sending {
            self.state = State::WaitingForKey;
        }
    }

    fn drop_queue(&mut self) {
        let in_flight = if self.in_flight && self.flight_in_queue {
            self.send.bytes
        } else {
            0
        };
        // What is in flight is counted by its completion.
        self.stats.dropped_bytes += self.unsent().saturating_sub(in_flight) as u64;
        self.queue.clear();
        self.queued = 0;
        self.front_offset = 0;
        self.flight_in_queue = false;
        self.unsent_since = None;
    }

    /// When the output next has something to send, if not now: the end of a back-off, or
    /// the pacing credit for one datagram.
    pub(crate) fn next_due(&self, now_ms: u64) -> Option<u64> {
        if self.in_flight {
            return None;
        }
        match self.state {
            State::BackingOff { retry_at, .. } => Some(retry_at),
            _ if self.unsent() == 0 => None,
            _ => {
                let batched = self.unsent_since.map_or(now_ms, |s| self.batch_due(s));
                if self.rate == 0 {
                    return Some(batched);
                }
                let need = self.datagram_payload() as u64;
                let short = need.saturating_sub(self.credit_now(now_ms));
                Some(batched.max(now_ms + (short * 8 * 1000).div_ceil(self.rate)))
            }
        }
    }

    fn datagram_payload(&self) -> usize {
        self.packets * TS_PACKET_SIZE
    }

    fn unsent(&self) -> usize {
        self.queued - self.front_offset
    }

    fn credit_now(&self, now_ms: u64) -> u64 {
        let cap = (self.rate / 8 * BURST_MS / 1000).max(self.datagram_payload() as u64);
        let earned = now_ms.saturating_sub(self.credit_at) * self.rate / 8 / 1000;
        (self.credit + earned).min(cap)
    }

    /// The next send, if one is due: every queued byte the pacing allows, as whole
    /// datagrams (a short last one only when it is all that is queued), at most one GSO
    /// call's worth.
    pub(crate) fn poll_send(&mut self, now_ms: u64) -> Option<&Send> {
        if self.in_flight {
            return None;
        }
        if let State::BackingOff { retry_at, .. } = self.state {
            if now_ms < retry_at {
                return None;
            }
            // Try again from the next key frame.
            self.state = State::WaitingForKey;
            return None;
        }
        let unsent = self.unsent();
        if unsent == 0 {
            return None;
        }
        let since = *self.unsent_since.get_or_insert(now_ms);
        if now_ms < self.batch_due(since) {
            return None;
        }
        let payload = self.datagram_payload();
        let segment = payload + if self.rtp { rtp::HEADER_LEN } else { 0 };
        let mut datagrams = unsent
            .div_ceil(payload)
            .min(MAX_SEGMENTS)
            .min(MAX_GSO_BYTES / segment);
        if self.rate > 0 {
            let credit = self.credit_now(now_ms);
            let affordable = (credit / payload as u64) as usize;
            if affordable == 0 {
                return None;
            }
            datagrams = datagrams.min(affordable);
            self.credit = credit;
            self.credit_at = now_ms;
        }
        let bytes = unsent.min(datagrams * payload);
        let send = &mut self.send;
        send.parts.clear();
        send.segment = segment;
        send.datagrams = datagrams;
        send.bytes = bytes;
        self.headers.clear();
        // Walk the queue from the unsent offset. RTP: cut at datagram boundaries, each
        // datagram behind its header; plain UDP: one range per frame, the kernel cuts the
        // datagrams wherever the ranges end (fewer iovecs and reference counts per send).
        let mut left = bytes;
        let mut in_datagram = 0;
        let mut offset = self.front_offset;
        for (frame, rtp_time) in &self.queue {
            if left == 0 {
                break;
            }
            let mut at = offset;
            offset = 0;
            while at < frame.len() && left > 0 {
                if in_datagram == 0 && self.rtp {
                    self.headers
                        .push(rtp::header(self.sequence, *rtp_time, self.ssrc));
                    self.sequence = self.sequence.wrapping_add(1);
                    send.parts.push(Part::Header(self.headers.len() - 1));
                }
                let room = if self.rtp {
                    payload - in_datagram
                } else {
                    usize::MAX
                };
                let take = (frame.len() - at).min(room).min(left);
                send.parts.push(Part::Data(frame.slice(at..at + take)));
                at += take;
                left -= take;
                in_datagram = (in_datagram + take) % payload;
            }
        }
        if self.rate > 0 {
            self.credit = self.credit.saturating_sub(bytes as u64);
        }
        // What is left (a paced or GSO-bounded remainder) is already due.
        self.unsent_since = (bytes < unsent).then_some(since);
        self.in_flight = true;
        self.flight_in_queue = true;
        Some(&self.send)
    }

    /// The send in flight and its RTP headers (what the kernel reads until it completes).
    pub(crate) fn in_flight(&self) -> (&Send, &[[u8; rtp::HEADER_LEN]]) {
        (&self.send, &self.headers)
    }

    /// The send in flight completed: `Ok(bytes)` or an errno. Err(errno) when it failed
    /// (the caller logs it, once per failure streak, with the errno).
    pub(crate) fn completed(&mut self, result: Result<usize, i32>, now_ms: u64) -> Result<(), i32> {
        if !std::mem::take(&mut self.in_flight) {
            return Ok(());
        }
        let (bytes, datagrams) = (self.send.bytes, self.send.datagrams);
        // The kernel no longer reads them: the shared frames go back to their owners.
        self.send.parts.clear();
        if std::mem::take(&mut self.flight_in_queue) {
            self.consume(bytes);
        }
        match result {
            Ok(_) => {
                self.failures = 0;
                self.stats.datagrams += datagrams as u64;
                self.stats.bytes += bytes as u64;
                Ok(())
            }
            Err(errno) => {
                self.failures += 1;
                self.stats.failures += 1;
                self.stats.dropped_bytes += bytes as u64;
                self.drop_queue();
                let wait = backoff::delay(self.failures).as_millis() as u64;
                self.state = State::BackingOff {
                    errno,
                    retry_at: now_ms + wait,
                };
                Err(errno)
            }
        }
    }

    /// How many failures in a row (1: the first of a streak, worth a log line).
    pub(crate) fn failures(&self) -> u32 {
        self.failures
    }

    /// Takes `bytes` sent bytes off the front of the queue.
    fn consume(&mut self, mut bytes: usize) {
        while bytes > 0 {
            let Some((front, _)) = self.queue.front() else {
                break;
            };
            let rest = front.len() - self.front_offset;
            if bytes < rest {
                self.front_offset += bytes;
                break;
            }
            bytes -= rest;
            self.queued -= front.len();
            self.front_offset = 0;
            self.queue.pop_front();
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
