//! Joining a stream with a full GOP cache, and one message fanned out to 1,000 and 10,000
//! viewer send queues (a shared `Bytes` pushed to each, then each queue's batch taken and
//! completed, as the engine does per viewer); and a live stream's media flush to 2,000
//! caught-up viewers through `media::LiveStream` and a port that queues like the engine's;
//! and a join storm: 500 viewers joining one batch (key frames first, then the rest of the
//! GOP in rounds, the transport taking each round between turns).

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use dataplane::media::frame::{Batch, FrameRef, MediaMessage, OutputFormat};
use dataplane::media::live_stream::LiveStream;
use dataplane::media::port::{ClientRef, Level, Port, Pushed, StreamEvent, Urgency};
use dataplane::media::recorder::RecorderRef;
use dataplane::media::viewer::Viewer;
use dataplane::media::{
    CachedFrame, FrameKind, GopCache, GopCacheLimits, PushOutcome, QueueLimits, SendQueue,
    StreamKey,
};
use dataplane::proto::amf0::Amf0Value;
use dataplane::proto::rtmp::msg_type;

#[derive(Clone)]
struct Frame {
    kind: FrameKind,
    ts: u32,
    bytes: Bytes,
}

impl CachedFrame for Frame {
    fn kind(&self) -> FrameKind {
        self.kind
    }
    fn timestamp(&self) -> u32 {
        self.ts
    }
    fn size(&self) -> usize {
        self.bytes.len()
    }
}

/// A full 2 s GOP of the benchmark stream (2 Mbit/s video at 30 fps, AAC at ~47 frames/s),
/// with metadata and both sequence headers.
fn full_cache() -> GopCache<Frame> {
    let mut cache = GopCache::new(GopCacheLimits::default());
    let f = |kind, ts, len: usize| Frame {
        kind,
        ts,
        bytes: Bytes::from(vec![0u8; len]),
    };
    cache.push(&f(FrameKind::Metadata, 0, 400));
    cache.push(&f(FrameKind::VideoHeader, 0, 50));
    cache.push(&f(FrameKind::AudioHeader, 0, 7));
    let mut audio_ts = 0;
    for frame in 0..60u32 {
        let ts = frame * 1000 / 30;
        while audio_ts <= ts {
            cache.push(&f(FrameKind::Audio, audio_ts, 400));
            audio_ts += 21;
        }
        let kind = if frame == 0 {
            FrameKind::VideoKey
        } else {
            FrameKind::VideoInter
        };
        cache.push(&f(kind, ts, if frame == 0 { 60_000 } else { 8_000 }));
    }
    cache
}

fn join(c: &mut Criterion) {
    let cache = full_cache();
    let frames = cache.snapshot().count();
    let mut g = c.benchmark_group("join");
    g.throughput(Throughput::Elements(1));
    g.bench_function(format!("gop_snapshot_{frames}_frames"), |b| {
        b.iter(|| {
            let mut q = SendQueue::new(QueueLimits::default());
            for f in cache.snapshot() {
                q.push_media(f.bytes.clone(), f.ts, f.kind);
            }
            q
        })
    });
    g.finish();
}

fn fanout(c: &mut Criterion) {
    let mut g = c.benchmark_group("fanout");
    let msg = Bytes::from(vec![0u8; 8_000]);
    for viewers in [1_000usize, 10_000] {
        g.throughput(Throughput::Elements(viewers as u64));
        // The push alone (timed), each queue drained after it (untimed) so that every
        // iteration pushes into a live, short queue as in steady state.
        g.bench_with_input(
            BenchmarkId::new("push_media", viewers),
            &viewers,
            |b, &viewers| {
                let mut queues: Vec<SendQueue> = (0..viewers)
                    .map(|_| SendQueue::new(QueueLimits::default()))
                    .collect();
                let mut iov = Vec::with_capacity(64);
                let mut ts = 0u32;
                b.iter_custom(|iters| {
                    let mut total = std::time::Duration::ZERO;
                    for _ in 0..iters {
                        ts = ts.wrapping_add(33);
                        let t = std::time::Instant::now();
                        for q in &mut queues {
                            q.push_media(msg.clone(), ts, FrameKind::VideoInter);
                        }
                        total += t.elapsed();
                        for q in &mut queues {
                            let n = q.next_batch(&mut iov, 64, 1 << 20);
                            q.complete(n);
                        }
                    }
                    total
                });
            },
        );
        g.bench_with_input(
            BenchmarkId::new("push_batch_complete", viewers),
            &viewers,
            |b, &viewers| {
                let mut queues: Vec<SendQueue> = (0..viewers)
                    .map(|_| SendQueue::new(QueueLimits::default()))
                    .collect();
                let mut iov = Vec::with_capacity(64);
                let mut ts = 0u32;
                b.iter(|| {
                    ts = ts.wrapping_add(33);
                    for q in &mut queues {
                        q.push_media(msg.clone(), ts, FrameKind::VideoInter);
                        let n = q.next_batch(&mut iov, 64, 1 << 20);
                        q.complete(n);
                    }
                });
            },
        );
    }
    g.finish();
}

