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

/// The AMF-as-JSON mapping of RPC arguments and results, both ways. A first byte of 0:
/// the rest is JSON (a webhook's reply), which maps to AMF or to an error, and what it maps
/// to encodes to AMF0 that decodes. Otherwise the rest is AMF0 (a client's arguments),
/// whose JSON must always map back.
pub fn amf_json(data: &[u8]) {
    use crate::proto::amf_json::{from_json, to_json};
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    if which == 0 {
        let Ok(json) = serde_json::from_slice::<serde_json::Value>(rest) else {
            return;
        };
        if let Ok(value) = from_json(&json) {
            let mut encoded = Vec::new();
            amf0::encode(&value, &mut encoded);
            match amf0::decode_all(&encoded) {
                Ok(again) => again.iter().for_each(|v| drop(to_json(v))),
                Err(e) if budget_error(&e) => {}
                Err(e) => panic!("AMF0 from JSON does not decode: {e}"),
            }
        }
        return;
    }
    let Ok(values) = amf0::decode_all(rest) else {
        return;
    };
    for v in &values {
        let json = to_json(v);
        if let Err(e) = from_json(&json) {
            panic!("the JSON of an AMF value does not map back ({e}): {json}");
        }
    }
}
