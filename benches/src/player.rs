//! One RTMP player, sans-IO: bytes and the time in, bytes out, and what the report needs
//! (when it connected, when it started playing, when its first picture came, its stalls).
//!
//! The RTMP side is the client role of `dataplane`'s `Session` (handshake, calls and their
//! answers, statuses, acknowledgements, pings); the incoming chunk stream is read by
//! [`Skimmer`], which does not reassemble media, and hands the session the other messages.

use std::time::{Duration, Instant};

use bytes::Bytes;
use dataplane::media::{classify, FrameKind};
use dataplane::proto::command::Command;
use dataplane::proto::rtmp::chunk_decoder::DEFAULT_CHUNK_SIZE;
use dataplane::proto::rtmp::handshake::HandshakeKind;
use dataplane::proto::rtmp::session::{
    CallKind, Session, SessionConfig, SessionError, SessionEvent,
};
use dataplane::proto::rtmp::Message;

use crate::skim::{Skimmed, Skimmer};
use crate::url::RtmpUrl;

/// A gap between two media messages longer than this is a stall (a player with a typical
/// 0.5-1 s buffer would show it as a freeze).
pub const STALL_GAP: Duration = Duration::from_millis(500);
/// The buffer length players announce (ffmpeg announces 3 s).
const BUFFER_MS: u32 = 3000;
/// The Flash Player version our connect announces (what ffmpeg sends).
const FLASH_VER: &str = "LNX 9,0,124,2";

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
    #[error("{0}")]
    Session(#[from] SessionError),
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

    /// A media message arrived at `now` (`head`: its first bytes): counts it, and a gap
    /// since the last one longer than `STALL_GAP` as a stall (both for any media and for
    /// video pictures). Players of every protocol share it.
    pub fn on_media(&mut self, type_id: u8, head: &[u8], now: Instant) {
        let s = self;
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
    /// Made when TCP is up (it writes C0+C1 at once).
    session: Option<Session>,
    skim: Skimmer,
    /// The session's events, reused from read to read.
    events: Vec<SessionEvent>,
    state: State,
}

/// Everything but the session and the skimmer, so that the skimmer's callback can borrow it.
struct State {
    phase: Phase,
    url_app: String,
    tc_url: String,
    stream: String,
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
            session: None,
            skim: Skimmer::new(),
            events: Vec::new(),
            state: State {
                phase: Phase::Handshake,
                url_app: url.app.clone(),
                tc_url: url.tc_url(),
                stream: url.stream.clone(),
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
        let config = SessionConfig::client(DEFAULT_CHUNK_SIZE);
        self.session = Some(Session::client(config, kind, rng, epoch, out));
    }

    /// Records the phase reached into the stats (called when the player ends).
    pub fn note_phase(&mut self) {
        self.state.stats.phase = match (self.state.phase, self.session.is_some()) {
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
        input: &[u8],
        now: Instant,
        out: &mut Vec<u8>,
    ) -> Result<(), PlayerError> {
        let Player {
            session,
            skim,
            events,
            state,
        } = self;
        state.stats.bytes_in += input.len() as u64;
        let Some(session) = session.as_mut() else {
            return Ok(());
        };
        let mut rest = input;
        if !session.is_handshake_done() {
            let used = session.feed_handshake(input, out, events)?;
            rest = &input[used..];
            state.on_events(session, events, now, out);
        }
        // Media is skimmed here, never reassembled; the rest (control, commands, data: small
        // and rare) goes to the session as whole messages.
        let mut failed = None;
        skim.feed(rest, &mut |m| match m {
            Skimmed::Media { type_id, head, .. } => state.on_media(type_id, head, now),
            Skimmed::Message {
                csid,
                type_id,
                stream_id,
                timestamp,
                payload,
            } => {
                let message = Message {
                    csid,
                    timestamp,
                    type_id,
                    stream_id,
                    payload: Bytes::copy_from_slice(payload),
                };
                if let Err(e) = session.receive(message, out, events) {
                    failed.get_or_insert(e);
                }
                state.on_events(session, events, now, out);
            }
        })?;
        if let Some(e) = failed {
            return Err(e.into());
        }
        // Acknowledge per the server's window, counting every byte since the handshake
        // began, as the specification says (nginx-rtmp and stratad do not insist).
        session.received(input.len(), out);
        match state.error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl State {
    /// Moves the player along on what the session reported.
    fn on_events(
        &mut self,
        session: &mut Session,
        events: &mut Vec<SessionEvent>,
        now: Instant,
        out: &mut Vec<u8>,
    ) {
        for event in events.drain(..) {
            let written = match event {
                SessionEvent::HandshakeDone(_) => {
                    self.phase = Phase::Connecting;
                    session
                        .connect(&self.url_app, &self.tc_url, FLASH_VER, out)
                        .map(drop)
                }
                SessionEvent::Result {
                    call: CallKind::Connect,
                    ..
                } if self.phase == Phase::Connecting => {
                    self.phase = Phase::CreatingStream;
                    session.create_stream(out).map(drop)
                }
                SessionEvent::StreamCreated { stream_id, .. }
                    if self.phase == Phase::CreatingStream =>
                {
                    self.phase = Phase::PlayRequested;
                    self.stats.play_sent = Some(now);
                    session.play(stream_id, &self.stream, out);
                    session.set_buffer_length(stream_id, BUFFER_MS, out);
                    Ok(())
                }
                SessionEvent::Error { command, .. } => {
                    self.refused(&command);
                    Ok(())
                }
                // An `_error` for a command that expects none (play carries transaction 0).
                SessionEvent::Command { command, .. } if command.name == "_error" => {
                    self.refused(&command);
                    Ok(())
                }
                SessionEvent::Status { command, .. } => {
                    self.on_status(&command, now);
                    Ok(())
                }
                // Media inside an aggregate message, which the skimmer passes on whole.
                SessionEvent::Media { message } => {
                    self.on_media(message.type_id, &message.payload, now);
                    Ok(())
                }
                _ => Ok(()),
            };
            if let Err(e) = written {
                self.error.get_or_insert(e.into());
            }
        }
    }

    fn refused(&mut self, command: &Command) {
        let why = command
            .info_str("code")
            .or_else(|| command.info_str("description"))
            .unwrap_or("_error");
        self.error
            .get_or_insert(PlayerError::Refused(why.to_string()));
    }

    fn on_status(&mut self, command: &Command, now: Instant) {
        let code = command.info_str("code").unwrap_or("");
        if code == "NetStream.Play.Start" {
            self.phase = Phase::Playing;
            self.stats.play_started.get_or_insert(now);
        } else if command.info_str("level") == Some("error")
            || code == "NetStream.Play.StreamNotFound"
        {
            self.error
                .get_or_insert(PlayerError::Refused(code.to_string()));
        }
    }

    fn on_media(&mut self, type_id: u8, head: &[u8], now: Instant) {
        self.stats.on_media(type_id, head, now);
        if self.phase == Phase::PlayRequested {
            // Some servers send media before (or without) NetStream.Play.Start.
            self.phase = Phase::Playing;
            self.stats.play_started.get_or_insert(now);
        }
    }
}
