//! Writing FLV: the file header, whole tags (header, body, PreviousTagSize), and the
//! recorder's own `onMetaData`, laid out so that its duration and file size can be
//! rewritten in place when a recording ends cleanly.

use super::{tag_type, FILE_HEADER_LEN, MAX_TAG_BODY, PREVIOUS_TAG_SIZE_LEN, TAG_HEADER_LEN};
use crate::proto::amf0::{self, Amf0Value};

const FLAG_AUDIO: u8 = 0x04;
const FLAG_VIDEO: u8 = 0x01;

/// The file header and PreviousTagSize0. Both flags are set: a recording cannot know in
/// advance which tracks come, and demuxers create streams as tags arrive.
pub(crate) fn file_header(out: &mut Vec<u8>) {
    out.extend_from_slice(b"FLV");
    out.push(1);
    out.push(FLAG_AUDIO | FLAG_VIDEO);
    out.extend_from_slice(&(FILE_HEADER_LEN as u32).to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
}

/// One whole tag: header, body and its PreviousTagSize. False (nothing written) if the
/// body is too large for an FLV tag.
pub(crate) fn tag(out: &mut Vec<u8>, tag_type: u8, timestamp: u32, body: &[u8]) -> bool {
    if body.len() > MAX_TAG_BODY {
        return false;
    }
    let size = (body.len() as u32).to_be_bytes();
    let ts = timestamp.to_be_bytes();
    out.push(tag_type);
    out.extend_from_slice(&size[1..]);
    // Timestamp: the lower 24 bits, then the upper 8 (TimestampExtended).
    out.extend_from_slice(&ts[1..]);
    out.push(ts[0]);
    out.extend_from_slice(&[0, 0, 0]);
    out.extend_from_slice(body);
    out.extend_from_slice(&((TAG_HEADER_LEN + body.len()) as u32).to_be_bytes());
    true
}

/// The recorder's `onMetaData` body: an ECMA array of exactly `duration` (seconds) and
/// `filesize` (bytes), both AMF0 numbers. Its length and layout never change, so the two
/// numbers can be overwritten in place (`METADATA_TAG_LEN` bytes at the first tag).
pub(crate) fn metadata_body(duration: f64, filesize: f64) -> Vec<u8> {
    let mut out = Vec::with_capacity(METADATA_BODY_LEN);
    amf0::encode_all(
        &[
            Amf0Value::string("onMetaData"),
            Amf0Value::EcmaArray(vec![
                ("duration".into(), Amf0Value::Number(duration)),
                ("filesize".into(), Amf0Value::Number(filesize)),
            ]),
        ],
        &mut out,
    );
    out
}

/// "onMetaData" (1 + 2 + 10), the ECMA array header (1 + 4), two keys of 8 letters with
/// their numbers (2 + 8 + 1 + 8 each), the object end (3).
pub(crate) const METADATA_BODY_LEN: usize = 13 + 5 + 2 * 19 + 3;
/// The whole metadata tag, PreviousTagSize included.
pub(crate) const METADATA_TAG_LEN: usize =
    TAG_HEADER_LEN + METADATA_BODY_LEN + PREVIOUS_TAG_SIZE_LEN;

/// The recorder's metadata tag at timestamp 0.
pub(crate) fn metadata_tag(duration: f64, filesize: f64) -> Vec<u8> {
    let mut out = Vec::with_capacity(METADATA_TAG_LEN);
    tag(
        &mut out,
        tag_type::SCRIPT,
        0,
        &metadata_body(duration, filesize),
    );
    out
}

/// Whether the tag at the start of `bytes` is a recorder's metadata tag (whatever its
/// numbers): an appended recording then completes it like a fresh one.
pub(crate) fn is_metadata_tag(bytes: &[u8]) -> bool {
    let Some(found) = bytes.get(..METADATA_TAG_LEN) else {
        return false;
    };
    let template = metadata_tag(0.0, 0.0);
    // The two numbers are the only bytes that differ.
    let number_at = |key: &str| {
        let k = template
            .windows(key.len())
            .position(|w| w == key.as_bytes())
            .unwrap_or(0);
        k + key.len() + 1
    };
    let (d, f) = (number_at("duration"), number_at("filesize"));
    found
        .iter()
        .zip(&template)
        .enumerate()
        .all(|(i, (a, b))| (d..d + 8).contains(&i) || (f..f + 8).contains(&i) || a == b)
}

/// Drops `duration` and `filesize` from a publisher's `onMetaData` (an AMF0 data message
/// body): they describe a live stream (0), and a demuxer would take them over the
/// recorder's own. Anything else, or what does not decode, is kept as it is.
pub(crate) fn publisher_metadata(body: &[u8]) -> Option<Vec<u8>> {
    let mut values = amf0::decode_all(body).ok()?;
    if values.first().and_then(Amf0Value::as_str) != Some("onMetaData") {
        return None;
    }
    let props = match values.get_mut(1)? {
        Amf0Value::EcmaArray(p) | Amf0Value::Object(p) => p,
        _ => return None,
    };
    let before = props.len();
    props.retain(|(k, _)| k != "duration" && k != "filesize");
    if props.len() == before {
        return None;
    }
    let mut out = Vec::with_capacity(body.len());
    amf0::encode_all(&values, &mut out);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::super::FIRST_TAG_AT;
    use super::*;

    #[test]
    fn a_tag_is_header_body_and_previous_tag_size() {
        let mut out = Vec::new();
        assert!(tag(&mut out, tag_type::VIDEO, 0x0102_0304, &[0x17, 0, 1]));
        assert_eq!(
            out,
            [9, 0, 0, 3, 0x02, 0x03, 0x04, 0x01, 0, 0, 0, 0x17, 0, 1, 0, 0, 0, 14]
        );
        assert_eq!(out.len(), TAG_HEADER_LEN + 3 + PREVIOUS_TAG_SIZE_LEN);
        let big = vec![0u8; MAX_TAG_BODY + 1];
        assert!(!tag(&mut out, tag_type::VIDEO, 0, &big));
        assert_eq!(out.len(), 18, "nothing of a refused tag is written");
    }

    #[test]
    fn the_file_header_is_nine_bytes_and_a_zero_previous_size() {
        let mut out = Vec::new();
        file_header(&mut out);
        assert_eq!(out, b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00");
        assert_eq!(out.len(), FIRST_TAG_AT);
    }

    #[test]
    fn metadata_has_a_fixed_layout_and_reads_back() {
        let a = metadata_tag(0.0, 0.0);
        let b = metadata_tag(3600.5, 123_456_789.0);
        assert_eq!((a.len(), b.len()), (METADATA_TAG_LEN, METADATA_TAG_LEN));
        assert!(is_metadata_tag(&a) && is_metadata_tag(&b));
        let values = amf0::decode_all(&b[TAG_HEADER_LEN..TAG_HEADER_LEN + METADATA_BODY_LEN])
            .expect("decodes");
        assert_eq!(
            values[1].get("duration").and_then(Amf0Value::as_f64),
            Some(3600.5)
        );
        assert_eq!(
            values[1].get("filesize").and_then(Amf0Value::as_f64),
            Some(123_456_789.0)
        );
        let mut other = a.clone();
        other[TAG_HEADER_LEN + 5] ^= 1;
        assert!(!is_metadata_tag(&other));
        assert!(!is_metadata_tag(&a[..10]));
    }

    #[test]
    fn publisher_duration_and_filesize_are_dropped() {
        let mut body = Vec::new();
        amf0::encode_all(
            &[
                Amf0Value::string("onMetaData"),
                Amf0Value::EcmaArray(vec![
                    ("duration".into(), Amf0Value::Number(0.0)),
                    ("width".into(), Amf0Value::Number(640.0)),
                    ("filesize".into(), Amf0Value::Number(0.0)),
                ]),
            ],
            &mut body,
        );
        let kept = publisher_metadata(&body).expect("rewritten");
        let values = amf0::decode_all(&kept).expect("decodes");
        assert_eq!(
            values[1].properties().map(|p| p.len()),
            Some(1),
            "only width is left"
        );
        assert_eq!(publisher_metadata(&kept), None, "nothing to drop");
        assert_eq!(publisher_metadata(b"\xff"), None);
    }
}
