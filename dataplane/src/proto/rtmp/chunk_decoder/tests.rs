#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use proptest::prelude::*;

use super::*;
use crate::proto::rtmp::chunk_encoder::{encode_message, encoded_len, ChunkEncoder};
use crate::proto::rtmp::control::ControlMessage;

fn decode_all(bytes: &[u8]) -> Vec<Message> {
    let mut d = ChunkDecoder::default();
    let mut out = Vec::new();
    d.feed(bytes, &mut out).unwrap();
    out
}

fn decode_err(limits: DecoderLimits, bytes: &[u8]) -> (Vec<Message>, ChunkError) {
    let mut d = ChunkDecoder::new(limits);
    let mut out = Vec::new();
    let e = d.feed(bytes, &mut out).unwrap_err();
    (out, e)
}

fn msg(csid: u32, timestamp: u32, type_id: u8, stream_id: u32, payload: &[u8]) -> Message {
    Message {
        csid,
        timestamp,
        type_id,
        stream_id,
        payload: Bytes::copy_from_slice(payload),
    }
}

#[test]
fn type_0_single_chunk_command() {
    let mut b = vec![0x03, 0, 0, 0, 0, 0, 10, 0x14, 0, 0, 0, 0];
    b.extend_from_slice(b"\x02\x00\x07connect");
    assert_eq!(
        decode_all(&b),
        vec![msg(3, 0, 20, 0, b"\x02\x00\x07connect")]
    );
}

#[test]
fn stream_id_is_little_endian() {
    let b = [0x08, 0, 0, 1, 0, 0, 1, 0x08, 0x39, 0x30, 0, 0, 0xAF];
    assert_eq!(decode_all(&b), vec![msg(8, 1, 8, 12345, &[0xAF])]);
}

/// RTMP specification §5.3.2.1: four audio messages, headers 0, 2, 3, 3.
#[test]
fn spec_example_audio_deltas() {
    let p = [0x55u8; 32];
    let mut b = vec![0x03, 0x00, 0x03, 0xE8, 0, 0, 32, 8, 0x39, 0x30, 0, 0];
    b.extend_from_slice(&p);
    b.extend_from_slice(&[0x83, 0, 0, 20]);
    b.extend_from_slice(&p);
    b.extend_from_slice(&[0xC3]);
    b.extend_from_slice(&p);
    b.extend_from_slice(&[0xC3]);
    b.extend_from_slice(&p);
    let got: Vec<u32> = decode_all(&b).iter().map(|m| m.timestamp).collect();
    assert_eq!(got, vec![1000, 1020, 1040, 1060]);
}

/// §5.3.2.2: a 307-byte message in chunks of 128: headers 0, 3, 3.
#[test]
fn spec_example_message_over_three_chunks() {
    let payload: Vec<u8> = (0..307u32).map(|i| i as u8).collect();
    let mut b = vec![0x04, 0x00, 0x03, 0xE8, 0, 0x01, 0x33, 9, 0x39, 0x30, 0, 0];
    b.extend_from_slice(&payload[..128]);
    b.push(0xC4);
    b.extend_from_slice(&payload[128..256]);
    b.push(0xC4);
    b.extend_from_slice(&payload[256..]);
    assert_eq!(decode_all(&b), vec![msg(4, 1000, 9, 12345, &payload)]);
}

#[test]
fn two_and_three_byte_chunk_stream_ids() {
    let mut b = Vec::new();
    for basic in [
        &[0x00, 0x00][..],
        &[0x00, 0xFF],
        &[0x01, 0x00, 0x01],
        &[0x01, 0xFF, 0xFF],
        &[0x01, 0x00, 0x00],
    ] {
        b.extend_from_slice(basic);
        b.extend_from_slice(&[0, 0, 0, 0, 0, 1, 8, 0, 0, 0, 0, 0x42]);
    }
    let csids: Vec<u32> = decode_all(&b).iter().map(|m| m.csid).collect();
    assert_eq!(csids, vec![64, 319, 320, 65599, 64]);
}

