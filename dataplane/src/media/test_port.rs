//! An in-memory `Port` for tests: each client has a real send queue and a record of what
//! it was told; no socket, no clock.

use std::collections::HashMap;

use bytes::Bytes;

use super::frame::{Batch, Frame, FrameRef, MediaMessage, OutputFormat};
use super::port::{ClientRef, Level, Port, Pushed, StreamEvent, Urgency};
use super::recorder::RecorderRef;
use super::send_queue::{PushOutcome, QueueLimits, SendQueue};
use super::stream_key::StreamKey;
use super::tag::FrameKind;
use crate::proto::amf0::Amf0Value;

/// What a client was told, in order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Told {
    /// A command: its name and `info.code`, if it has one.
    Command {
        name: String,
        code: Option<String>,
    },
    Status {
        code: String,
        details: String,
        description: String,
    },
    Data(String),
    Event(StreamEvent),
    Frame {
        type_id: u8,
        ts: u32,
        kind: FrameKind,
    },
}

pub(crate) struct TestClient {
    pub(crate) queue: SendQueue,
    /// Drains its queue after every flush (a viewer keeping up); false: a reader that
    /// stopped, whose first send never completes.
    pub(crate) reads: bool,
    pub(crate) open: bool,
    pub(crate) told: Vec<Told>,
    pub(crate) batches: usize,
    pub(crate) closed: Option<String>,
}

#[derive(Default)]
pub(crate) struct TestPort {
    pub(crate) clients: HashMap<ClientRef, TestClient>,
    pub(crate) forwarded: Vec<(usize, u32)>,
    /// Frames handed to recordings: which one, and the frame's type and timestamp.
    pub(crate) recorded: Vec<(RecorderRef, u8, u32)>,
    /// Frames offered to a stream's multicast outputs: (stream, type, timestamp).
    pub(crate) multicast: Vec<(String, u8, u32)>,
    /// Every frame handed to any client, in the order the port got them.
    pub(crate) log: Vec<(ClientRef, FrameKind)>,
}

impl TestPort {
    /// A client with default queue limits that reads everything.
    pub(crate) fn add(&mut self, c: ClientRef) {
        self.clients.insert(
            c,
            TestClient::new(SendQueue::new(QueueLimits::default()), true),
        );
    }

    /// The status codes `c` was told (onStatus, `_result`/`_error` info), in order.
    pub(crate) fn codes(&self, c: ClientRef) -> Vec<String> {
        self.clients[&c]
            .told
            .iter()
            .filter_map(|t| match t {
                Told::Status { code, .. } => Some(code.clone()),
                Told::Command { code, .. } => code.clone(),
                _ => None,
            })
            .collect()
    }

    fn client(&mut self, c: ClientRef) -> &mut TestClient {
        self.clients.get_mut(&c).expect("a known client")
    }

    pub(crate) fn drain(&mut self) {
        let mut out = Vec::new();
        for c in self.clients.values_mut() {
            while c.queue.next_batch_bytes(&mut out, 64, usize::MAX) > 0 && c.reads {
                let n = out.iter().map(Bytes::len).sum();
                c.queue.complete(n);
            }
        }
    }
}

impl TestClient {
    pub(crate) fn new(queue: SendQueue, reads: bool) -> Self {
        TestClient {
            queue,
            reads,
            open: true,
            told: Vec::new(),
            batches: 0,
            closed: None,
        }
    }
}

impl Port for TestPort {
    fn command(&mut self, c: ClientRef, _: u32, values: &[Amf0Value]) {
        let name = values.first().and_then(Amf0Value::as_str).unwrap_or("");
        let code = values
            .iter()
            .find_map(|v| v.get("code").and_then(Amf0Value::as_str));
        self.client(c).told.push(Told::Command {
            name: name.into(),
            code: code.map(str::to_string),
        });
    }

    fn status(&mut self, c: ClientRef, _: u32, _: Level, code: &str, desc: &str, details: &str) {
        self.client(c).told.push(Told::Status {
            code: code.into(),
            details: details.into(),
            description: desc.into(),
        });
    }

    fn data(&mut self, c: ClientRef, _: u32, values: &[Amf0Value]) {
        let name = values.first().and_then(Amf0Value::as_str).unwrap_or("");
        self.client(c).told.push(Told::Data(name.into()));
    }

    fn stream_event(&mut self, c: ClientRef, event: StreamEvent) {
        self.client(c).told.push(Told::Event(event));
    }

    fn frame(&mut self, c: ClientRef, stream_id: u32, f: &FrameRef, urgency: Urgency) -> Pushed {
        let client = self.clients.get_mut(&c).expect("a known client");
        if !client.open {
            return Pushed::Gone;
        }
        let bytes = f.encoded(OutputFormat::Rtmp {
            chunk_size: 128,
            stream_id,
        });
        let outcome = match urgency {
            Urgency::Now => {
                client.queue.push_control(bytes);
                PushOutcome::Queued
            }
            Urgency::Media => client.queue.push_media(bytes, f.timestamp, f.kind),
        };
        match outcome {
            PushOutcome::Queued => {
                self.log.push((c, f.kind));
                client.told.push(Told::Frame {
                    type_id: f.type_id,
                    ts: f.timestamp,
                    kind: f.kind,
                });
                Pushed::Queued
            }
            PushOutcome::Dropped => Pushed::Dropped,
            PushOutcome::TooSlow => Pushed::TooSlow {
                lag_ms: client.queue.lag_ms(),
                max_lag_ms: 3_000,
            },
        }
    }

    fn batch(&mut self, c: ClientRef, stream_id: u32, batch: &Batch<'_>) -> bool {
        let client = self.clients.get_mut(&c).expect("a known client");
        if !client.open || !client.queue.is_empty() || client.queue.is_skipping() {
            return false;
        }
        let bytes = batch.encoded(OutputFormat::Rtmp {
            chunk_size: 128,
            stream_id,
        });
        client
            .queue
            .push_media(bytes, batch.first_timestamp, batch.kind);
        client.batches += 1;
        for (_, f) in batch.frames {
            self.log.push((c, f.kind));
            client.told.push(Told::Frame {
                type_id: f.type_id,
                ts: f.timestamp,
                kind: f.kind,
            });
        }
        true
    }

    fn is_open(&self, c: ClientRef) -> bool {
        self.clients.get(&c).is_some_and(|c| c.open)
    }

    fn unsent(&self, c: ClientRef) -> usize {
        self.clients.get(&c).map_or(0, |c| c.queue.queued_bytes())
    }

    fn flush(&mut self, _: ClientRef) {}

    fn close(&mut self, c: ClientRef, reason: String) {
        let client = self.client(c);
        client.open = false;
        client.closed = Some(reason);
    }

    fn to_worker(&mut self, worker: usize, _: &StreamKey, _: u64, m: MediaMessage) {
        self.forwarded.push((worker, m.timestamp));
    }

    fn record(&mut self, recorder: RecorderRef, frame: &Frame) {
        self.recorded
            .push((recorder, frame.type_id, frame.timestamp));
    }

    fn multicast(&mut self, key: &StreamKey, frame: &Frame) {
        self.multicast
            .push((key.to_string(), frame.type_id, frame.timestamp));
    }
}
