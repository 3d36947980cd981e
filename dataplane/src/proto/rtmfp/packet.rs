//! The plain RTMFP packet inside the encryption (RFC 7016 §2.2.4): a flags byte, optional
//! 16-bit timestamp and timestamp echo (4 ms ticks), then chunks (type, 16-bit length,
//! value) up to the end or to padding (0xff, or 0x00 which the RFC also reserves for it).

use super::error::{Result, RtmfpError};

pub(crate) const FLAG_TC: u8 = 0x80;
pub(crate) const FLAG_TCR: u8 = 0x40;
pub(crate) const FLAG_TS: u8 = 0x08;
pub(crate) const FLAG_TSE: u8 = 0x04;
const MODE_MASK: u8 = 0x03;

/// Who sent the packet (RFC 7016 §2.2.4 MOD).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Initiator = 1,
    Responder = 2,
    Startup = 3,
}

/// Most a session packet may be on the wire (RFC 7016 leaves room below the IPv6 minimum
/// MTU of 1280 for headers); startup packets may be larger but ours never are.
pub(crate) const MAX_PACKET: usize = 1200;
/// Plain bytes per packet: MAX_PACKET less the session id, checksum or HMAC, sequence
/// number and up to 15 bytes of padding.
pub(crate) const MAX_PLAIN: usize = MAX_PACKET - 4 - 2 - 10 - 32 - 15;
/// What fills a packet after its last chunk (RFC 7016 §2.2.4).
pub(crate) const PADDING: u8 = 0xff;
/// One timestamp tick is 4 ms.
pub(crate) const TICK_MS: u64 = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub mode: Mode,
    pub time_critical: bool,
    pub time_critical_reverse: bool,
    pub timestamp: Option<u16>,
    pub timestamp_echo: Option<u16>,
}

impl Header {
    pub(crate) fn new(mode: Mode) -> Self {
        Header {
            mode,
            time_critical: false,
            time_critical_reverse: false,
            timestamp: None,
            timestamp_echo: None,
        }
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        let mut flags = self.mode as u8;
        if self.time_critical {
            flags |= FLAG_TC;
        }
        if self.time_critical_reverse {
            flags |= FLAG_TCR;
        }
        if self.timestamp.is_some() {
            flags |= FLAG_TS;
        }
        if self.timestamp_echo.is_some() {
            flags |= FLAG_TSE;
        }
        out.push(flags);
        if let Some(t) = self.timestamp {
            out.extend_from_slice(&t.to_be_bytes());
        }
        if let Some(t) = self.timestamp_echo {
            out.extend_from_slice(&t.to_be_bytes());
        }
    }

    /// Decodes the header from the front of a packet; returns it and the chunk area.
    pub(crate) fn decode(packet: &[u8]) -> Result<(Header, &[u8])> {
        let (&flags, mut rest) = packet
            .split_first()
            .ok_or(RtmfpError::Truncated("header"))?;
        let mode = match flags & MODE_MASK {
            1 => Mode::Initiator,
            2 => Mode::Responder,
            3 => Mode::Startup,
            _ => return Err(RtmfpError::Malformed("packet mode 0")),
        };
        let take16 = |rest: &mut &[u8]| -> Result<u16> {
            if rest.len() < 2 {
                return Err(RtmfpError::Truncated("timestamp"));
            }
            let v = u16::from_be_bytes([rest[0], rest[1]]);
            *rest = &rest[2..];
            Ok(v)
        };
        let timestamp = if flags & FLAG_TS != 0 {
            Some(take16(&mut rest)?)
        } else {
            None
        };
        let timestamp_echo = if flags & FLAG_TSE != 0 {
            Some(take16(&mut rest)?)
        } else {
            None
        };
        Ok((
            Header {
                mode,
                time_critical: flags & FLAG_TC != 0,
                time_critical_reverse: flags & FLAG_TCR != 0,
                timestamp,
                timestamp_echo,
            },
            rest,
        ))
    }
}

/// The chunks of a packet's chunk area: (type, value) pairs. Ends at padding; a chunk
/// whose length runs past the packet ends it with an error (the chunks before it stand,
/// as RFC 7016 processes chunks in order).
pub(crate) fn chunks(mut area: &[u8]) -> impl Iterator<Item = Result<(u8, &[u8])>> {
    std::iter::from_fn(move || {
        let (&kind, rest) = area.split_first()?;
        if kind == 0xff || kind == 0x00 {
            area = &[];
            return None;
        }
        if rest.len() < 2 {
            area = &[];
            return Some(Err(RtmfpError::Truncated("chunk header")));
        }
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        let rest = &rest[2..];
        if len > rest.len() {
            area = &[];
            return Some(Err(RtmfpError::Truncated("chunk")));
        }
        let (value, next) = rest.split_at(len);
        area = next;
        Some(Ok((kind, value)))
    })
}

/// Starts a chunk of `kind` in `out`; returns where its length goes for `end_chunk`.
pub(crate) fn begin_chunk(out: &mut Vec<u8>, kind: u8) -> usize {
    out.push(kind);
    out.extend_from_slice(&[0, 0]);
    out.len()
}

/// Closes the chunk begun at `start` (its value is everything written since).
pub(crate) fn end_chunk(out: &mut [u8], start: usize) {
    let len = out.len() - start;
    debug_assert!(len <= 0xffff, "chunks are built within one packet");
    out[start - 2..start].copy_from_slice(&(len as u16).to_be_bytes());
}

/// The 16-bit timestamp for `now_ms` (a wrapping count of 4 ms ticks).
pub(crate) fn timestamp(now_ms: u64) -> u16 {
    (now_ms / TICK_MS) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips() {
        let mut h = Header::new(Mode::Responder);
        h.time_critical = true;
        h.timestamp = Some(0x1234);
        h.timestamp_echo = Some(0xabcd);
        let mut out = Vec::new();
        h.encode(&mut out);
        assert_eq!(out, [0x80 | 0x08 | 0x04 | 0x02, 0x12, 0x34, 0xab, 0xcd]);
        assert_eq!(Header::decode(&out), Ok((h, &[][..])));
        assert!(Header::decode(&[0x08]).is_err());
        assert!(Header::decode(&[0x00]).is_err());
        // A startup packet with only a timestamp: what a Flash IHello starts with.
        let (h, rest) = Header::decode(&[0x0b, 0, 1, 0x30]).expect("header");
        assert_eq!(
            (h.mode, h.timestamp, rest),
            (Mode::Startup, Some(1), &[0x30u8][..])
        );
    }

    #[test]
    fn chunk_framing() {
        let mut out = Vec::new();
        let s = begin_chunk(&mut out, 0x01);
        out.extend_from_slice(b"ping");
        end_chunk(&mut out, s);
        let s = begin_chunk(&mut out, 0x4c);
        end_chunk(&mut out, s);
        out.extend_from_slice(&[0xff, 0xff, 0xff]);
        let got: Vec<_> = chunks(&out).collect();
        assert_eq!(got, vec![Ok((0x01, &b"ping"[..])), Ok((0x4c, &[][..]))]);
        let got: Vec<_> = chunks(&[0x01, 0x00, 0x05, 1]).collect();
        assert_eq!(got, vec![Err(RtmfpError::Truncated("chunk"))]);
        assert_eq!(chunks(&[0x01, 0x00]).count(), 1);
        assert_eq!(timestamp(4000), 1000);
    }
}
