//! PES packet headers: stream id, length, and the presentation and decoding times.

use super::TIME_MASK;

pub(crate) const STREAM_ID_VIDEO: u8 = 0xe0;
pub(crate) const STREAM_ID_AUDIO: u8 = 0xc0;
/// private_stream_1: Opus and AV1.
pub(crate) const STREAM_ID_PRIVATE_1: u8 = 0xbd;

/// The longest PES header we write: 9 bytes, PTS (5) and DTS (5).
pub(crate) const MAX_HEADER_LEN: usize = 19;

/// Appends a PES header for `payload_len` bytes of payload. A DTS is written only when it
/// differs from the PTS. PES_packet_length is 0 ("unbounded", allowed for video only) when
/// the packet is too long for 16 bits.
pub(crate) fn write_header(
    out: &mut Vec<u8>,
    stream_id: u8,
    pts: u64,
    dts: Option<u64>,
    payload_len: usize,
) {
    let dts = dts.filter(|&d| d != pts);
    let header_data_len = if dts.is_some() { 10 } else { 5 };
    let packet_len = 3 + header_data_len + payload_len;
    let packet_len = if packet_len > usize::from(u16::MAX) {
        0
    } else {
        packet_len as u16
    };
    out.extend_from_slice(&[0, 0, 1, stream_id]);
    out.extend_from_slice(&packet_len.to_be_bytes());
    // '10', not scrambled, no priority, data_alignment_indicator set: every PES here
    // starts with an access unit.
    out.push(0x84);
    out.push(if dts.is_some() { 0xc0 } else { 0x80 });
    out.push(header_data_len as u8);
    write_timestamp(out, if dts.is_some() { 0x3 } else { 0x2 }, pts);
    if let Some(dts) = dts {
        write_timestamp(out, 0x1, dts);
    }
}

/// A 33-bit time in the 5-byte form with marker bits, behind a 4-bit prefix.
fn write_timestamp(out: &mut Vec<u8>, prefix: u8, t: u64) {
    let t = t & TIME_MASK;
    out.extend_from_slice(&[
        prefix << 4 | ((t >> 29) as u8 & 0x0e) | 1,
        (t >> 22) as u8,
        ((t >> 14) as u8 & 0xfe) | 1,
        (t >> 7) as u8,
        ((t << 1) as u8 & 0xfe) | 1,
    ]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_timestamp(b: &[u8]) -> u64 {
        u64::from(b[0] & 0x0e) << 29
            | u64::from(b[1]) << 22
            | u64::from(b[2] >> 1) << 15
            | u64::from(b[3]) << 7
            | u64::from(b[4] >> 1)
    }

    #[test]
    fn pts_and_dts() {
        let mut out = Vec::new();
        write_header(&mut out, STREAM_ID_VIDEO, 0x1_fedc_ba98, Some(12345), 100);
        assert_eq!(out.len(), MAX_HEADER_LEN);
        assert_eq!(&out[..4], &[0, 0, 1, 0xe0]);
        assert_eq!(u16::from_be_bytes([out[4], out[5]]), 3 + 10 + 100);
        assert_eq!(out[7], 0xc0);
        assert_eq!(out[9] >> 4, 3);
        assert_eq!(read_timestamp(&out[9..]), 0x1_fedc_ba98);
        assert_eq!(out[14] >> 4, 1);
        assert_eq!(read_timestamp(&out[14..]), 12345);
    }

    #[test]
    fn equal_dts_is_left_out_and_long_video_is_unbounded() {
        let mut out = Vec::new();
        write_header(&mut out, STREAM_ID_VIDEO, 900, Some(900), 70_000);
        assert_eq!(out.len(), 14);
        assert_eq!(&out[4..6], &[0, 0]);
        assert_eq!(out[7], 0x80);
        assert_eq!(read_timestamp(&out[9..]), 900);
    }
}
