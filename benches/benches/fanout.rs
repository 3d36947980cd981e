//! Joining a stream with a full GOP cache, and one message fanned out to 1,000 and 10,000
//! viewer send queues (a shared `Bytes` pushed to each, then each queue's batch taken and
//! completed, as the engine does per viewer).

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dataplane::media::{CachedFrame, FrameKind, GopCache, GopCacheLimits, QueueLimits, SendQueue};

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

criterion_group!(benches, join, fanout);
criterion_main!(benches);
