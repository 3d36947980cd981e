//! What a publisher's data messages (metadata, cue points) become for its viewers: one
//! AMF0 data message, with `@setDataFrame` unwrapped, and whether new viewers get it first
//! (kept in the GOP cache) or only those watching when it came.

use bytes::Bytes;

use crate::proto::amf0::Amf0Value;
use crate::proto::command;
use crate::proto::rtmp::session::MAX_COMMAND_SIZE;

#[derive(Debug, PartialEq)]
pub(crate) enum DataFrame {
    /// Forward this AMF0 payload; `keep` it for new viewers (`@setDataFrame`, `onMetaData`).
    Forward { payload: Bytes, keep: bool },
    /// `@clearDataFrame`: the kept metadata goes (on every worker of the stream; `payload`
    /// is what crosses to them); viewers are sent nothing.
    ClearMetadata { payload: Bytes },
    /// Not forwarded, for this reason (for the log).
    Ignored(&'static str),
}

const CLEAR: &str = "@clearDataFrame";

/// A data message from a publisher (`amf3`: sent as type 15).
pub(crate) fn from_publisher(amf3: bool, payload: &[u8]) -> DataFrame {
    if payload.len() > MAX_COMMAND_SIZE {
        // Metadata is small; a huge data message is not decoded (see MAX_COMMAND_SIZE).
        return DataFrame::Ignored("oversized data message ignored");
    }
    let Ok(values) = command::decode_data(amf3, payload) else {
        return DataFrame::Ignored("undecodable data message ignored");
    };
    if values.first().and_then(Amf0Value::as_str) == Some(CLEAR) {
        return DataFrame::ClearMetadata {
            payload: Bytes::from(command::encode_values(false, &values)),
        };
    }
    // `@setDataFrame` asks the server to keep what follows for new viewers.
    let (values, keep) = match values.first().and_then(Amf0Value::as_str) {
        Some("@setDataFrame") => (&values[1..], true),
        Some("onMetaData") => (&values[..], true),
        _ => (&values[..], false),
    };
    DataFrame::Forward {
        payload: Bytes::from(command::encode_values(false, values)),
        keep,
    }
}

/// Whether a forwarded AMF0 data message is `@clearDataFrame` (see `ClearMetadata`).
pub(crate) fn is_clear(payload: &[u8]) -> bool {
    command::decode_data(false, payload)
        .is_ok_and(|v| v.first().and_then(Amf0Value::as_str) == Some(CLEAR))
}

/// Whether a forwarded AMF0 data message is the stream's metadata (kept for new viewers on
/// the workers it crosses to, as on the publisher's).
pub(crate) fn is_metadata(payload: &[u8]) -> bool {
    command::decode_data(false, payload).is_ok_and(|v| {
        v.first()
            .and_then(Amf0Value::as_str)
            .is_some_and(|s| s == "onMetaData")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(values: &[Amf0Value]) -> Vec<u8> {
        command::encode_values(false, values)
    }

    #[test]
    fn set_data_frame_is_unwrapped_and_kept() {
        let sent = data(&[
            Amf0Value::string("@setDataFrame"),
            Amf0Value::string("onMetaData"),
            Amf0Value::object([("width", Amf0Value::Number(640.0))]),
        ]);
        let DataFrame::Forward { payload, keep } = from_publisher(false, &sent) else {
            panic!("forwarded")
        };
        assert!(keep);
        assert!(is_metadata(&payload));
        assert_eq!(
            payload,
            data(&[
                Amf0Value::string("onMetaData"),
                Amf0Value::object([("width", Amf0Value::Number(640.0))]),
            ])
        );
    }

    #[test]
    fn cue_points_go_to_current_viewers_only() {
        let sent = data(&[Amf0Value::string("onCuePoint"), Amf0Value::Number(1.0)]);
        assert!(matches!(
            from_publisher(false, &sent),
            DataFrame::Forward { keep: false, .. }
        ));
        assert!(!is_metadata(&sent));
    }

    #[test]
    fn clear_data_frame_clears_and_crosses_as_itself() {
        let sent = data(&[
            Amf0Value::string("@clearDataFrame"),
            Amf0Value::string("onMetaData"),
        ]);
        let DataFrame::ClearMetadata { payload } = from_publisher(false, &sent) else {
            panic!("a clear")
        };
        assert!(is_clear(&payload));
        assert!(!is_metadata(&payload));
        assert!(!is_clear(&data(&[Amf0Value::string("onCuePoint")])));
    }

    #[test]
    fn oversized_and_undecodable_data_is_ignored() {
        assert!(matches!(
            from_publisher(false, &vec![2u8; MAX_COMMAND_SIZE + 1]),
            DataFrame::Ignored(_)
        ));
        assert!(matches!(
            from_publisher(false, &[0x02, 0x00]),
            DataFrame::Ignored(_)
        ));
    }
}
