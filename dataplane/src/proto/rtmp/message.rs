use bytes::Bytes;

use crate::proto::amf0::Amf0Value;
use crate::proto::command::encode_values;

/// RTMP message type ids (RTMP specification §5.4 and §7.1).
pub mod msg_type {
    pub const SET_CHUNK_SIZE: u8 = 1;
    pub const ABORT: u8 = 2;
    pub const ACKNOWLEDGEMENT: u8 = 3;
    pub const USER_CONTROL: u8 = 4;
    pub const WINDOW_ACK_SIZE: u8 = 5;
    pub const SET_PEER_BANDWIDTH: u8 = 6;
    pub const AUDIO: u8 = 8;
    pub const VIDEO: u8 = 9;
    pub const DATA_AMF3: u8 = 15;
    pub const SHARED_OBJECT_AMF3: u8 = 16;
    pub const COMMAND_AMF3: u8 = 17;
    pub const DATA_AMF0: u8 = 18;
    pub const SHARED_OBJECT_AMF0: u8 = 19;
    pub const COMMAND_AMF0: u8 = 20;
    pub const AGGREGATE: u8 = 22;
}

/// Chunk stream ids the server uses for what it sends (the values AMS and most servers use,
/// which some clients assume).
pub mod csid {
    pub const PROTOCOL_CONTROL: u32 = 2;
    pub const COMMAND: u32 = 3;
    pub const AUDIO: u32 = 4;
    pub const VIDEO: u32 = 6;
    pub const DATA: u32 = 5;
}

/// One complete RTMP message, reassembled from its chunks (or about to be chunked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The chunk stream it arrived on (or is to be sent on).
    pub csid: u32,
    /// Absolute timestamp in milliseconds (deltas already applied; wraps at 2^32).
    pub timestamp: u32,
    pub type_id: u8,
    /// Message stream id (0 for the NetConnection, else a NetStream).
    pub stream_id: u32,
    pub payload: Bytes,
}

impl Message {
    /// A command (or status, or `_result`) on message stream `stream_id`, in the AMF0 or the
    /// AMF3 framing, on the command chunk stream.
    pub(crate) fn command(stream_id: u32, amf3: bool, values: &[Amf0Value]) -> Self {
        let type_id = if amf3 {
            msg_type::COMMAND_AMF3
        } else {
            msg_type::COMMAND_AMF0
        };
        Message::encoded(csid::COMMAND, type_id, stream_id, amf3, values)
    }

    /// A data message (e.g. `|RtmpSampleAccess`) on message stream `stream_id`, AMF0.
    pub(crate) fn data(stream_id: u32, values: &[Amf0Value]) -> Self {
        Message::encoded(csid::DATA, msg_type::DATA_AMF0, stream_id, false, values)
    }

    fn encoded(csid: u32, type_id: u8, stream_id: u32, amf3: bool, values: &[Amf0Value]) -> Self {
        Message {
            csid,
            timestamp: 0,
            type_id,
            stream_id,
            payload: Bytes::from(encode_values(amf3, values)),
        }
    }
}
