//! The MPEG-TS muxer of multicast outputs: what muxing one stream costs, per second of the
//! 2.15 Mbit/s benchmark stream's shape (30 fps H.264 with a 2 s GOP: a ~60 KB key frame
//! and ~8 KB frames; AAC every 21 ms, ~400 B). Every stream with multicast outputs is
//! muxed once, whatever its number of outputs, so this is the per-stream part of
//! `benches/multicast many-to-one`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

/// stratad's allocator (see `dataplane/src/bin/stratad.rs`): the held-frames bench measures
/// how the muxer's blocks come back from it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use dataplane::fuzzing::{mpegts_mux_held, mpegts_mux_messages};
use dataplane::proto::rtmp::msg_type;

/// Two seconds of the stream: its sequence headers, then the frames in send order.
fn stream() -> Vec<(u8, u32, Vec<u8>)> {
    let mut msgs = vec![
        (
            msg_type::VIDEO,
            0,
            vec![
                0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 4, 0x67, 0x64, 0, 0x1f, 1, 0, 4,
                0x68, 0xee, 0x3c, 0x80,
            ],
        ),
        (msg_type::AUDIO, 0, vec![0xaf, 0, 0x12, 0x10]),
    ];
    let mut audio_ts = 0u32;
    for frame in 0..60u32 {
        let ts = frame * 1000 / 30;
        let len: usize = if frame == 0 { 60_000 } else { 8_000 };
        let key = frame == 0;
        let mut v = vec![if key { 0x17 } else { 0x27 }, 1, 0, 0, 0x42];
        v.extend_from_slice(&(len as u32).to_be_bytes());
        v.push(if key { 0x65 } else { 0x41 });
        v.extend((1..len).map(|i| (i * 7 + frame as usize) as u8 | 1));
        while audio_ts <= ts {
            let mut a = vec![0xaf, 1];
            a.extend((0..400).map(|i| i as u8));
            msgs.push((msg_type::AUDIO, audio_ts, a));
            audio_ts += 21;
        }
        msgs.push((msg_type::VIDEO, ts, v));
    }
    msgs
}

fn mux(c: &mut Criterion) {
    let msgs = stream();
    let bytes: usize = msgs.iter().map(|m| m.2.len()).sum();
    let mut g = c.benchmark_group("mpegts");
    g.throughput(Throughput::Bytes(bytes as u64));
    // One iteration: 2 s of the stream, so time per iteration / 2 is the CPU one stream
    // of multicast costs per second for its muxing.
    g.bench_function("mux_2s_of_2.15_mbps", |b| {
        b.iter(|| mpegts_mux_messages(msgs.iter().map(|(t, ts, p)| (*t, *ts, &p[..]))))
    });
    // What a copying muxer cannot go below: the same 2 s of payload copied once, 184
    // bytes behind each 4-byte header, into one 256 KiB buffer rewritten from its start
    // whenever full (recycled, so always in cache). Against `mux_2s_of_2.15_mbps`: how
    // much of muxing is the copy itself.
    g.bench_function("copy_2s_into_a_recycled_buffer", |b| {
        let mut buf: Vec<u8> = Vec::with_capacity(256 * 1024);
        b.iter(|| {
            for (_, _, p) in &msgs {
                for chunk in p.chunks(184) {
                    if buf.len() + 188 > buf.capacity() {
                        buf.clear();
                    }
                    buf.extend_from_slice(&[0x47, 0x01, 0x00, 0x10]);
                    buf.extend_from_slice(chunk);
                }
            }
            std::hint::black_box(buf.len())
        })
    });
    g.finish();
}

/// 100 streams muxed in turn, each frame held 150 ms of stream time (an output's batch)
/// before it is dropped, over 6 s of stream (the 2 s three times): the TS of 100 streams
/// does not stay in a cache, so what writing it costs depends on how soon the muxers
/// write again into memory written recently, which the arena's block size decides. One
/// iteration is 6 s of 100 streams: time per iteration / 600 is one stream's second.
fn mux_held(c: &mut Criterion) {
    let two = stream();
    let msgs: Vec<(u8, u32, Vec<u8>)> = (0..3u32)
        .flat_map(|k| {
            two.iter()
                .map(move |(t, ts, p)| (*t, ts + k * 2000, p.clone()))
        })
        .collect();
    let mut g = c.benchmark_group("mpegts_100_streams_held_150ms");
    g.sample_size(10);
    for arena in [256 * 1024, 64 * 1024, 32 * 1024, 16 * 1024] {
        g.bench_function(format!("arena_{}k", arena / 1024), |b| {
            b.iter(|| {
                mpegts_mux_held(
                    100,
                    arena,
                    150,
                    msgs.iter().map(|(t, ts, p)| (*t, *ts, &p[..])),
                )
            })
        });
    }
    g.finish();
}

criterion_group!(benches, mux, mux_held);
criterion_main!(benches);
