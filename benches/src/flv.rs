//! A minimal FLV reader (FLV specification v10, Annex E): the file header, then tags. Enough
//! for the publisher to replay a file; the tag bodies are RTMP message payloads as they are.

use std::path::Path;

use bytes::Bytes;

/// FLV tag types, which are also the RTMP message types of their bodies.
pub mod tag_type {
    pub const AUDIO: u8 = 8;
    pub const VIDEO: u8 = 9;
    pub const SCRIPT: u8 = 18;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    pub tag_type: u8,
    /// Milliseconds (the 24-bit field plus its extension byte).
    pub timestamp: u32,
    pub body: Bytes,
}

#[derive(Debug, thiserror::Error)]
pub enum FlvError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("not an FLV file (no 'FLV' signature)")]
    NotFlv,
    #[error("truncated FLV header")]
    ShortHeader,
}

/// Parses a whole FLV file held in memory. A truncated last tag (a file still being written)
/// is ignored; tags with the filter bit or of unknown types are skipped.
pub fn parse(data: &Bytes) -> Result<Vec<Tag>, FlvError> {
    if data.len() < 9 {
        return Err(FlvError::ShortHeader);
    }
    if &data[..3] != b"FLV" {
        return Err(FlvError::NotFlv);
    }
    let header_len = u32::from_be_bytes([data[5], data[6], data[7], data[8]]) as usize;
    // The header, then PreviousTagSize0.
    let mut pos = header_len.max(9) + 4;
    let mut tags = Vec::new();
    while pos + 11 <= data.len() {
        let h = &data[pos..pos + 11];
        let tag_type = h[0] & 0x1f;
        let filtered = h[0] & 0x20 != 0;
        let size = u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize;
        let timestamp = u32::from_be_bytes([h[7], h[4], h[5], h[6]]);
        let body_at = pos + 11;
        if body_at + size > data.len() {
            break;
        }
        if !filtered
            && matches!(
                tag_type,
                tag_type::AUDIO | tag_type::VIDEO | tag_type::SCRIPT
            )
        {
            tags.push(Tag {
                tag_type,
                timestamp,
                body: data.slice(body_at..body_at + size),
            });
        }
        pos = body_at + size + 4;
    }
    Ok(tags)
}

pub fn read_file(path: &Path) -> Result<Vec<Tag>, FlvError> {
    let data = Bytes::from(std::fs::read(path)?);
    parse(&data)
}

/// Writes tags as an FLV file (for tests and fixtures).
pub fn write(tags: &[Tag], out: &mut Vec<u8>) {
    let has_audio = tags.iter().any(|t| t.tag_type == tag_type::AUDIO);
    let has_video = tags.iter().any(|t| t.tag_type == tag_type::VIDEO);
    out.extend_from_slice(b"FLV\x01");
    out.push(u8::from(has_audio) << 2 | u8::from(has_video));
    out.extend_from_slice(&9u32.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
    for t in tags {
        let size = t.body.len() as u32;
        out.push(t.tag_type);
        out.extend_from_slice(&size.to_be_bytes()[1..]);
        out.extend_from_slice(&t.timestamp.to_be_bytes()[1..]);
        out.push((t.timestamp >> 24) as u8);
        out.extend_from_slice(&[0, 0, 0]);
        out.extend_from_slice(&t.body);
        out.extend_from_slice(&(size + 11).to_be_bytes());
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_extended_timestamp() {
        let tags = vec![
            Tag {
                tag_type: tag_type::SCRIPT,
                timestamp: 0,
                body: Bytes::from_static(b"\x02\x00\x0aonMetaData"),
            },
            Tag {
                tag_type: tag_type::VIDEO,
                timestamp: 0x0123_4567,
                body: Bytes::from_static(&[0x17, 0, 0, 0, 0]),
            },
            Tag {
                tag_type: tag_type::AUDIO,
                timestamp: 21,
                body: Bytes::from_static(&[0xaf, 1, 9]),
            },
        ];
        let mut file = Vec::new();
        write(&tags, &mut file);
        let parsed = parse(&Bytes::from(file.clone())).unwrap();
        assert_eq!(parsed, tags);
        // A file cut inside its last tag still yields the complete ones.
        let parsed = parse(&Bytes::from(file[..file.len() - 6].to_vec())).unwrap();
        assert_eq!(parsed, tags[..2]);
        assert!(parse(&Bytes::from_static(b"NOTFLV12345")).is_err());
    }
}
