//! How every connection we open to another server begins, sans-IO: after the handshake,
//! `connect` to its application, then (for a link that plays or publishes) `createStream`.
//! Pull links, push relays and standing registrations differ only in what follows, so each
//! hands its session's events here first and takes over from [`Setup::Ready`].

use bytes::BytesMut;

use crate::proto::amf0::Amf0Value;
use crate::proto::rtmp::session::{CallKind, Session, SessionEvent};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Handshake,
    Connecting,
    CreatingStream,
    Done,
}

/// What became of one event.
pub(crate) enum Setup {
    /// Not a step of the setup (or the setup is over): the link's own to handle.
    Pass(SessionEvent),
    /// Taken by the setup; nothing for the engine yet.
    Pending,
    /// The setup is done: connect accepted and, if asked for, the stream created
    /// (`stream_id`, else 0). The link's own conversation starts now.
    Ready { stream_id: u32 },
    /// A request could not be written: the link is of no use.
    Failed(String),
}

pub(crate) struct ClientSetup {
    /// `app` or `app/instance` on the other server.
    app: String,
    tc_url: String,
    flash_ver: &'static str,
    with_stream: bool,
    /// Arguments of connect after the command object (a script's NetConnection passes some).
    args: Vec<Amf0Value>,
    stage: Stage,
}

impl ClientSetup {
    /// `with_stream`: create a message stream after connect (to play or publish on).
    pub(crate) fn new(
        app: String,
        tc_url: String,
        flash_ver: &'static str,
        with_stream: bool,
    ) -> Self {
        ClientSetup {
            app,
            tc_url,
            flash_ver,
            with_stream,
            args: Vec::new(),
            stage: Stage::Handshake,
        }
    }

    /// Connect with these arguments after the command object.
    pub(crate) fn with_args(mut self, args: Vec<Amf0Value>) -> Self {
        self.args = args;
        self
    }

    /// Past connect: the connection's setup deadline no longer applies.
    pub(crate) fn is_connected(&self) -> bool {
        !matches!(self.stage, Stage::Handshake | Stage::Connecting)
    }

    pub(crate) fn on_event(
        &mut self,
        session: &mut Session,
        event: SessionEvent,
        out: &mut BytesMut,
    ) -> Setup {
        match event {
            SessionEvent::HandshakeDone(_) if self.stage == Stage::Handshake => {
                self.stage = Stage::Connecting;
                let (app, tc_url) = (&self.app, &self.tc_url);
                match session.connect_with_args(app, tc_url, self.flash_ver, &self.args, out) {
                    Ok(_) => Setup::Pending,
                    Err(e) => Setup::Failed(format!("connect not sent: {e}")),
                }
            }
            SessionEvent::Result {
                call: CallKind::Connect,
                ..
            } if self.stage == Stage::Connecting => {
                if !self.with_stream {
                    self.stage = Stage::Done;
                    return Setup::Ready { stream_id: 0 };
                }
                self.stage = Stage::CreatingStream;
                match session.create_stream(out) {
                    Ok(_) => Setup::Pending,
                    Err(e) => Setup::Failed(format!("createStream not sent: {e}")),
                }
            }
            SessionEvent::StreamCreated { stream_id, .. }
                if self.stage == Stage::CreatingStream =>
            {
                self.stage = Stage::Done;
                Setup::Ready { stream_id }
            }
            event => Setup::Pass(event),
        }
    }
}
