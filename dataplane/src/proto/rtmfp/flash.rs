//! The Flash profile's messages on flows (RFC 7425 §5): each flow carries one RTMP message
//! stream, named by its metadata ('T' 'C', flags, stream id VLU; stream 0 is the
//! NetConnection's control flow), and each flow message is one RTMP message without RTMP's
//! chunking: type, 4-byte timestamp, payload. Mapped onto `proto::rtmp::Message` so that
//! `app/` and `media/` can take RTMFP clients as they take RTMP ones. Two user control events
//! are RTMFP's own: Flow Sync (34, §5.2) and Set Keepalive (41, §5.3.4).

use std::collections::HashMap;

use bytes::Bytes;

use super::error::{Result, RtmfpError};
use super::flow_send::Head;
use super::session::Session;
use super::vlu;
use crate::proto::rtmp::control::{ControlMessage, UserControl};
use crate::proto::rtmp::{csid, msg_type, Message};

/// Metadata flag: a stream id follows (required).
const FLAG_STREAM_ID: u8 = 0x04;
/// Metadata flag: the receiver may deliver in network order (else in sequence).
const FLAG_NETWORK_ORDER: u8 = 0x01;
pub(crate) const EVENT_FLOW_SYNC: u16 = 34;
pub(crate) const EVENT_SET_KEEPALIVE: u16 = 41;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FlowMetadata {
    pub stream_id: u32,
    pub network_order: bool,
}

impl FlowMetadata {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut m = vec![
            b'T',
            b'C',
            FLAG_STREAM_ID
                | if self.network_order {
                    FLAG_NETWORK_ORDER
                } else {
                    0
                },
        ];
        vlu::put(u64::from(self.stream_id), &mut m);
        m
    }

    pub(crate) fn decode(m: &[u8]) -> Result<Self> {
        match m {
            [b'T', b'C', flags, rest @ ..] if flags & FLAG_STREAM_ID != 0 => {
                let mut r = rest;
                let id = vlu::read(&mut r)?;
                let stream_id =
                    u32::try_from(id).map_err(|_| RtmfpError::Malformed("stream id"))?;
                Ok(FlowMetadata {
                    stream_id,
                    network_order: flags & FLAG_NETWORK_ORDER != 0,
                })
            }
            _ => Err(RtmfpError::Unsupported("flow metadata (not a Flash flow)")),
        }
    }
}

/// One RTMP message as a flow message: its head (type and timestamp), then its payload.
pub(crate) fn encode_message(m: &Message, out: &mut Vec<u8>) {
    out.extend_from_slice(message_head(m).as_slice());
    out.extend_from_slice(&m.payload);
}

/// A flow message's head: the RTMP message type and timestamp.
pub(crate) fn message_head(m: &Message) -> Head {
    let t = m.timestamp.to_be_bytes();
    Head::new(&[m.type_id, t[0], t[1], t[2], t[3]])
}

/// A flow message of the flow carrying `stream_id`, as an RTMP message. The RTMP chunking
/// controls (chunk size, abort, acknowledgement, window, peer bandwidth) and aggregates have
/// no place on a flow (§5.1) and are refused.
pub(crate) fn decode_message(stream_id: u32, data: &[u8]) -> Result<Message> {
    if data.len() < 5 {
        return Err(RtmfpError::Truncated("flow message"));
    }
    let type_id = data[0];
    let timestamp = u32::from_be_bytes([data[1], data[2], data[3], data[4]]);
    let csid = match type_id {
        msg_type::USER_CONTROL => csid::PROTOCOL_CONTROL,
        msg_type::AUDIO => csid::AUDIO,
        msg_type::VIDEO => csid::VIDEO,
        msg_type::DATA_AMF0 | msg_type::DATA_AMF3 => csid::DATA,
        msg_type::COMMAND_AMF0
        | msg_type::COMMAND_AMF3
        | msg_type::SHARED_OBJECT_AMF0
        | msg_type::SHARED_OBJECT_AMF3 => csid::COMMAND,
        _ => return Err(RtmfpError::Unsupported("message type on a flow")),
    };
    Ok(Message {
        csid,
        timestamp,
        type_id,
        stream_id,
        payload: Bytes::copy_from_slice(&data[5..]),
    })
}

/// RTMFP's own user control events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FlashControl {
    /// Flows of one NetStream resynchronise: deliver after `count` flows reach sync `id`.
    FlowSync { id: u32, count: u32 },
    /// The server's keepalive period for client–server sessions and for peer sessions.
    SetKeepalive { server_ms: u32, peer_ms: u32 },
}

impl FlashControl {
    pub(crate) fn from_message(m: &Message) -> Option<Self> {
        let Ok(ControlMessage::UserControl(UserControl::Unknown { event_type, data })) =
            ControlMessage::decode(m.type_id, &m.payload)
        else {
            return None;
        };
        let pair = |d: &[u8]| -> Option<(u32, u32)> {
            let a = u32::from_be_bytes(d.get(0..4)?.try_into().ok()?);
            let b = u32::from_be_bytes(d.get(4..8)?.try_into().ok()?);
            Some((a, b))
        };
        match event_type {
            EVENT_FLOW_SYNC => pair(&data).map(|(id, count)| FlashControl::FlowSync { id, count }),
            EVENT_SET_KEEPALIVE => pair(&data)
                .map(|(server_ms, peer_ms)| FlashControl::SetKeepalive { server_ms, peer_ms }),
            _ => None,
        }
    }

