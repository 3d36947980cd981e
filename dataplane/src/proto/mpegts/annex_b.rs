//! Length-prefixed NAL units (what RTMP, like MP4, carries) to the Annex B byte stream a
//! transport stream carries: start codes, an access unit delimiter first, and the
//! parameter sets before every key frame so that a receiver can start on any of them.

use super::MuxError;

const START_CODE: [u8; 4] = [0, 0, 0, 1];

/// A video codec's parameter sets as Annex B (each behind a start code), and how long the
/// NAL unit lengths are in its frames (1, 2 or 4 bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParameterSets {
    pub(crate) nal_length_size: u8,
    pub(crate) annex_b: Vec<u8>,
}

impl ParameterSets {
    pub(crate) fn push(&mut self, nal: &[u8]) {
        self.annex_b.extend_from_slice(&START_CODE);
        self.annex_b.extend_from_slice(nal);
    }
}

/// What the Annex B writer needs to know of the codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NalSyntax {
    H264,
    Hevc,
}

impl NalSyntax {
    fn nal_type(self, first: u8) -> u8 {
        match self {
            NalSyntax::H264 => first & 0x1f,
            NalSyntax::Hevc => (first >> 1) & 0x3f,
        }
    }

    fn is_aud(self, t: u8) -> bool {
        match self {
            NalSyntax::H264 => t == 9,
            NalSyntax::Hevc => t == 35,
        }
    }

    /// SPS (and VPS for HEVC): the frame brings its own parameter sets.
    fn is_parameter_set(self, t: u8) -> bool {
        match self {
            NalSyntax::H264 => t == 7,
            NalSyntax::Hevc => t == 32 || t == 33,
        }
    }

    /// An access unit delimiter NAL unit, "any picture type".
    fn aud(self) -> &'static [u8] {
        match self {
            NalSyntax::H264 => &[0x09, 0xf0],
            NalSyntax::Hevc => &[0x46, 0x01, 0x50],
        }
    }
}

/// Walks the length-prefixed NAL units of `data`. Every length is checked before use.
fn nal_units(data: &[u8], length_size: u8) -> impl Iterator<Item = Result<&[u8], MuxError>> + '_ {
    let size = usize::from(length_size);
    let mut rest = data;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let Some(len_bytes) = rest.get(..size) else {
            rest = &[];
            return Some(Err(MuxError::BadNalLength));
        };
        let len = len_bytes
            .iter()
            .fold(0usize, |acc, &b| acc << 8 | usize::from(b));
        let Some(nal) = rest.get(size..).and_then(|r| r.get(..len)) else {
            rest = &[];
            return Some(Err(MuxError::BadNalLength));
        };
        rest = &rest[size + len..];
        Some(Ok(nal))
    })
}

/// What `access_unit` needs of a frame, from one walk of its NAL units (every length
/// checked): whether it brings its own AUD and parameter sets, and the Annex B length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Scan {
    has_aud: bool,
    has_sets: bool,
    key: bool,
    pub(crate) len: usize,
}

pub(crate) fn scan(
    syntax: NalSyntax,
    sets: &ParameterSets,
    key: bool,
    data: &[u8],
) -> Result<Scan, MuxError> {
    let mut has_aud = false;
    let mut has_sets = false;
    let mut len = 0;
    for nal in nal_units(data, sets.nal_length_size) {
        let nal = nal?;
        if let Some(&first) = nal.first() {
            let t = syntax.nal_type(first);
            has_aud |= syntax.is_aud(t);
            has_sets |= syntax.is_parameter_set(t);
            len += START_CODE.len() + nal.len();
        }
    }
    if !has_aud {
        len += START_CODE.len() + syntax.aud().len();
    }
    if key && !has_sets {
        len += sets.annex_b.len();
    }
    Ok(Scan {
        has_aud,
        has_sets,
        key,
        len,
    })
}

/// One access unit in Annex B form, as pieces to write one after the other (`scan.len`
/// bytes in all): an AUD (unless the frame has one), then, for a key frame without its
/// own, the parameter sets, then the frame's NAL units behind start codes. The frame's
/// bytes are not copied here: the packetiser copies each piece once.
pub(crate) fn access_unit<'a>(
    syntax: NalSyntax,
    sets: &'a ParameterSets,
    scan: Scan,
    data: &'a [u8],
) -> impl Iterator<Item = &'a [u8]> + 'a {
    let aud = (!scan.has_aud).then_some([&START_CODE[..], syntax.aud()]);
    let parameter_sets = (scan.key && !scan.has_sets).then_some(&sets.annex_b[..]);
    let nals = nal_units(data, sets.nal_length_size)
        .flatten()
        .filter(|nal| !nal.is_empty())
        .flat_map(|nal| [&START_CODE[..], nal]);
    aud.into_iter().flatten().chain(parameter_sets).chain(nals)
}

/// Appends one access unit in Annex B form (see `access_unit`). `out` is left as it was
/// on error.
#[cfg(test)]
pub(crate) fn write_access_unit(
    out: &mut Vec<u8>,
    syntax: NalSyntax,
    sets: &ParameterSets,
    key: bool,
    data: &[u8],
) -> Result<(), MuxError> {
    let scan = scan(syntax, sets, key, data)?;
    let start = out.len();
    for piece in access_unit(syntax, sets, scan, data) {
        out.extend_from_slice(piece);
    }
    debug_assert_eq!(out.len() - start, scan.len);
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sets() -> ParameterSets {
        let mut s = ParameterSets {
            nal_length_size: 4,
            annex_b: Vec::new(),
        };
        s.push(&[0x67, 1, 2]);
        s.push(&[0x68, 3]);
        s
    }

    #[test]
    fn key_frame_gets_aud_and_parameter_sets() {
        let mut out = Vec::new();
        let frame = [0, 0, 0, 3, 0x65, 0xaa, 0xbb, 0, 0, 0, 1, 0x06];
        write_access_unit(&mut out, NalSyntax::H264, &sets(), true, &frame).unwrap();
        assert_eq!(
            out,
            [
                0, 0, 0, 1, 0x09, 0xf0, 0, 0, 0, 1, 0x67, 1, 2, 0, 0, 0, 1, 0x68, 3, 0, 0, 0, 1,
                0x65, 0xaa, 0xbb, 0, 0, 0, 1, 0x06
            ]
        );
    }

    #[test]
    fn inter_frame_with_its_own_aud_is_converted_only() {
        let mut out = vec![0xee];
        let frame = [0, 2, 0x09, 0x10, 0, 1, 0x41];
        let mut s = sets();
        s.nal_length_size = 2;
        write_access_unit(&mut out, NalSyntax::H264, &s, false, &frame).unwrap();
        assert_eq!(out, [0xee, 0, 0, 0, 1, 0x09, 0x10, 0, 0, 0, 1, 0x41]);
    }

    #[test]
    fn bad_length_leaves_out_unchanged() {
        let mut out = vec![1, 2];
        let r = write_access_unit(&mut out, NalSyntax::Hevc, &sets(), true, &[0, 0, 0, 9, 1]);
        assert_eq!(r, Err(MuxError::BadNalLength));
        assert_eq!(out, [1, 2]);
    }

    proptest! {
        #[test]
        fn any_frame_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200), size in 1u8..=4, key: bool) {
            let mut s = sets();
            s.nal_length_size = size;
            let mut out = Vec::new();
            let _ = write_access_unit(&mut out, NalSyntax::H264, &s, key, &data);
            let _ = write_access_unit(&mut out, NalSyntax::Hevc, &s, key, &data);
        }
    }
}
