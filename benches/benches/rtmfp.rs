//! RTMFP's send path per byte of media: a server session queues 2 s of the benchmark
//! stream's messages (60 video messages of ~8 KB, a ~60 KB key frame first, ~94 AAC
//! messages of ~400 B) on a flow, cuts them into fragments, packetises and encrypts them;
//! a client session over memory decrypts, parses, reassembles and acknowledges them. Two
//! ways of polling the server, in the same run: one packet per poll, each encrypted on its
//! own (one AES-CBC chain at a time, as before bursts), and bursts of up to 8 packets
//! encrypted together (their CBC chains interleaved). And the responder's Diffie-Hellman
//! per handshake (`rtmfp_dh_group14`).

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dataplane::proto::rtmfp::bench::{DhWork, Pair};

/// Two seconds of the stream's message payloads, in send order.
fn stream() -> Vec<Bytes> {
    let mut msgs = Vec::new();
    let mut audio_ts = 0u32;
    for frame in 0..60u32 {
        let ts = frame * 1000 / 30;
        while audio_ts <= ts {
            msgs.push(Bytes::from((0..402).map(|i| i as u8).collect::<Vec<u8>>()));
            audio_ts += 21;
        }
        let len = if frame == 0 { 60_005 } else { 8_005 };
        msgs.push(Bytes::from(
            (0..len)
                .map(|i| (i * 7 + frame as usize) as u8)
                .collect::<Vec<u8>>(),
        ));
    }
    msgs
}

fn send_path(c: &mut Criterion) {
    let msgs = stream();
    let total: usize = msgs.iter().map(|m| m.len()).sum();
    let mut g = c.benchmark_group("rtmfp_send");
    g.throughput(Throughput::Bytes(total as u64));
    for burst in [1usize, 8] {
        g.bench_with_input(
            BenchmarkId::new("packetise_encrypt_and_receive", burst),
            &burst,
            |b, &burst| {
                let mut pair = Pair::connected().expect("handshake");
                b.iter(|| {
                    let got = pair.carry(&msgs, burst);
                    assert_eq!(got, total, "every message arrives");
                    got
                })
            },
        );
    }
    g.finish();
}

/// A responder's two exponentiations per group-14 handshake: its fresh key, from the
/// generator's table, and the shared secret, by square-and-multiply (what the fresh key
/// cost before the table: the same 320-bit exponent, and num-bigint's `modpow` does not
/// favour the base 2).
fn handshake_dh(c: &mut Criterion) {
    let mut g = c.benchmark_group("rtmfp_dh_group14");
    let mut w = DhWork::default();
    g.bench_function("fresh_key_from_table", |b| b.iter(|| w.fresh_key()));
    let w = DhWork::default();
    g.bench_function("shared_secret_modpow", |b| b.iter(|| w.shared_secret()));
    g.finish();
}

criterion_group!(benches, send_path, handshake_dh);
criterion_main!(benches);
