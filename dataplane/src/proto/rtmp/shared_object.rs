//! Remote shared-object messages (RTMP message 19, AMF0; message 16, AMF3), both ways.
//!
//! Wire form, checked against Red5 (`RTMPProtocolDecoder.decodeSharedObject`,
//! `decodeFlexSharedObject` and `doDecodeSharedObject` in red5-server-common; the encoder
//! `encodeFlexSharedObject` of red5's client codec) and PROTOCOL-NOTES §Remote shared objects:
//!
//! ```text
//! [type 16 only: one byte, the value encoding: 0 = AMF0 values (0x11 switches one value
//!  to AMF3), 3 = AMF3 values]
//! name      u16 length + UTF-8 (no marker)
//! version   u32
//! flags     u32 (2 = persistent, 0 = temporary)
//! reserved  4 bytes
//! events    { type u8, length u32, data[length] }*
//! ```
//!
//! Event types (Red5 `SharedObjectTypeMapping`): 1 use, 2 release, 3 request change (key +
//! value), 4 change (key + value pairs, one or more), 5 success (key), 6 send message
//! (handler as a full AMF0 string with its marker, then the arguments), 7 status (code and
//! level, short strings), 8 clear, 9 remove (key), 10 request remove (key), 11 use success.
//! Keys are short strings without a marker.
//!
//! Unlike Red5, which skips the rest of a message at an unknown event type and trusts the
//! lengths loosely, we decode each event from exactly its declared bytes: an unknown type,
//! a length that disagrees with the data, or a count over the limits is an error, and the
//! connection that sent it is closed (nothing else is disturbed).
//!
//! We send type 16 with the leading 0 and AMF0 values (an AMF3 value keeps its 0x11
//! switch), which is what Red5's encoder writes and every Flash Player reads.

use bytes::Bytes;

use super::message::{csid, msg_type, Message};
use crate::proto::amf0::{self, Amf0Value, MessageDecoder};
use crate::proto::amf3::Amf3Decoder;
use crate::proto::AmfError;

/// Events plus change pairs one message may carry: a client batches the slots it changed
/// in one frame (tens, rarely hundreds); the limit keeps a message of tiny events from
/// making thousands of allocations.
pub const MAX_ITEMS: usize = 4096;

/// Largest shared-object message we decode: a batch of changes or a send is a few KiB; a
/// large one is an attempt to make the decoder build a huge tree.
pub const MAX_MESSAGE_SIZE: usize = 1 << 20;

/// Flag bit of a persistent object (AMS, Red5: `flags == 2`).
const PERSISTENT: u32 = 2;

/// The encoding byte of a type-16 message whose values are AMF3 (Red5: `encoding == 3`).
const VALUES_AMF3: u8 = 3;

mod event_type {
    pub const USE: u8 = 1;
    pub const RELEASE: u8 = 2;
    pub const REQUEST_CHANGE: u8 = 3;
    pub const CHANGE: u8 = 4;
    pub const SUCCESS: u8 = 5;
    pub const SEND_MESSAGE: u8 = 6;
    pub const STATUS: u8 = 7;
    pub const CLEAR: u8 = 8;
    pub const REMOVE: u8 = 9;
    pub const REQUEST_REMOVE: u8 = 10;
    pub const USE_SUCCESS: u8 = 11;
}

/// One event of a shared-object message.
#[derive(Debug, Clone, PartialEq)]
pub enum SoEvent {
    /// Client: start using the object (the `connect` of `SharedObject.getRemote`).
    Use,
    /// Client: stop using it.
    Release,
    /// Client: set a slot (null or undefined removes it).
    RequestChange { key: String, value: Amf0Value },
    /// Server: slots changed (by another client, or every slot on use).
    Change(Vec<(String, Amf0Value)>),
    /// Server: the change of this slot the client asked for was applied.
    Success(String),
    /// Both ways: call `handler` on every user of the object.
    SendMessage {
        handler: String,
        args: Vec<Amf0Value>,
    },
    /// Server: an error or warning about the object.
    Status { code: String, level: String },
    /// Server: forget every slot (sent on use of a temporary object, and on clear).
    Clear,
    /// Server: this slot was removed.
    Remove(String),
    /// Client: remove a slot.
    RequestRemove(String),
    /// Server: the use succeeded; the object's slots follow.
    UseSuccess,
}

