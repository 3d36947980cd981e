//! The LiveStreamCast commands between tiers (../shared/seeds/livestreamcast-architecture.txt,
//! "API Reference Guide"), as AMF values: what a parent tells its children, and the names
//! of the calls each side makes. One place for both directions, so a parent and a child of
//! ours can never disagree.

use crate::proto::amf0::Amf0Value;

/// Parent to children: a stream went live.
pub(crate) const ADD_STREAM: &str = "addStream";
/// Parent to children: a stream stopped.
pub(crate) const REMOVE_STREAM: &str = "removeStream";

/// FCSubscribe(name), which a child's link sends before play: an upstream of ours answers
/// with onFMSubscribe (StreamNotFound when it has no such stream).
pub(crate) const FC_SUBSCRIBE: &str = "FCSubscribe";
/// The answer to FCSubscribe / FMSubscribe.
pub(crate) const ON_FM_SUBSCRIBE: &str = "onFMSubscribe";

/// addStream(name) or removeStream(name), sent as a notification (transaction 0: the
/// parent expects no answer, as FMS's `Client.call` without a responder).
pub(crate) fn stream_notice(live: bool, name: &str) -> [Amf0Value; 4] {
    [
        Amf0Value::string(if live { ADD_STREAM } else { REMOVE_STREAM }),
        Amf0Value::Number(0.0),
        Amf0Value::Null,
        Amf0Value::string(name),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::amf0;

    #[test]
    fn notices_are_named_calls_with_the_stream_name() {
        let mut bytes = Vec::new();
        amf0::encode_all(&stream_notice(true, "cam"), &mut bytes);
        let values = amf0::decode_all(&bytes).expect("decodes");
        assert_eq!(values[0].as_str(), Some("addStream"));
        assert_eq!(values[1], Amf0Value::Number(0.0));
        assert_eq!(values[3].as_str(), Some("cam"));
        assert_eq!(stream_notice(false, "x")[0].as_str(), Some("removeStream"));
    }
}
