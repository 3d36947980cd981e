//! The chunks of RFC 7016 §2.3, decoded from and encoded to a packet's chunk area. Decoding
//! borrows from the packet (no allocation); unknown chunk types are kept as `Unknown` so the
//! session can ignore them as the RFC asks.

use std::net::SocketAddr;

use super::address::{self, Origin};
use super::error::{Result, RtmfpError};
use super::packet::{begin_chunk, end_chunk};
use super::vlu;

pub(crate) mod kind {
    pub const PING: u8 = 0x01;
    pub const SESSION_CLOSE: u8 = 0x0c;
    pub const FORWARDED_IHELLO: u8 = 0x0f;
    pub const USER_DATA: u8 = 0x10;
    pub const NEXT_USER_DATA: u8 = 0x11;
    pub const BUFFER_PROBE: u8 = 0x18;
    pub const IHELLO: u8 = 0x30;
    pub const IIKEYING: u8 = 0x38;
    pub const PING_REPLY: u8 = 0x41;
    pub const SESSION_CLOSE_ACK: u8 = 0x4c;
    pub const ACK_BITMAP: u8 = 0x50;
    pub const ACK_RANGES: u8 = 0x51;
    pub const FLOW_EXCEPTION: u8 = 0x5e;
    pub const RHELLO: u8 = 0x70;
    pub const REDIRECT: u8 = 0x71;
    pub const RIKEYING: u8 = 0x78;
    pub const COOKIE_CHANGE: u8 = 0x79;
}

/// User Data flags (RFC 7016 §2.3.11).
pub(crate) mod udflag {
    pub const OPTIONS: u8 = 0x80;
    pub const FRAGMENT_MASK: u8 = 0x30;
    pub const ABANDON: u8 = 0x02;
    pub const FINAL: u8 = 0x01;
}

/// Where a fragment sits in its message (RFC 7016 §2.3.11 FRA).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fragment {
    Whole = 0x00,
    Begin = 0x10,
    End = 0x20,
    Middle = 0x30,
}

impl Fragment {
    fn from_flags(f: u8) -> Self {
        match f & udflag::FRAGMENT_MASK {
            0x00 => Fragment::Whole,
            0x10 => Fragment::Begin,
            0x20 => Fragment::End,
            _ => Fragment::Middle,
        }
    }
}