    #[cfg(test)]
    pub(crate) fn to_message(self) -> Message {
        let (event_type, a, b) = match self {
            FlashControl::FlowSync { id, count } => (EVENT_FLOW_SYNC, id, count),
            FlashControl::SetKeepalive { server_ms, peer_ms } => {
                (EVENT_SET_KEEPALIVE, server_ms, peer_ms)
            }
        };
        let mut data = a.to_be_bytes().to_vec();
        data.extend_from_slice(&b.to_be_bytes());
        ControlMessage::UserControl(UserControl::Unknown { event_type, data }).to_message()
    }
}

/// Which flows carry which RTMP message streams on one session: received flows by their
/// metadata, our sending flows opened on first use, in return association with the peer's
/// control flow (stream 0).
#[derive(Debug, Default)]
pub(crate) struct StreamFlows {
    recv: HashMap<u64, u32>,
    peer_flow_of_stream: HashMap<u32, u64>,
    send: HashMap<u32, u64>,
}

impl StreamFlows {
    /// A flow the peer opened; its stream id, or an error for a flow that is not Flash's.
    pub(crate) fn on_flow_opened(&mut self, flow: u64, metadata: &[u8]) -> Result<u32> {
        let m = FlowMetadata::decode(metadata)?;
        self.recv.insert(flow, m.stream_id);
        self.peer_flow_of_stream.entry(m.stream_id).or_insert(flow);
        Ok(m.stream_id)
    }

    /// A message the peer sent on `flow`.
    pub(crate) fn on_message(&self, flow: u64, data: &[u8]) -> Result<Message> {
        let stream_id = *self
            .recv
            .get(&flow)
            .ok_or(RtmfpError::Malformed("message on an unknown flow"))?;
        decode_message(stream_id, data)
    }

    /// Sends an RTMP message on its stream's flow; `deadline` makes it partially reliable
    /// (late audio and video are abandoned rather than delivered late).
    pub(crate) fn send(
        &mut self,
        session: &mut Session,
        m: &Message,
        deadline: Option<u64>,
    ) -> bool {
        let flow = match self.send.get(&m.stream_id) {
            Some(f) => *f,
            None => {
                let meta = FlowMetadata {
                    stream_id: m.stream_id,
                    network_order: false,
                }
                .encode();
                // Every flow of a NetConnection answers the peer's control flow (stream 0),
                // as RFC 7425 §5.3 has it and rtmfp-cpp's TCConnection requires: a flow
                // associated with one of the peer's NetStream flows is not accepted there.
                let assoc = self
                    .peer_flow_of_stream
                    .get(&0)
                    .or_else(|| self.peer_flow_of_stream.get(&m.stream_id))
                    .copied();
                let f = session.open_flow(&meta, assoc);
                self.send.insert(m.stream_id, f);
                f
            }
        };
        // The payload goes as it is (a slice shared with other viewers), behind its head.
        session.send_parts(flow, message_head(m), m.payload.clone(), deadline)
    }

    /// Ends our flow of a stream (deleteStream, closeStream).
    pub(crate) fn close_stream(&mut self, session: &mut Session, stream_id: u32) {
        if let Some(f) = self.send.remove(&stream_id) {
            session.close_flow(f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::amf0::Amf0Value;

    #[test]
    fn metadata_as_rtmp_cpp_and_flash_write_it() {
        let m = FlowMetadata {
            stream_id: 0,
            network_order: false,
        };
        assert_eq!(m.encode(), b"TC\x04\x00");
        assert_eq!(
            FlowMetadata::decode(b"TC\x05\x81\x00"),
            Ok(FlowMetadata {
                stream_id: 128,
                network_order: true
            })
        );
        assert!(FlowMetadata::decode(b"TC\x00\x01").is_err());
        assert!(FlowMetadata::decode(b"GC\x04\x01").is_err());
    }

    #[test]
    fn messages_map_to_rtmp_messages() {
        let connect = Message::command(
            0,
            false,
            &[Amf0Value::string("connect"), Amf0Value::Number(1.0)],
        );
        let mut wire = Vec::new();
        encode_message(&connect, &mut wire);
        assert_eq!(wire[..5], [20, 0, 0, 0, 0]);
        let back = decode_message(0, &wire).expect("decodes");
        assert_eq!(back, connect);
        let video = Message {
            csid: csid::VIDEO,
            timestamp: 0x01020304,
            type_id: msg_type::VIDEO,
            stream_id: 1,
            payload: Bytes::from_static(b"\x17\x01"),
        };
        wire.clear();
        encode_message(&video, &mut wire);
        assert_eq!(decode_message(1, &wire).expect("video"), video);
        assert!(
            decode_message(0, &[1, 0, 0, 0, 0, 0, 0, 0, 128]).is_err(),
            "no chunk size on a flow"
        );
        assert!(decode_message(0, &[20, 0]).is_err());
    }

    #[test]
    fn flow_sync_and_set_keepalive() {
        for c in [
            FlashControl::FlowSync { id: 3, count: 2 },
            FlashControl::SetKeepalive {
                server_ms: 15_000,
                peer_ms: 10_000,
            },
        ] {
            let m = c.to_message();
            assert_eq!(m.type_id, msg_type::USER_CONTROL);
            assert_eq!(FlashControl::from_message(&m), Some(c));
        }
        let begin = ControlMessage::UserControl(UserControl::StreamBegin(1)).to_message();
        assert_eq!(FlashControl::from_message(&begin), None);
    }
}
