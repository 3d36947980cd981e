//! FLV files as a list of tags (type, timestamp, body), for tests that check what a
//! recording holds beyond what ffprobe shows (data messages such as `onTextData`).

use bytes::Bytes;
use std::path::Path;

#[derive(Debug, Clone)]
pub struct Tag {
    /// 8 audio, 9 video, 18 script data (the RTMP message type).
    pub type_id: u8,
    pub timestamp: u32,
    pub body: Bytes,
}

/// The tags of an FLV file, up to the first incomplete one (a recording cut short).
pub fn read_tags(path: &Path) -> Vec<Tag> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    parse(&bytes)
}

pub fn parse(bytes: &[u8]) -> Vec<Tag> {
    let mut tags = Vec::new();
    if bytes.len() < 9 || &bytes[..3] != b"FLV" {
        return tags;
    }
    let header = u32::from_be_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]) as usize;
    // The header, then the first PreviousTagSize.
    let mut at = header + 4;
    while let Some(h) = bytes.get(at..at + 11) {
        let size = u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize;
        let timestamp = u32::from_be_bytes([h[7], h[4], h[5], h[6]]);
        let Some(body) = bytes.get(at + 11..at + 11 + size) else {
            break;
        };
        tags.push(Tag {
            type_id: h[0] & 0x1f,
            timestamp,
            body: Bytes::copy_from_slice(body),
        });
        at += 11 + size + 4;
    }
    tags
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_read_until_one_is_cut() {
        let mut f = b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00".to_vec();
        // A script tag of 2 bytes at 0x01020304 ms.
        f.extend_from_slice(&[18, 0, 0, 2, 0x02, 0x03, 0x04, 0x01, 0, 0, 0, 0xAA, 0xBB]);
        f.extend_from_slice(&[0, 0, 0, 13]);
        f.extend_from_slice(&[9, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 1]);
        let tags = parse(&f);
        assert_eq!(tags.len(), 1);
        assert_eq!((tags[0].type_id, tags[0].timestamp), (18, 0x0102_0304));
        assert_eq!(tags[0].body[..], [0xAA, 0xBB]);
    }
}