#[test]
fn extended_timestamp_repeats_on_continuation_chunks() {
    let payload = [7u8; 200];
    let mut b = vec![
        0x06, 0xFF, 0xFF, 0xFF, 0, 0, 200, 9, 1, 0, 0, 0, 0x01, 0x00, 0x00, 0x00,
    ];
    b.extend_from_slice(&payload[..128]);
    b.extend_from_slice(&[0xC6, 0x01, 0x00, 0x00, 0x00]);
    b.extend_from_slice(&payload[128..]);
    let m = msg(6, 0x0100_0000, 9, 1, &payload);
    assert_eq!(decode_all(&b), vec![m.clone()]);
    // Our encoder writes the same bytes.
    let mut enc = Vec::new();
    encode_message(&m, 128, &mut enc);
    assert_eq!(enc, b);
    assert_eq!(encoded_len(&m, 128), b.len());
}

#[test]
fn type_3_new_message_reuses_extended_delta() {
    // Type 0 at 0, type 2 with an extended delta of 2^24, then a type 3 repeating it.
    let mut b = vec![0x05, 0, 0, 0, 0, 0, 1, 18, 0, 0, 0, 0, 0xAA];
    b.extend_from_slice(&[0x85, 0xFF, 0xFF, 0xFF, 0x01, 0x00, 0x00, 0x00, 0xBB]);
    b.extend_from_slice(&[0xC5, 0x01, 0x00, 0x00, 0x00, 0xCC]);
    let ts: Vec<u32> = decode_all(&b).iter().map(|m| m.timestamp).collect();
    assert_eq!(ts, vec![0, 0x0100_0000, 0x0200_0000]);
}

#[test]
fn timestamps_wrap_at_2_pow_32() {
    let mut b = vec![
        0x05, 0xFF, 0xFF, 0xFF, 0, 0, 0, 18, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xF0,
    ];
    b.extend_from_slice(&[0x85, 0, 0, 0x20]);
    let ts: Vec<u32> = decode_all(&b).iter().map(|m| m.timestamp).collect();
    assert_eq!(ts, vec![0xFFFF_FFF0, 0x10]);
}

#[test]
fn zero_length_message_completes_at_its_header() {
    let b = [0x03, 0, 0, 5, 0, 0, 0, 20, 0, 0, 0, 0];
    assert_eq!(decode_all(&b), vec![msg(3, 5, 20, 0, &[])]);
}

#[test]
fn set_chunk_size_applies_at_the_byte_it_completes() {
    let mut b = vec![0x02, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0, 0, 0, 0x10, 0x00];
    let payload = [3u8; 300];
    b.extend_from_slice(&[0x04, 0, 0, 0, 0, 0x01, 0x2C, 8, 1, 0, 0, 0]);
    b.extend_from_slice(&payload);
    let mut d = ChunkDecoder::default();
    let mut out = Vec::new();
    d.feed(&b, &mut out).unwrap();
    assert_eq!(d.chunk_size(), 4096);
    assert_eq!(out.len(), 2);
    assert_eq!(out[1], msg(4, 0, 8, 1, &payload));
}

#[test]
fn abort_drops_the_partial_message() {
    let mut b = vec![0x04, 0, 0, 0, 0, 0, 200, 8, 1, 0, 0, 0];
    b.extend_from_slice(&[1u8; 128]);
    // Abort chunk stream 4, then a fresh one-byte message on it with a type-1 header.
    b.extend_from_slice(&[0x02, 0, 0, 0, 0, 0, 4, 2, 0, 0, 0, 0, 0, 0, 0, 4]);
    b.extend_from_slice(&[0x44, 0, 0, 1, 0, 0, 1, 8, 0x77]);
    let got = decode_all(&b);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].type_id, 2);
    assert_eq!(got[1], msg(4, 1, 8, 1, &[0x77]));
}

#[test]
fn bad_chunk_sizes_are_errors() {
    let (_, e) = decode_err(
        DecoderLimits::default(),
        &[0x02, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0, 0, 0, 0, 0],
    );
    assert_eq!(e.to_string(), "invalid chunk size 0");
    let (_, e) = decode_err(
        DecoderLimits::default(),
        &[0x02, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0, 0x80, 0, 0, 0],
    );
    assert_eq!(e.to_string(), "chunk size 2147483648 above 2^31-1");
    let (_, e) = decode_err(
        DecoderLimits::default(),
        &[0x02, 0, 0, 0, 0, 0, 2, 1, 0, 0, 0, 0, 0, 1],
    );
    assert_eq!(e.to_string(), "set chunk size message of 2 bytes, needs 4");
}

