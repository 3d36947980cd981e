//! One RTMP connection, sans-IO, in either role: the handshake, then the chunk stream. Bytes
//! come in through `feed`; what must go back (handshake, acknowledgements, ping replies) is
//! written to `out`; the rest reaches the caller as `SessionEvent`s. Commands and media go
//! out through the `write_*` methods and, for calls that expect an answer, `call` and the
//! client's helpers, which remember the transaction so that its `_result` or `_error`
//! arrives as an event naming the call.
//!
//! The server role (`Session::server`) is what stratad runs per connection; the client role
//! (`Session::client`) is what our test client and the load tool's publisher and players
//! drive, and what relays will use to reach an origin.

mod aggregate;
mod client;
mod server;
mod transactions;

#[cfg(test)]
mod tests;

use bytes::BufMut;

use super::chunk_decoder::{ChunkDecoder, ChunkError, DecoderLimits};
use super::chunk_encoder::{encode_message, ChunkEncoder};
use super::control::{ControlError, ControlMessage, UserControl};
use super::handshake::{ClientHandshake, HandshakeError, HandshakeKind, ServerHandshake};
use super::message::{msg_type, Message};
use super::shared_object::{self, SoError, SoMessage};
use crate::proto::amf0::Amf0Value;
use crate::proto::command::{Command, CommandError};
pub use transactions::CallKind;
use transactions::Transactions;

/// Commands are a few hundred bytes; a large one is an attempt to make the AMF decoder build
/// a huge tree (up to its node budget) from one message.
pub(crate) const MAX_COMMAND_SIZE: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub limits: DecoderLimits,
    /// The chunk size we send with: a server announces it in the connect preamble, a client
    /// right before `connect`.
    pub chunk_size: u32,
    /// What a server announces in the connect preamble; a client announces neither.
    pub window_ack_size: u32,
    pub peer_bandwidth: u32,
}

impl SessionConfig {
    /// A client's: default decoder limits, sending with `chunk_size`.
    pub fn client(chunk_size: u32) -> Self {
        SessionConfig {
            limits: DecoderLimits::default(),
            chunk_size,
            window_ack_size: 0,
            peer_bandwidth: 0,
        }
    }
}

#[derive(Debug)]
pub enum SessionEvent {
    HandshakeDone(HandshakeKind),
    /// The peer calls a method on us (`connect`, `createStream`, `play`, `onBWDone`, an
    /// RPC, ...). A `_result` or `_error` that answers none of our calls is passed up as
    /// one too, for the application to judge.
    Command {
        stream_id: u32,
        amf3: bool,
        command: Command,
    },
    /// `_result` for the call we made with this transaction.
    Result {
        transaction: u32,
        call: CallKind,
        command: Command,
    },
    /// `_error` for the call we made with this transaction; `command.info()` says why.
    Error {
        transaction: u32,
        call: CallKind,
        command: Command,
    },
    /// `createStream`'s `_result`: the message stream the peer made for us.
    StreamCreated {
        transaction: u32,
        stream_id: u32,
    },
    /// `onStatus` (client role): a NetConnection or NetStream status; `command.info()` holds
    /// its level, code and description. A server gets a client's `onStatus` as a `Command`.
    Status {
        stream_id: u32,
        command: Command,
    },
    /// Data messages (`@setDataFrame`, `onMetaData`, ...), still encoded.
    Data {
        message: Message,
    },
    /// Audio and video, as the peer sent them.
    Media {
        message: Message,
    },
    /// A shared-object message (type 19, or 16 when `amf3`), decoded: a client's use,
    /// changes and sends to a server; a server's updates to a client.
    SharedObject {
        amf3: bool,
        message: SoMessage,
    },
    /// Set Buffer Length: players say how much they buffer.
    BufferLength {
        stream_id: u32,
        ms: u32,
    },
}

