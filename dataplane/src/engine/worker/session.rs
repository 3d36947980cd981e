//! Commands and replies: what a connection's session reports, and what the worker does about it.

use super::port::port;
use super::*;
use crate::app::net_stream;
use crate::media::data_frame::{self, DataFrame};

impl Worker {
    pub(super) fn on_session_event(&mut self, r: ConnRef, ev: SessionEvent) {
        match ev {
            SessionEvent::HandshakeDone(kind) => {
                if let Some(c) = self.conns.get(r) {
                    debug!(peer = %c.peer, ?kind, "handshake done");
                }
            }
            SessionEvent::Command {
                stream_id,
                amf3,
                command,
            } => {
                let config = Arc::clone(&self.config);
                let mut actions = std::mem::take(&mut self.actions);
                if let Some(c) = self.conns.get_mut(r) {
                    c.amf3 |= amf3;
                    if crate::app::rpc::is_application_call(&c.client.nc, &command) {
                        self.actions = actions;
                        return self.call_application(r, stream_id, &command);
                    }
                    c.client
                        .nc
                        .on_command(stream_id, &command, &config, &mut actions);
                }
                for a in actions.drain(..) {
                    self.apply(r, a);
                }
                self.actions = actions;
            }
            SessionEvent::Media { message } => {
                let Some(key) = self
                    .conns
                    .get(r)
                    .and_then(|c| c.client.nc.publishing(message.stream_id))
                    .cloned()
                else {
                    return;
                };
                let m = MediaMessage {
                    timestamp: message.timestamp,
                    type_id: message.type_id,
                    payload: message.payload,
                };
                self.publish_frame(&key, m, true, |s| is_publisher(s, r));
            }
            SessionEvent::Data { message } => {
                let Some(key) = self
                    .conns
                    .get(r)
                    .and_then(|c| c.client.nc.publishing(message.stream_id))
                    .cloned()
                else {
                    return;
                };
                match self.data_for_stream(r, &message) {
                    Some(StreamData::Frame(m, keep)) => {
                        self.publish_frame(&key, m, keep, |s| is_publisher(s, r))
                    }
                    Some(StreamData::ClearMetadata(m)) => {
                        self.clear_metadata(&key, m, |s| is_publisher(s, r))
                    }
                    None => {}
                }
            }
            SessionEvent::SharedObject { amf3, message } => self.on_shared_object(r, amf3, message),
            SessionEvent::BufferLength { stream_id, ms } => {
                if let Some(c) = self.conns.get_mut(r) {
                    debug!(peer = %c.peer, stream_id, ms, "client buffer length");
                    c.client.nc.set_buffer_length(stream_id, ms);
                }
                self.vod_buffer(r, stream_id, ms);
            }
            SessionEvent::Result {
                transaction,
                command,
                ..
            } => self.call_answered(r, transaction, true, &command),
            SessionEvent::Error {
                transaction,
                command,
                ..
            } => self.call_answered(r, transaction, false, &command),
            // The server creates no streams on a client; a status is a client-role event (a
            // server gets a client's onStatus as a command).
            answer @ (SessionEvent::StreamCreated { .. } | SessionEvent::Status { .. }) => {
                if let Some(c) = self.conns.get(r) {
                    debug!(peer = %c.peer, ?answer, "answer to no call of ours ignored");
                }
            }
        }
    }

    /// What a data message from `r` (a publisher or an upstream link) does to its stream;
    /// None (logged) if it is not for viewers.
    pub(super) fn data_for_stream(
        &self,
        r: ConnRef,
        message: &crate::proto::rtmp::Message,
    ) -> Option<StreamData> {
        let amf3 = message.type_id == msg_type::DATA_AMF3;
        let frame = |payload| MediaMessage {
            timestamp: message.timestamp,
            type_id: msg_type::DATA_AMF0,
            payload,
        };
        match data_frame::from_publisher(amf3, &message.payload) {
            DataFrame::Forward { payload, keep } => Some(StreamData::Frame(frame(payload), keep)),
            DataFrame::ClearMetadata { payload } => Some(StreamData::ClearMetadata(frame(payload))),
            DataFrame::Ignored(why) => {
                if let Some(c) = self.conns.get(r) {
                    debug!(peer = %c.peer, bytes = message.payload.len(), "{why}");
                }
                None
            }
        }
    }

    /// Calls `method` on client `r` for no one in particular (see `call_client_for`).
    #[cfg(test)]
    pub(super) fn call_client(
        &mut self,
        r: ConnRef,
        method: &str,
        args: &[Amf0Value],
        timeout: Duration,
    ) -> Option<u32> {
        self.call_client_for(r, method, args, timeout, None)
    }

    pub(super) fn reply(&mut self, r: ConnRef, stream_id: u32, values: &[Amf0Value]) {
        if let Some(c) = self.conns.get_mut(r) {
            c.write_command(stream_id, values);
        }
    }

    /// Moves what the protocol wrote for `r` into its send queue.
    pub(super) fn flush_out(&mut self, r: ConnRef) {
        if self.conns.get_mut(r).is_some_and(Conn::queue_out) {
            self.send_now(r);
        }
    }

