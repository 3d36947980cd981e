//! The AVCDecoderConfigurationRecord (ISO/IEC 14496-15 5.3.3.1) an RTMP AVC sequence
//! header carries: the NAL unit length size and the SPS and PPS, as Annex B.

use super::annex_b::ParameterSets;
use super::MuxError;

/// Reads a `u16`-length-prefixed NAL unit at `at`, returning it and the offset after it.
pub(crate) fn length_prefixed(data: &[u8], at: usize) -> Result<(&[u8], usize), MuxError> {
    let len = data.get(at..at + 2).ok_or(MuxError::BadConfig)?;
    let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
    let nal = data.get(at + 2..at + 2 + len).ok_or(MuxError::BadConfig)?;
    Ok((nal, at + 2 + len))
}

pub(crate) fn parse(record: &[u8]) -> Result<ParameterSets, MuxError> {
    // version, profile, compatibility, level, 6 bits reserved + lengthSizeMinusOne.
    let head = record.get(..6).ok_or(MuxError::BadConfig)?;
    if head[0] != 1 {
        return Err(MuxError::BadConfig);
    }
    let nal_length_size = (head[4] & 0x03) + 1;
    if nal_length_size == 3 {
        return Err(MuxError::BadConfig);
    }
    let mut sets = ParameterSets {
        nal_length_size,
        annex_b: Vec::new(),
    };
    let mut at = 5;
    let sps_count = record[at] & 0x1f;
    at += 1;
    for _ in 0..sps_count {
        let (nal, next) = length_prefixed(record, at)?;
        sets.push(nal);
        at = next;
    }
    let pps_count = *record.get(at).ok_or(MuxError::BadConfig)?;
    at += 1;
    for _ in 0..pps_count {
        let (nal, next) = length_prefixed(record, at)?;
        sets.push(nal);
        at = next;
    }
    // Profiles 100 and up may carry SPS extensions after this: not needed in Annex B.
    Ok(sets)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sps_and_pps_become_annex_b() {
        let record = [
            1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 3, 0x67, 0x64, 0x00, 1, 0, 2, 0x68, 0xee,
        ];
        let sets = parse(&record).unwrap();
        assert_eq!(sets.nal_length_size, 4);
        assert_eq!(
            sets.annex_b,
            [0, 0, 0, 1, 0x67, 0x64, 0x00, 0, 0, 0, 1, 0x68, 0xee]
        );
    }

    #[test]
    fn truncated_records_are_errors() {
        let record = [
            1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 3, 0x67, 0x64, 0x00, 1, 0, 2, 0x68, 0xee,
        ];
        for n in 0..record.len() {
            assert_eq!(parse(&record[..n]), Err(MuxError::BadConfig), "{n}");
        }
        assert_eq!(
            parse(&[0, 0, 0, 0, 0xff, 0xe0, 0]),
            Err(MuxError::BadConfig)
        );
    }

    proptest! {
        #[test]
        fn any_record_never_panics(record in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = parse(&record);
        }
    }
}
