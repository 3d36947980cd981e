//! AAC in a transport stream travels as ADTS frames: each raw AAC frame behind a 7-byte
//! header made from the AudioSpecificConfig (ISO/IEC 14496-3 1.6.2.1) of the sequence
//! header: profile, sampling frequency index, channel configuration.

use super::MuxError;

pub(crate) const HEADER_LEN: usize = 7;
/// ADTS frame_length is 13 bits and counts the header.
const MAX_FRAME_LEN: usize = (1 << 13) - 1;

/// What every ADTS header of a stream shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AdtsConfig {
    /// ADTS profile: the audio object type minus one (0 Main, 1 LC, 2 SSR, 3 LTP).
    profile: u8,
    frequency_index: u8,
    channels: u8,
}

/// A little MSB-first bit reader over the config; `None` past the end.
struct Bits<'a> {
    data: &'a [u8],
    at: usize,
}

impl Bits<'_> {
    fn read(&mut self, n: usize) -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..n {
            let byte = *self.data.get(self.at / 8)?;
            v = v << 1 | u32::from(byte >> (7 - self.at % 8) & 1);
            self.at += 1;
        }
        Some(v)
    }

    fn object_type(&mut self) -> Option<u8> {
        let t = self.read(5)? as u8;
        Some(if t == 31 { 32 + self.read(6)? as u8 } else { t })
    }
}

/// SBR and PS (HE-AAC v1, v2) signalled explicitly: the core object type follows.
const SBR: u8 = 5;
const PS: u8 = 29;

pub(crate) fn parse(config: &[u8]) -> Result<AdtsConfig, MuxError> {
    let mut bits = Bits {
        data: config,
        at: 0,
    };
    let truncated = MuxError::BadConfig;
    let mut object_type = bits.object_type().ok_or(truncated)?;
    let mut frequency_index = bits.read(4).ok_or(truncated)? as u8;
    if frequency_index == 15 {
        // An explicit 24-bit frequency: ADTS has no way to say it.
        return Err(MuxError::UnsupportedAac(object_type));
    }
    let channels = bits.read(4).ok_or(truncated)? as u8;
    if object_type == SBR || object_type == PS {
        // The extension frequency, then the core object type. ADTS carries the core (the
        // receiver finds SBR implicitly) at the core's rate.
        let _extension = bits.read(4).ok_or(truncated)?;
        let core = bits.object_type().ok_or(truncated)?;
        object_type = core;
        frequency_index = frequency_index.min(12);
    }
    if !(1..=4).contains(&object_type) {
        return Err(MuxError::UnsupportedAac(object_type));
    }
    Ok(AdtsConfig {
        profile: object_type - 1,
        frequency_index,
        channels: channels & 0x07,
    })
}

/// Appends the ADTS header for a raw frame of `payload_len` bytes.
pub(crate) fn write_header(
    out: &mut Vec<u8>,
    c: &AdtsConfig,
    payload_len: usize,
) -> Result<(), MuxError> {
    let len = HEADER_LEN + payload_len;
    if len > MAX_FRAME_LEN {
        return Err(MuxError::AacTooLong);
    }
    out.extend_from_slice(&[
        0xff,
        0xf1, // MPEG-4, layer 0, no CRC
        c.profile << 6 | c.frequency_index << 2 | c.channels >> 2,
        (c.channels & 3) << 6 | (len >> 11) as u8,
        (len >> 3) as u8,
        ((len & 7) as u8) << 5 | 0x1f,
        0xfc, // buffer fullness 0x7ff (variable rate), one raw data block
    ]);
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn lc_stereo_44100() {
        let c = parse(&[0x12, 0x10]).unwrap();
        let mut out = Vec::new();
        write_header(&mut out, &c, 100).unwrap();
        // ffmpeg's ADTS header for AAC-LC, 44.1 kHz, stereo, 107 bytes.
        assert_eq!(out, [0xff, 0xf1, 0x50, 0x80, 0x0d, 0x7f, 0xfc]);
    }

    #[test]
    fn he_aac_uses_its_core() {
        // Object type 5 (SBR), 24 kHz index 6, stereo, extension index 3, core type 2.
        let c = parse(&[0x2b, 0x11, 0x88, 0x00]).unwrap();
        assert_eq!(c.profile, 1);
        assert_eq!(c.frequency_index, 6);
        assert_eq!(c.channels, 2);
    }

    #[test]
    fn what_adts_cannot_carry() {
        assert_eq!(parse(&[]), Err(MuxError::BadConfig));
        assert_eq!(parse(&[0x12]), Err(MuxError::BadConfig));
        // Object type 23 (ER AAC LD).
        assert_eq!(parse(&[0xb9, 0x88]), Err(MuxError::UnsupportedAac(23)));
        let c = parse(&[0x12, 0x10]).unwrap();
        assert_eq!(
            write_header(&mut Vec::new(), &c, 9000),
            Err(MuxError::AacTooLong)
        );
    }

    proptest! {
        #[test]
        fn any_config_never_panics(config in proptest::collection::vec(any::<u8>(), 0..8)) {
            if let Ok(c) = parse(&config) {
                let mut out = Vec::new();
                write_header(&mut out, &c, 10).unwrap();
                prop_assert_eq!(out.len(), 7);
            }
        }
    }
}
