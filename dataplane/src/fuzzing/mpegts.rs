//! Fuzz entry point for the MPEG-TS muxer: what publishers send (sequence headers, coded
//! frames, any bytes at all) goes through it on its way to multicast outputs.

use crate::proto::mpegts::muxer::TsMuxer;
use crate::proto::mpegts::TS_PACKET_SIZE;
use crate::proto::rtmp::msg_type;

/// The input is a run of messages, each: a byte whose low bit picks audio or video (bit 1
/// asks for a discontinuity first), a 16-bit timestamp step, a 16-bit length, the body.
/// Whatever comes out is whole TS packets.
pub fn mpegts_mux(data: &[u8]) {
    let mut m = TsMuxer::new();
    let mut rest = data;
    let mut ts = 0u32;
    while let Some(head) = rest.get(..5) {
        let len = usize::from(u16::from_be_bytes([head[3], head[4]]));
        let body = rest.get(5..5 + len).unwrap_or(&rest[5..]);
        let type_id = if head[0] & 1 == 0 {
            msg_type::AUDIO
        } else {
            msg_type::VIDEO
        };
        if head[0] & 2 != 0 {
            m.discontinuity();
        }
        ts = ts.wrapping_add(u32::from(u16::from_be_bytes([head[1], head[2]])));
        if let Ok(Some(f)) = m.push(type_id, ts, body) {
            assert_eq!(f.bytes.len() % TS_PACKET_SIZE, 0);
        }
        rest = &rest[(5 + body.len()).min(rest.len())..];
    }
}

/// A seed: the messages of a stream with an AVC and an AAC sequence header and a frame of
/// each, in the format `mpegts_mux` reads.
pub fn mpegts_seed() -> Vec<u8> {
    let msgs: [(u8, u16, &[u8]); 8] = [
        (
            1,
            0,
            &[
                0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 3, 0x67, 0x64, 0, 1, 0, 2, 0x68,
                0xee,
            ],
        ),
        (0, 0, &[0xaf, 0, 0x12, 0x10]),
        (1, 40, &[0x17, 1, 0, 0, 40, 0, 0, 0, 3, 0x65, 0x88, 0x84]),
        (2, 0, &[0xaf, 1, 0x21, 0x10, 0x04]),
        // Enhanced RTMP: an Opus head and packet, an av1C and a temporal unit.
        (
            0,
            0,
            &[
                0x90, b'O', b'p', b'u', b's', b'O', b'p', b'u', b's', b'H', b'e', b'a', b'd', 1, 2,
                0x38, 1, 0x80, 0xbb, 0, 0, 0, 0, 0,
            ],
        ),
        (0, 20, &[0x91, b'O', b'p', b'u', b's', 0xfc, 0xff, 0xfe]),
        (
            1,
            0,
            &[
                0x90, b'a', b'v', b'0', b'1', 0x81, 0x08, 0x0c, 0, 0x0a, 3, 0, 0, 1,
            ],
        ),
        (1, 40, &[0x91, b'a', b'v', b'0', b'1', 0x32, 3, 0, 0, 2]),
    ];
    let mut out = Vec::new();
    for (kind, step, body) in msgs {
        out.push(kind);
        out.extend_from_slice(&step.to_be_bytes());
        out.extend_from_slice(&(body.len() as u16).to_be_bytes());
        out.extend_from_slice(body);
    }
    out
}

/// Muxes `msgs` (RTMP message type, timestamp, body) with one muxer, as a stream's frames
/// are, and returns the TS bytes made: what the criterion bench `mpegts` times.
pub fn mpegts_mux_messages<'a>(msgs: impl Iterator<Item = (u8, u32, &'a [u8])>) -> usize {
    let mut m = TsMuxer::new();
    msgs.filter_map(|(type_id, ts, body)| m.push(type_id, ts, body).ok().flatten())
        .map(|f| f.bytes.len())
        .sum()
}

/// `streams` muxers fed the same messages in turn, each muxed frame held for `hold_ms` of
/// stream time before it is dropped (as an output holds it until its batch's send
/// completes), arenas of `arena_bytes`: what muxing costs when N streams' TS does not fit
/// a cache, unlike `mpegts_mux_messages`, whose one muxer rewrites the same hot buffer.
/// Returns the TS bytes made.
pub fn mpegts_mux_held<'a>(
    streams: usize,
    arena_bytes: usize,
    hold_ms: u32,
    msgs: impl Iterator<Item = (u8, u32, &'a [u8])>,
) -> usize {
    let mut muxers: Vec<TsMuxer> = (0..streams)
        .map(|_| TsMuxer::with_arena(arena_bytes))
        .collect();
    let mut held = std::collections::VecDeque::new();
    let mut total = 0;
    for (type_id, ts, body) in msgs {
        while held
            .front()
            .is_some_and(|(at, _)| ts.saturating_sub(*at) >= hold_ms)
        {
            held.pop_front();
        }
        for m in &mut muxers {
            if let Ok(Some(f)) = m.push(type_id, ts, body) {
                total += f.bytes.len();
                held.push_back((ts, f.bytes));
            }
        }
    }
    total
}
