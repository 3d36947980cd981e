//! Fuzz entry points for the AMF0 and AMF3 decoders.

use crate::proto::{amf0, amf3, AmfError};

/// A budget error on the re-encoding is legitimate: the encoder writes no object
/// references, so a value that was small thanks to references can decode to more copies.
fn budget_error(e: &AmfError) -> bool {
    matches!(e, AmfError::TooManyNodes | AmfError::TooLarge)
}

/// Decodes a whole AMF0 message; whatever decodes must re-encode to bytes that decode
/// again and whose re-encoding is identical (encoding is a fixed point after one round).
pub fn amf0_decode(data: &[u8]) {
    let Ok(values) = amf0::decode_all(data) else {
        return;
    };
    let mut encoded = Vec::new();
    amf0::encode_all(&values, &mut encoded);
    match amf0::decode_all(&encoded) {
        Ok(again) => {
            let mut reencoded = Vec::new();
            amf0::encode_all(&again, &mut reencoded);
            assert_eq!(encoded, reencoded, "AMF0 re-encoding is not stable");
        }
        Err(e) if budget_error(&e) => {}
        Err(e) => panic!("AMF0 re-encoding does not decode: {e}"),
    }
}

/// Decodes one AMF3 value, with the same checks as [`amf0_decode`].
pub fn amf3_decode(data: &[u8]) {
    let mut input = data;
    let Ok(value) = amf3::decode(&mut input) else {
        return;
    };
    let mut encoded = Vec::new();
    amf3::encode(&value, &mut encoded);
    match amf3::decode(&mut encoded.as_slice()) {
        Ok(again) => {
            let mut reencoded = Vec::new();
            amf3::encode(&again, &mut reencoded);
            assert_eq!(encoded, reencoded, "AMF3 re-encoding is not stable");
        }
        Err(e) if budget_error(&e) => {}
        Err(e) => panic!("AMF3 re-encoding does not decode: {e}"),
    }
}