/// One shared-object message: the object, its version, and events in order.
#[derive(Debug, Clone, PartialEq)]
pub struct SoMessage {
    pub name: String,
    pub version: u32,
    pub persistent: bool,
    pub events: Vec<SoEvent>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SoError {
    #[error("shared object message: truncated {0}")]
    Truncated(&'static str),
    #[error("shared object message: unknown value encoding {0}")]
    Encoding(u8),
    #[error("shared object message: unknown event type {0}")]
    UnknownEvent(u8),
    #[error("shared object message: event {event} declares {declared} bytes, {left} left")]
    EventLength {
        event: u8,
        declared: u32,
        left: usize,
    },
    #[error("shared object message: event {0} has bytes after its data")]
    Trailing(u8),
    #[error("shared object message: more than {MAX_ITEMS} events and changes")]
    TooManyItems,
    #[error("shared object message: invalid UTF-8 in a name")]
    Utf8,
    #[error("shared object message: send message without a handler name")]
    NoHandler,
    #[error("shared object message: {0}")]
    Amf(#[from] AmfError),
}

/// The values of one message: AMF0 (with 0x11 switches) or AMF3, each under one budget
/// for the whole message, as a command's are.
enum Values {
    Amf0(MessageDecoder),
    Amf3(Box<Amf3Decoder>),
}

impl Values {
    fn value(&mut self, input: &mut &[u8]) -> Result<Amf0Value, AmfError> {
        match self {
            Values::Amf0(d) => d.value(input),
            Values::Amf3(d) => d.decode(input).map(Amf0Value::Amf3),
        }
    }
}

fn take<'a>(input: &mut &'a [u8], n: usize, what: &'static str) -> Result<&'a [u8], SoError> {
    if input.len() < n {
        return Err(SoError::Truncated(what));
    }
    let (head, tail) = input.split_at(n);
    *input = tail;
    Ok(head)
}

fn u8_of(input: &mut &[u8], what: &'static str) -> Result<u8, SoError> {
    Ok(take(input, 1, what)?[0])
}

fn u32_of(input: &mut &[u8], what: &'static str) -> Result<u32, SoError> {
    let b = take(input, 4, what)?;
    Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

fn short_string(input: &mut &[u8], what: &'static str) -> Result<String, SoError> {
    let b = take(input, 2, what)?;
    let len = usize::from(u16::from_be_bytes([b[0], b[1]]));
    let bytes = take(input, len, what)?;
    String::from_utf8(bytes.to_vec()).map_err(|_| SoError::Utf8)
}

impl SoMessage {
    /// Decodes the payload of a message of type 19 (`amf3 == false`) or 16.
    pub fn decode(amf3: bool, payload: &[u8]) -> Result<SoMessage, SoError> {
        let mut input = payload;
        let mut values = Values::Amf0(MessageDecoder::default());
        if amf3 {
            match u8_of(&mut input, "encoding byte")? {
                0 => {}
                VALUES_AMF3 => values = Values::Amf3(Box::default()),
                other => return Err(SoError::Encoding(other)),
            }
        }
        let name = short_string(&mut input, "name")?;
        let version = u32_of(&mut input, "version")?;
        let flags = u32_of(&mut input, "flags")?;
        take(&mut input, 4, "reserved bytes")?;
        let mut events = Vec::new();
        let mut items = 0usize;
        while !input.is_empty() {
            let kind = u8_of(&mut input, "event type")?;
            let declared = u32_of(&mut input, "event length")?;
            let data = usize::try_from(declared)
                .ok()
                .filter(|&n| n <= input.len())
                .ok_or(SoError::EventLength {
                    event: kind,
                    declared,
                    left: input.len(),
                })?;
            let mut body = take(&mut input, data, "event data")?;
            items += 1;
            if items > MAX_ITEMS {
                return Err(SoError::TooManyItems);
            }
            let event = decode_event(kind, &mut body, &mut values, &mut items)?;
            if !body.is_empty() {
                return Err(SoError::Trailing(kind));
            }
            events.push(event);
        }
        Ok(SoMessage {
            name,
            version,
            persistent: flags & PERSISTENT != 0,
            events,
        })
    }

    /// The payload of a message of type 19 (`amf3 == false`) or 16 (leading 0, AMF0 values).
    pub fn encode(&self, amf3: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        if amf3 {
            out.push(0);
        }
        put_short_string(&self.name, &mut out);
        out.extend_from_slice(&self.version.to_be_bytes());
        let flags = if self.persistent { PERSISTENT } else { 0 };
        out.extend_from_slice(&flags.to_be_bytes());
        out.extend_from_slice(&[0; 4]);
        for event in &self.events {
            encode_event(event, &mut out);
        }
        out
    }

    /// The whole RTMP message, on the NetConnection's stream and the command chunk stream.
    pub fn to_message(&self, amf3: bool) -> Message {
        Message {
            csid: csid::COMMAND,
            timestamp: 0,
            type_id: if amf3 {
                msg_type::SHARED_OBJECT_AMF3
            } else {
                msg_type::SHARED_OBJECT_AMF0
            },
            stream_id: 0,
            payload: Bytes::from(self.encode(amf3)),
        }
    }
}

fn decode_event(
    kind: u8,
    body: &mut &[u8],
    values: &mut Values,
    items: &mut usize,
) -> Result<SoEvent, SoError> {
    use event_type::*;
    Ok(match kind {
        USE => SoEvent::Use,
        RELEASE => SoEvent::Release,
        CLEAR => SoEvent::Clear,
        USE_SUCCESS => SoEvent::UseSuccess,
        REQUEST_CHANGE => {
            let key = short_string(body, "slot name")?;
            // A request without a value (Red5 allows it) sets the slot to undefined, which
            // is a removal.
            let value = if body.is_empty() {
                Amf0Value::Undefined
            } else {
                values.value(body)?
            };
            SoEvent::RequestChange { key, value }
        }
        CHANGE => {
            let mut pairs = Vec::new();
            while !body.is_empty() {
                *items += 1;
                if *items > MAX_ITEMS {
                    return Err(SoError::TooManyItems);
                }
                let key = short_string(body, "slot name")?;
                pairs.push((key, values.value(body)?));
            }
            SoEvent::Change(pairs)
        }
        SUCCESS => SoEvent::Success(short_string(body, "slot name")?),
        REMOVE => SoEvent::Remove(short_string(body, "slot name")?),
        REQUEST_REMOVE => SoEvent::RequestRemove(short_string(body, "slot name")?),
        STATUS => SoEvent::Status {
            code: short_string(body, "status code")?,
            level: short_string(body, "status level")?,
        },
        SEND_MESSAGE => {
            // Red5: "the send event seems to encode the handler name as complete AMF string
            // including the string type byte".
            let handler = match values.value(body)? {
                Amf0Value::String(s) | Amf0Value::LongString(s) => s,
                Amf0Value::Amf3(v) => v.as_str().ok_or(SoError::NoHandler)?.to_string(),
                _ => return Err(SoError::NoHandler),
            };
            let mut args = Vec::new();
            while !body.is_empty() {
                *items += 1;
                if *items > MAX_ITEMS {
                    return Err(SoError::TooManyItems);
                }
                args.push(values.value(body)?);
            }
            SoEvent::SendMessage { handler, args }
        }
        other => return Err(SoError::UnknownEvent(other)),
    })
}

fn put_short_string(s: &str, out: &mut Vec<u8>) {
    // Names and keys come from decoded messages or operators; cut one that does not fit a
    // u16 at a character boundary, as the AMF0 encoder does.
    let mut end = s.len().min(usize::from(u16::MAX));
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    out.extend_from_slice(&(end as u16).to_be_bytes());
    out.extend_from_slice(&s.as_bytes()[..end]);
}

fn encode_event(event: &SoEvent, out: &mut Vec<u8>) {
    use event_type::*;
    let kind = match event {
        SoEvent::Use => USE,
        SoEvent::Release => RELEASE,
        SoEvent::RequestChange { .. } => REQUEST_CHANGE,
        SoEvent::Change(_) => CHANGE,
        SoEvent::Success(_) => SUCCESS,
        SoEvent::SendMessage { .. } => SEND_MESSAGE,
        SoEvent::Status { .. } => STATUS,
        SoEvent::Clear => CLEAR,
        SoEvent::Remove(_) => REMOVE,
        SoEvent::RequestRemove(_) => REQUEST_REMOVE,
        SoEvent::UseSuccess => USE_SUCCESS,
    };
    out.push(kind);
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    match event {
        SoEvent::Use | SoEvent::Release | SoEvent::Clear | SoEvent::UseSuccess => {}
        SoEvent::RequestChange { key, value } => {
            put_short_string(key, out);
            amf0::encode(value, out);
        }
        SoEvent::Change(pairs) => {
            for (key, value) in pairs {
                put_short_string(key, out);
                amf0::encode(value, out);
            }
        }
        SoEvent::Success(key) | SoEvent::Remove(key) | SoEvent::RequestRemove(key) => {
            put_short_string(key, out)
        }
        SoEvent::SendMessage { handler, args } => {
            amf0::encode(&Amf0Value::string(handler.as_str()), out);
            amf0::encode_all(args, out);
        }
        SoEvent::Status { code, level } => {
            put_short_string(code, out);
            put_short_string(level, out);
        }
    }
    let len = u32::try_from(out.len() - at - 4).unwrap_or(u32::MAX);
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::proto::amf3::Amf3Value;

    fn every_event() -> SoMessage {
        SoMessage {
            name: "room/users".into(),
            version: 7,
            persistent: true,
            events: vec![
                SoEvent::Use,
                SoEvent::Release,
                SoEvent::RequestChange {
                    key: "x".into(),
                    value: Amf0Value::Number(1.5),
                },
                SoEvent::Change(vec![
                    ("a".into(), Amf0Value::string("b")),
                    (
                        "o".into(),
                        Amf0Value::object([("n", Amf0Value::Boolean(true))]),
                    ),
                    ("three".into(), Amf0Value::Amf3(Amf3Value::Integer(3))),
                ]),
                SoEvent::Success("x".into()),
                SoEvent::SendMessage {
                    handler: "chat".into(),
                    args: vec![Amf0Value::string("hi"), Amf0Value::Null],
                },
                SoEvent::Status {
                    code: "SharedObject.LimitExceeded".into(),
                    level: "error".into(),
                },
                SoEvent::Clear,
                SoEvent::Remove("x".into()),
                SoEvent::RequestRemove("y".into()),
                SoEvent::UseSuccess,
            ],
        }
    }

    #[test]
    fn every_event_round_trips_in_both_encodings() {
        let m = every_event();
        for amf3 in [false, true] {
            let bytes = m.encode(amf3);
            assert_eq!(
                SoMessage::decode(amf3, &bytes),
                Ok(m.clone()),
                "amf3 {amf3}"
            );
        }
    }

    #[test]
    fn the_header_is_as_red5_reads_it() {
        let m = SoMessage {
            name: "so".into(),
            version: 1,
            persistent: false,
            events: vec![SoEvent::Use],
        };
        assert_eq!(
            m.encode(false),
            [0, 2, b's', b'o', 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]
        );
        assert_eq!(m.encode(true)[0], 0, "type 16 leads with the encoding byte");
    }

    #[test]
    fn amf3_values_decode_in_a_type_16_message_of_encoding_3() {
        let mut bytes = vec![VALUES_AMF3, 0, 1, b's', 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0];
        // request change "k" = AMF3 integer 5
        bytes.extend_from_slice(&[3, 0, 0, 0, 5, 0, 1, b'k', 0x04, 5]);
        let m = SoMessage::decode(true, &bytes).expect("decodes");
        assert_eq!(
            m.events,
            [SoEvent::RequestChange {
                key: "k".into(),
                value: Amf0Value::Amf3(Amf3Value::Integer(5)),
            }]
        );
    }

    fn header() -> Vec<u8> {
        vec![0, 1, b's', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    }

    #[test]
    fn malformed_messages_are_named_errors() {
        let mut unknown = header();
        unknown.extend_from_slice(&[12, 0, 0, 0, 0]);
        assert_eq!(
            SoMessage::decode(false, &unknown),
            Err(SoError::UnknownEvent(12))
        );

        let mut long = header();
        long.extend_from_slice(&[5, 0xff, 0xff, 0xff, 0xff, 0, 1, b'k']);
        assert!(matches!(
            SoMessage::decode(false, &long),
            Err(SoError::EventLength { event: 5, .. })
        ));

        let mut trailing = header();
        trailing.extend_from_slice(&[1, 0, 0, 0, 1, 0]);
        assert_eq!(
            SoMessage::decode(false, &trailing),
            Err(SoError::Trailing(1))
        );

        assert_eq!(
            SoMessage::decode(true, &[9]),
            Err(SoError::Encoding(9)),
            "type 16 with an unknown encoding byte"
        );
        assert!(matches!(
            SoMessage::decode(false, &[0, 5, b'a']),
            Err(SoError::Truncated("name"))
        ));
    }

    #[test]
    fn counts_and_depth_are_bounded() {
        let mut many = header();
        for _ in 0..=MAX_ITEMS {
            many.extend_from_slice(&[1, 0, 0, 0, 0]);
        }
        assert_eq!(SoMessage::decode(false, &many), Err(SoError::TooManyItems));

        let mut deep = header();
        let mut value = Vec::new();
        for _ in 0..10_000 {
            value.push(0x0a); // strict array of one
            value.extend_from_slice(&[0, 0, 0, 1]);
        }
        value.push(0x05);
        let mut data = vec![0, 1, b'k'];
        data.extend_from_slice(&value);
        deep.push(3);
        deep.extend_from_slice(&(data.len() as u32).to_be_bytes());
        deep.extend_from_slice(&data);
        assert_eq!(
            SoMessage::decode(false, &deep),
            Err(SoError::Amf(AmfError::TooDeep))
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(amf3: bool, data in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = SoMessage::decode(amf3, &data);
        }

        #[test]
        fn arbitrary_events_after_a_valid_header_never_panic(
            amf3: bool,
            data in proptest::collection::vec(any::<u8>(), 0..512),
        ) {
            let mut bytes = if amf3 { vec![0] } else { Vec::new() };
            bytes.extend_from_slice(&header());
            bytes.extend_from_slice(&data);
            if let Ok(m) = SoMessage::decode(amf3, &bytes) {
                // Whatever decodes encodes to something that decodes and encodes the same
                // (compared as bytes: a NaN is not equal to itself).
                let encoded = m.encode(false);
                let again = SoMessage::decode(false, &encoded);
                prop_assert!(again.is_ok(), "{:?}", again);
                prop_assert_eq!(again.map(|a| a.encode(false)).ok(), Some(encoded));
            }
        }
    }
}