/// A User Data fragment. For Next User Data the flow, sequence number and forward
/// sequence number offset are the previous fragment's plus one, filled in by the decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UserData<'a> {
    pub flow_id: u64,
    pub seq: u64,
    pub fsn_offset: u64,
    pub fragment: Fragment,
    pub abandon: bool,
    pub fin: bool,
    /// The raw option list (only in a flow's first fragments): metadata, return association.
    pub options: Option<&'a [u8]>,
    pub data: &'a [u8],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Chunk<'a> {
    IHello {
        epd: &'a [u8],
        tag: &'a [u8],
    },
    ForwardedIHello {
        epd: &'a [u8],
        reply_to: SocketAddr,
        tag: &'a [u8],
    },
    RHello {
        tag: &'a [u8],
        cookie: &'a [u8],
        cert: &'a [u8],
    },
    /// The destinations, as raw address records (iterate with `redirect_addresses`).
    Redirect {
        tag: &'a [u8],
        destinations: &'a [u8],
    },
    CookieChange {
        old: &'a [u8],
        new: &'a [u8],
    },
    IIKeying {
        initiator_session_id: u32,
        cookie: &'a [u8],
        cert: &'a [u8],
        skic: &'a [u8],
        signature: &'a [u8],
    },
    RIKeying {
        responder_session_id: u32,
        skrc: &'a [u8],
        signature: &'a [u8],
    },
    Ping(&'a [u8]),
    PingReply(&'a [u8]),
    UserData(UserData<'a>),
    /// Acknowledgement: buffer space in 1024-byte blocks, the cumulative ack, then either
    /// a bitmap or (holes-1, received-1) VLU pairs.
    Ack {
        flow_id: u64,
        buffer_blocks: u64,
        cumulative: u64,
        ranges: bool,
        rest: &'a [u8],
    },
    BufferProbe {
        flow_id: u64,
    },
    FlowException {
        flow_id: u64,
        code: u64,
    },
    SessionClose,
    SessionCloseAck,
    Unknown {
        kind: u8,
        value: &'a [u8],
    },
}

fn read_u32(buf: &mut &[u8]) -> Result<u32> {
    if buf.len() < 4 {
        return Err(RtmfpError::Truncated("session id"));
    }
    let v = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    *buf = &buf[4..];
    Ok(v)
}

/// Decodes the chunks of one packet in order, carrying the Next User Data context.
#[derive(Default)]
pub(crate) struct ChunkDecoder {
    last: Option<(u64, u64, u64)>,
}

impl ChunkDecoder {
    pub(crate) fn decode<'a>(&mut self, kind: u8, mut v: &'a [u8]) -> Result<Chunk<'a>> {
        let c = match kind {
            kind::IHELLO => {
                let epd = vlu::read_field(&mut v)?;
                Chunk::IHello { epd, tag: v }
            }
            kind::FORWARDED_IHELLO => {
                let epd = vlu::read_field(&mut v)?;
                let (reply_to, _) = address::read(&mut v)?;
                Chunk::ForwardedIHello {
                    epd,
                    reply_to,
                    tag: v,
                }
            }
            kind::RHELLO => {
                let tag = vlu::read_field(&mut v)?;
                let cookie = vlu::read_field(&mut v)?;
                Chunk::RHello {
                    tag,
                    cookie,
                    cert: v,
                }
            }
            kind::REDIRECT => {
                let tag = vlu::read_field(&mut v)?;
                Chunk::Redirect {
                    tag,
                    destinations: v,
                }
            }
            kind::COOKIE_CHANGE => {
                let old = vlu::read_field(&mut v)?;
                Chunk::CookieChange { old, new: v }
            }
            kind::IIKEYING => {
                let initiator_session_id = read_u32(&mut v)?;
                let cookie = vlu::read_field(&mut v)?;
                let cert = vlu::read_field(&mut v)?;
                let skic = vlu::read_field(&mut v)?;
                Chunk::IIKeying {
                    initiator_session_id,
                    cookie,
                    cert,
                    skic,
                    signature: v,
                }
            }
            kind::RIKEYING => {
                let responder_session_id = read_u32(&mut v)?;
                let skrc = vlu::read_field(&mut v)?;
                Chunk::RIKeying {
                    responder_session_id,
                    skrc,
                    signature: v,
                }
            }
            kind::PING => Chunk::Ping(v),
            kind::PING_REPLY => Chunk::PingReply(v),
            kind::USER_DATA | kind::NEXT_USER_DATA => {
                let (&flags, mut rest) =
                    v.split_first().ok_or(RtmfpError::Truncated("user data"))?;
                let (flow_id, seq, fsn_offset) = if kind == kind::USER_DATA {
                    let f = vlu::read(&mut rest)?;
                    let s = vlu::read(&mut rest)?;
                    let o = vlu::read(&mut rest)?;
                    (f, s, o)
                } else {
                    let (f, s, o) = self
                        .last
                        .ok_or(RtmfpError::Malformed("next user data without user data"))?;
                    (
                        f,
                        s.checked_add(1).ok_or(RtmfpError::VluOverflow)?,
                        o.saturating_add(1),
                    )
                };
                if fsn_offset > seq {
                    return Err(RtmfpError::Malformed("forward sequence number offset"));
                }
                self.last = Some((flow_id, seq, fsn_offset));
                let options = if flags & udflag::OPTIONS != 0 {
                    Some(vlu::split_terminated_list(&mut rest)?)
                } else {
                    None
                };
                Chunk::UserData(UserData {
                    flow_id,
                    seq,
                    fsn_offset,
                    fragment: Fragment::from_flags(flags),
                    abandon: flags & udflag::ABANDON != 0,
                    fin: flags & udflag::FINAL != 0,
                    options,
                    data: rest,
                })
            }
            kind::ACK_BITMAP | kind::ACK_RANGES => {
                let flow_id = vlu::read(&mut v)?;
                let buffer_blocks = vlu::read(&mut v)?;
                let cumulative = vlu::read(&mut v)?;
                Chunk::Ack {
                    flow_id,
                    buffer_blocks,
                    cumulative,
                    ranges: kind == kind::ACK_RANGES,
                    rest: v,
                }
            }
            kind::BUFFER_PROBE => Chunk::BufferProbe {
                flow_id: vlu::read(&mut v)?,
            },
            kind::FLOW_EXCEPTION => {
                let flow_id = vlu::read(&mut v)?;
                let code = vlu::read(&mut v)?;
                Chunk::FlowException { flow_id, code }
            }
            kind::SESSION_CLOSE => Chunk::SessionClose,
            kind::SESSION_CLOSE_ACK => Chunk::SessionCloseAck,
            _ => Chunk::Unknown { kind, value: v },
        };
        Ok(c)
    }
}

/// The addresses of a Redirect chunk.
pub(crate) fn redirect_addresses(
    mut raw: &[u8],
) -> impl Iterator<Item = Result<(SocketAddr, Origin)>> + '_ {
    std::iter::from_fn(move || {
        if raw.is_empty() {
            return None;
        }
        let r = address::read(&mut raw);
        if r.is_err() {
            raw = &[];
        }
        Some(r)
    })
}

