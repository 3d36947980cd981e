//! Protocol control messages (types 1, 2, 3, 5, 6; RTMP specification §5.4) and User Control
//! messages (type 4, §7.1.7).

use bytes::Bytes;

use super::{csid, msg_type, Message};

/// Largest chunk size a peer may announce: the top bit of the 32-bit field must be zero.
pub(crate) const MAX_CHUNK_SIZE: u32 = 0x7FFF_FFFF;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlMessage {
    SetChunkSize(u32),
    /// Chunk stream id whose partial message is to be dropped.
    Abort(u32),
    /// Bytes received so far (sequence number).
    Acknowledgement(u32),
    WindowAckSize(u32),
    /// `limit`: 0 hard, 1 soft, 2 dynamic.
    SetPeerBandwidth {
        size: u32,
        limit: u8,
    },
    UserControl(UserControl),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserControl {
    StreamBegin(u32),
    StreamEof(u32),
    StreamDry(u32),
    SetBufferLength {
        stream_id: u32,
        ms: u32,
    },
    StreamIsRecorded(u32),
    PingRequest(u32),
    PingResponse(u32),
    /// Events we do not interpret (e.g. SWF verification, 26/27, or buffer empty/ready, 31/32):
    /// kept so that a relay can pass them on.
    Unknown {
        event_type: u16,
        data: Vec<u8>,
    },
}

/// User control event types.
mod event {
    pub(crate) const STREAM_BEGIN: u16 = 0;
    pub(crate) const STREAM_EOF: u16 = 1;
    pub(crate) const STREAM_DRY: u16 = 2;
    pub(crate) const SET_BUFFER_LENGTH: u16 = 3;
    pub(crate) const STREAM_IS_RECORDED: u16 = 4;
    pub(crate) const PING_REQUEST: u16 = 6;
    pub(crate) const PING_RESPONSE: u16 = 7;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    #[error("message type {0} is not a control message")]
    NotControl(u8),
    #[error("control message type {type_id} of {len} bytes, needs {need}")]
    Short {
        type_id: u8,
        len: usize,
        need: usize,
    },
    #[error("user control event {event_type} of {len} data bytes, needs {need}")]
    ShortEvent {
        event_type: u16,
        len: usize,
        need: usize,
    },
    #[error("invalid chunk size 0")]
    ZeroChunkSize,
    #[error("chunk size {0} above 2^31-1")]
    ChunkSizeTooLarge(u32),
}

/// Checks a Set Chunk Size value (1..=2^31-1).
pub(crate) fn check_chunk_size(n: u32) -> Result<u32, ControlError> {
    match n {
        0 => Err(ControlError::ZeroChunkSize),
        n if n > MAX_CHUNK_SIZE => Err(ControlError::ChunkSizeTooLarge(n)),
        n => Ok(n),
    }
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 4)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

impl ControlMessage {
    /// Parses the payload of a message of type 1..=6. Trailing bytes are ignored, as other
    /// implementations do.
    pub(crate) fn decode(type_id: u8, payload: &[u8]) -> Result<Self, ControlError> {
        let short = |need| ControlError::Short {
            type_id,
            len: payload.len(),
            need,
        };
        let word = || be32(payload, 0).ok_or_else(|| short(4));
        Ok(match type_id {
            msg_type::SET_CHUNK_SIZE => ControlMessage::SetChunkSize(check_chunk_size(word()?)?),
            msg_type::ABORT => ControlMessage::Abort(word()?),
            msg_type::ACKNOWLEDGEMENT => ControlMessage::Acknowledgement(word()?),
            msg_type::WINDOW_ACK_SIZE => ControlMessage::WindowAckSize(word()?),
            msg_type::SET_PEER_BANDWIDTH => {
                let size = word()?;
                let limit = *payload.get(4).ok_or_else(|| short(5))?;
                ControlMessage::SetPeerBandwidth { size, limit }
            }
            msg_type::USER_CONTROL => {
                let head = payload.get(..2).ok_or_else(|| short(2))?;
                let event_type = u16::from_be_bytes([head[0], head[1]]);
                ControlMessage::UserControl(UserControl::decode(event_type, &payload[2..])?)
            }
            other => return Err(ControlError::NotControl(other)),
        })
    }

    pub(crate) fn type_id(&self) -> u8 {
        match self {
            ControlMessage::SetChunkSize(_) => msg_type::SET_CHUNK_SIZE,
            ControlMessage::Abort(_) => msg_type::ABORT,
            ControlMessage::Acknowledgement(_) => msg_type::ACKNOWLEDGEMENT,
            ControlMessage::WindowAckSize(_) => msg_type::WINDOW_ACK_SIZE,
            ControlMessage::SetPeerBandwidth { .. } => msg_type::SET_PEER_BANDWIDTH,
            ControlMessage::UserControl(_) => msg_type::USER_CONTROL,
        }
    }

    /// The payload bytes.
    pub(crate) fn encode_payload(&self) -> Vec<u8> {
        match self {
            ControlMessage::SetChunkSize(n)
            | ControlMessage::Abort(n)
            | ControlMessage::Acknowledgement(n)
            | ControlMessage::WindowAckSize(n) => n.to_be_bytes().to_vec(),
            ControlMessage::SetPeerBandwidth { size, limit } => {
                let mut v = size.to_be_bytes().to_vec();
                v.push(*limit);
                v
            }
            ControlMessage::UserControl(uc) => uc.encode(),
        }
    }

    /// csid 2, stream 0, timestamp 0, as servers send them.
    pub fn to_message(&self) -> Message {
        Message {
            csid: csid::PROTOCOL_CONTROL,
            timestamp: 0,
            type_id: self.type_id(),
            stream_id: 0,
            payload: Bytes::from(self.encode_payload()),
        }
    }
}

impl UserControl {
    fn decode(event_type: u16, data: &[u8]) -> Result<Self, ControlError> {
        let short = |need| ControlError::ShortEvent {
            event_type,
            len: data.len(),
            need,
        };
        let word = |at: usize| be32(data, at).ok_or_else(|| short(at + 4));
        Ok(match event_type {
            event::STREAM_BEGIN => UserControl::StreamBegin(word(0)?),
            event::STREAM_EOF => UserControl::StreamEof(word(0)?),
            event::STREAM_DRY => UserControl::StreamDry(word(0)?),
            event::SET_BUFFER_LENGTH => UserControl::SetBufferLength {
                stream_id: word(0)?,
                ms: word(4)?,
            },
            event::STREAM_IS_RECORDED => UserControl::StreamIsRecorded(word(0)?),
            event::PING_REQUEST => UserControl::PingRequest(word(0)?),
            event::PING_RESPONSE => UserControl::PingResponse(word(0)?),
            _ => UserControl::Unknown {
                event_type,
                data: data.to_vec(),
            },
        })
    }

    fn encode(&self) -> Vec<u8> {
        let (event_type, words): (u16, &[u32]) = match self {
            UserControl::StreamBegin(n) => (event::STREAM_BEGIN, std::slice::from_ref(n)),
            UserControl::StreamEof(n) => (event::STREAM_EOF, std::slice::from_ref(n)),
            UserControl::StreamDry(n) => (event::STREAM_DRY, std::slice::from_ref(n)),
            UserControl::SetBufferLength { stream_id, ms } => {
                let mut v = event::SET_BUFFER_LENGTH.to_be_bytes().to_vec();
                v.extend_from_slice(&stream_id.to_be_bytes());
                v.extend_from_slice(&ms.to_be_bytes());
                return v;
            }
            UserControl::StreamIsRecorded(n) => {
                (event::STREAM_IS_RECORDED, std::slice::from_ref(n))
            }
            UserControl::PingRequest(n) => (event::PING_REQUEST, std::slice::from_ref(n)),
            UserControl::PingResponse(n) => (event::PING_RESPONSE, std::slice::from_ref(n)),
            UserControl::Unknown { event_type, data } => {
                let mut v = event_type.to_be_bytes().to_vec();
                v.extend_from_slice(data);
                return v;
            }
        };
        let mut v = event_type.to_be_bytes().to_vec();
        for w in words {
            v.extend_from_slice(&w.to_be_bytes());
        }
        v
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn set_chunk_size_4096() {
        let m = ControlMessage::decode(1, &[0, 0, 0x10, 0]).unwrap();
        assert_eq!(m, ControlMessage::SetChunkSize(4096));
        let msg = m.to_message();
        assert_eq!(
            (msg.csid, msg.stream_id, msg.timestamp, msg.type_id),
            (2, 0, 0, 1)
        );
        assert_eq!(&msg.payload[..], &[0, 0, 0x10, 0]);
    }

    #[test]
    fn chunk_size_zero_and_top_bit_are_refused() {
        let e = ControlMessage::decode(1, &[0, 0, 0, 0]).unwrap_err();
        assert_eq!(e.to_string(), "invalid chunk size 0");
        let e = ControlMessage::decode(1, &[0x80, 0, 0, 0]).unwrap_err();
        assert_eq!(e.to_string(), "chunk size 2147483648 above 2^31-1");
    }

    #[test]
    fn set_peer_bandwidth_dynamic() {
        let m = ControlMessage::decode(6, &[0, 0x4c, 0x4b, 0x40, 2]).unwrap();
        assert_eq!(
            m,
            ControlMessage::SetPeerBandwidth {
                size: 5_000_000,
                limit: 2
            }
        );
    }

    #[test]
    fn set_buffer_length_from_a_player() {
        let m = ControlMessage::decode(4, &[0, 3, 0, 0, 0, 1, 0, 0, 0x0b, 0xb8]).unwrap();
        let uc = UserControl::SetBufferLength {
            stream_id: 1,
            ms: 3000,
        };
        assert_eq!(m, ControlMessage::UserControl(uc));
    }

    #[test]
    fn stream_begin_bytes() {
        let m = ControlMessage::UserControl(UserControl::StreamBegin(1)).to_message();
        assert_eq!(m.type_id, 4);
        assert_eq!(&m.payload[..], &[0, 0, 0, 0, 0, 1]);
    }

    #[test]
    fn short_payloads_are_errors() {
        assert_eq!(
            ControlMessage::decode(5, &[0, 1]).unwrap_err().to_string(),
            "control message type 5 of 2 bytes, needs 4"
        );
        assert!(ControlMessage::decode(6, &[0, 0, 0, 1]).is_err());
        assert!(ControlMessage::decode(4, &[0]).is_err());
        assert!(ControlMessage::decode(4, &[0, 6, 1]).is_err());
        assert_eq!(
            ControlMessage::decode(20, &[]),
            Err(ControlError::NotControl(20))
        );
    }

    fn any_control() -> impl Strategy<Value = ControlMessage> {
        let uc = prop_oneof![
            any::<u32>().prop_map(UserControl::StreamBegin),
            any::<u32>().prop_map(UserControl::StreamEof),
            any::<u32>().prop_map(UserControl::StreamDry),
            (any::<u32>(), any::<u32>())
                .prop_map(|(stream_id, ms)| UserControl::SetBufferLength { stream_id, ms }),
            any::<u32>().prop_map(UserControl::StreamIsRecorded),
            any::<u32>().prop_map(UserControl::PingRequest),
            any::<u32>().prop_map(UserControl::PingResponse),
            (8u16.., proptest::collection::vec(any::<u8>(), 0..16))
                .prop_map(|(event_type, data)| UserControl::Unknown { event_type, data }),
        ];
        prop_oneof![
            (1u32..=MAX_CHUNK_SIZE).prop_map(ControlMessage::SetChunkSize),
            any::<u32>().prop_map(ControlMessage::Abort),
            any::<u32>().prop_map(ControlMessage::Acknowledgement),
            any::<u32>().prop_map(ControlMessage::WindowAckSize),
            (any::<u32>(), any::<u8>())
                .prop_map(|(size, limit)| ControlMessage::SetPeerBandwidth { size, limit }),
            uc.prop_map(ControlMessage::UserControl),
        ]
    }

    proptest! {
        #[test]
        fn control_round_trip(m in any_control()) {
            let msg = m.to_message();
            prop_assert_eq!(ControlMessage::decode(msg.type_id, &msg.payload).unwrap(), m);
        }

        #[test]
        fn decode_never_panics(t: u8, data in proptest::collection::vec(any::<u8>(), 0..32)) {
            let _ = ControlMessage::decode(t, &data);
        }
    }
}
