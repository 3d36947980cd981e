//! One RTMP player, sans-IO: bytes and the time in, bytes out, and what the report needs
//! (when it connected, when it started playing, when its first picture came, its stalls).
//!
//! Handshake with `dataplane`'s `ClientHandshake`; commands built with `dataplane`'s AMF0
//! codec and `encode_message`; the incoming chunk stream read by [`Skimmer`], which does not
//! reassemble media.

use std::time::{Duration, Instant};

use bytes::Bytes;
use dataplane::media::{classify, FrameKind};
use dataplane::proto::amf0::Amf0Value;
use dataplane::proto::command::{encode_values, Command};
use dataplane::proto::rtmp::chunk_encoder::encode_message;
use dataplane::proto::rtmp::control::{ControlMessage, UserControl};
use dataplane::proto::rtmp::handshake::{ClientHandshake, HandshakeKind};
use dataplane::proto::rtmp::{csid, msg_type, Message};

use crate::skim::{Skimmed, Skimmer};
use crate::url::RtmpUrl;

/// A gap between two media messages longer than this is a stall (a player with a typical
/// 0.5-1 s buffer would show it as a freeze).
pub const STALL_GAP: Duration = Duration::from_millis(500);
/// The buffer length players announce (ffmpeg announces 3 s).
const BUFFER_MS: u32 = 3000;
/// Chunk size we send with: we never announce another, so the protocol default.
const OUR_CHUNK_SIZE: u32 = 128;

const TX_CONNECT: f64 = 1.0;
const TX_CREATE_STREAM: f64 = 2.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Handshake,
    Connecting,
    CreatingStream,
    /// `play` sent; waiting for NetStream.Play.Start (media may come first).
    PlayRequested,
    Playing,
}

#[derive(Debug, thiserror::Error)]
pub enum PlayerError {
    #[error("handshake: {0}")]
    Handshake(String),
    #[error("chunk stream: {0}")]
    Skim(#[from] crate::skim::SkimError),
    #[error("server refused: {0}")]
    Refused(String),
}

/// What one player measured.
#[derive(Debug, Default, Clone)]
pub struct PlayerStats {
    pub started: Option<Instant>,
    pub tcp_connected: Option<Instant>,
    pub play_sent: Option<Instant>,
    pub play_started: Option<Instant>,
    pub first_media: Option<Instant>,
    pub first_video: Option<Instant>,
    pub last_media: Option<Instant>,
    pub media_messages: u64,
    pub video_pictures: u64,
    pub bytes_in: u64,
    pub stalls: u32,
    pub max_gap: Duration,
    pub last_video: Option<Instant>,
    /// Gaps over `STALL_GAP` between video pictures: a frozen picture even while audio
    /// plays (a server dropping to the next key frame makes these).
    pub video_stalls: u32,
    pub max_video_gap: Duration,
    /// Where the player was when the run ended or it failed (for the report's diagnosis).
    pub phase: &'static str,
}

impl PlayerStats {
    /// Connect call to first picture.
    pub fn time_to_first_video(&self) -> Option<Duration> {
        Some(self.first_video?.saturating_duration_since(self.started?))
    }

    /// `play` sent to first picture.
    pub fn play_to_first_video(&self) -> Option<Duration> {
        Some(self.first_video?.saturating_duration_since(self.play_sent?))
    }

    pub fn time_to_first_media(&self) -> Option<Duration> {
        Some(self.first_media?.saturating_duration_since(self.started?))
    }

    /// At the end of a run: a player silent for longer than a stall at `now` has one more.
    pub fn close_at(&mut self, now: Instant) {
        if let Some(last) = self.last_media {
            let gap = now.saturating_duration_since(last);
            if gap > STALL_GAP {
                self.stalls += 1;
            }
            self.max_gap = self.max_gap.max(gap);
        }
        if let Some(last) = self.last_video {
            let gap = now.saturating_duration_since(last);
            if gap > STALL_GAP {
                self.video_stalls += 1;
            }
            self.max_video_gap = self.max_video_gap.max(gap);
        }
    }
}

pub struct Player {
    handshake: Option<ClientHandshake>,
    skim: Skimmer,
    state: State,
}

/// Everything but the skimmer, so that the skimmer's callback can borrow it.
struct State {
    phase: Phase,
    url_app: String,
    tc_url: String,
    stream: String,
    stream_id: u32,
    window: u32,
    acked: u64,
    stats: PlayerStats,
    error: Option<PlayerError>,
}

impl std::fmt::Debug for Player {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Player")
            .field("phase", &self.state.phase)
            .finish_non_exhaustive()
    }
}

