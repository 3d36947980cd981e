//! AV1 as AOM's "Carriage of AV1 in MPEG-2 TS" (v1.0) wants it: stream_type 0x06 with a
//! registration descriptor 'AV01' first and the AV1 video descriptor (tag 0x80, the
//! AV1CodecConfigurationRecord's first bytes with `hdr_wcg_idc`), PES on
//! private_stream_1, one access unit per PES, and every OBU in the start-code format
//! (`ts_open_bitstream_unit`: 0x000001, then the OBU with emulation prevention bytes).
//!
//! Enhanced RTMP `av01` brings the AV1CodecConfigurationRecord (`av1C`) as its sequence
//! start and temporal units in the low-overhead format (OBUs with `obu_size`, usually
//! without temporal delimiters, as in MP4). Each access unit here starts with a temporal
//! delimiter (the low-overhead format begins every temporal unit with one) and a key frame
//! without its own sequence header gets the record's, so that a receiver can start on any
//! key frame.

use super::MuxError;

const START_CODE: [u8; 3] = [0, 0, 1];
/// A temporal delimiter OBU: type 2, `obu_has_size_field`, size 0.
const TEMPORAL_DELIMITER: [u8; 2] = [0x12, 0x00];
const OBU_SEQUENCE_HEADER: u8 = 1;
const OBU_TEMPORAL_DELIMITER: u8 = 2;
/// Registration descriptor (tag 5) 'AV01', then the AV1 video descriptor's tag and length.
const REGISTRATION: [u8; 6] = [0x05, 4, b'A', b'V', b'0', b'1'];
const AV1_VIDEO_DESCRIPTOR_TAG: u8 = 0x80;
/// `hdr_wcg_idc` 3: no indication (RTMP does not say).
const HDR_WCG_NO_INDICATION: u8 = 3;

/// What the muxer keeps of an `av1C`: the PMT's descriptors for the stream and the
/// sequence header OBUs in the start-code format, put before key frames lacking one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Av1Config {
    pub(crate) descriptors: Vec<u8>,
    pub(crate) config_obus: Vec<u8>,
}

/// Reads an AV1CodecConfigurationRecord (AV1-ISOBMFF 2.3.3): marker and version (0x81),
/// profile and level, tier and colour bits, presentation delay, then configOBUs.
pub(crate) fn parse_config(record: &[u8]) -> Result<Av1Config, MuxError> {
    let head = record.get(..4).ok_or(MuxError::BadConfig)?;
    if head[0] != 0x81 {
        return Err(MuxError::BadConfig);
    }
    let mut descriptors = REGISTRATION.to_vec();
    descriptors.extend_from_slice(&[
        AV1_VIDEO_DESCRIPTOR_TAG,
        4,
        head[0],
        head[1],
        head[2],
        // hdr_wcg_idc, reserved_zeros, then the record's presentation delay bits.
        HDR_WCG_NO_INDICATION << 6 | (head[3] & 0x1f),
    ]);
    let mut config_obus = Vec::new();
    for obu in obus(&record[4..]) {
        let obu = obu?;
        if obu_type(obu) == OBU_SEQUENCE_HEADER {
            write_obu(&mut config_obus, obu);
        }
    }
    Ok(Av1Config {
        descriptors,
        config_obus,
    })
}

fn obu_type(obu: &[u8]) -> u8 {
    obu.first().map_or(0, |h| (h >> 3) & 0x0f)
}

/// Walks the OBUs of the low-overhead format, each whole (header, size field, payload).
/// An OBU without `obu_has_size_field` runs to the end. Every size is checked.
fn obus(data: &[u8]) -> impl Iterator<Item = Result<&[u8], MuxError>> + '_ {
    let mut rest = data;
    std::iter::from_fn(move || {
        let &header = rest.first()?;
        let has_extension = header & 0x04 != 0;
        let has_size = header & 0x02 != 0;
        let mut at = 1 + usize::from(has_extension);
        let len = if has_size {
            let Some((size, n)) = rest.get(at..).and_then(leb128) else {
                rest = &[];
                return Some(Err(MuxError::BadObu));
            };
            at += n;
            at.checked_add(size)
        } else {
            Some(rest.len())
        };
        let Some(obu) = len
            .and_then(|len| rest.get(..len))
            .filter(|_| at <= rest.len())
        else {
            rest = &[];
            return Some(Err(MuxError::BadObu));
        };
        rest = &rest[obu.len()..];
        Some(Ok(obu))
    })
}

/// An unsigned LEB128 (at most 8 bytes, as AV1 allows) and how many bytes it took.
fn leb128(b: &[u8]) -> Option<(usize, usize)> {
    let mut value: u64 = 0;
    for (i, &byte) in b.iter().take(8).enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return usize::try_from(value).ok().map(|v| (v, i + 1));
        }
    }
    None
}

/// One OBU as a `ts_open_bitstream_unit`: the start code, then its bytes with an
/// emulation_prevention_three_byte after any two zero bytes followed by a byte <= 3, so
/// that no 0x000000, 0x000001 or 0x000002 (nor a 0x000003 not meant as one) appears in it.
fn write_obu(out: &mut Vec<u8>, obu: &[u8]) {
    out.extend_from_slice(&START_CODE);
    let mut zeros = 0;
    for &b in obu {
        if zeros >= 2 && b <= 3 {
            out.push(3);
            zeros = 0;
        }
        out.push(b);
        zeros = if b == 0 { zeros + 1 } else { 0 };
    }
}

