//! The FLV file format (Adobe's FLV specification v10, annex E): a 9-byte file header, then
//! tags, each an 11-byte header (type, data size, timestamp with its extension byte, stream
//! id), a body that is exactly an RTMP message's payload, and the 4-byte size of the tag
//! just ended. Sans-IO: bytes and file offsets in, headers and "read here next" out.
//!
//! `writer` writes recordings (whole tags only), `recovery` finds where a torn recording's
//! last whole tag ends so that `append` can go on after a crash. `reader` walks a file's tags without holding the file: it asks for the bytes it needs
//! next, so a caller can read in large blocks and skip the bodies it does not want.

pub(crate) mod reader;
pub(crate) mod recovery;
pub(crate) mod writer;

/// `FLV`, version 1.
pub(crate) const SIGNATURE: &[u8; 3] = b"FLV";
pub(crate) const FILE_HEADER_LEN: usize = 9;
pub(crate) const TAG_HEADER_LEN: usize = 11;
/// The UI32 after every tag (and before the first): the size of the tag before it.
pub(crate) const PREVIOUS_TAG_SIZE_LEN: usize = 4;
/// The file header and PreviousTagSize0: where the first tag starts.
pub(crate) const FIRST_TAG_AT: usize = FILE_HEADER_LEN + PREVIOUS_TAG_SIZE_LEN;
/// The largest tag body: DataSize is 24 bits.
pub(crate) const MAX_TAG_BODY: usize = 0xFF_FFFF;

/// FLV tag types, the same numbers as RTMP message types.
pub(crate) mod tag_type {
    pub(crate) const AUDIO: u8 = 8;
    pub(crate) const VIDEO: u8 = 9;
    pub(crate) const SCRIPT: u8 = 18;
}

/// Why a file is not FLV.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FlvError {
    #[error("not an FLV file (no FLV signature)")]
    Signature,
    #[error("FLV header gives data offset {0}, below the header's own 9 bytes")]
    DataOffset(u32),
}

/// The file header: which media the file says it holds, and where its tags start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileHeader {
    pub(crate) has_audio: bool,
    pub(crate) has_video: bool,
    /// Offset of the first PreviousTagSize field (9 for every FLV written so far).
    pub(crate) data_offset: u32,
}

/// Parses the file header. `Ok(None)`: fewer than 9 bytes.
pub(crate) fn parse_file_header(bytes: &[u8]) -> Result<Option<FileHeader>, FlvError> {
    let Some(h) = bytes.get(..FILE_HEADER_LEN) else {
        return Ok(None);
    };
    if &h[..3] != SIGNATURE {
        return Err(FlvError::Signature);
    }
    let data_offset = u32::from_be_bytes([h[5], h[6], h[7], h[8]]);
    if (data_offset as usize) < FILE_HEADER_LEN {
        return Err(FlvError::DataOffset(data_offset));
    }
    // Version (h[3]) is 1 everywhere; later versions are read alike rather than refused.
    Ok(Some(FileHeader {
        has_audio: h[4] & 0x04 != 0,
        has_video: h[4] & 0x01 != 0,
        data_offset,
    }))
}

/// One tag's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TagHeader {
    /// The RTMP message type the body is the payload of: 8 audio, 9 video, 18 script data.
    pub(crate) tag_type: u8,
    /// FLV's "filter" bit: the body is encrypted (Adobe Access). Such tags are not served.
    pub(crate) filtered: bool,
    pub(crate) data_size: u32,
    /// Milliseconds: the 24-bit timestamp with its extension byte as the high 8 bits.
    pub(crate) timestamp: u32,
}

/// Parses a tag header. `None`: fewer than 11 bytes.
pub(crate) fn parse_tag_header(bytes: &[u8]) -> Option<TagHeader> {
    let h = bytes.get(..TAG_HEADER_LEN)?;
    Some(TagHeader {
        tag_type: h[0] & 0x1f,
        filtered: h[0] & 0x20 != 0,
        data_size: u32::from_be_bytes([0, h[1], h[2], h[3]]),
        timestamp: u32::from_be_bytes([h[7], h[4], h[5], h[6]]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_header() {
        let h = parse_file_header(b"FLV\x01\x05\0\0\0\x09\0\0\0\0").expect("valid");
        assert_eq!(
            h,
            Some(FileHeader {
                has_audio: true,
                has_video: true,
                data_offset: 9
            })
        );
        assert_eq!(parse_file_header(b"FLV\x01"), Ok(None));
        assert_eq!(
            parse_file_header(b"FLX\x01\x05\0\0\0\x09"),
            Err(FlvError::Signature)
        );
        assert_eq!(
            parse_file_header(b"FLV\x01\x05\0\0\0\x02"),
            Err(FlvError::DataOffset(2))
        );
    }

    #[test]
    fn tag_header_timestamp_extension() {
        let h = parse_tag_header(&[0x09, 0, 1, 0, 0x12, 0x34, 0x56, 0x01, 0, 0, 0]).expect("11");
        assert_eq!(h.tag_type, 9);
        assert!(!h.filtered);
        assert_eq!(h.data_size, 256);
        assert_eq!(h.timestamp, 0x0112_3456);
        assert!(parse_tag_header(&[9; 10]).is_none());
        assert!(parse_tag_header(&[0x28; 11]).is_some_and(|h| h.filtered && h.tag_type == 8));
    }
}
