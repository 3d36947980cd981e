//! The AMF3 encoder: strings and traits by reference, everything else inline.

use std::collections::HashMap;

use super::marker::{self, INTEGER_MAX, INTEGER_MIN, SINGLE_VALUE_EXTERNALIZABLE, U29_MAX};
use super::{Amf3Decoder, Amf3Traits, Amf3Value};

/// What identifies a traits-table entry (`Amf3Traits` is not `Hash`).
type TraitsKey = (String, bool, bool, Vec<String>);

/// Encodes AMF3 values, keeping the string and traits tables across calls so that a
/// decoder with the same lifetime resolves the references it writes.
///
/// Values that have no exact AMF3 form are normalised: an `Integer` outside 29 bits is
/// written as a double; entries with an empty name (array or dynamic members) are dropped,
/// since the empty name ends the list; dynamic members of a sealed object are dropped;
/// sealed values are padded with `Undefined` or cut to the number of sealed names. Lengths
/// are U29s: strings and arrays beyond 2^28 entries cannot be encoded and are not checked.
#[derive(Debug, Default)]
pub struct Amf3Encoder {
    strings: HashMap<String, u32>,
    traits: HashMap<TraitsKey, u32>,
}

fn u29(v: u32, out: &mut Vec<u8>) {
    let v = v & U29_MAX;
    if v < 0x80 {
        out.push(v as u8);
    } else if v < 0x4000 {
        out.extend_from_slice(&[(v >> 7) as u8 | 0x80, (v & 0x7F) as u8]);
    } else if v < 0x20_0000 {
        out.extend_from_slice(&[
            (v >> 14) as u8 | 0x80,
            ((v >> 7) & 0x7F) as u8 | 0x80,
            (v & 0x7F) as u8,
        ]);
    } else {
        out.extend_from_slice(&[
            (v >> 22) as u8 | 0x80,
            ((v >> 15) & 0x7F) as u8 | 0x80,
            ((v >> 8) & 0x7F) as u8 | 0x80,
            v as u8,
        ]);
    }
}

/// A length or count with the low "inline" flag set.
fn inline_len(len: usize, out: &mut Vec<u8>) {
    u29(((len as u32) << 1) | 1, out);
}