/// The sequence numbers an ack names beyond the cumulative one, as inclusive ranges.
pub(crate) fn ack_ranges(
    cumulative: u64,
    ranges: bool,
    mut rest: &[u8],
) -> impl Iterator<Item = (u64, u64)> + '_ {
    let mut cursor = cumulative;
    let mut bit = 0usize;
    std::iter::from_fn(move || {
        if ranges {
            // Truncated pairs are allowed (an ack may be cut to fit): stop there.
            let holes = vlu::read(&mut rest).ok()?;
            let received = vlu::read(&mut rest).ok()?;
            let from = cursor.checked_add(holes)?.checked_add(2)?;
            let to = from.checked_add(received)?;
            cursor = to;
            Some((from, to))
        } else {
            // Bitmap: bit 0 of the first byte is cumulative + 2 (cumulative + 1 is missing
            // by definition).
            loop {
                let byte = *rest.get(bit / 8)?;
                let b = bit;
                bit += 1;
                if byte & (1 << (b % 8)) != 0 {
                    let sn = cumulative.checked_add(2 + b as u64)?;
                    return Some((sn, sn));
                }
            }
        }
    })
}

/// Encoders: each appends one whole chunk to `out`.
pub(crate) mod encode {
    use super::*;

    pub(crate) fn ihello(out: &mut Vec<u8>, epd: &[u8], tag: &[u8]) {
        let s = begin_chunk(out, kind::IHELLO);
        vlu::put_field(epd, out);
        out.extend_from_slice(tag);
        end_chunk(out, s);
    }

    pub(crate) fn forwarded_ihello(
        out: &mut Vec<u8>,
        epd: &[u8],
        reply_to: SocketAddr,
        tag: &[u8],
    ) {
        let s = begin_chunk(out, kind::FORWARDED_IHELLO);
        vlu::put_field(epd, out);
        address::put(reply_to, Origin::Remote, out);
        out.extend_from_slice(tag);
        end_chunk(out, s);
    }

    pub(crate) fn rhello(out: &mut Vec<u8>, tag: &[u8], cookie: &[u8], cert: &[u8]) {
        let s = begin_chunk(out, kind::RHELLO);
        vlu::put_field(tag, out);
        vlu::put_field(cookie, out);
        out.extend_from_slice(cert);
        end_chunk(out, s);
    }

