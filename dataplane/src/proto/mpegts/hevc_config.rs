//! The HEVCDecoderConfigurationRecord (ISO/IEC 14496-15 8.3.3.1) an HEVC sequence header
//! carries (legacy codec id 12 and Enhanced RTMP `hvc1` alike): the NAL unit length size
//! and the arrays of VPS, SPS, PPS (and SEI) NAL units, as Annex B.

use super::annex_b::ParameterSets;
use super::avc_config::length_prefixed;
use super::MuxError;

/// The record's fixed part before `lengthSizeMinusOne` and `numOfArrays`.
const FIXED_LEN: usize = 21;

pub(crate) fn parse(record: &[u8]) -> Result<ParameterSets, MuxError> {
    let head = record.get(..FIXED_LEN + 2).ok_or(MuxError::BadConfig)?;
    if head[0] != 1 {
        return Err(MuxError::BadConfig);
    }
    let nal_length_size = (head[FIXED_LEN] & 0x03) + 1;
    if nal_length_size == 3 {
        return Err(MuxError::BadConfig);
    }
    let mut sets = ParameterSets {
        nal_length_size,
        annex_b: Vec::new(),
    };
    let arrays = head[FIXED_LEN + 1];
    let mut at = FIXED_LEN + 2;
    for _ in 0..arrays {
        // array_completeness, reserved, NAL_unit_type; then numNalus.
        let count = record.get(at + 1..at + 3).ok_or(MuxError::BadConfig)?;
        let count = u16::from_be_bytes([count[0], count[1]]);
        at += 3;
        for _ in 0..count {
            let (nal, next) = length_prefixed(record, at)?;
            sets.push(nal);
            at = next;
        }
    }
    Ok(sets)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn record() -> Vec<u8> {
        let mut r = vec![1];
        r.extend_from_slice(&[0; 20]);
        r.push(0xf3); // lengthSizeMinusOne 3
        r.push(2); // two arrays
        r.extend_from_slice(&[0x20, 0, 1, 0, 2, 0x40, 0x01]); // VPS
        r.extend_from_slice(&[0x21, 0, 1, 0, 3, 0x42, 0x01, 0x07]); // SPS
        r
    }

    #[test]
    fn arrays_become_annex_b() {
        let sets = parse(&record()).unwrap();
        assert_eq!(sets.nal_length_size, 4);
        assert_eq!(
            sets.annex_b,
            [0, 0, 0, 1, 0x40, 0x01, 0, 0, 0, 1, 0x42, 0x01, 0x07]
        );
    }

    #[test]
    fn truncated_records_are_errors() {
        let r = record();
        for n in 0..r.len() {
            assert_eq!(parse(&r[..n]), Err(MuxError::BadConfig), "{n}");
        }
    }

    proptest! {
        #[test]
        fn any_record_never_panics(record in proptest::collection::vec(any::<u8>(), 0..96)) {
            let _ = parse(&record);
        }
    }
}
