//! Fuzz smoke: every cargo-fuzz entry point runs over valid seed inputs and thousands of
//! seeded mutations of them (bit flips, truncations, splices, inserted bytes). Deterministic
//! and quick, so it runs with every `cargo test`; the real fuzzing is `cargo fuzz run`.

use bytes::{Bytes, BytesMut};
use dataplane::fuzzing;
use dataplane::proto::amf0::{self, Amf0Value};
use dataplane::proto::amf3::{self, Amf3Value};
use dataplane::proto::rtmp::chunk_encoder::ChunkEncoder;
use dataplane::proto::rtmp::control::{ControlMessage, UserControl};
use dataplane::proto::rtmp::handshake::{ClientHandshake, HandshakeKind, PACKET_SIZE};
use dataplane::proto::rtmp::session::{Session, SessionConfig};
use dataplane::proto::rtmp::{csid, msg_type, Message};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const MUTATIONS_PER_SEED: usize = 3000;

fn mutate(rng: &mut StdRng, seed: &[u8]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..rng.gen_range(1..6) {
        match rng.gen_range(0..5) {
            0 if !v.is_empty() => {
                let i = rng.gen_range(0..v.len());
                v[i] ^= 1 << rng.gen_range(0..8);
            }
            1 if !v.is_empty() => {
                let n = rng.gen_range(0..v.len());
                v.truncate(n);
            }
            2 => {
                let i = rng.gen_range(0..=v.len());
                v.insert(i, rng.gen());
            }
            3 if !v.is_empty() => {
                let i = rng.gen_range(0..v.len());
                v[i] = [0x00, 0x01, 0x7F, 0x80, 0xFF][rng.gen_range(0..5)];
            }
            _ if v.len() > 2 => {
                // Duplicate a slice: repeated headers and references.
                let a = rng.gen_range(0..v.len());
                let b = rng.gen_range(a..v.len());
                let piece = v[a..b].to_vec();
                let at = rng.gen_range(0..=v.len());
                v.splice(at..at, piece);
            }
            _ => {}
        }
    }
    v
}

fn run(target: fn(&[u8]), seeds: &[Vec<u8>], salt: u64) {
    let mut rng = StdRng::seed_from_u64(0x5eed ^ salt);
    for seed in seeds {
        target(seed);
        for _ in 0..MUTATIONS_PER_SEED {
            target(&mutate(&mut rng, seed));
        }
    }
}

fn connect_values() -> Vec<Amf0Value> {
    vec![
        Amf0Value::string("connect"),
        Amf0Value::Number(1.0),
        Amf0Value::object([
            ("app", Amf0Value::string("live")),
            ("tcUrl", Amf0Value::string("rtmp://127.0.0.1/live")),
            ("objectEncoding", Amf0Value::Number(3.0)),
        ]),
        Amf0Value::EcmaArray(vec![(
            "a".into(),
            Amf0Value::StrictArray(vec![Amf0Value::Boolean(true), Amf0Value::Null]),
        )]),
        Amf0Value::Amf3(Amf3Value::Array {
            associative: vec![],
            dense: vec![Amf3Value::Integer(5), Amf3Value::String("x".into())],
        }),
    ]
}

/// A publisher's session bytes after the handshake: chunk size, commands, metadata, media.
fn session_stream() -> Vec<u8> {
    let mut enc = ChunkEncoder::new(128);
    let mut out = BytesMut::new();
    let cmd = |values: &[Amf0Value], stream_id: u32, out: &mut BytesMut, enc: &mut ChunkEncoder| {
        let mut body = Vec::new();
        amf0::encode_all(values, &mut body);
        enc.encode(
            &Message {
                csid: 3,
                timestamp: 0,
                type_id: msg_type::COMMAND_AMF0,
                stream_id,
                payload: Bytes::from(body),
            },
            out,
        );
    };
    cmd(&connect_values()[..3], 0, &mut out, &mut enc);
    enc.encode(&ControlMessage::SetChunkSize(4096).to_message(), &mut out);
    enc.set_chunk_size(4096);
    cmd(
        &[
            Amf0Value::string("createStream"),
            Amf0Value::Number(2.0),
            Amf0Value::Null,
        ],
        0,
        &mut out,
        &mut enc,
    );
    cmd(
        &[
            Amf0Value::string("publish"),
            Amf0Value::Number(0.0),
            Amf0Value::Null,
            Amf0Value::string("cam"),
        ],
        1,
        &mut out,
        &mut enc,
    );
    enc.encode(
        &ControlMessage::UserControl(UserControl::SetBufferLength {
            stream_id: 1,
            ms: 3000,
        })
        .to_message(),
        &mut out,
    );
    for (ts, type_id, body) in [
        (0u32, msg_type::VIDEO, vec![0x17, 0, 0, 0, 0, 1, 2]),
        (0, msg_type::AUDIO, vec![0xAF, 0, 0x12, 0x10]),
        (0x01FF_FFFF, msg_type::VIDEO, vec![0x27; 300]),
    ] {
        enc.encode(
            &Message {
                csid: if type_id == msg_type::VIDEO { 6 } else { 4 },
                timestamp: ts,
                type_id,
                stream_id: 1,
                payload: Bytes::from(body),
            },
            &mut out,
        );
    }
    out.to_vec()
}