    pub(crate) fn redirect(out: &mut Vec<u8>, tag: &[u8], to: &[(SocketAddr, Origin)]) {
        let s = begin_chunk(out, kind::REDIRECT);
        vlu::put_field(tag, out);
        for (a, o) in to {
            address::put(*a, *o, out);
        }
        end_chunk(out, s);
    }

    pub(crate) fn iikeying(
        out: &mut Vec<u8>,
        isid: u32,
        cookie: &[u8],
        cert: &[u8],
        skic: &[u8],
        sig: &[u8],
    ) {
        let s = begin_chunk(out, kind::IIKEYING);
        out.extend_from_slice(&isid.to_be_bytes());
        vlu::put_field(cookie, out);
        vlu::put_field(cert, out);
        vlu::put_field(skic, out);
        out.extend_from_slice(sig);
        end_chunk(out, s);
    }

    pub(crate) fn rikeying(out: &mut Vec<u8>, rsid: u32, skrc: &[u8], sig: &[u8]) {
        let s = begin_chunk(out, kind::RIKEYING);
        out.extend_from_slice(&rsid.to_be_bytes());
        vlu::put_field(skrc, out);
        out.extend_from_slice(sig);
        end_chunk(out, s);
    }

    pub(crate) fn bytes(out: &mut Vec<u8>, k: u8, value: &[u8]) {
        let s = begin_chunk(out, k);
        out.extend_from_slice(value);
        end_chunk(out, s);
    }

    /// A User Data chunk, or Next User Data when `next` (the previous chunk in this packet
    /// was this flow's fragment `seq - 1`).
    pub(crate) fn user_data(out: &mut Vec<u8>, d: &UserData<'_>, next: bool) {
        user_data_after(out, d, next, &[])
    }

    /// `user_data` whose payload is `head` then `d.data` (so a sender can keep a shared
    /// payload and a header of its own apart).
    pub(crate) fn user_data_after(out: &mut Vec<u8>, d: &UserData<'_>, next: bool, head: &[u8]) {
        let s = begin_chunk(
            out,
            if next {
                kind::NEXT_USER_DATA
            } else {
                kind::USER_DATA
            },
        );
        let mut flags = d.fragment as u8;
        if d.options.is_some() {
            flags |= udflag::OPTIONS;
        }
        if d.abandon {
            flags |= udflag::ABANDON;
        }
        if d.fin {
            flags |= udflag::FINAL;
        }
        out.push(flags);
        if !next {
            vlu::put(d.flow_id, out);
            vlu::put(d.seq, out);
            vlu::put(d.fsn_offset, out);
        }
        if let Some(o) = d.options {
            out.extend_from_slice(o);
            out.push(0);
        }
        out.extend_from_slice(head);
        out.extend_from_slice(d.data);
        end_chunk(out, s);
    }

    /// An Ack Ranges chunk: `received` are the inclusive ranges above `cumulative + 1`,
    /// ascending and disjoint.
    pub(crate) fn ack_ranges(
        out: &mut Vec<u8>,
        flow_id: u64,
        buffer_blocks: u64,
        cumulative: u64,
        received: &[(u64, u64)],
    ) {
        let s = begin_chunk(out, kind::ACK_RANGES);
        vlu::put(flow_id, out);
        vlu::put(buffer_blocks, out);
        vlu::put(cumulative, out);
        let mut cursor = cumulative;
        for &(from, to) in received {
            vlu::put(from - cursor - 2, out);
            vlu::put(to - from, out);
            cursor = to;
        }
        end_chunk(out, s);
    }

