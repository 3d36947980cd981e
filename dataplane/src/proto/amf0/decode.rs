//! The AMF0 decoder.

use super::{marker, read, Amf0Value};
use crate::proto::amf3::limits::{capacity, DecodeBudget, MAX_DEPTH};
use crate::proto::amf3::Amf3Decoder;
use crate::proto::AmfError;

/// Decodes one value; advances `input` past it.
pub fn decode(input: &mut &[u8]) -> Result<Amf0Value, AmfError> {
    Decoder::default().value(input)
}

/// Decodes values until the input is empty (a command: name, transaction id, arguments).
/// The limits apply to the message as a whole.
pub fn decode_all(mut input: &[u8]) -> Result<Vec<Amf0Value>, AmfError> {
    let mut decoder = Decoder::default();
    let mut values = Vec::new();
    while !input.is_empty() {
        values.push(decoder.value(&mut input)?);
    }
    Ok(values)
}

/// Decodes values one at a time under one budget and depth limit: the values of a
/// shared-object message, which sit between fields of its own framing.
#[derive(Default)]
pub(crate) struct MessageDecoder(Decoder);

impl MessageDecoder {
    pub(crate) fn value(&mut self, input: &mut &[u8]) -> Result<Amf0Value, AmfError> {
        self.0.value(input)
    }
}

#[derive(Default)]
struct Decoder {
    /// AMF0 references are not expanded, but a one-byte value still decodes to a whole
    /// `Amf0Value`, so AMF0 values count against the node budget as AMF3 ones do.
    budget: DecodeBudget,
    depth: usize,
}

impl Decoder {
    fn value(&mut self, input: &mut &[u8]) -> Result<Amf0Value, AmfError> {
        self.budget.nodes(1)?;
        let m = read::u8(input)?;
        Ok(match m {
            marker::NUMBER => Amf0Value::Number(read::f64(input)?),
            marker::BOOLEAN => Amf0Value::Boolean(read::u8(input)? != 0),
            marker::STRING => Amf0Value::String(read::short_string(input)?),
            marker::OBJECT => Amf0Value::Object(self.nest(|d| d.properties(input))?),
            marker::NULL => Amf0Value::Null,
            marker::UNDEFINED => Amf0Value::Undefined,
            marker::REFERENCE => Amf0Value::Reference(read::u16(input)?),
            marker::ECMA_ARRAY => {
                // The count is only a hint (encoders get it wrong); the end marker rules,
                // except that some encoders end the message without it (ffmpeg's FLV
                // demuxer tolerates such onMetaData arrays, so we do too).
                let _count = read::u32(input)?;
                Amf0Value::EcmaArray(self.nest(|d| d.properties_or_end_of_input(input))?)
            }
            marker::OBJECT_END => return Err(AmfError::UnexpectedObjectEnd),
            marker::STRICT_ARRAY => {
                let count = read::u32(input)? as usize;
                let items = self.nest(|d| {
                    let mut items = Vec::with_capacity(capacity(count, input.len(), 1));
                    for _ in 0..count {
                        items.push(d.value(input)?);
                    }
                    Ok(items)
                })?;
                Amf0Value::StrictArray(items)
            }
            marker::DATE => {
                let millis = read::f64(input)?;
                let time_zone = read::i16(input)?;
                Amf0Value::Date { millis, time_zone }
            }
            marker::LONG_STRING => Amf0Value::LongString(read::long_string(input)?),
            marker::XML_DOCUMENT => Amf0Value::XmlDocument(read::long_string(input)?),
            marker::TYPED_OBJECT => {
                let class_name = read::short_string(input)?;
                let properties = self.nest(|d| d.properties(input))?;
                Amf0Value::TypedObject {
                    class_name,
                    properties,
                }
            }
            marker::AVMPLUS_OBJECT => {
                let budget = std::mem::take(&mut self.budget);
                let mut amf3 = Amf3Decoder::nested(budget, self.depth);
                let result = amf3.decode(input);
                self.budget = amf3.into_budget();
                Amf0Value::Amf3(result?)
            }
            marker::MOVIECLIP | marker::UNSUPPORTED | marker::RECORDSET => {
                return Err(AmfError::UnsupportedAmf0Marker(m))
            }
            other => return Err(AmfError::UnknownAmf0Marker(other)),
        })
    }

    /// Runs `body` one level deeper; the depth is restored even when it fails.
    fn nest<T>(
        &mut self,
        body: impl FnOnce(&mut Self) -> Result<T, AmfError>,
    ) -> Result<T, AmfError> {
        if self.depth >= MAX_DEPTH {
            return Err(AmfError::TooDeep);
        }
        self.depth += 1;
        let result = body(self);
        self.depth -= 1;
        result
    }

    /// Like [`Self::properties`], but the end of the input may stand for the end marker.
    fn properties_or_end_of_input(
        &mut self,
        input: &mut &[u8],
    ) -> Result<Vec<(String, Amf0Value)>, AmfError> {
        let mut properties = Vec::new();
        loop {
            if input.is_empty() {
                return Ok(properties);
            }
            match self.property(input)? {
                Some(property) => properties.push(property),
                None => return Ok(properties),
            }
        }
    }

    /// Name/value pairs up to the empty name and the object-end marker.
    fn properties(&mut self, input: &mut &[u8]) -> Result<Vec<(String, Amf0Value)>, AmfError> {
        let mut properties = Vec::new();
        while let Some(property) = self.property(input)? {
            properties.push(property);
        }
        Ok(properties)
    }

    /// One name/value pair, or `None` at the empty name and object-end marker.
    fn property(&mut self, input: &mut &[u8]) -> Result<Option<(String, Amf0Value)>, AmfError> {
        let key = read::short_string(input)?;
        if key.is_empty() {
            return match read::u8(input)? {
                marker::OBJECT_END => Ok(None),
                _ => Err(AmfError::MissingObjectEnd),
            };
        }
        let value = self.value(input)?;
        Ok(Some((key, value)))
    }
}