#[test]
fn amf0_decode_survives_mutations() {
    let mut seed = Vec::new();
    amf0::encode_all(&connect_values(), &mut seed);
    run(
        fuzzing::amf0_decode,
        &[seed, vec![0x03, 0, 0, 9], vec![0x10, 0, 1, b'C', 0, 0, 9]],
        1,
    );
}

#[test]
fn amf3_decode_survives_mutations() {
    let mut seed = Vec::new();
    amf3::encode(
        &Amf3Value::Array {
            associative: vec![("k".into(), Amf3Value::Double(1.5))],
            dense: vec![
                Amf3Value::String("k".into()),
                Amf3Value::ByteArray(vec![1, 2, 3]),
                Amf3Value::VectorInt {
                    fixed: false,
                    items: vec![1, -1],
                },
            ],
        },
        &mut seed,
    );
    run(fuzzing::amf3_decode, &[seed], 2);
}

#[test]
fn amf_json_survives_mutations() {
    let mut amf = vec![1u8];
    amf0::encode_all(&connect_values(), &mut amf);
    let mut typed = vec![1u8];
    amf0::encode(
        &Amf0Value::TypedObject {
            class_name: "User".into(),
            properties: vec![("$date".into(), Amf0Value::Number(f64::NAN))],
        },
        &mut typed,
    );
    let mut json = vec![0u8];
    json.extend_from_slice(
        br#"[{"$class":"U","a":{"$date":5}},{"$bytes":"AAE="},{"$ecma":{"k":1},"$dense":[2]},{"$dictionary":[[1,{"$undefined":true}]]},{"$object":{"$x":[null,{"$number":"NaN"}]}}]"#,
    );
    run(fuzzing::amf_json, &[amf, typed, json], 9);
}

#[test]
fn handshake_survives_mutations() {
    let mut rng = StdRng::seed_from_u64(3);
    let mut seeds = Vec::new();
    for kind in [HandshakeKind::Simple, HandshakeKind::Digest] {
        let mut c0c1 = vec![0u8]; // feed everything at once
        let _client = ClientHandshake::new(&mut rng, 0, kind, &mut c0c1);
        c0c1.extend_from_slice(&[0u8; 1536]); // a C2
        seeds.push(c0c1);
    }
    run(fuzzing::rtmp_handshake, &seeds, 3);
}

#[test]
fn chunk_decoder_survives_mutations() {
    let mut seed = vec![0u8, 0xFF];
    seed.extend(session_stream());
    let mut split = vec![7u8, 0x3A];
    split.extend(session_stream());
    run(fuzzing::rtmp_chunk_decode, &[seed, split], 4);
}

#[test]
fn control_messages_survive_mutations() {
    let seeds: Vec<Vec<u8>> = [
        ControlMessage::SetChunkSize(4096),
        ControlMessage::WindowAckSize(2_500_000),
        ControlMessage::SetPeerBandwidth { size: 1, limit: 2 },
        ControlMessage::UserControl(UserControl::PingRequest(9)),
    ]
    .iter()
    .map(|c| {
        let m = c.to_message();
        let mut v = vec![m.type_id];
        v.extend_from_slice(&m.payload);
        v
    })
    .collect();
    run(fuzzing::rtmp_message, &seeds, 5);
}

#[test]
fn whole_session_survives_mutations() {
    let mut seed = vec![0u8];
    seed.extend(session_stream());
    let mut split = vec![13u8];
    split.extend(session_stream());
    run(fuzzing::rtmp_session, &[seed, split], 6);
}

#[test]
fn flv_recovery_survives_mutations() {
    let file = fuzzing::flv_recording_seed();
    let mut whole = vec![0u8];
    whole.extend_from_slice(&file);
    let mut torn = vec![0u8];
    torn.extend_from_slice(&file[..file.len() - 7]);
    let mut window = vec![3u8];
    window.extend_from_slice(&file[40..]);
    run(fuzzing::flv_recovery, &[whole, torn, window], 9);
}