/// Appends one access unit: a temporal delimiter (the frame's own, or one made here),
/// for a key frame without its own the sequence header, then the frame's OBUs. `out` is
/// left as it was on error.
pub(crate) fn write_access_unit(
    out: &mut Vec<u8>,
    config: &Av1Config,
    key: bool,
    data: &[u8],
) -> Result<(), MuxError> {
    let mut has_sequence_header = false;
    let mut starts_with_delimiter = None;
    for obu in obus(data) {
        let t = obu_type(obu?);
        starts_with_delimiter.get_or_insert(t == OBU_TEMPORAL_DELIMITER);
        has_sequence_header |= t == OBU_SEQUENCE_HEADER;
    }
    if starts_with_delimiter != Some(true) {
        write_obu(out, &TEMPORAL_DELIMITER);
    }
    let mut sequence_header_due = key && !has_sequence_header;
    for obu in obus(data).flatten() {
        if sequence_header_due && obu_type(obu) != OBU_TEMPORAL_DELIMITER {
            out.extend_from_slice(&config.config_obus);
            sequence_header_due = false;
        }
        write_obu(out, obu);
    }
    if sequence_header_due {
        out.extend_from_slice(&config.config_obus);
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What a reader of the start-code format does (the spec's `ts_open_bitstream_unit`
    /// syntax): split at start codes, drop each emulation prevention byte.
    fn unescape(ts: &[u8]) -> Vec<Vec<u8>> {
        let mut units = Vec::new();
        let starts: Vec<usize> = (0..ts.len().saturating_sub(2))
            .filter(|&j| ts[j..j + 3] == START_CODE)
            .collect();
        for (k, &s) in starts.iter().enumerate() {
            let end = starts.get(k + 1).copied().unwrap_or(ts.len());
            let body = &ts[s + 3..end];
            let mut obu = Vec::new();
            let mut i = 0;
            while i < body.len() {
                if i + 2 < body.len() && body[i..i + 3] == [0, 0, 3] {
                    obu.extend_from_slice(&[0, 0]);
                    i += 3;
                } else {
                    obu.push(body[i]);
                    i += 1;
                }
            }
            units.push(obu);
        }
        units
    }

    fn record() -> Vec<u8> {
        // av1C: main profile, level 8, 4:2:0, no presentation delay; a sequence header
        // OBU (type 1, size 3) as its configOBUs.
        vec![0x81, 0x08, 0x0c, 0x00, 0x0a, 3, 0, 0, 1]
    }

    #[test]
    fn descriptors_are_registration_then_the_av1_video_descriptor() {
        let c = parse_config(&record()).unwrap();
        assert_eq!(
            c.descriptors,
            [0x05, 4, b'A', b'V', b'0', b'1', 0x80, 4, 0x81, 0x08, 0x0c, 0xc0]
        );
        // The sequence header carries 00 00 01: escaped, so no false start code.
        assert_eq!(c.config_obus, [0, 0, 1, 0x0a, 3, 0, 0, 3, 1]);
        assert_eq!(unescape(&c.config_obus), [vec![0x0a, 3, 0, 0, 1]]);
        assert_eq!(parse_config(&[0x81, 0, 0]), Err(MuxError::BadConfig));
        assert_eq!(parse_config(&[1, 0, 0, 0]), Err(MuxError::BadConfig));
    }

    #[test]
    fn key_frame_gets_a_delimiter_and_the_sequence_header() {
        let c = parse_config(&record()).unwrap();
        // A frame OBU (type 6, size 5) whose payload holds every forbidden sequence.
        let frame = [0x32, 5, 0, 0, 0, 0, 2];
        let mut out = Vec::new();
        write_access_unit(&mut out, &c, true, &frame).unwrap();
        assert_eq!(
            unescape(&out),
            [vec![0x12, 0], vec![0x0a, 3, 0, 0, 1], frame.to_vec()]
        );
        // 00 00 00 and 00 00 02 in the payload, each escaped by a 03.
        assert!(
            out.ends_with(&[0, 0, 1, 0x32, 5, 0, 0, 3, 0, 0, 3, 2]),
            "{out:x?}"
        );
        // An inter frame with its own delimiter: converted only.
        let mut out = Vec::new();
        write_access_unit(&mut out, &c, false, &[0x12, 0, 0x32, 1, 7]).unwrap();
        assert_eq!(out, [0, 0, 1, 0x12, 0, 0, 0, 1, 0x32, 1, 7]);
    }

    #[test]
    fn bad_sizes_are_errors_and_leave_out_unchanged() {
        let c = parse_config(&record()).unwrap();
        let mut out = vec![9];
        assert_eq!(
            write_access_unit(&mut out, &c, true, &[0x32, 9, 1]),
            Err(MuxError::BadObu)
        );
        assert_eq!(
            write_access_unit(&mut out, &c, true, &[0x32, 0x80, 0x80]),
            Err(MuxError::BadObu)
        );
        assert_eq!(out, [9]);
    }

    proptest! {
        #[test]
        fn any_frame_round_trips_or_fails_cleanly(data in proptest::collection::vec(any::<u8>(), 1..200)) {
            let c = parse_config(&record()).unwrap();
            let mut out = Vec::new();
            if write_access_unit(&mut out, &c, false, &data).is_ok() {
                // A reader gets every OBU back, behind a temporal delimiter.
                let back: Vec<u8> = unescape(&out).concat();
                let expect = if obu_type(&data) == OBU_TEMPORAL_DELIMITER {
                    data.clone()
                } else {
                    [&TEMPORAL_DELIMITER[..], &data].concat()
                };
                prop_assert_eq!(back, expect);
            }
            let _ = write_access_unit(&mut out, &c, true, &data);
            let _ = parse_config(&data);
        }
    }
}
