//! The server role: what stratad runs for each connection it accepts.

use bytes::BufMut;

use super::{Framing, Handshake, Role, Session, SessionConfig};
use crate::proto::rtmp::control::{ControlMessage, UserControl};
use crate::proto::rtmp::handshake::ServerHandshake;

impl Session {
    /// A session for a connection a client opened: it waits for C0+C1. `epoch_ms` is the
    /// time field of S1.
    pub fn server(config: SessionConfig, rng: &mut impl rand::RngCore, epoch_ms: u32) -> Self {
        let framing = Framing::Full(config.chunk_size);
        let handshake = Handshake::Server(ServerHandshake::new(rng, epoch_ms));
        Session::new(Role::Server, handshake, config, framing)
    }

    /// What AMS sends before the connect `_result`: Window Acknowledgement Size, Set Peer
    /// Bandwidth (dynamic), Set Chunk Size, and Stream Begin for stream 0.
    pub fn write_connect_preamble(&mut self, out: &mut impl BufMut) {
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
        self.write_user_control(UserControl::StreamBegin(0), out);
    }

    /// Set Peer Bandwidth (hard): the client is asked to send at most `bytes` per
    /// acknowledgement window (a script's `setBandwidthLimit`; Flash Player honours it,
    /// the server enforces nothing).
    pub(crate) fn set_peer_bandwidth(&mut self, bytes: u32, out: &mut impl BufMut) {
        let limit = ControlMessage::SetPeerBandwidth {
            size: bytes,
            limit: 0,
        };
        self.write_control(&limit, out);
    }
}