/// The engine's port reduced to what the media flush touches: a slot per viewer with its
/// send queue, looked up by `ClientRef`, and the RTMP output format.
struct QueuePort {
    queues: Vec<SendQueue>,
}

impl Port for QueuePort {
    fn status(&mut self, _: ClientRef, _: u32, _: Level, _: &str, _: &str, _: &str) {}
    fn command(&mut self, _: ClientRef, _: u32, _: &[Amf0Value]) {}
    fn data(&mut self, _: ClientRef, _: u32, _: &[Amf0Value]) {}
    fn stream_event(&mut self, _: ClientRef, _: StreamEvent) {}
    fn frame(&mut self, c: ClientRef, stream_id: u32, f: &FrameRef, urgency: Urgency) -> Pushed {
        let Some(q) = self.queues.get_mut(c.slot as usize) else {
            return Pushed::Gone;
        };
        let bytes = f.encoded(OutputFormat::Rtmp {
            chunk_size: 4096,
            stream_id,
        });
        match urgency {
            Urgency::Now => {
                q.push_control(bytes);
                Pushed::Queued
            }
            Urgency::Media => match q.push_media(bytes, f.timestamp, f.kind) {
                PushOutcome::Queued => Pushed::Queued,
                _ => Pushed::Dropped,
            },
        }
    }
    fn batch(&mut self, c: ClientRef, stream_id: u32, batch: &Batch<'_>) -> bool {
        let Some(q) = self.queues.get_mut(c.slot as usize) else {
            return false;
        };
        if !q.is_empty() || q.is_skipping() {
            return false;
        }
        let bytes = batch.encoded(OutputFormat::Rtmp {
            chunk_size: 4096,
            stream_id,
        });
        q.push_media(bytes, batch.first_timestamp, batch.kind);
        true
    }
    fn is_open(&self, _: ClientRef) -> bool {
        true
    }
    fn unsent(&self, c: ClientRef) -> usize {
        self.queues
            .get(c.slot as usize)
            .map_or(0, SendQueue::queued_bytes)
    }
    fn flush(&mut self, _: ClientRef) {}
    fn close(&mut self, _: ClientRef, _: String) {}
    fn to_worker(&mut self, _: usize, _: &StreamKey, _: u64, _: MediaMessage) {}
    fn record(&mut self, _: RecorderRef, _: &dataplane::media::frame::Frame) {}
    fn multicast(&mut self, _: &StreamKey, _: &dataplane::media::frame::Frame) {}
}

fn media_flush(c: &mut Criterion) {
    const VIEWERS: usize = 2_000;
    let mut g = c.benchmark_group("live_stream");
    g.throughput(Throughput::Elements(VIEWERS as u64));
    g.bench_function(format!("flush_batch_to_{VIEWERS}_caught_up_viewers"), |b| {
        let mut port = QueuePort {
            queues: (0..VIEWERS)
                .map(|_| SendQueue::new(QueueLimits::default()))
                .collect(),
        };
        let mut stream = LiveStream::new(StreamKey::new("live", "_definst_", "cam"));
        let publisher = ClientRef {
            slot: u32::MAX,
            generation: 0,
        };
        stream.publish_local(publisher, 1, 0.0, None, std::iter::empty());
        let mut stopped = Vec::new();
        for slot in 0..VIEWERS as u32 {
            let viewer = Viewer::new(
                ClientRef {
                    slot,
                    generation: 0,
                },
                1,
                -1.0,
                true,
            );
            stream.add_viewer(viewer, false, &mut port, &mut stopped);
        }
        let message = |type_id, ts, first: u8, len: usize| {
            let mut payload = vec![0u8; len];
            payload[0] = first;
            payload[1] = 1;
            MediaMessage {
                timestamp: ts,
                type_id,
                payload: Bytes::from(payload),
            }
        };
        let mut iov = Vec::with_capacity(64);
        let mut ts = 0u32;
        let mut frames = 0u32;
        b.iter_custom(|iters| {
            let mut total = std::time::Duration::ZERO;
            for _ in 0..iters {
                // One 50 ms batch of the benchmark stream: two AAC frames and a picture
                // (a key frame once every 60).
                let picture = if frames.is_multiple_of(60) {
                    0x17
                } else {
                    0x27
                };
                frames += 1;
                for m in [
                    message(msg_type::AUDIO, ts, 0xAF, 400),
                    message(msg_type::VIDEO, ts, picture, 8_000),
                    message(msg_type::AUDIO, ts + 21, 0xAF, 400),
                ] {
                    stream.publish_frame(m, true, true, &mut port, &mut stopped);
                }
                ts = ts.wrapping_add(50);
                let t = std::time::Instant::now();
                stream.flush_pending(&mut port, &mut stopped);
                total += t.elapsed();
                for q in &mut port.queues {
                    let n = q.next_batch(&mut iov, 64, 1 << 20);
                    q.complete(n);
                }
            }
            total
        });
    });
    g.finish();
}

