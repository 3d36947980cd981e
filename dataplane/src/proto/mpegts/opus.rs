//! Opus as the Xiph/ETSI "Opus in MPEG-TS" mapping (the one ffmpeg and VLC implement)
//! wants it: stream_type 0x06 with a
//! registration descriptor 'Opus' and a DVB extension descriptor (tag 0x7f, extension tag
//! 0x80) giving the channel configuration; PES on private_stream_1; each access unit (one
//! Opus packet) behind its control header: the 11-bit prefix 0x3ff, the trim and
//! extension flags (none here), then `au_size` as a run of 0xff bytes and a last byte.
//!
//! Enhanced RTMP `Opus` brings the Ogg identification header (`OpusHead`, RFC 7845 5.1) as
//! its sequence start; what TS can signal of it is the channel configuration code: 1 to
//! 8 channels in the RTP (family 0, 1 or 2 channels) or Vorbis (family 1, up to 8) order
//! with the usual stream counts. Other layouts are refused (the track is not carried).

use super::MuxError;

/// Registration descriptor 'Opus', then the DVB extension descriptor's tag, length and
/// extension tag (user defined: Opus).
const DESCRIPTORS: [u8; 9] = [0x05, 4, b'O', b'p', b'u', b's', 0x7f, 2, 0x80];
/// Streams and coupled streams of the Vorbis channel orders for 1 to 8 channels (RFC
/// 7845 5.1.1.2), and the channel mapping each has.
const STREAMS: [u8; 8] = [1, 1, 2, 2, 3, 4, 4, 5];
const COUPLED: [u8; 8] = [0, 1, 1, 2, 2, 2, 3, 3];
const VORBIS_MAP: [&[u8]; 8] = [
    &[0],
    &[0, 1],
    &[0, 2, 1],
    &[0, 1, 2, 3],
    &[0, 4, 1, 2, 3],
    &[0, 4, 1, 2, 3, 5],
    &[0, 4, 1, 2, 3, 5, 6],
    &[0, 6, 1, 2, 3, 4, 5, 7],
];

/// The PMT descriptors of an Opus stream configured by `head` (an `OpusHead`).
pub(crate) fn descriptors(head: &[u8]) -> Result<Vec<u8>, MuxError> {
    let fixed = head.get(..19).ok_or(MuxError::BadConfig)?;
    if &fixed[..8] != b"OpusHead" || fixed[8] & 0xf0 != 0 {
        return Err(MuxError::BadConfig);
    }
    let channels = fixed[9];
    let family = fixed[18];
    let standard = match (family, channels) {
        (0, 1 | 2) => true,
        (1, 1..=8) => {
            let n = usize::from(channels);
            let table = head.get(19..21 + n).ok_or(MuxError::BadConfig)?;
            table[0] == STREAMS[n - 1]
                && table[1] == COUPLED[n - 1]
                && &table[2..] == VORBIS_MAP[n - 1]
        }
        _ => false,
    };
    if !standard {
        return Err(MuxError::UnsupportedOpus { channels, family });
    }
    let mut d = DESCRIPTORS.to_vec();
    d.push(channels);
    Ok(d)
}

/// Appends an access unit's control header for a packet of `len` bytes.
pub(crate) fn write_control_header(out: &mut Vec<u8>, len: usize) {
    out.extend_from_slice(&[0x7f, 0xe0]);
    out.extend(std::iter::repeat_n(0xff, len / 255));
    out.push((len % 255) as u8);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn head(channels: u8, family: u8, table: &[u8]) -> Vec<u8> {
        let mut h = b"OpusHead".to_vec();
        h.extend_from_slice(&[1, channels, 0x38, 1, 0x80, 0xbb, 0, 0, 0, 0, family]);
        h.extend_from_slice(table);
        h
    }

    #[test]
    fn stereo_and_surround_have_their_channel_codes() {
        assert_eq!(
            descriptors(&head(2, 0, &[])).unwrap(),
            [0x05, 4, b'O', b'p', b'u', b's', 0x7f, 2, 0x80, 2]
        );
        let six = head(6, 1, &[4, 2, 0, 4, 1, 2, 3, 5]);
        assert_eq!(descriptors(&six).unwrap()[9], 6);
        assert_eq!(
            descriptors(&head(6, 1, &[4, 2, 0, 1, 2, 3, 4, 5])),
            Err(MuxError::UnsupportedOpus {
                channels: 6,
                family: 1
            })
        );
        assert_eq!(
            descriptors(&head(3, 255, &[3, 0, 0, 1, 2])),
            Err(MuxError::UnsupportedOpus {
                channels: 3,
                family: 255
            })
        );
        assert_eq!(descriptors(&head(6, 1, &[4, 2])), Err(MuxError::BadConfig));
        assert_eq!(descriptors(b"OpusHead"), Err(MuxError::BadConfig));
    }

    #[test]
    fn control_header_sizes() {
        let mut out = Vec::new();
        write_control_header(&mut out, 254);
        assert_eq!(out, [0x7f, 0xe0, 254]);
        out.clear();
        write_control_header(&mut out, 255);
        assert_eq!(out, [0x7f, 0xe0, 255, 0]);
        out.clear();
        write_control_header(&mut out, 600);
        assert_eq!(out, [0x7f, 0xe0, 255, 255, 90]);
        // The prefix: 11 bits of ones, no trims, no extension.
        assert_eq!(u16::from_be_bytes([out[0], out[1]]) >> 5, 0x3ff);
    }

    proptest! {
        #[test]
        fn any_head_never_panics(h in proptest::collection::vec(any::<u8>(), 0..40), len in 0usize..5000) {
            let mut head = b"OpusHead".to_vec();
            head.extend_from_slice(&h);
            let _ = descriptors(&head);
            let _ = descriptors(&h);
            let mut out = Vec::new();
            write_control_header(&mut out, len);
            let sum: usize = out[2..].iter().map(|&b| usize::from(b)).sum();
            prop_assert_eq!(sum, len);
        }
    }
}
