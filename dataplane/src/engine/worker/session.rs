//! Commands and replies: what a connection's session reports, and what the worker does about it.

use super::*;

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
                    c.nc.on_command(stream_id, &command, &config, &mut actions);
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
                    .and_then(|c| c.publishing_on(message.stream_id))
                    .map(|p| p.key.clone())
                else {
                    return;
                };
                let m = MediaMessage {
                    timestamp: message.timestamp,
                    type_id: message.type_id,
                    payload: message.payload,
                };
                self.publish_frame(&key, m, true);
            }
            SessionEvent::Data { message } => {
                let Some(key) = self
                    .conns
                    .get(r)
                    .and_then(|c| c.publishing_on(message.stream_id))
                    .map(|p| p.key.clone())
                else {
                    return;
                };
                let amf3 = message.type_id == msg_type::DATA_AMF3;
                if message.payload.len() > MAX_COMMAND_SIZE {
                    // Metadata is small; a huge data message is not decoded (see MAX_COMMAND_SIZE).
                    if let Some(c) = self.conns.get(r) {
                        debug!(peer = %c.peer, bytes = message.payload.len(), "oversized data message ignored");
                    }
                    return;
                }
                let Ok(values) = command::decode_data(amf3, &message.payload) else {
                    if let Some(c) = self.conns.get(r) {
                        debug!(peer = %c.peer, "undecodable data message ignored");
                    }
                    return;
                };
                // `@setDataFrame` asks the server to keep what follows for new viewers.
                let (values, keep) = match values.first().and_then(Amf0Value::as_str) {
                    Some("@setDataFrame") => (values[1..].to_vec(), true),
                    Some("onMetaData") => (values, true),
                    _ => (values, false),
                };
                let payload = bytes::Bytes::from(command::encode_values(false, &values));
                let m = MediaMessage {
                    timestamp: message.timestamp,
                    type_id: msg_type::DATA_AMF0,
                    payload,
                };
                self.publish_frame(&key, m, keep);
            }
            SessionEvent::BufferLength { stream_id, ms } => {
                if let Some(c) = self.conns.get(r) {
                    debug!(peer = %c.peer, stream_id, ms, "client buffer length");
                }
            }
        }
    }

    pub(super) fn reply(&mut self, r: ConnRef, stream_id: u32, values: &[Amf0Value]) {
        let Some(c) = self.conns.get_mut(r) else {
            return;
        };
        if !c.preamble_sent {
            // The preamble carries Set Chunk Size: nothing larger may precede it.
            c.session.write_connect_preamble(&mut c.out);
            c.preamble_sent = true;
        }
        c.session
            .write_command(stream_id, c.amf3, values, &mut c.out);
    }

    pub(super) fn status(
        &mut self,
        r: ConnRef,
        stream_id: u32,
        level: Level,
        code: &str,
        description: &str,
        details: &str,
    ) {
        self.reply(
            r,
            stream_id,
            &status::on_status(level, code, description, Some(details)),
        );
    }

    pub(super) fn user_control(&mut self, r: ConnRef, event: UserControl) {
        if let Some(c) = self.conns.get_mut(r) {
            c.session.write_user_control(event, &mut c.out);
        }
    }

    /// Moves what the protocol wrote for `r` into its send queue.
    pub(super) fn flush_out(&mut self, r: ConnRef) {
        let Some(c) = self.conns.get_mut(r) else {
            return;
        };
        if !c.out.is_empty() {
            let bytes = c.out.split().freeze();
            c.queue.push_control(bytes);
            self.send_now(r);
        }
    }

    pub(super) fn apply_now(&mut self, r: ConnRef, action: Action) {
        match action {
            Action::Reply { stream_id, values } => self.reply(r, stream_id, &values),
            Action::Accepted { reply } => {
                if let Some(c) = self.conns.get_mut(r) {
                    info!(peer = %c.peer, app = %c.nc.app, instance = %c.nc.instance, "client connected");
                    if let Some(p) = &c.nc.policy {
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
                self.stop_publish(r, stream_id, &key);
                self.status(
                    r,
                    stream_id,
                    Level::Status,
                    "NetStream.Unpublish.Success",
                    &format!("Stopped publishing {}.", key.name()),
                    key.name(),
                );
            }
            Action::StartPlay {
                stream_id,
                key,
                params,
            } => self.start_play(r, stream_id, key, params),
            Action::StopPlay { stream_id, key } => {
                self.stop_play(r, stream_id, &key);
                self.status(
                    r,
                    stream_id,
                    Level::Status,
                    "NetStream.Play.Stop",
                    &format!("Stopped playing {}.", key.name()),
                    key.name(),
                );
            }
            Action::SetReceive {
                stream_id,
                audio,
                video,
            } => {
                if let Some(v) = self.conns.get_mut(r).and_then(|c| c.viewer_mut(stream_id)) {
                    if let Some(a) = audio {
                        v.audio = a;
                    }
                    if let Some(on) = video {
                        v.need_key |= on && !v.video;
                        v.video = on;
                    }
                }
            }
            Action::Pause { stream_id, pause } => {
                let Some(v) = self.conns.get_mut(r).and_then(|c| c.viewer_mut(stream_id)) else {
                    return;
                };
                v.paused = pause;
                v.need_key |= !pause;
                let name = v.key.name().to_string();
                if pause {
                    self.status(
                        r,
                        stream_id,
                        Level::Status,
                        "NetStream.Pause.Notify",
                        "Paused live stream.",
                        &name,
                    );
                } else {
                    self.status(
                        r,
                        stream_id,
                        Level::Status,
                        "NetStream.Unpause.Notify",
                        "Unpaused live stream.",
                        &name,
                    );
                }
            }
            Action::Close { reason } => self.close(r, &reason, false),
        }
    }
}