impl Amf3Encoder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn encode(&mut self, value: &Amf3Value, out: &mut Vec<u8>) {
        match value {
            Amf3Value::Undefined => out.push(marker::UNDEFINED),
            Amf3Value::Null => out.push(marker::NULL),
            Amf3Value::Boolean(false) => out.push(marker::FALSE),
            Amf3Value::Boolean(true) => out.push(marker::TRUE),
            Amf3Value::Integer(i) if (INTEGER_MIN..=INTEGER_MAX).contains(i) => {
                out.push(marker::INTEGER);
                u29(*i as u32, out);
            }
            Amf3Value::Integer(i) => {
                out.push(marker::DOUBLE);
                out.extend_from_slice(&f64::from(*i).to_be_bytes());
            }
            Amf3Value::Double(d) => {
                out.push(marker::DOUBLE);
                out.extend_from_slice(&d.to_be_bytes());
            }
            Amf3Value::String(s) => {
                out.push(marker::STRING);
                self.string(s, out);
            }
            Amf3Value::XmlDocument(s) | Amf3Value::Xml(s) => {
                let is_doc = matches!(value, Amf3Value::XmlDocument(_));
                out.push(if is_doc { marker::XML_DOC } else { marker::XML });
                inline_len(s.len(), out);
                out.extend_from_slice(s.as_bytes());
            }
            Amf3Value::Date(millis) => {
                out.push(marker::DATE);
                u29(1, out);
                out.extend_from_slice(&millis.to_be_bytes());
            }
            Amf3Value::Array { associative, dense } => {
                out.push(marker::ARRAY);
                inline_len(dense.len(), out);
                for (key, v) in associative.iter().filter(|(k, _)| !k.is_empty()) {
                    self.string(key, out);
                    self.encode(v, out);
                }
                self.string("", out);
                for v in dense {
                    self.encode(v, out);
                }
            }
            Amf3Value::Object {
                traits,
                sealed,
                dynamic,
                external,
            } => {
                out.push(marker::OBJECT);
                self.traits(traits, out);
                if traits.externalizable {
                    self.external(traits, external.as_deref(), out);
                    return;
                }
                for i in 0..traits.sealed_names.len() {
                    self.encode(sealed.get(i).unwrap_or(&Amf3Value::Undefined), out);
                }
                if traits.dynamic {
                    for (key, v) in dynamic.iter().filter(|(k, _)| !k.is_empty()) {
                        self.string(key, out);
                        self.encode(v, out);
                    }
                    self.string("", out);
                }
            }
            Amf3Value::ByteArray(bytes) => {
                out.push(marker::BYTE_ARRAY);
                inline_len(bytes.len(), out);
                out.extend_from_slice(bytes);
            }
            Amf3Value::VectorInt { fixed, items } => {
                out.push(marker::VECTOR_INT);
                inline_len(items.len(), out);
                out.push(u8::from(*fixed));
                items
                    .iter()
                    .for_each(|i| out.extend_from_slice(&i.to_be_bytes()));
            }
            Amf3Value::VectorUint { fixed, items } => {
                out.push(marker::VECTOR_UINT);
                inline_len(items.len(), out);
                out.push(u8::from(*fixed));
                items
                    .iter()
                    .for_each(|i| out.extend_from_slice(&i.to_be_bytes()));
            }
            Amf3Value::VectorDouble { fixed, items } => {
                out.push(marker::VECTOR_DOUBLE);
                inline_len(items.len(), out);
                out.push(u8::from(*fixed));
                items
                    .iter()
                    .for_each(|i| out.extend_from_slice(&i.to_be_bytes()));
            }
            Amf3Value::VectorObject {
                fixed,
                type_name,
                items,
            } => {
                out.push(marker::VECTOR_OBJECT);
                inline_len(items.len(), out);
                out.push(u8::from(*fixed));
                self.string(type_name, out);
                for v in items {
                    self.encode(v, out);
                }
            }
            Amf3Value::Dictionary { weak_keys, entries } => {
                out.push(marker::DICTIONARY);
                inline_len(entries.len(), out);
                out.push(u8::from(*weak_keys));
                for (k, v) in entries {
                    self.encode(k, out);
                    self.encode(v, out);
                }
            }
        }
    }

    /// A UTF-8-vr, by reference when this encoder has already written it.
    fn string(&mut self, s: &str, out: &mut Vec<u8>) {
        if let Some(&index) = self.strings.get(s) {
            u29(index << 1, out);
            return;
        }
        inline_len(s.len(), out);
        out.extend_from_slice(s.as_bytes());
        // The empty string never enters the table (the decoder does not add it).
        if !s.is_empty() {
            let index = self.strings.len() as u32;
            self.strings.insert(s.to_owned(), index);
        }
    }

    fn traits(&mut self, traits: &Amf3Traits, out: &mut Vec<u8>) {
        let key: TraitsKey = (
            traits.class_name.clone(),
            traits.dynamic && !traits.externalizable,
            traits.externalizable,
            if traits.externalizable {
                Vec::new()
            } else {
                traits.sealed_names.clone()
            },
        );
        if let Some(&index) = self.traits.get(&key) {
            u29((index << 2) | 0b01, out);
            return;
        }
        let index = self.traits.len() as u32;
        self.traits.insert(key, index);
        if traits.externalizable {
            u29(0b0111, out);
            self.string(&traits.class_name, out);
            return;
        }
        let count = traits.sealed_names.len() as u32;
        u29(
            (count << 4) | (u32::from(traits.dynamic) << 3) | 0b0011,
            out,
        );
        self.string(&traits.class_name, out);
        for name in &traits.sealed_names {
            self.string(name, out);
        }
    }

    /// A known single-value body is stored self-contained; it is decoded and re-encoded
    /// with this encoder's tables so that references after it stay in step. Any other body
    /// is opaque and written as given.
    fn external(&mut self, traits: &Amf3Traits, body: Option<&[u8]>, out: &mut Vec<u8>) {
        let Some(body) = body else { return };
        if SINGLE_VALUE_EXTERNALIZABLE.contains(&traits.class_name.as_str()) {
            let mut input = body;
            if let Ok(inner) = Amf3Decoder::new().decode(&mut input) {
                self.encode(&inner, out);
                return;
            }
        }
        out.extend_from_slice(body);
    }
}