#[test]
fn oversized_message_is_refused_at_its_header() {
    let (_, e) = decode_err(
        DecoderLimits::default(),
        &[0x03, 0, 0, 0, 0xFF, 0xFF, 0xFF, 9, 0, 0, 0, 0],
    );
    assert_eq!(
        e.to_string(),
        "message of 16777215 bytes over the limit of 8388608"
    );
}

#[test]
fn too_many_chunk_streams() {
    let limits = DecoderLimits {
        max_chunk_streams: 2,
        ..DecoderLimits::default()
    };
    let mut b = Vec::new();
    for csid in 3..6u8 {
        b.extend_from_slice(&[csid, 0, 0, 0, 0, 0, 1, 8, 0, 0, 0, 0, 0]);
    }
    let (out, e) = decode_err(limits, &b);
    assert_eq!(out.len(), 2, "messages before the error are handed out");
    assert_eq!(e.to_string(), "more than 2 chunk streams");
    assert_eq!(
        ChunkError::TooManyChunkStreams(64).to_string(),
        "more than 64 chunk streams"
    );
}

#[test]
fn compressed_header_without_previous_one() {
    let (_, e) = decode_err(DecoderLimits::default(), &[0x49, 0, 0, 0, 0, 0, 1, 8]);
    assert_eq!(
        e.to_string(),
        "chunk type 1 on chunk stream 9 with no previous header"
    );
    let (_, e) = decode_err(DecoderLimits::default(), &[0xC3]);
    assert_eq!(e, ChunkError::NoPreviousHeader { fmt: 3, csid: 3 });
}

#[test]
fn byte_at_a_time_equals_all_at_once() {
    let m = msg(6, 0x0100_0000, 9, 1, &[9u8; 300]);
    let mut b = Vec::new();
    encode_message(&m, 128, &mut b);
    let mut d = ChunkDecoder::default();
    let mut out = Vec::new();
    for byte in &b {
        d.feed(std::slice::from_ref(byte), &mut out).unwrap();
    }
    assert_eq!(out, vec![m]);
}

#[test]
fn encoder_writes_csid_forms() {
    let mut b = Vec::new();
    encode_message(&msg(65599, 0, 8, 0, &[1]), 128, &mut b);
    assert_eq!(&b[..3], &[0x01, 0xFF, 0xFF]);
    b.clear();
    encode_message(&msg(300, 0, 8, 0, &[1]), 128, &mut b);
    assert_eq!(&b[..2], &[0x00, 236]);
}

#[test]
fn stateful_encoder_compresses_like_the_spec_example() {
    let mut enc = ChunkEncoder::new(128);
    let mut b = Vec::new();
    for i in 0..4 {
        enc.encode(&msg(3, 1000 + 20 * i, 8, 12345, &[0x55; 32]), &mut b);
    }
    // Headers 0, 2, 1-less... : type 0 (12 bytes), type 2 (4 bytes), then type 3 (1 byte) twice.
    assert_eq!(b.len(), 12 + 32 + 4 + 32 + 1 + 32 + 1 + 32);
    assert_eq!(b[44], 0x83);
    assert_eq!(b[80], 0xC3);
    assert_eq!(decode_all(&b).len(), 4);
}

// --- properties ---

const CSIDS: [u32; 7] = [2, 3, 4, 63, 64, 320, 65599];
const TYPES: [u8; 4] = [8, 9, 18, 20];

fn any_message() -> impl Strategy<Value = Message> {
    (
        proptest::sample::select(&CSIDS[..]),
        prop_oneof![any::<u32>(), 0u32..100_000, 0xFF_FFF0u32..0x100_0010],
        proptest::sample::select(&TYPES[..]),
        any::<u32>(),
        proptest::collection::vec(any::<u8>(), 0..600),
    )
        .prop_map(|(csid, timestamp, type_id, stream_id, p)| Message {
            csid,
            timestamp,
            type_id,
            stream_id,
            payload: Bytes::from(p),
        })
}

