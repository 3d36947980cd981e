//! Fuzz entry point for shared-object messages (RTMP types 19 and 16), as a peer sends them.

use crate::proto::rtmp::shared_object::SoMessage;

/// Byte 0's low bit picks the framing (1 = type 16); the rest is the message payload.
/// Whatever decodes must encode to bytes that decode and encode the same.
pub fn shared_object_message(data: &[u8]) {
    let Some((&framing, payload)) = data.split_first() else {
        return;
    };
    let Ok(message) = SoMessage::decode(framing & 1 == 1, payload) else {
        return;
    };
    for amf3 in [false, true] {
        let encoded = message.encode(amf3);
        // A budget error is legitimate: AMF3 references made the first decode small.
        if let Ok(again) = SoMessage::decode(amf3, &encoded) {
            assert_eq!(
                again.encode(amf3),
                encoded,
                "shared object re-encoding not stable"
            );
        }
    }
}
