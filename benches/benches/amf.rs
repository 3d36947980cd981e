//! AMF0 and AMF3 decode and encode of the commands every session carries: connect, play,
//! onStatus, onMetaData.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dataplane::proto::amf0::{self, Amf0Value};
use dataplane::proto::amf3::{self, Amf3Traits, Amf3Value};

fn s(v: &str) -> Amf0Value {
    Amf0Value::string(v)
}

fn n(v: f64) -> Amf0Value {
    Amf0Value::Number(v)
}

fn commands() -> Vec<(&'static str, Vec<Amf0Value>)> {
    vec![
        (
            "connect",
            vec![
                s("connect"),
                n(1.0),
                Amf0Value::object([
                    ("app", s("live")),
                    ("flashVer", s("LNX 9,0,124,2")),
                    ("tcUrl", s("rtmp://127.0.0.1:1935/live")),
                    ("fpad", Amf0Value::Boolean(false)),
                    ("capabilities", n(15.0)),
                    ("audioCodecs", n(4071.0)),
                    ("videoCodecs", n(252.0)),
                    ("videoFunction", n(1.0)),
                ]),
            ],
        ),
        (
            "play",
            vec![s("play"), n(4.0), Amf0Value::Null, s("stream"), n(-2000.0)],
        ),
        (
            "onStatus",
            vec![
                s("onStatus"),
                n(0.0),
                Amf0Value::Null,
                Amf0Value::object([
                    ("level", s("status")),
                    ("code", s("NetStream.Play.Start")),
                    ("description", s("Started playing stream.")),
                    ("details", s("stream")),
                ]),
            ],
        ),
        (
            "onMetaData",
            vec![
                s("onMetaData"),
                Amf0Value::EcmaArray(
                    [
                        ("duration", n(0.0)),
                        ("width", n(1280.0)),
                        ("height", n(720.0)),
                        ("videodatarate", n(1953.125)),
                        ("framerate", n(30.0)),
                        ("videocodecid", n(7.0)),
                        ("audiodatarate", n(125.0)),
                        ("audiosamplerate", n(48000.0)),
                        ("audiosamplesize", n(16.0)),
                        ("stereo", Amf0Value::Boolean(false)),
                        ("audiocodecid", n(10.0)),
                        ("encoder", s("Lavf59.27.100")),
                        ("filesize", n(0.0)),
                    ]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect(),
                ),
            ],
        ),
    ]
}

/// The same values in AMF3 (objects as anonymous dynamic objects).
fn to_amf3(v: &Amf0Value) -> Amf3Value {
    let props =
        |p: &[(String, Amf0Value)]| p.iter().map(|(k, v)| (k.clone(), to_amf3(v))).collect();
    match v {
        Amf0Value::Number(x) if x.fract() == 0.0 && x.abs() < (1 << 28) as f64 => {
            Amf3Value::Integer(*x as i32)
        }
        Amf0Value::Number(x) => Amf3Value::Double(*x),
        Amf0Value::Boolean(b) => Amf3Value::Boolean(*b),
        Amf0Value::String(x) => Amf3Value::String(x.clone()),
        Amf0Value::Null => Amf3Value::Null,
        Amf0Value::Object(p) => Amf3Value::Object {
            traits: Amf3Traits {
                class_name: String::new(),
                dynamic: true,
                externalizable: false,
                sealed_names: Vec::new(),
            },
            sealed: Vec::new(),
            dynamic: props(p),
            external: None,
        },
        Amf0Value::EcmaArray(p) => Amf3Value::Array {
            associative: props(p),
            dense: Vec::new(),
        },
        _ => Amf3Value::Undefined,
    }
}

fn amf0_bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("amf0");
    for (name, values) in commands() {
        let mut bytes = Vec::new();
        amf0::encode_all(&values, &mut bytes);
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_with_input(BenchmarkId::new("decode", name), &bytes, |b, bytes| {
            b.iter(|| amf0::decode_all(bytes).expect("decodes"))
        });
        g.bench_with_input(BenchmarkId::new("encode", name), &values, |b, values| {
            let mut out = Vec::with_capacity(bytes.len());
            b.iter(|| {
                out.clear();
                amf0::encode_all(values, &mut out);
                out.len()
            })
        });
    }
    g.finish();
}

fn amf3_bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("amf3");
    for (name, values) in commands() {
        let values: Vec<Amf3Value> = values.iter().map(to_amf3).collect();
        let mut bytes = Vec::new();
        let mut enc = amf3::Amf3Encoder::new();
        for v in &values {
            enc.encode(v, &mut bytes);
        }
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_with_input(BenchmarkId::new("decode", name), &bytes, |b, bytes| {
            b.iter(|| {
                let mut dec = amf3::Amf3Decoder::new();
                let mut input: &[u8] = bytes;
                let mut out = Vec::with_capacity(values.len());
                while !input.is_empty() {
                    out.push(dec.decode(&mut input).expect("decodes"));
                }
                out
            })
        });
        g.bench_with_input(BenchmarkId::new("encode", name), &values, |b, values| {
            let mut out = Vec::with_capacity(bytes.len());
            b.iter(|| {
                out.clear();
                let mut enc = amf3::Amf3Encoder::new();
                for v in values {
                    enc.encode(v, &mut out);
                }
                out.len()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, amf0_bench, amf3_bench);
criterion_main!(benches);