#[test]
fn mpegts_mux_survives_mutations() {
    let seed = fuzzing::mpegts_seed();
    let mut restart = seed.clone();
    restart[0] |= 2;
    run(fuzzing::mpegts_mux, &[seed, restart], 15);
}

fn info(level: &str, code: &str) -> Amf0Value {
    Amf0Value::object([
        ("level", Amf0Value::string(level)),
        ("code", Amf0Value::string(code)),
    ])
}

/// What a server sends a player after the handshake, written by our server session:
/// preamble, connect's and createStream's `_result` and fooBar's `_error` (transactions 1, 2
/// and 3, as the fuzz target's client numbers its calls), a status, a ping, data and media.
fn server_answers() -> Vec<u8> {
    let config = SessionConfig {
        window_ack_size: 4096,
        peer_bandwidth: 2_500_000,
        ..SessionConfig::client(4096)
    };
    let mut server = Session::server(config, &mut StdRng::seed_from_u64(8), 0);
    let mut out = BytesMut::new();
    server.write_connect_preamble(&mut out);
    let mut command = |stream_id: u32, values: &[Amf0Value], out: &mut BytesMut| {
        server.write_command(stream_id, false, values, out)
    };
    command(
        0,
        &[
            Amf0Value::string("_result"),
            Amf0Value::Number(1.0),
            Amf0Value::object([("fmsVer", Amf0Value::string("FMS/3,5,7,7009"))]),
            info("status", "NetConnection.Connect.Success"),
        ],
        &mut out,
    );
    command(
        0,
        &[
            Amf0Value::string("_result"),
            Amf0Value::Number(2.0),
            Amf0Value::Null,
            Amf0Value::Number(1.0),
        ],
        &mut out,
    );
    command(
        1,
        &[
            Amf0Value::string("onStatus"),
            Amf0Value::Number(0.0),
            Amf0Value::Null,
            info("status", "NetStream.Play.Start"),
        ],
        &mut out,
    );
    command(
        0,
        &[
            Amf0Value::string("_error"),
            Amf0Value::Number(3.0),
            Amf0Value::Null,
            info("error", "NetConnection.Call.Failed"),
        ],
        &mut out,
    );
    server.write_user_control(UserControl::PingRequest(5), &mut out);
    server.write_data(
        1,
        &[
            Amf0Value::string("|RtmpSampleAccess"),
            Amf0Value::Boolean(true),
            Amf0Value::Boolean(true),
        ],
        &mut out,
    );
    for (ts, type_id, body) in [
        (0u32, msg_type::VIDEO, vec![0x17, 0, 0, 0, 0, 1, 2]),
        (0, msg_type::AUDIO, vec![0xAF, 0, 0x12, 0x10]),
        (0x01FF_FFFF, msg_type::VIDEO, vec![0x27; 5000]),
    ] {
        let csid = if type_id == msg_type::VIDEO {
            csid::VIDEO
        } else {
            csid::AUDIO
        };
        let message = Message {
            csid,
            timestamp: ts,
            type_id,
            stream_id: 1,
            payload: Bytes::from(body),
        };
        server.write_message(&message, &mut out);
    }
    out.to_vec()
}

#[test]
fn client_session_survives_mutations() {
    let answers = server_answers();
    let seed = |ctl: u8, handshake: &[u8]| {
        let mut v = vec![ctl];
        v.extend_from_slice(handshake);
        v.extend_from_slice(&answers);
        v
    };
    // With bit 7 the input brings the handshake too: a simple S0+S1 (zero version field, so
    // no digest to check) and any S2.
    let mut s0s1s2 = vec![3u8];
    s0s1s2.resize(1 + 2 * PACKET_SIZE, 0x5a);
    s0s1s2[5..9].fill(0);
    run(
        fuzzing::rtmp_client_session,
        &[seed(0, &[]), seed(11, &[]), seed(0x80, &s0s1s2)],
        7,
    );
}

#[test]
fn relay_links_survive_mutations() {
    // The answers of a server, then what a parent tier sends its children.
    let mut answers = server_answers();
    let config = SessionConfig::client(4096);
    let mut parent = Session::server(config, &mut StdRng::seed_from_u64(9), 0);
    let mut out = BytesMut::new();
    for (method, name) in [
        ("addStream", "cam"),
        ("addStream", "b"),
        ("removeStream", "cam"),
    ] {
        let values = [
            Amf0Value::string(method),
            Amf0Value::Number(0.0),
            Amf0Value::Null,
            Amf0Value::string(name),
        ];
        parent.write_command(0, false, &values, &mut out);
    }
    let publish_start = [
        Amf0Value::string("onStatus"),
        Amf0Value::Number(0.0),
        Amf0Value::Null,
        info("status", "NetStream.Publish.Start"),
    ];
    parent.write_command(1, false, &publish_start, &mut out);
    answers.extend_from_slice(&out);
    let seeds: Vec<Vec<u8>> = [0u8, 1, 2, 5, 3 * 7 + 2]
        .iter()
        .map(|&ctl| {
            let mut v = vec![ctl];
            v.extend_from_slice(&answers);
            v
        })
        .collect();
    run(fuzzing::relay_links, &seeds, 10);
}

