//! Hand-built chunk bytes for the bad-input tests: what a hostile or broken client sends,
//! which a well-behaved encoder would refuse to produce.

/// A basic header (RTMP specification §5.3.1.1): 1, 2 or 3 bytes by chunk stream id.
pub fn basic_header(fmt: u8, csid: u32, out: &mut Vec<u8>) {
    let fmt = fmt << 6;
    match csid {
        2..=63 => out.push(fmt | csid as u8),
        64..=319 => out.extend_from_slice(&[fmt, (csid - 64) as u8]),
        _ => {
            let rest = csid - 64;
            out.extend_from_slice(&[fmt | 1, (rest & 0xff) as u8, (rest >> 8) as u8]);
        }
    }
}

/// A type-0 chunk header announcing a message of `length` bytes (the payload is not written).
pub fn type0_header(
    csid: u32,
    timestamp: u32,
    length: u32,
    type_id: u8,
    stream_id: u32,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(3 + 11);
    basic_header(0, csid, &mut out);
    out.extend_from_slice(&timestamp.min(0xff_ffff).to_be_bytes()[1..]);
    out.extend_from_slice(&length.to_be_bytes()[1..]);
    out.push(type_id);
    out.extend_from_slice(&stream_id.to_le_bytes());
    out
}

/// A complete single-chunk message (payload up to the default chunk size of 128).
pub fn single_chunk_message(csid: u32, type_id: u8, stream_id: u32, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() <= 128, "one chunk at the default chunk size");
    let mut out = type0_header(csid, 0, payload.len() as u32, type_id, stream_id);
    out.extend_from_slice(payload);
    out
}

/// A Set Chunk Size message with any value, including the invalid ones.
pub fn set_chunk_size(value: u32) -> Vec<u8> {
    single_chunk_message(2, 1, 0, &value.to_be_bytes())
}