impl Player {
    /// A player whose TCP connect was started at `started`. Nothing is written until
    /// [`on_connected`](Self::on_connected).
    pub fn new(url: &RtmpUrl, started: Instant) -> Self {
        Player {
            handshake: None,
            skim: Skimmer::new(),
            state: State {
                phase: Phase::Handshake,
                url_app: url.app.clone(),
                tc_url: url.tc_url(),
                stream: url.stream.clone(),
                stream_id: 0,
                window: 0,
                acked: 0,
                stats: PlayerStats {
                    started: Some(started),
                    ..PlayerStats::default()
                },
                error: None,
            },
        }
    }

    /// TCP is up: writes C0+C1.
    pub fn on_connected(
        &mut self,
        rng: &mut impl rand::RngCore,
        kind: HandshakeKind,
        now: Instant,
        out: &mut Vec<u8>,
    ) {
        self.state.stats.tcp_connected = Some(now);
        let epoch = self
            .state
            .stats
            .started
            .map_or(0, |s| now.saturating_duration_since(s).as_millis() as u32);
        self.handshake = Some(ClientHandshake::new(rng, epoch, kind, out));
    }

    /// Records the phase reached into the stats (called when the player ends).
    pub fn note_phase(&mut self) {
        self.state.stats.phase = match (self.state.phase, self.handshake.is_some()) {
            (Phase::Handshake, false) => "tcp connect",
            (Phase::Handshake, true) => "handshake",
            (Phase::Connecting, _) => "connect sent",
            (Phase::CreatingStream, _) => "createStream sent",
            (Phase::PlayRequested, _) => "play sent",
            (Phase::Playing, _) => "playing",
        };
    }

    pub fn is_playing(&self) -> bool {
        self.state.phase == Phase::Playing
    }

    pub fn stats(&self) -> &PlayerStats {
        &self.state.stats
    }

    pub fn stats_mut(&mut self) -> &mut PlayerStats {
        &mut self.state.stats
    }

    /// Bytes from the server. Answers (handshake, commands, acknowledgements, pings) go to
    /// `out`.
    pub fn on_bytes(
        &mut self,
        mut input: &[u8],
        now: Instant,
        out: &mut Vec<u8>,
    ) -> Result<(), PlayerError> {
        self.state.stats.bytes_in += input.len() as u64;
        if self.state.phase == Phase::Handshake {
            let Some(hs) = self.handshake.as_mut() else {
                return Ok(());
            };
            let used = hs
                .feed(input, out)
                .map_err(|e| PlayerError::Handshake(e.to_string()))?;
            input = &input[used..];
            if !hs.is_done() {
                return Ok(());
            }
            self.handshake = None;
            self.state.phase = Phase::Connecting;
            self.state.send_connect(out);
        }
        let state = &mut self.state;
        self.skim
            .feed(input, &mut |m| state.on_message(m, now, out))?;
        if let Some(e) = state.error.take() {
            return Err(e);
        }
        // Acknowledge per the server's window, counting every byte since the handshake
        // began, as the specification says (nginx-rtmp and stratad do not insist).
        let total = state.stats.bytes_in;
        if state.window > 0 && total - state.acked >= u64::from(state.window) {
            state.acked = total;
            let ack = ControlMessage::Acknowledgement(total as u32);
            encode_message(&ack.to_message(), OUR_CHUNK_SIZE, out);
        }
        Ok(())
    }
}

impl State {
    fn send_command(&self, stream_id: u32, values: &[Amf0Value], out: &mut Vec<u8>) {
        let msg = Message {
            csid: csid::COMMAND,
            timestamp: 0,
            type_id: msg_type::COMMAND_AMF0,
            stream_id,
            payload: Bytes::from(encode_values(false, values)),
        };
        encode_message(&msg, OUR_CHUNK_SIZE, out);
    }

    fn send_connect(&self, out: &mut Vec<u8>) {
        let obj = Amf0Value::object([
            ("app", Amf0Value::string(self.url_app.as_str())),
            ("flashVer", Amf0Value::string("LNX 9,0,124,2")),
            ("tcUrl", Amf0Value::string(self.tc_url.as_str())),
            ("fpad", Amf0Value::Boolean(false)),
            ("capabilities", Amf0Value::Number(15.0)),
            ("audioCodecs", Amf0Value::Number(4071.0)),
            ("videoCodecs", Amf0Value::Number(252.0)),
            ("videoFunction", Amf0Value::Number(1.0)),
        ]);
        self.send_command(
            0,
            &[
                Amf0Value::string("connect"),
                Amf0Value::Number(TX_CONNECT),
                obj,
            ],
            out,
        );
    }