/// A stream of the benchmark's shape (two AAC frames and a 2 Mbit/s picture every 50 ms,
/// 8 KB pictures, a 60 KB key frame) published for `ms` from its key frame, with `viewers`
/// empty queues in the port for the joiners.
fn published_stream(ms: u32, viewers: usize) -> (LiveStream, QueuePort) {
    let mut port = QueuePort {
        queues: (0..viewers)
            .map(|_| SendQueue::new(QueueLimits::default()))
            .collect(),
    };
    let mut stream = LiveStream::new(StreamKey::new("live", "_definst_", "cam"));
    let publisher = ClientRef {
        slot: u32::MAX,
        generation: 0,
    };
    stream.publish_local(publisher, 1, 0.0, None, std::iter::empty());
    let mut stopped = Vec::new();
    let message = |type_id, ts, first: u8, len: usize| {
        let mut payload = vec![0u8; len];
        payload[0] = first;
        payload[1] = 1;
        MediaMessage {
            timestamp: ts,
            type_id,
            payload: Bytes::from(payload),
        }
    };
    // The AVC sequence header (AVCPacketType 0).
    let header = MediaMessage {
        timestamp: 0,
        type_id: msg_type::VIDEO,
        payload: Bytes::from(vec![0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f]),
    };
    stream.publish_frame(header, true, true, &mut port, &mut stopped);
    for ts in (0..ms).step_by(50) {
        let (picture, len) = if ts == 0 {
            (0x17, 60_000)
        } else {
            (0x27, 8_000)
        };
        for m in [
            message(msg_type::AUDIO, ts, 0xAF, 400),
            message(msg_type::VIDEO, ts, picture, len),
            message(msg_type::AUDIO, ts + 21, 0xAF, 400),
        ] {
            stream.publish_frame(m, true, true, &mut port, &mut stopped);
        }
    }
    stream.flush_pending(&mut port, &mut stopped);
    (stream, port)
}

/// The transport takes everything queued (one batch and completion per viewer).
fn drain(port: &mut QueuePort, iov: &mut Vec<libc::iovec>) {
    for q in &mut port.queues {
        loop {
            let n = q.next_batch(iov, 64, 1 << 20);
            if n == 0 {
                break;
            }
            q.complete(n);
        }
    }
}

fn join_storm(c: &mut Criterion) {
    const JOINERS: usize = 500;
    let mut g = c.benchmark_group("join_storm");
    g.throughput(Throughput::Elements(JOINERS as u64));
    let joiners = |stream: &mut LiveStream, port: &mut QueuePort| {
        let mut stopped = Vec::new();
        for slot in 0..JOINERS as u32 {
            let viewer = Viewer::new(
                ClientRef {
                    slot,
                    generation: 0,
                },
                1,
                -1.0,
                true,
            );
            stream.add_viewer(viewer, false, port, &mut stopped);
        }
    };
    // Every joiner's metadata, headers and key frame: what stands between the last joiner
    // of a batch and its first picture.
    g.bench_function(format!("key_frames_to_{JOINERS}_joiners"), |b| {
        b.iter_batched_ref(
            || published_stream(1_000, JOINERS),
            |(stream, port)| joiners(stream, port),
            BatchSize::LargeInput,
        );
    });
    // The whole join: key frames, then the rest of a GOP 1 s in (~210 KB) in rounds, the
    // transport draining every queue between rounds, until all are caught up.
    g.bench_function(format!("whole_gop_to_{JOINERS}_joiners_in_rounds"), |b| {
        let mut iov = Vec::with_capacity(64);
        b.iter_batched_ref(
            || published_stream(1_000, JOINERS),
            |(stream, port)| {
                joiners(stream, port);
                let mut stopped = Vec::new();
                for _ in 0..1_000 {
                    drain(port, &mut iov);
                    if !stream.catch_up(port, &mut stopped) {
                        break;
                    }
                }
                assert!(!stream.is_catching_up(), "the rounds end");
            },
            BatchSize::LargeInput,
        );
    });
    g.finish();
}

criterion_group!(benches, join, fanout, media_flush, join_storm);
criterion_main!(benches);
