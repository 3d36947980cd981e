//! The client role: our test client, the load tool's publisher and players, and the
//! connections relays will open to an origin. The helpers write the calls a Flash Player or
//! an encoder makes; they may be used once `SessionEvent::HandshakeDone` has arrived.

use bytes::BufMut;

use super::{CallAnswer, CallKind, Framing, Handshake, Role, Session, SessionConfig, SessionError};
use crate::proto::amf0::Amf0Value;
use crate::proto::rtmp::chunk_decoder::DEFAULT_CHUNK_SIZE;
use crate::proto::rtmp::chunk_encoder::ChunkEncoder;
use crate::proto::rtmp::control::{ControlMessage, UserControl};
use crate::proto::rtmp::handshake::{ClientHandshake, HandshakeKind, PACKET_SIZE};

/// `play`'s start argument: a live stream if there is one, else a recorded one (the Flash
/// API's default, which ffmpeg and Flash Player send).
const PLAY_LIVE_OR_RECORDED: f64 = -2.0;

impl Session {
    /// A session for a connection we opened: writes C0+C1 to `out`. `epoch_ms` is the time
    /// field of C1.
    pub fn client(
        config: SessionConfig,
        kind: HandshakeKind,
        rng: &mut impl rand::RngCore,
        epoch_ms: u32,
        out: &mut impl BufMut,
    ) -> Self {
        let mut c0c1 = Vec::with_capacity(1 + PACKET_SIZE);
        let handshake = Handshake::Client(ClientHandshake::new(rng, epoch_ms, kind, &mut c0c1));
        out.put_slice(&c0c1);
        let framing = Framing::Compressed(ChunkEncoder::new(DEFAULT_CHUNK_SIZE));
        Session::new(Role::Client, handshake, config, framing)
    }

    /// Announces our chunk size (unless it is the default), then calls `connect` with the
    /// command object a Flash Player sends. The answer arrives with `CallKind::Connect`.
    pub fn connect(
        &mut self,
        app: &str,
        tc_url: &str,
        flash_ver: &str,
        out: &mut impl BufMut,
    ) -> Result<u32, SessionError> {
        self.connect_with_args(app, tc_url, flash_ver, &[], out)
    }

    /// `connect` with arguments after the command object (what a server-side script's
    /// `NetConnection.connect(uri, p1, ..., pN)` passes to the far application's onConnect).
    pub(crate) fn connect_with_args(
        &mut self,
        app: &str,
        tc_url: &str,
        flash_ver: &str,
        args: &[Amf0Value],
        out: &mut impl BufMut,
    ) -> Result<u32, SessionError> {
        let size = self.config.chunk_size;
        if let Framing::Compressed(encoder) = &mut self.framing {
            if encoder.chunk_size() != size {
                encoder.encode(&ControlMessage::SetChunkSize(size).to_message(), out);
                encoder.set_chunk_size(size);
            }
        }
        let object = Amf0Value::object([
            ("app", Amf0Value::string(app)),
            ("type", Amf0Value::string("nonprivate")),
            ("flashVer", Amf0Value::string(flash_ver)),
            ("tcUrl", Amf0Value::string(tc_url)),
            ("fpad", Amf0Value::Boolean(false)),
            ("capabilities", Amf0Value::Number(15.0)),
            ("audioCodecs", Amf0Value::Number(4071.0)),
            ("videoCodecs", Amf0Value::Number(252.0)),
            ("videoFunction", Amf0Value::Number(1.0)),
            ("objectEncoding", Amf0Value::Number(0.0)),
        ]);
        self.call_as(CallKind::Connect, 0, object, args, out)
    }

    /// Answers the peer's call `transaction` (a `SessionEvent::Command` of its) on
    /// `stream_id`. Transaction 0 expects no answer: nothing is written.
    pub fn answer(
        &mut self,
        stream_id: u32,
        transaction: f64,
        answer: CallAnswer,
        out: &mut impl BufMut,
    ) {
        if transaction == 0.0 {
            return;
        }
        let (name, value) = match answer {
            CallAnswer::Result(v) => ("_result", v),
            CallAnswer::Error(info) => ("_error", info),
        };
        let values = [
            Amf0Value::string(name),
            Amf0Value::Number(transaction),
            Amf0Value::Null,
            value,
        ];
        self.write_command(stream_id, false, &values, out);
    }

    /// `createStream`; the answer is `SessionEvent::StreamCreated` with the new stream's id.
    pub fn create_stream(&mut self, out: &mut impl BufMut) -> Result<u32, SessionError> {
        self.call_as(CallKind::CreateStream, 0, Amf0Value::Null, &[], out)
    }

    /// `publish(name, mode)` on `stream_id` (mode "live", "record" or "append"). NetStream
    /// commands carry transaction 0: the answer is an `onStatus`, not a `_result`.
    pub fn publish(&mut self, stream_id: u32, name: &str, mode: &str, out: &mut impl BufMut) {
        let args = [Amf0Value::string(name), Amf0Value::string(mode)];
        self.write_invoke(stream_id, "publish", 0.0, Amf0Value::Null, &args, out);
    }

    /// `play(name, -2)` on `stream_id`; statuses and media follow.
    pub fn play(&mut self, stream_id: u32, name: &str, out: &mut impl BufMut) {
        let args = [
            Amf0Value::string(name),
            Amf0Value::Number(PLAY_LIVE_OR_RECORDED),
        ];
        self.write_invoke(stream_id, "play", 0.0, Amf0Value::Null, &args, out);
    }

    /// Set Buffer Length, which players send after `play`.
    pub fn set_buffer_length(&mut self, stream_id: u32, ms: u32, out: &mut impl BufMut) {
        self.write_user_control(UserControl::SetBufferLength { stream_id, ms }, out);
    }

    /// `deleteStream(stream_id)`: ends whatever the stream does and frees its id.
    #[cfg_attr(
        not(test),
        expect(
            dead_code,
            reason = "relays' upstream links end a pull with it; the session tests drive it"
        )
    )]
    pub(crate) fn delete_stream(&mut self, stream_id: u32, out: &mut impl BufMut) {
        let args = [Amf0Value::Number(f64::from(stream_id))];
        self.write_invoke(0, "deleteStream", 0.0, Amf0Value::Null, &args, out);
    }
}