    fn on_message(&mut self, m: Skimmed<'_>, now: Instant, out: &mut Vec<u8>) {
        match m {
            Skimmed::Media {
                type_id,
                head,
                len: _,
                timestamp: _,
            } => self.on_media(type_id, head, now),
            Skimmed::Message {
                type_id, payload, ..
            } => match type_id {
                msg_type::WINDOW_ACK_SIZE
                | msg_type::USER_CONTROL
                | msg_type::SET_PEER_BANDWIDTH => {
                    if let Ok(c) = ControlMessage::decode(type_id, payload) {
                        self.on_control(c, out);
                    }
                }
                msg_type::COMMAND_AMF0 | msg_type::COMMAND_AMF3 => {
                    match Command::decode(type_id == msg_type::COMMAND_AMF3, payload) {
                        Ok(cmd) => self.on_command(cmd, now, out),
                        Err(e) => self.error = Some(PlayerError::Refused(e.to_string())),
                    }
                }
                _ => {}
            },
        }
    }

    fn on_media(&mut self, type_id: u8, head: &[u8], now: Instant) {
        let s = &mut self.stats;
        if let Some(last) = s.last_media {
            let gap = now.saturating_duration_since(last);
            if gap > STALL_GAP {
                s.stalls += 1;
            }
            s.max_gap = s.max_gap.max(gap);
        }
        s.last_media = Some(now);
        s.media_messages += 1;
        s.first_media.get_or_insert(now);
        if matches!(
            classify(type_id, head),
            FrameKind::VideoKey | FrameKind::VideoInter
        ) {
            s.first_video.get_or_insert(now);
            s.video_pictures += 1;
            if let Some(last) = s.last_video {
                let gap = now.saturating_duration_since(last);
                if gap > STALL_GAP {
                    s.video_stalls += 1;
                }
                s.max_video_gap = s.max_video_gap.max(gap);
            }
            s.last_video = Some(now);
        }
        if self.phase == Phase::PlayRequested {
            // Some servers send media before (or without) NetStream.Play.Start.
            self.phase = Phase::Playing;
            self.stats.play_started.get_or_insert(now);
        }
    }

    fn on_control(&mut self, c: ControlMessage, out: &mut Vec<u8>) {
        match c {
            ControlMessage::WindowAckSize(n) => self.window = n,
            ControlMessage::UserControl(UserControl::PingRequest(t)) => {
                let pong = ControlMessage::UserControl(UserControl::PingResponse(t));
                encode_message(&pong.to_message(), OUR_CHUNK_SIZE, out);
            }
            _ => {}
        }
    }

    fn on_command(&mut self, cmd: Command, now: Instant, out: &mut Vec<u8>) {
        match cmd.name.as_str() {
            "_result" if cmd.transaction_id == TX_CONNECT && self.phase == Phase::Connecting => {
                self.phase = Phase::CreatingStream;
                self.send_command(
                    0,
                    &[
                        Amf0Value::string("createStream"),
                        Amf0Value::Number(TX_CREATE_STREAM),
                        Amf0Value::Null,
                    ],
                    out,
                );
            }
            "_result"
                if cmd.transaction_id == TX_CREATE_STREAM
                    && self.phase == Phase::CreatingStream =>
            {
                let sid = cmd.arg(0).and_then(Amf0Value::as_f64).unwrap_or(1.0);
                self.stream_id = sid as u32;
                self.phase = Phase::PlayRequested;
                self.stats.play_sent = Some(now);
                self.send_command(
                    self.stream_id,
                    &[
                        Amf0Value::string("play"),
                        Amf0Value::Number(0.0),
                        Amf0Value::Null,
                        Amf0Value::string(self.stream.as_str()),
                    ],
                    out,
                );
                let sbl = ControlMessage::UserControl(UserControl::SetBufferLength {
                    stream_id: self.stream_id,
                    ms: BUFFER_MS,
                });
                encode_message(&sbl.to_message(), OUR_CHUNK_SIZE, out);
            }
            "_error" => {
                let desc = cmd
                    .arg(0)
                    .and_then(|i| i.get("code").or_else(|| i.get("description")))
                    .and_then(Amf0Value::as_str)
                    .unwrap_or("_error")
                    .to_string();
                self.error = Some(PlayerError::Refused(desc));
            }
            "onStatus" => {
                let info = cmd.arg(0);
                let code = info
                    .and_then(|i| i.get("code"))
                    .and_then(Amf0Value::as_str)
                    .unwrap_or("");
                let level = info
                    .and_then(|i| i.get("level"))
                    .and_then(Amf0Value::as_str)
                    .unwrap_or("");
                if code == "NetStream.Play.Start" {
                    self.phase = Phase::Playing;
                    self.stats.play_started.get_or_insert(now);
                } else if level == "error" || code == "NetStream.Play.StreamNotFound" {
                    self.error = Some(PlayerError::Refused(code.to_string()));
                }
            }
            _ => {}
        }
    }
}