/// How we answer a call the peer made on us (`Session::answer`).
#[derive(Debug, Clone, PartialEq)]
pub enum CallAnswer {
    /// `_result` with this value.
    Result(Amf0Value),
    /// `_error` with this info object (`level`, `code`, `description`).
    Error(Amf0Value),
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Its message says "handshake: ...".
    #[error("{0}")]
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
    #[error("{0}")]
    SharedObject(#[from] SoError),
    #[error("shared object message of {0} bytes over the limit of {max}", max = shared_object::MAX_MESSAGE_SIZE)]
    SharedObjectTooLarge(usize),
    #[error("createStream answered without a valid stream id")]
    NoStreamId,
    #[error("{0} calls awaiting an answer, no room for another")]
    TooManyCalls(usize),
}

/// Which side of the connection we are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Server,
    Client,
}

/// The handshake in progress; dropped (with its 3 KiB of packets) once done.
enum Handshake {
    Server(ServerHandshake),
    Client(ClientHandshake),
    Done,
}

/// How what we send is chunked. A server shares its chunk streams with the fan-out, which
/// writes type-0 headers of its own, so it must not compress a header against the last one
/// it wrote itself: every message starts with a full header. A client is the only writer on
/// its connection and compresses headers as encoders do.
#[derive(Debug)]
enum Framing {
    Full(u32),
    Compressed(ChunkEncoder),
}

impl Framing {
    fn encode(&mut self, message: &Message, out: &mut impl BufMut) {
        match self {
            Framing::Full(chunk_size) => encode_message(message, *chunk_size, out),
            Framing::Compressed(encoder) => encoder.encode(message, out),
        }
    }
}

pub struct Session {
    role: Role,
    handshake: Handshake,
    decoder: ChunkDecoder,
    config: SessionConfig,
    framing: Framing,
    bytes_in: u64,
    acked_at: u64,
    /// The peer's Window Acknowledgement Size: we acknowledge every this many bytes.
    peer_window: u32,
    /// Our calls awaiting `_result` or `_error`.
    calls: Transactions,
    messages: Vec<Message>,
}

impl Session {
    fn new(role: Role, handshake: Handshake, config: SessionConfig, framing: Framing) -> Self {
        Session {
            role,
            handshake,
            decoder: ChunkDecoder::new(config.limits),
            config,
            framing,
            bytes_in: 0,
            acked_at: 0,
            peer_window: 0,
            calls: Transactions::default(),
            messages: Vec::new(),
        }
    }

    pub(crate) fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// Every byte received, the handshake's included.
    pub(crate) fn bytes_in(&self) -> u64 {
        self.bytes_in
    }

    pub fn is_handshake_done(&self) -> bool {
        matches!(self.handshake, Handshake::Done)
    }

    /// Feeds bytes from the peer. Bytes to send back (handshake, acknowledgements, ping
    /// replies) are appended to `out`; everything else becomes events. On error the
    /// connection must be closed; events before the error are valid.
    pub fn feed(
        &mut self,
        input: &[u8],
        out: &mut impl BufMut,
        events: &mut Vec<SessionEvent>,
    ) -> Result<(), SessionError> {
        self.bytes_in += input.len() as u64;
        let used = self.feed_handshake(input, out, events)?;
        if !self.is_handshake_done() {
            return Ok(());
        }
        let input = input.get(used..).unwrap_or(&[]);
        let mut messages = std::mem::take(&mut self.messages);
        let decoded = self.decoder.feed(input, &mut messages);
        let handled = messages
            .drain(..)
            .try_for_each(|m| self.receive(m, out, events));
        self.messages = messages;
        decoded?;
        handled?;
        self.acknowledge(out);
        Ok(())
    }

    /// The handshake part of `feed`, for a caller that reads the chunk stream itself (the
    /// load tool's players skim media without reassembling it): returns how many bytes of
    /// `input` the handshake took (0 once it is done); the rest is chunk stream, whose
    /// messages go to `receive`. Such a caller counts what it read with `received`.
    pub fn feed_handshake(
        &mut self,
        input: &[u8],
        out: &mut impl BufMut,
        events: &mut Vec<SessionEvent>,
    ) -> Result<usize, SessionError> {
        let mut reply = Vec::new();
        let (used, kind) = match &mut self.handshake {
            Handshake::Done => return Ok(0),
            Handshake::Server(hs) => {
                let used = hs.feed(input, &mut reply)?;
                (used, hs.is_done().then(|| hs.kind()))
            }
            Handshake::Client(hs) => {
                let used = hs.feed(input, &mut reply)?;
                (used, hs.is_done().then(|| Some(hs.kind())))
            }
        };
        out.put_slice(&reply);
        if let Some(kind) = kind {
            self.handshake = Handshake::Done;
            events.push(SessionEvent::HandshakeDone(
                kind.unwrap_or(HandshakeKind::Simple),
            ));
        }
        Ok(used)
    }

