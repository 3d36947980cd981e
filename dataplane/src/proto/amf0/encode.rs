//! The AMF0 encoder.

use super::{marker, Amf0Value};
use crate::proto::amf3;

/// Encodes one value. Values without an exact AMF0 form are normalised so that the output
/// always decodes: a `String` over 65535 bytes is written as a long string; property and
/// class names over 65535 bytes are cut at the last character boundary that fits;
/// properties with an empty name are dropped (the empty name ends an object); lengths
/// beyond `u32::MAX` are cut likewise.
pub fn encode(value: &Amf0Value, out: &mut Vec<u8>) {
    match value {
        Amf0Value::Number(n) => {
            out.push(marker::NUMBER);
            out.extend_from_slice(&n.to_be_bytes());
        }
        Amf0Value::Boolean(b) => out.extend_from_slice(&[marker::BOOLEAN, u8::from(*b)]),
        Amf0Value::String(s) if s.len() <= usize::from(u16::MAX) => {
            out.push(marker::STRING);
            short_string(s, out);
        }
        Amf0Value::String(s) | Amf0Value::LongString(s) => {
            out.push(marker::LONG_STRING);
            long_string(s, out);
        }
        Amf0Value::Object(properties) => {
            out.push(marker::OBJECT);
            self::properties(properties, out);
        }
        Amf0Value::Null => out.push(marker::NULL),
        Amf0Value::Undefined => out.push(marker::UNDEFINED),
        Amf0Value::Reference(index) => {
            out.push(marker::REFERENCE);
            out.extend_from_slice(&index.to_be_bytes());
        }
        Amf0Value::EcmaArray(properties) => {
            out.push(marker::ECMA_ARRAY);
            let count = properties.iter().filter(|(k, _)| !k.is_empty()).count();
            out.extend_from_slice(&u32::try_from(count).unwrap_or(u32::MAX).to_be_bytes());
            self::properties(properties, out);
        }
        Amf0Value::StrictArray(items) => {
            out.push(marker::STRICT_ARRAY);
            let count = u32::try_from(items.len()).unwrap_or(u32::MAX);
            out.extend_from_slice(&count.to_be_bytes());
            encode_all(items.iter().take(count as usize), out);
        }
        Amf0Value::Date { millis, time_zone } => {
            out.push(marker::DATE);
            out.extend_from_slice(&millis.to_be_bytes());
            out.extend_from_slice(&time_zone.to_be_bytes());
        }
        Amf0Value::XmlDocument(s) => {
            out.push(marker::XML_DOCUMENT);
            long_string(s, out);
        }
        Amf0Value::TypedObject {
            class_name,
            properties,
        } => {
            out.push(marker::TYPED_OBJECT);
            short_string(class_name, out);
            self::properties(properties, out);
        }
        Amf0Value::Amf3(v) => {
            out.push(marker::AVMPLUS_OBJECT);
            amf3::encode(v, out);
        }
    }
}

/// Encodes values one after the other (a command or data message body).
pub fn encode_all<'a>(values: impl IntoIterator<Item = &'a Amf0Value>, out: &mut Vec<u8>) {
    for value in values {
        encode(value, out);
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn clip(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

fn short_string(s: &str, out: &mut Vec<u8>) {
    let s = clip(s, usize::from(u16::MAX));
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn long_string(s: &str, out: &mut Vec<u8>) {
    let s = clip(s, u32::MAX as usize);
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn properties(properties: &[(String, Amf0Value)], out: &mut Vec<u8>) {
    for (key, value) in properties.iter().filter(|(k, _)| !k.is_empty()) {
        short_string(key, out);
        encode(value, out);
    }
    out.extend_from_slice(&[0, 0, marker::OBJECT_END]);
}