    pub(crate) fn flow_vlus(out: &mut Vec<u8>, k: u8, values: &[u64]) {
        let s = begin_chunk(out, k);
        for v in values {
            vlu::put(*v, out);
        }
        end_chunk(out, s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::rtmfp::packet::chunks;

    fn decode_all(area: &[u8]) -> Vec<Chunk<'_>> {
        let mut d = ChunkDecoder::default();
        chunks(area)
            .map(|c| c.and_then(|(k, v)| d.decode(k, v)).expect("chunk"))
            .collect()
    }

    #[test]
    fn handshake_chunks_round_trip() {
        let mut out = Vec::new();
        encode::ihello(&mut out, b"\x0b\x0artmfp://h/a", &[7; 16]);
        encode::rhello(&mut out, &[7; 16], &[9; 64], b"\x02\x15\x02");
        encode::iikeying(&mut out, 0x01020304, &[9; 64], b"cert", b"skic", b"X");
        encode::rikeying(&mut out, 5, b"skrc", b"X");
        let a: SocketAddr = "127.0.0.3:4000".parse().expect("addr");
        encode::redirect(&mut out, &[7; 16], &[(a, Origin::Remote)]);
        encode::forwarded_ihello(&mut out, b"epd", a, &[1; 16]);
        let got = decode_all(&out);
        assert_eq!(
            got[0],
            Chunk::IHello {
                epd: b"\x0b\x0artmfp://h/a",
                tag: &[7; 16]
            }
        );
        assert_eq!(
            got[1],
            Chunk::RHello {
                tag: &[7; 16],
                cookie: &[9; 64],
                cert: b"\x02\x15\x02"
            }
        );
        assert_eq!(
            got[2],
            Chunk::IIKeying {
                initiator_session_id: 0x01020304,
                cookie: &[9; 64],
                cert: b"cert",
                skic: b"skic",
                signature: b"X"
            }
        );
        assert_eq!(
            got[3],
            Chunk::RIKeying {
                responder_session_id: 5,
                skrc: b"skrc",
                signature: b"X"
            }
        );
        let Chunk::Redirect { destinations, .. } = got[4] else {
            panic!("redirect")
        };
        assert_eq!(
            redirect_addresses(destinations).collect::<Vec<_>>(),
            vec![Ok((a, Origin::Remote))]
        );
        assert_eq!(
            got[5],
            Chunk::ForwardedIHello {
                epd: b"epd",
                reply_to: a,
                tag: &[1; 16]
            }
        );
    }

    #[test]
    fn user_data_and_next_user_data() {
        let mut out = Vec::new();
        let meta = [3u8, 0x00, b'T', b'C'];
        let first = UserData {
            flow_id: 2,
            seq: 1,
            fsn_offset: 1,
            fragment: Fragment::Begin,
            abandon: false,
            fin: false,
            options: Some(&meta),
            data: b"abc",
        };
        encode::user_data(&mut out, &first, false);
        let second = UserData {
            seq: 2,
            fsn_offset: 2,
            fragment: Fragment::End,
            options: None,
            data: b"def",
            ..first
        };
        encode::user_data(&mut out, &second, true);
        assert_eq!(out[0], kind::USER_DATA);
        let got = decode_all(&out);
        assert_eq!(got, vec![Chunk::UserData(first), Chunk::UserData(second)]);
        // Next User Data with nothing before it is refused.
        let mut d = ChunkDecoder::default();
        assert!(d.decode(kind::NEXT_USER_DATA, &[0x00, b'x']).is_err());
    }

    #[test]
    fn acks_ranges_and_bitmap() {
        let mut out = Vec::new();
        encode::ack_ranges(&mut out, 3, 64, 10, &[(12, 13), (20, 20)]);
        let got = decode_all(&out);
        let Chunk::Ack {
            flow_id,
            buffer_blocks,
            cumulative,
            ranges,
            rest,
        } = got[0]
        else {
            panic!("ack")
        };
        assert_eq!(
            (flow_id, buffer_blocks, cumulative, ranges),
            (3, 64, 10, true)
        );
        assert_eq!(
            ack_ranges(cumulative, ranges, rest).collect::<Vec<_>>(),
            vec![(12, 13), (20, 20)]
        );
        // Bitmap 0b0000_0101: cumulative + 2 and cumulative + 4.
        assert_eq!(
            ack_ranges(10, false, &[0x05]).collect::<Vec<_>>(),
            vec![(12, 12), (14, 14)]
        );
    }
}