    pub(super) fn apply_now(&mut self, r: ConnRef, action: Action) {
        match action {
            Action::Reply { stream_id, values } => self.reply(r, stream_id, &values),
            Action::Accepted { reply } => {
                // A scripted application decides first (the gate holds the connect).
                let Some(Action::Accepted { reply }) =
                    self.script_connect(r, Action::Accepted { reply })
                else {
                    return;
                };
                if let Some(c) = self.conns.get_mut(r) {
                    info!(peer = %c.peer, app = %c.client.nc.app, instance = %c.client.nc.instance, "client connected");
                    if let Some(p) = &c.client.nc.policy {
                        c.queue.set_limits(QueueLimits {
                            drop_lag_ms: p.drop_lag_ms,
                            max_lag_ms: p.max_lag_ms,
                            max_bytes: self.config.live.max_queue_bytes,
                        });
                    }
                }
                self.emit("connect", r, None, None);
                self.reply(r, 0, &reply);
            }
            Action::StartPublish {
                stream_id,
                key,
                mode,
                ..
            } => self.start_publish(r, stream_id, key, mode),
            Action::StopPublish { stream_id, key } => {
                self.stop_publish(r, &key);
                net_stream::unpublished(&mut port!(self), r, stream_id, &key);
            }
            Action::StartPlay {
                stream_id,
                key,
                params,
            } => self.start_play(r, stream_id, key, params),
            Action::NextPlay { stream_id, key } if !self.vod_plays(r, stream_id) => {
                self.stop_play(r, stream_id, &key);
                net_stream::play_stopped(&mut port!(self), r, stream_id, &key);
            }
            Action::NextPlay { .. } => {}
            Action::StopPlay { stream_id, key } => {
                self.stop_play(r, stream_id, &key);
                net_stream::play_stopped(&mut port!(self), r, stream_id, &key);
            }
            a @ (Action::SetReceive { stream_id, .. } | Action::Pause { stream_id, .. }) => {
                self.viewer_control(r, stream_id, a)
            }
            Action::FcPublish { stream_id, key } => self.fc_publish(r, stream_id, &key),
            Action::AddChild => self.add_child(r),
            Action::Subscribe { key } => self.subscribe(r, key),
            Action::Unsubscribe { key } => self.unsubscribe(r, &key),
            Action::Seek { stream_id, ms } => self.vod_seek(r, stream_id, ms),
            Action::StreamLength {
                stream_id,
                transaction,
                key,
                name,
            } => self.vod_length(r, stream_id, transaction, &key, &name),
            Action::Close { reason } => self.close(r, &reason, false),
        }
    }
}

/// Whether `r` is the local publisher of a stream with this source: a client's media feeds
/// only the stream it holds the claim of.
fn is_publisher(source: &Source, r: ConnRef) -> bool {
    matches!(source, Source::Local { publisher, .. } if *publisher == r)
}

/// What a data message from a publisher or an upstream link does to its stream.
pub(super) enum StreamData {
    /// A frame for the stream's viewers; `true`: the stream keeps it for joiners (metadata).
    Frame(MediaMessage, bool),
    /// `@clearDataFrame`: the kept metadata goes, on every worker of the stream.
    ClearMetadata(MediaMessage),
}

#[cfg(test)]
mod tests {
    use std::os::fd::IntoRawFd;
    use std::os::unix::net::UnixStream;

    use super::*;
    use crate::engine::worker::testing::{turn_until, worker};
    use crate::proto::rtmp::Message;

    fn waiting(w: &Worker, r: ConnRef) -> usize {
        w.conns.get(r).map_or(0, |c| c.client.calls.len())
    }

    /// What the client's `_result` for `transaction` becomes in its session: the events
    /// the worker then handles.
    fn answer(w: &mut Worker, r: ConnRef, transaction: u32) -> Vec<SessionEvent> {
        let values = [
            Amf0Value::string("_result"),
            Amf0Value::Number(f64::from(transaction)),
            Amf0Value::Null,
        ];
        let message = Message::command(0, false, &values);
        let c = w.conns.get_mut(r).expect("connected");
        let mut events = Vec::new();
        c.session
            .receive(message, &mut c.out, &mut events)
            .expect("an answer");
        events
    }

    #[test]
    fn a_call_to_a_client_leaves_its_table_when_answered_or_at_its_deadline() {
        let (mut w, _control) = worker();
        let (ours, _theirs) = UnixStream::pair().expect("socketpair");
        let r = w.adopt(ours.into_raw_fd(), false);

        let answered = w
            .call_client(r, "ping", &[], Duration::from_secs(60))
            .expect("sent");
        assert_eq!(waiting(&w, r), 1);
        let events = answer(&mut w, r, answered);
        assert!(
            matches!(&events[..], [SessionEvent::Result { transaction, .. }] if *transaction == answered),
            "{events:?}"
        );
        for ev in events {
            w.on_session_event(r, ev);
        }
        assert_eq!(waiting(&w, r), 0, "the answered call left the table");

        let late = w
            .call_client(r, "ping", &[], Duration::from_millis(20))
            .expect("sent");
        assert_eq!(waiting(&w, r), 1);
        turn_until(&mut w, |w| waiting(w, r) == 0);
        let events = answer(&mut w, r, late);
        assert!(
            matches!(&events[..], [SessionEvent::Command { command, .. }] if command.name == "_result"),
            "the session forgot the expired call too: {events:?}"
        );
    }
}
