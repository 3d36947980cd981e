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

/// A persistent shared object's file, as read back after a restart. Byte 0's low bit set:
/// the rest is header and body, and the entry point appends the right checksum, so that
/// mutations reach the slot decoder instead of stopping at the checksum.
pub fn shared_object_file(data: &[u8]) {
    use sha2::Digest;
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut bytes = rest.to_vec();
    if mode & 1 == 1 {
        let digest = sha2::Sha256::digest(&bytes);
        bytes.extend_from_slice(&digest);
    }
    if let Ok((version, slots)) = crate::app::shared_object_file::decode(&bytes) {
        let encoded = crate::app::shared_object_file::encode(version, &slots);
        if let Ok(again) = crate::app::shared_object_file::decode(&encoded) {
            assert_eq!(
                crate::app::shared_object_file::encode(again.0, &again.1),
                encoded,
                "shared object file re-encoding not stable"
            );
        }
    }
}