/// Feeds `bytes` cut at `cuts` (positions taken modulo the length).
fn feed_split(
    d: &mut ChunkDecoder,
    bytes: &[u8],
    cuts: &[usize],
    out: &mut Vec<Message>,
) -> Result<(), ChunkError> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.push(0);
    points.push(bytes.len());
    points.sort_unstable();
    for w in points.windows(2) {
        d.feed(&bytes[w[0]..w[1]], out)?;
    }
    Ok(())
}

/// Steps of a stateful-encoder session: a message (csid index, delta index, length index,
/// type, stream) or a chunk size change.
#[derive(Debug, Clone)]
enum Op {
    Msg {
        csid: usize,
        delta: usize,
        len: usize,
        type_id: u8,
        stream_id: u32,
    },
    ChunkSize(u32),
}

fn any_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0..3usize, 0..5usize, 0..4usize, proptest::sample::select(&TYPES[..2]), 0..2u32)
            .prop_map(|(csid, delta, len, type_id, stream_id)| Op::Msg { csid, delta, len, type_id, stream_id }),
        1 => (1u32..300).prop_map(Op::ChunkSize),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn encode_decode_round_trip(
        msgs in proptest::collection::vec(any_message(), 0..20),
        chunk_size in 1u32..700,
        cuts in proptest::collection::vec(any::<usize>(), 0..30),
    ) {
        let mut bytes = Vec::new();
        let scs = ControlMessage::SetChunkSize(chunk_size).to_message();
        encode_message(&scs, DEFAULT_CHUNK_SIZE, &mut bytes);
        for m in &msgs {
            let before = bytes.len();
            encode_message(m, chunk_size, &mut bytes);
            prop_assert_eq!(bytes.len() - before, encoded_len(m, chunk_size));
        }
        let mut d = ChunkDecoder::default();
        let mut out = Vec::new();
        feed_split(&mut d, &bytes, &cuts, &mut out).unwrap();
        prop_assert_eq!(out.remove(0), scs);
        prop_assert_eq!(out, msgs);
    }

    #[test]
    fn stateful_encoder_round_trip(
        ops in proptest::collection::vec(any_op(), 0..40),
        start in prop_oneof![0u32..1000, 0xFF_FF00u32..0x100_0100, any::<u32>()],
        cuts in proptest::collection::vec(any::<usize>(), 0..30),
    ) {
        const CS: [u32; 3] = [3, 4, 320];
        const DELTAS: [u32; 5] = [0, 20, 33, 0xFF_FFFF, 0x123_4567];
        const LENS: [usize; 4] = [0, 5, 130, 400];
        let mut enc = ChunkEncoder::new(DEFAULT_CHUNK_SIZE);
        let mut now = [start; 3];
        let mut bytes = Vec::new();
        let mut sent = Vec::new();
        for op in ops {
            match op {
                Op::Msg { csid, delta, len, type_id, stream_id } => {
                    now[csid] = now[csid].wrapping_add(DELTAS[delta]);
                    let m = Message {
                        csid: CS[csid],
                        timestamp: now[csid],
                        type_id,
                        stream_id,
                        payload: Bytes::from(vec![len as u8; LENS[len]]),
                    };
                    enc.encode(&m, &mut bytes);
                    sent.push(m);
                }
                Op::ChunkSize(n) => {
                    let m = ControlMessage::SetChunkSize(n).to_message();
                    enc.encode(&m, &mut bytes);
                    enc.set_chunk_size(n);
                    sent.push(m);
                }
            }
        }
        let mut d = ChunkDecoder::default();
        let mut out = Vec::new();
        feed_split(&mut d, &bytes, &cuts, &mut out).unwrap();
        prop_assert_eq!(out, sent);
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        data in proptest::collection::vec(any::<u8>(), 0..2000),
        cuts in proptest::collection::vec(any::<usize>(), 0..20),
        max_message_size in 0u32..1000,
        max_chunk_streams in 0usize..8,
    ) {
        let mut d = ChunkDecoder::new(DecoderLimits { max_message_size, max_chunk_streams });
        let _ = feed_split(&mut d, &data, &cuts, &mut Vec::new());
    }
}