#[test]
fn host_ini_survives_mutations() {
    let seeds: Vec<Vec<u8>> = [
        "#server group name primaryIP;secondaryIP appToConnect\n\
         server1 10.41.1.215;10.200.1.169 livestreamcast_origin\n\
         server 2 [::1]:1936;origin.example.net livestreamcast_origin/room\n",
        "server3 192.168.1.7;192.168.1.7 livestreamcast_origin\r\n",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    run(fuzzing::host_ini, &seeds, 8);
}

#[test]
fn shared_object_messages_survive_mutations() {
    use dataplane::proto::rtmp::shared_object::{SoEvent, SoMessage};
    let message = SoMessage {
        name: "room".into(),
        version: 3,
        persistent: true,
        events: vec![
            SoEvent::Use,
            SoEvent::RequestChange {
                key: "k".into(),
                value: Amf0Value::Amf3(Amf3Value::Array {
                    associative: vec![],
                    dense: vec![Amf3Value::Integer(1)],
                }),
            },
            SoEvent::Change(vec![("a".into(), connect_values()[2].clone())]),
            SoEvent::SendMessage {
                handler: "chat".into(),
                args: connect_values(),
            },
            SoEvent::Status {
                code: "c".into(),
                level: "error".into(),
            },
            SoEvent::RequestRemove("k".into()),
        ],
    };
    let seeds: Vec<Vec<u8>> = [false, true]
        .into_iter()
        .map(|amf3| {
            let mut seed = vec![u8::from(amf3)];
            seed.extend_from_slice(&message.encode(amf3));
            seed
        })
        .collect();
    run(fuzzing::shared_object_message, &seeds, 11);
}

#[test]
fn shared_object_files_survive_mutations() {
    // A file as stratad writes it: magic, format 1, version 5, one slot "k" = "v", checksum.
    let mut body = b"STRATASO\x01".to_vec();
    body.extend_from_slice(&5u32.to_be_bytes());
    body.extend_from_slice(&1u32.to_be_bytes());
    let slot = [&[0u8, 1, b'k'][..], &[0x02, 0, 1, b'v']].concat();
    body.extend_from_slice(&(slot.len() as u32).to_be_bytes());
    body.extend_from_slice(&slot);
    // Mode 1: the entry point appends the checksum, so mutations reach the slots.
    let seed = [&[1u8][..], &body].concat();
    run(fuzzing::shared_object_file, &[seed], 12);
}

#[test]
fn flv_index_survives_mutations() {
    run(
        fuzzing::flv_index,
        &[include_bytes!("../src/media/vod/testdata/avc_aac.flv").to_vec()],
        9,
    );
}

#[test]
fn iso_index_survives_mutations() {
    run(
        fuzzing::iso_index,
        &[
            include_bytes!("../src/media/vod/testdata/avc_aac.mp4").to_vec(),
            include_bytes!("../src/media/vod/testdata/hevc_opus.mp4").to_vec(),
            include_bytes!("../src/media/vod/testdata/avc_mp3.mp4").to_vec(),
        ],
        10,
    );
}

#[test]
fn rtmfp_packets_and_chunks_survive_mutations() {
    let seeds = fuzzing::rtmfp_seeds();
    run(fuzzing::rtmfp_packet, &seeds, 13);
    run(fuzzing::rtmfp_chunks, &seeds, 14);
    run(fuzzing::rtmfp_reassembly, &seeds, 15);
    run(fuzzing::rtmfp_flash_message, &seeds, 16);
}

#[test]
fn rtmfp_handshake_survives_mutations() {
    // The handshake entry seals its input: the plain startup packet is the seed. Fewer
    // rounds: each one makes two endpoints.
    let seeds = fuzzing::rtmfp_seeds();
    let mut rng = StdRng::seed_from_u64(17);
    fuzzing::rtmfp_handshake(&seeds[5]);
    for _ in 0..300 {
        fuzzing::rtmfp_handshake(&mutate(&mut rng, &seeds[1]));
        fuzzing::rtmfp_handshake(&mutate(&mut rng, &seeds[5]));
    }
}
