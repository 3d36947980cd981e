//! The server side of one RTMP connection, sans-IO: handshake, then the chunk stream.
//! Protocol control is handled here (acknowledgements, ping replies, the client's window);
//! what is left reaches the application as `SessionEvent`s.

use bytes::{Bytes, BytesMut};

use super::chunk_decoder::{ChunkDecoder, ChunkError, DecoderLimits};
use super::chunk_encoder::encode_message;
use super::control::{ControlError, ControlMessage, UserControl};
use super::handshake::{HandshakeError, HandshakeKind, ServerHandshake};
use super::message::{csid, msg_type, Message};
use crate::proto::amf0::Amf0Value;
use crate::proto::command::{self, Command, CommandError};

/// Commands are a few hundred bytes; a large one is an attempt to make the AMF decoder build
/// a huge tree (up to its node budget) from one message.
pub const MAX_COMMAND_SIZE: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub limits: DecoderLimits,
    /// The chunk size we send with (announced in the connect preamble).
    pub chunk_size: u32,
    pub window_ack_size: u32,
    pub peer_bandwidth: u32,
}

#[derive(Debug)]
pub enum SessionEvent {
    HandshakeDone(HandshakeKind),
    Command {
        stream_id: u32,
        amf3: bool,
        command: Command,
    },
    /// Data messages (`@setDataFrame`, `onMetaData`, ...), still encoded.
    Data {
        message: Message,
    },
    /// Audio and video, as the publisher sent them.
    Media {
        message: Message,
    },
    /// Set Buffer Length: players say how much they buffer; logged, not acted on.
    BufferLength {
        stream_id: u32,
        ms: u32,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("handshake: {0}")]
    Handshake(#[from] HandshakeError),
    #[error("{0}")]
    Chunk(#[from] ChunkError),
    #[error("{0}")]
    Command(#[from] CommandError),
    #[error("{0}")]
    Control(#[from] ControlError),
    #[error("aggregate message: {0}")]
    Aggregate(&'static str),
    #[error("command message of {0} bytes over the limit of {MAX_COMMAND_SIZE}")]
    CommandTooLarge(usize),
}

pub struct ServerSession {
    handshake: ServerHandshake,
    handshake_done: bool,
    decoder: ChunkDecoder,
    config: SessionConfig,
    bytes_in: u64,
    acked_at: u64,
    /// The client's Window Acknowledgement Size: we acknowledge every this many bytes.
    client_window: u32,
    messages: Vec<Message>,
}

impl ServerSession {
    pub fn new(config: SessionConfig, rng: &mut impl rand::RngCore, epoch_ms: u32) -> Self {
        ServerSession {
            handshake: ServerHandshake::new(rng, epoch_ms),
            handshake_done: false,
            decoder: ChunkDecoder::new(config.limits),
            config,
            bytes_in: 0,
            acked_at: 0,
            client_window: 0,
            messages: Vec::new(),
        }
    }

    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    pub fn bytes_in(&self) -> u64 {
        self.bytes_in
    }

    /// Feeds bytes from the client. Bytes to send back (handshake, acknowledgements, ping
    /// replies) are appended to `out`; everything else becomes events. On error the
    /// connection must be closed; events before the error are valid.
    pub fn feed(
        &mut self,
        mut input: &[u8],
        out: &mut BytesMut,
        events: &mut Vec<SessionEvent>,
    ) -> Result<(), SessionError> {
        self.bytes_in += input.len() as u64;
        if !self.handshake_done {
            let mut reply = Vec::new();
            let used = self.handshake.feed(input, &mut reply)?;
            out.extend_from_slice(&reply);
            input = input.get(used..).unwrap_or(&[]);
            if !self.handshake.is_done() {
                return Ok(());
            }
            self.handshake_done = true;
            events.push(SessionEvent::HandshakeDone(
                self.handshake.kind().unwrap_or(HandshakeKind::Simple),
            ));
        }
        let mut messages = std::mem::take(&mut self.messages);
        let decoded = self.decoder.feed(input, &mut messages);
        let handled = messages
            .drain(..)
            .try_for_each(|m| self.on_message(m, out, events));
        self.messages = messages;
        decoded?;
        handled?;
        if self.client_window > 0 && self.bytes_in - self.acked_at >= u64::from(self.client_window)
        {
            self.acked_at = self.bytes_in;
            // The sequence number is the byte count, modulo 2^32 as the field is 32 bits.
            self.write_control(&ControlMessage::Acknowledgement(self.bytes_in as u32), out);
        }
        Ok(())
    }

    fn on_message(
        &mut self,
        message: Message,
        out: &mut BytesMut,
        events: &mut Vec<SessionEvent>,
    ) -> Result<(), SessionError> {
        match message.type_id {
            msg_type::AUDIO | msg_type::VIDEO => events.push(SessionEvent::Media { message }),
            msg_type::DATA_AMF0 | msg_type::DATA_AMF3 => {
                events.push(SessionEvent::Data { message })
            }
            msg_type::COMMAND_AMF0 | msg_type::COMMAND_AMF3 => {
                let amf3 = message.type_id == msg_type::COMMAND_AMF3;
                if message.payload.len() > MAX_COMMAND_SIZE {
                    return Err(SessionError::CommandTooLarge(message.payload.len()));
                }
                let command = Command::decode(amf3, &message.payload)?;
                events.push(SessionEvent::Command {
                    stream_id: message.stream_id,
                    amf3,
                    command,
                });
            }
            msg_type::AGGREGATE => split_aggregate(&message, events)?,
            msg_type::SET_CHUNK_SIZE | msg_type::ABORT => {
                // Applied by the decoder at the exact byte; validated there too.
            }
            msg_type::ACKNOWLEDGEMENT
            | msg_type::WINDOW_ACK_SIZE
            | msg_type::SET_PEER_BANDWIDTH
            | msg_type::USER_CONTROL => {
                match ControlMessage::decode(message.type_id, &message.payload)? {
                    ControlMessage::WindowAckSize(n) => self.client_window = n,
                    ControlMessage::UserControl(UserControl::PingRequest(t)) => self.write_control(
                        &ControlMessage::UserControl(UserControl::PingResponse(t)),
                        out,
                    ),
                    ControlMessage::UserControl(UserControl::SetBufferLength { stream_id, ms }) => {
                        events.push(SessionEvent::BufferLength { stream_id, ms })
                    }
                    _ => {}
                }
            }
            // Shared objects arrive with a later issue; until then they are ignored, not fatal.
            _ => {}
        }
        Ok(())
    }

    fn write_control(&self, control: &ControlMessage, out: &mut BytesMut) {
        encode_message(&control.to_message(), self.config.chunk_size, out);
    }

    /// What AMS sends before the connect `_result`: Window Acknowledgement Size, Set Peer
    /// Bandwidth (dynamic), Set Chunk Size, and Stream Begin for stream 0.
    pub fn write_connect_preamble(&self, out: &mut BytesMut) {
        self.write_control(
            &ControlMessage::WindowAckSize(self.config.window_ack_size),
            out,
        );
        self.write_control(
            &ControlMessage::SetPeerBandwidth {
                size: self.config.peer_bandwidth,
                limit: 2,
            },
            out,
        );
        // Sent with the old (128) chunk size: the message is tiny, so one chunk either way.
        self.write_control(&ControlMessage::SetChunkSize(self.config.chunk_size), out);
        self.write_control(
            &ControlMessage::UserControl(UserControl::StreamBegin(0)),
            out,
        );
    }

    pub fn write_user_control(&self, event: UserControl, out: &mut BytesMut) {
        self.write_control(&ControlMessage::UserControl(event), out);
    }

    /// A command (or status) on message stream `stream_id`, in the framing the client uses.
    pub fn write_command(
        &self,
        stream_id: u32,
        amf3: bool,
        values: &[Amf0Value],
        out: &mut BytesMut,
    ) {
        let type_id = if amf3 {
            msg_type::COMMAND_AMF3
        } else {
            msg_type::COMMAND_AMF0
        };
        let payload = Bytes::from(command::encode_values(amf3, values));
        let message = Message {
            csid: csid::COMMAND,
            timestamp: 0,
            type_id,
            stream_id,
            payload,
        };
        encode_message(&message, self.config.chunk_size, out);
    }

    /// A data message (e.g. `|RtmpSampleAccess`) on message stream `stream_id`.
    pub fn write_data(&self, stream_id: u32, values: &[Amf0Value], out: &mut BytesMut) {
        let payload = Bytes::from(command::encode_values(false, values));
        let message = Message {
            csid: csid::DATA,
            timestamp: 0,
            type_id: msg_type::DATA_AMF0,
            stream_id,
            payload,
        };
        encode_message(&message, self.config.chunk_size, out);
    }
}

/// An aggregate message is a run of FLV tags (type, 24-bit size, 24+8-bit timestamp, 24-bit
/// stream id, body, 32-bit back pointer); each becomes its own message, with timestamps
/// rebased on the aggregate's own.
fn split_aggregate(message: &Message, events: &mut Vec<SessionEvent>) -> Result<(), SessionError> {
    let payload = &message.payload;
    let mut pos = 0usize;
    let mut first_ts: Option<u32> = None;
    while pos < payload.len() {
        let header = payload
            .get(pos..pos + 11)
            .ok_or(SessionError::Aggregate("truncated tag header"))?;
        let type_id = header[0];
        let size =
            (usize::from(header[1]) << 16) | (usize::from(header[2]) << 8) | usize::from(header[3]);
        let ts = (u32::from(header[7]) << 24)
            | (u32::from(header[4]) << 16)
            | (u32::from(header[5]) << 8)
            | u32::from(header[6]);
        let body_start = pos + 11;
        let body_end = body_start
            .checked_add(size)
            .ok_or(SessionError::Aggregate("tag size overflows"))?;
        if body_end > payload.len() {
            return Err(SessionError::Aggregate("tag body past the end"));
        }
        let base = *first_ts.get_or_insert(ts);
        let sub = Message {
            csid: message.csid,
            timestamp: message.timestamp.wrapping_add(ts.wrapping_sub(base)),
            type_id,
            stream_id: message.stream_id,
            payload: payload.slice(body_start..body_end),
        };
        match type_id {
            msg_type::AUDIO | msg_type::VIDEO => events.push(SessionEvent::Media { message: sub }),
            msg_type::DATA_AMF0 => events.push(SessionEvent::Data { message: sub }),
            _ => {}
        }
        // Skip the 4-byte back pointer; a missing final one is tolerated.
        pos = body_end + 4;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::rtmp::chunk_encoder::ChunkEncoder;
    use crate::proto::rtmp::handshake::ClientHandshake;
    use proptest::prelude::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn config() -> SessionConfig {
        SessionConfig {
            limits: DecoderLimits::default(),
            chunk_size: 4096,
            window_ack_size: 2_500_000,
            peer_bandwidth: 2_500_000,
        }
    }

    /// A server session past the handshake, and the client's chunk encoder.
    fn connected() -> (ServerSession, ChunkEncoder) {
        let mut rng = StdRng::seed_from_u64(1);
        let mut server = ServerSession::new(config(), &mut rng, 0);
        let mut c0c1 = Vec::new();
        let mut client = ClientHandshake::new(&mut rng, 0, HandshakeKind::Digest, &mut c0c1);
        let (mut out, mut events) = (BytesMut::new(), Vec::new());
        server.feed(&c0c1, &mut out, &mut events).expect("C0C1");
        let mut c2 = Vec::new();
        client.feed(&out, &mut c2).expect("S0S1S2");
        server.feed(&c2, &mut out, &mut events).expect("C2");
        assert!(matches!(
            events[..],
            [SessionEvent::HandshakeDone(HandshakeKind::Digest)]
        ));
        (server, ChunkEncoder::new(128))
    }

    fn command(values: &[Amf0Value]) -> Message {
        let payload = Bytes::from(command::encode_values(false, values));
        Message {
            csid: 3,
            timestamp: 0,
            type_id: msg_type::COMMAND_AMF0,
            stream_id: 0,
            payload,
        }
    }

    #[test]
    fn commands_and_media_become_events() {
        let (mut server, mut enc) = connected();
        let mut bytes = BytesMut::new();
        enc.encode(
            &command(&[
                Amf0Value::string("connect"),
                Amf0Value::Number(1.0),
                Amf0Value::Null,
            ]),
            &mut bytes,
        );
        let video = Message {
            csid: 6,
            timestamp: 40,
            type_id: msg_type::VIDEO,
            stream_id: 1,
            payload: Bytes::from_static(&[0x17, 1, 0, 0, 0]),
        };
        enc.encode(&video, &mut bytes);
        let (mut out, mut events) = (BytesMut::new(), Vec::new());
        server.feed(&bytes, &mut out, &mut events).expect("feed");
        assert!(
            matches!(&events[0], SessionEvent::Command { command, .. } if command.name == "connect")
        );
        assert!(matches!(&events[1], SessionEvent::Media { message } if message.timestamp == 40));
    }

    #[test]
    fn ping_requests_are_answered() {
        let (mut server, mut enc) = connected();
        let mut bytes = BytesMut::new();
        enc.encode(
            &ControlMessage::UserControl(UserControl::PingRequest(77)).to_message(),
            &mut bytes,
        );
        let (mut out, mut events) = (BytesMut::new(), Vec::new());
        server.feed(&bytes, &mut out, &mut events).expect("feed");
        let mut decoded = Vec::new();
        ChunkDecoder::new(DecoderLimits::default())
            .feed(&out, &mut decoded)
            .expect("reply decodes");
        let reply =
            ControlMessage::decode(decoded[0].type_id, &decoded[0].payload).expect("control");
        assert_eq!(
            reply,
            ControlMessage::UserControl(UserControl::PingResponse(77))
        );
    }

    #[test]
    fn truncated_amf_in_a_command_is_an_error() {
        let (mut server, mut enc) = connected();
        let mut body = command::encode_values(
            false,
            &[Amf0Value::string("connect"), Amf0Value::Number(1.0)],
        );
        body.truncate(6);
        let msg = Message {
            csid: 3,
            timestamp: 0,
            type_id: msg_type::COMMAND_AMF0,
            stream_id: 0,
            payload: Bytes::from(body),
        };
        let mut bytes = BytesMut::new();
        enc.encode(&msg, &mut bytes);
        let err = server
            .feed(&bytes, &mut BytesMut::new(), &mut Vec::new())
            .expect_err("truncated AMF");
        assert!(err.to_string().contains("AMF"), "{err}");
    }

    #[test]
    fn acknowledges_per_client_window() {
        let (mut server, mut enc) = connected();
        let mut bytes = BytesMut::new();
        enc.encode(
            &ControlMessage::WindowAckSize(1000).to_message(),
            &mut bytes,
        );
        let audio = Message {
            csid: 4,
            timestamp: 0,
            type_id: msg_type::AUDIO,
            stream_id: 1,
            payload: Bytes::from(vec![0xAF; 1200]),
        };
        enc.encode(&audio, &mut bytes);
        let (mut out, mut events) = (BytesMut::new(), Vec::new());
        server.feed(&bytes, &mut out, &mut events).expect("feed");
        let mut decoded = Vec::new();
        ChunkDecoder::new(DecoderLimits::default())
            .feed(&out, &mut decoded)
            .expect("decodes");
        assert!(
            decoded
                .iter()
                .any(|m| m.type_id == msg_type::ACKNOWLEDGEMENT),
            "no acknowledgement sent"
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_after_handshake_never_panic(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
            crate::fuzzing::rtmp_session(&data);
        }
    }
}