#[test]
fn headers_alone_cannot_reserve_unbounded_memory() {
    // Three chunk streams each announcing a 1000-byte message under a 1000-byte limit: the
    // third would make 3000 bytes pending, over twice the message limit.
    let limits = DecoderLimits {
        max_message_size: 1000,
        max_chunk_streams: 64,
    };
    let mut b = Vec::new();
    for csid in 3..6u8 {
        b.extend_from_slice(&[csid, 0, 0, 0, 0, 0x03, 0xE8, 9, 0, 0, 0, 0]);
        b.extend_from_slice(&[0xAB; 128]);
    }
    let (_, e) = decode_err(limits, &b);
    assert_eq!(
        e.to_string(),
        "unfinished messages would hold 3000 bytes, over the limit of 2000"
    );
}

#[test]
fn finished_and_aborted_messages_stop_counting_as_pending() {
    let limits = DecoderLimits {
        max_message_size: 1000,
        max_chunk_streams: 64,
    };
    let mut d = ChunkDecoder::new(limits);
    let mut out = Vec::new();
    let mut b = Vec::new();
    for _ in 0..5 {
        encode_message(&msg(3, 0, 9, 1, &[1u8; 1000]), DEFAULT_CHUNK_SIZE, &mut b);
    }
    // A partial 1000-byte message on csid 4 (one 128-byte chunk), aborted, five times over.
    for _ in 0..5 {
        b.extend_from_slice(&[0x04, 0, 0, 0, 0, 0x03, 0xE8, 9, 0, 0, 0, 0]);
        b.extend_from_slice(&[0xAB; 128]);
        b.extend_from_slice(&[0x02, 0, 0, 0, 0, 0, 4, 2, 0, 0, 0, 0, 0, 0, 0, 4]);
    }
    d.feed(&b, &mut out).unwrap();
    assert_eq!(out.len(), 5 + 5);
}

#[test]
fn full_header_mid_message_starts_over() {
    let mut b = vec![0x04, 0, 0, 0, 0, 0, 200, 8, 1, 0, 0, 0];
    b.extend_from_slice(&[1u8; 128]);
    b.extend_from_slice(&[0x04, 0, 0, 9, 0, 0, 2, 8, 1, 0, 0, 0, 0xAA, 0xBB]);
    assert_eq!(decode_all(&b), vec![msg(4, 9, 8, 1, &[0xAA, 0xBB])]);
}

#[test]
fn feed_shared_hands_out_single_chunk_payloads_without_a_copy() {
    let big = msg(6, 40, msg_type::VIDEO, 1, &[7u8; 3000]);
    let small = msg(4, 41, msg_type::AUDIO, 1, b"audio");
    let mut enc = BytesMut::new();
    // A chunk size above every message (announced first, as the engine's session does):
    // each is one chunk.
    let size = msg(
        2,
        0,
        msg_type::SET_CHUNK_SIZE,
        0,
        &0x7FFF_FFFFu32.to_be_bytes(),
    );
    encode_message(&size, 128, &mut enc);
    encode_message(&big, 0x7FFF_FFFF, &mut enc);
    encode_message(&small, 0x7FFF_FFFF, &mut enc);
    let input = enc.freeze();
    let mut d = ChunkDecoder::default();
    let mut out = Vec::new();
    d.feed_shared(&input, &mut out).unwrap();
    assert_eq!(out, vec![size.clone(), big.clone(), small.clone()]);
    let within = |p: &Bytes| {
        let (a, b) = (input.as_ptr() as usize, p.as_ptr() as usize);
        b >= a && b + p.len() <= a + input.len()
    };
    assert!(
        out.iter().all(|m| within(&m.payload)),
        "slices of the input"
    );

    // Split across two feeds (or cut into chunks), a message is copied, and still whole.
    let mut d = ChunkDecoder::default();
    let mut out = Vec::new();
    let cut = 1500;
    d.feed_shared(&input.slice(..cut), &mut out).unwrap();
    d.feed_shared(&input.slice(cut..), &mut out).unwrap();
    assert_eq!(out, vec![size, big.clone(), small]);
    assert!(!within(&out[1].payload));
    let mut chunked = BytesMut::new();
    encode_message(&big, 128, &mut chunked);
    let chunked = chunked.freeze();
    let mut out = Vec::new();
    ChunkDecoder::default()
        .feed_shared(&chunked, &mut out)
        .unwrap();
    assert_eq!(out, vec![big]);
}
