//! Chunk decode and encode throughput for a realistic publisher stream: per 2 s, 60 video
//! messages (~8 KB, a ~60 KB key frame first) and ~94 AAC messages (~400 B), at chunk size
//! 4096 (what encoders use) and 128 (the protocol default). Also the load tool's skimmer.

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dataplane::proto::rtmp::chunk_decoder::ChunkDecoder;
use dataplane::proto::rtmp::chunk_encoder::{encode_message, ChunkEncoder};
use dataplane::proto::rtmp::control::ControlMessage;
use dataplane::proto::rtmp::{csid, msg_type, Message};

/// Two seconds of publisher messages, in send order (audio interleaved by timestamp).
fn stream() -> Vec<Message> {
    let mut msgs = Vec::new();
    let mut audio_ts = 0u32;
    for frame in 0..60u32 {
        let ts = frame * 1000 / 30;
        let len = if frame == 0 { 60_000 } else { 8_000 };
        let mut v = vec![if frame == 0 { 0x17 } else { 0x27 }, 1, 0, 0, 0];
        v.extend((0..len).map(|i| (i * 7 + frame as usize) as u8));
        while audio_ts <= ts {
            let mut a = vec![0xaf, 1];
            a.extend((0..400).map(|i| i as u8));
            msgs.push(Message {
                csid: csid::AUDIO,
                timestamp: audio_ts,
                type_id: msg_type::AUDIO,
                stream_id: 1,
                payload: Bytes::from(a),
            });
            audio_ts += 21;
        }
        msgs.push(Message {
            csid: csid::VIDEO,
            timestamp: ts,
            type_id: msg_type::VIDEO,
            stream_id: 1,
            payload: Bytes::from(v),
        });
    }
    msgs
}

/// The wire bytes (announcing the chunk size first when it is not the default).
fn wire(msgs: &[Message], chunk_size: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = ChunkEncoder::new(128);
    if chunk_size != 128 {
        enc.encode(
            &ControlMessage::SetChunkSize(chunk_size).to_message(),
            &mut out,
        );
        enc.set_chunk_size(chunk_size);
    }
    for m in msgs {
        enc.encode(m, &mut out);
    }
    out
}

fn decode(c: &mut Criterion) {
    let msgs = stream();
    let mut g = c.benchmark_group("chunk_decode");
    for chunk_size in [4096u32, 128] {
        let bytes = wire(&msgs, chunk_size);
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_with_input(
            BenchmarkId::new("ChunkDecoder", chunk_size),
            &bytes,
            |b, bytes| {
                let mut out = Vec::with_capacity(256);
                b.iter(|| {
                    let mut dec = ChunkDecoder::default();
                    // As the engine reads: 64 KiB at a time.
                    for part in bytes.chunks(64 << 10) {
                        dec.feed(part, &mut out).expect("decodes");
                    }
                    let n = out.len();
                    out.clear();
                    n
                });
            },
        );
        g.bench_with_input(
            BenchmarkId::new("load_skimmer", chunk_size),
            &bytes,
            |b, bytes| {
                b.iter(|| {
                    let mut sk = benches::skim::Skimmer::new();
                    let mut n = 0usize;
                    for part in bytes.chunks(64 << 10) {
                        sk.feed(part, &mut |_| n += 1).expect("skims");
                    }
                    n
                });
            },
        );
    }
    g.finish();
}

fn encode(c: &mut Criterion) {
    let msgs = stream();
    let mut g = c.benchmark_group("chunk_encode");
    for chunk_size in [4096u32, 128] {
        let total = wire(&msgs, chunk_size).len();
        g.throughput(Throughput::Bytes(total as u64));
        g.bench_with_input(
            BenchmarkId::new("ChunkEncoder", chunk_size),
            &chunk_size,
            |b, &cs| {
                let mut out = Vec::with_capacity(total + 1024);
                b.iter(|| {
                    out.clear();
                    let mut enc = ChunkEncoder::new(cs);
                    for m in &msgs {
                        enc.encode(m, &mut out);
                    }
                    out.len()
                });
            },
        );
        // What fan-out does: each message once, type-0 header, into its own buffer.
        g.bench_with_input(
            BenchmarkId::new("encode_message", chunk_size),
            &chunk_size,
            |b, &cs| {
                b.iter(|| {
                    let mut n = 0;
                    for m in &msgs {
                        let mut out = bytes::BytesMut::with_capacity(
                            dataplane::proto::rtmp::chunk_encoder::encoded_len(m, cs),
                        );
                        encode_message(m, cs, &mut out);
                        n += out.freeze().len();
                    }
                    n
                });
            },
        );
    }
    g.finish();
}

criterion_group!(benches, decode, encode);
criterion_main!(benches);