    /// Counts `n` bytes read outside `feed` (handshake and chunk stream alike, as `feed`
    /// counts them) and acknowledges as the peer's window asks.
    pub fn received(&mut self, n: usize, out: &mut impl BufMut) {
        self.bytes_in += n as u64;
        self.acknowledge(out);
    }

    /// Counts `n` bytes of messages that reached the session by another transport (an
    /// RTMFP flow's), so a client's bytes in mean the same for both; nothing is
    /// acknowledged: that transport acknowledges its own.
    pub(crate) fn received_elsewhere(&mut self, n: usize) {
        self.bytes_in += n as u64;
    }

    fn acknowledge(&mut self, out: &mut impl BufMut) {
        if self.peer_window > 0 && self.bytes_in - self.acked_at >= u64::from(self.peer_window) {
            self.acked_at = self.bytes_in;
            // The sequence number is the byte count, modulo 2^32 as the field is 32 bits.
            self.write_control(&ControlMessage::Acknowledgement(self.bytes_in as u32), out);
        }
    }

    /// One message of the chunk stream: protocol control is handled here, the rest becomes
    /// events. `feed` calls it for every message it decodes.
    pub fn receive(
        &mut self,
        message: Message,
        out: &mut impl BufMut,
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
                events.push(self.on_command(message.stream_id, amf3, command)?);
            }
            msg_type::SHARED_OBJECT_AMF0 | msg_type::SHARED_OBJECT_AMF3 => {
                let amf3 = message.type_id == msg_type::SHARED_OBJECT_AMF3;
                if message.payload.len() > shared_object::MAX_MESSAGE_SIZE {
                    return Err(SessionError::SharedObjectTooLarge(message.payload.len()));
                }
                let message = SoMessage::decode(amf3, &message.payload)?;
                events.push(SessionEvent::SharedObject { amf3, message });
            }
            msg_type::AGGREGATE => aggregate::split(&message, events)?,
            msg_type::SET_CHUNK_SIZE | msg_type::ABORT => {
                // Applied where the chunk stream is framed (our decoder, or the caller's own
                // framer), at the exact byte; validated there too.
            }
            msg_type::ACKNOWLEDGEMENT
            | msg_type::WINDOW_ACK_SIZE
            | msg_type::SET_PEER_BANDWIDTH
            | msg_type::USER_CONTROL => {
                match ControlMessage::decode(message.type_id, &message.payload)? {
                    ControlMessage::WindowAckSize(n) => self.peer_window = n,
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
            // Unknown message types are ignored, not fatal (as Flash Player and AMS do).
            _ => {}
        }
        Ok(())
    }

    /// What a command is to us: the answer to one of our calls, a status (client role), or
    /// a call from the peer.
    fn on_command(
        &mut self,
        stream_id: u32,
        amf3: bool,
        command: Command,
    ) -> Result<SessionEvent, SessionError> {
        let from_peer = |command| SessionEvent::Command {
            stream_id,
            amf3,
            command,
        };
        let ok = match command.name.as_str() {
            "_result" => true,
            "_error" => false,
            "onStatus" if self.role == Role::Client => {
                return Ok(SessionEvent::Status { stream_id, command })
            }
            _ => return Ok(from_peer(command)),
        };
        let Some((transaction, call)) = self.calls.answer(command.transaction_id) else {
            // It answers nothing we asked (or something answered already): the application
            // judges it as any other command.
            return Ok(from_peer(command));
        };
        Ok(match (ok, call) {
            (true, CallKind::CreateStream) => SessionEvent::StreamCreated {
                transaction,
                stream_id: created_stream_id(&command).ok_or(SessionError::NoStreamId)?,
            },
            (true, call) => SessionEvent::Result {
                transaction,
                call,
                command,
            },
            (false, call) => SessionEvent::Error {
                transaction,
                call,
                command,
            },
        })
    }

    fn write_control(&mut self, control: &ControlMessage, out: &mut impl BufMut) {
        self.framing.encode(&control.to_message(), out);
    }

    pub fn write_user_control(&mut self, event: UserControl, out: &mut impl BufMut) {
        self.write_control(&ControlMessage::UserControl(event), out);
    }

    /// Chunks one message as it is (media, data, or anything a test wants to send).
    pub fn write_message(&mut self, message: &Message, out: &mut impl BufMut) {
        self.framing.encode(message, out);
    }

    /// A command (or status, or `_result`) on message stream `stream_id`, in the AMF0 or the
    /// AMF3 framing.
    pub fn write_command(
        &mut self,
        stream_id: u32,
        amf3: bool,
        values: &[Amf0Value],
        out: &mut impl BufMut,
    ) {
        self.framing
            .encode(&Message::command(stream_id, amf3, values), out);
    }

    /// A shared-object message: type 16 when `amf3` (the peer's objectEncoding is 3), else
    /// type 19. Either role: a server's updates, a client's use and changes.
    pub fn write_shared_object(&mut self, amf3: bool, message: &SoMessage, out: &mut impl BufMut) {
        self.framing.encode(&message.to_message(amf3), out);
    }

    /// A data message (e.g. `|RtmpSampleAccess`) on message stream `stream_id`.
    pub fn write_data(&mut self, stream_id: u32, values: &[Amf0Value], out: &mut impl BufMut) {
        self.framing.encode(&Message::data(stream_id, values), out);
    }

    /// Calls `name` on the peer (AMF0) and remembers the call: its `_result` or `_error`
    /// comes back as an event with the returned transaction.
    pub fn call(
        &mut self,
        stream_id: u32,
        name: &str,
        command_object: Amf0Value,
        args: &[Amf0Value],
        out: &mut impl BufMut,
    ) -> Result<u32, SessionError> {
        let kind = CallKind::Method(name.to_string());
        self.call_as(kind, stream_id, command_object, args, out)
    }

    /// Stops waiting for call `transaction` (the application gave up on it at its
    /// deadline): its room is free, and a late answer reaches the application as the peer's
    /// command, to be judged as any answer to nothing.
    pub(crate) fn forget_call(&mut self, transaction: u32) {
        self.calls.forget(transaction);
    }

    /// Calls the method `kind` names and remembers the call as `kind`.
    fn call_as(
        &mut self,
        kind: CallKind,
        stream_id: u32,
        command_object: Amf0Value,
        args: &[Amf0Value],
        out: &mut impl BufMut,
    ) -> Result<u32, SessionError> {
        let name = kind.method().to_string();
        let transaction = self.calls.open(kind)?;
        self.write_invoke(
            stream_id,
            &name,
            f64::from(transaction),
            command_object,
            args,
            out,
        );
        Ok(transaction)
    }

    /// `name(transaction, command object, args...)`, AMF0.
    fn write_invoke(
        &mut self,
        stream_id: u32,
        name: &str,
        transaction: f64,
        command_object: Amf0Value,
        args: &[Amf0Value],
        out: &mut impl BufMut,
    ) {
        let mut values = Vec::with_capacity(3 + args.len());
        values.push(Amf0Value::string(name));
        values.push(Amf0Value::Number(transaction));
        values.push(command_object);
        values.extend_from_slice(args);
        self.write_command(stream_id, false, &values, out);
    }
}

/// The stream id in createStream's `_result`: a whole number that fits a message stream id.
/// Stream 0 is the NetConnection's own, never a created one.
fn created_stream_id(command: &Command) -> Option<u32> {
    let id = command.arg(0)?.as_f64()?;
    (id.fract() == 0.0 && id >= 1.0 && id <= f64::from(u32::MAX)).then_some(id as u32)
}
