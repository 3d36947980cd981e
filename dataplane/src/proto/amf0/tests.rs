//! AMF0 codec tests: literal bytes for every marker, round trips, hostile input.

use proptest::prelude::*;

use super::{decode, decode_all, encode, encode_all, Amf0Value};
use crate::proto::amf3::Amf3Value;
use crate::proto::AmfError;

fn s(v: &str) -> Amf0Value {
    Amf0Value::string(v)
}

fn bytes_of(v: &Amf0Value) -> Vec<u8> {
    let mut out = Vec::new();
    encode(v, &mut out);
    out
}

/// A `connect` command body in the shape ffmpeg sends when it publishes.
const FFMPEG_CONNECT: &[u8] = b"\x02\x00\x07connect\
\x00\x3f\xf0\x00\x00\x00\x00\x00\x00\
\x03\
\x00\x03app\x02\x00\x04live\
\x00\x04type\x02\x00\x0anonprivate\
\x00\x08flashVer\x02\x00\x1fFMLE/3.0 (compatible; FMSc/1.0)\
\x00\x05tcUrl\x02\x00\x1artmp://127.0.0.1:1935/live\
\x00\x00\x09";

#[test]
fn ffmpeg_connect_decodes_and_reencodes_identically() {
    let values = decode_all(FFMPEG_CONNECT).expect("connect decodes");
    let expected = vec![
        s("connect"),
        Amf0Value::Number(1.0),
        Amf0Value::object([
            ("app", s("live")),
            ("type", s("nonprivate")),
            ("flashVer", s("FMLE/3.0 (compatible; FMSc/1.0)")),
            ("tcUrl", s("rtmp://127.0.0.1:1935/live")),
        ]),
    ];
    assert_eq!(values, expected);
    assert_eq!(
        values[2].get("app").and_then(Amf0Value::as_str),
        Some("live")
    );
    let mut out = Vec::new();
    encode_all(&values, &mut out);
    assert_eq!(out, FFMPEG_CONNECT);
}

#[test]
fn every_marker_decodes_from_literal_bytes() {
    let cases: Vec<(&[u8], Amf0Value)> =
        vec![
        (b"\x00\x40\x09\x21\xfb\x54\x44\x2d\x18", Amf0Value::Number(std::f64::consts::PI)),
        (b"\x01\x01", Amf0Value::Boolean(true)),
        (b"\x01\x00", Amf0Value::Boolean(false)),
        (b"\x02\x00\x02hi", s("hi")),
        (b"\x03\x00\x01a\x05\x00\x00\x09", Amf0Value::object([("a", Amf0Value::Null)])),
        (b"\x05", Amf0Value::Null),
        (b"\x06", Amf0Value::Undefined),
        (b"\x07\x01\x02", Amf0Value::Reference(0x0102)),
        (
            b"\x08\x00\x00\x00\x01\x00\x08duration\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x09",
            Amf0Value::EcmaArray(vec![("duration".into(), Amf0Value::Number(0.0))]),
        ),
        (
            b"\x0a\x00\x00\x00\x02\x05\x01\x00",
            Amf0Value::StrictArray(vec![Amf0Value::Null, Amf0Value::Boolean(false)]),
        ),
        (
            b"\x0b\x42\x77\x48\x76\xe8\x00\x00\x00\xff\xc4",
            Amf0Value::Date { millis: 1_600_000_000_000.0, time_zone: -60 },
        ),
        (b"\x0c\x00\x00\x00\x03abc", Amf0Value::LongString("abc".into())),
        (b"\x0f\x00\x00\x00\x04<a/>", Amf0Value::XmlDocument("<a/>".into())),
        (
            b"\x10\x00\x03Foo\x00\x01x\x06\x00\x00\x09",
            Amf0Value::TypedObject {
                class_name: "Foo".into(),
                properties: vec![("x".into(), Amf0Value::Undefined)],
            },
        ),
        (b"\x11\x04\x7f", Amf0Value::Amf3(Amf3Value::Integer(127))),
    ];
    for (bytes, expected) in cases {
        let mut input = bytes;
        assert_eq!(decode(&mut input), Ok(expected.clone()), "{bytes:02x?}");
        assert!(input.is_empty(), "{bytes:02x?} left {input:02x?}");
        assert_eq!(bytes_of(&expected), bytes, "{expected:?}");
    }
}

#[test]
fn reserved_and_unknown_markers_are_rejected() {
    for m in [0x04u8, 0x0d, 0x0e] {
        assert_eq!(decode_all(&[m]), Err(AmfError::UnsupportedAmf0Marker(m)));
    }
    assert_eq!(decode_all(&[0x13]), Err(AmfError::UnknownAmf0Marker(0x13)));
    assert_eq!(decode_all(&[0x09]), Err(AmfError::UnexpectedObjectEnd));
    assert_eq!(
        AmfError::UnknownAmf0Marker(0x13).to_string(),
        "unknown AMF0 marker 0x13"
    );
}

#[test]
fn object_needs_its_end_marker() {
    assert_eq!(
        decode_all(b"\x03\x00\x00\x05"),
        Err(AmfError::MissingObjectEnd)
    );
    assert_eq!(
        decode_all(b"\x03\x00\x01a\x05"),
        Err(AmfError::TruncatedAmf0)
    );
}

#[test]
fn ecma_array_may_end_with_the_message() {
    let bytes = b"\x02\x00\x0aonMetaData\x08\x00\x00\x00\x01\x00\x05width\x00\x40\x94\x00\x00\x00\x00\x00\x00";
    let values = decode_all(bytes).expect("decodes");
    assert_eq!(
        values[1].get("width").and_then(Amf0Value::as_f64),
        Some(1280.0)
    );
    // An object is not so lenient.
    assert_eq!(
        decode_all(b"\x03\x00\x01a\x05"),
        Err(AmfError::TruncatedAmf0)
    );
}

#[test]
fn truncated_values_are_errors() {
    for bytes in [
        &b"\x00\x01"[..],
        b"\x02\x00\x05ab",
        b"\x0c\xff\xff\xff\xff",
        b"\x0b\x00",
    ] {
        assert_eq!(
            decode_all(bytes),
            Err(AmfError::TruncatedAmf0),
            "{bytes:02x?}"
        );
    }
}

#[test]
fn huge_declared_strict_array_does_not_preallocate() {
    // Four billion declared items, two bytes of input: must fail fast, not allocate.
    assert_eq!(
        decode_all(b"\x0a\xff\xff\xff\xff\x05\x05"),
        Err(AmfError::TruncatedAmf0)
    );
}

#[test]
fn nesting_beyond_the_limit_is_rejected() {
    let deep = |levels: usize| {
        let mut bytes = b"\x0a\x00\x00\x00\x01".repeat(levels);
        bytes.push(0x05);
        bytes
    };
    assert!(decode_all(&deep(64)).is_ok());
    assert_eq!(decode_all(&deep(65)), Err(AmfError::TooDeep));
    assert_eq!(AmfError::TooDeep.to_string(), "AMF nesting deeper than 64");
}

#[test]
fn amf3_values_in_one_message_share_the_decode_budget() {
    // One AMF3 value expanding to about 70,000 nodes through references: four levels of
    // arrays of 16 references to the level below.
    let mut amf3 = vec![0x11, 0x09, 0x0b, 0x01, 0x09, 0x03, 0x01, 0x01];
    for level in 0..4u8 {
        amf3.extend_from_slice(&[0x09, 0x21, 0x01]);
        for _ in 0..16 {
            amf3.extend_from_slice(&[0x09, (level + 1) << 1]);
        }
    }
    assert!(decode_all(&amf3).is_ok());
    let message = amf3.repeat(20);
    assert_eq!(decode_all(&message), Err(AmfError::TooManyNodes));
}

#[test]
fn a_million_tiny_values_exceed_the_node_budget() {
    // Each null is one byte on the wire but a whole value in memory.
    let mut bytes = b"\x0a\x00\x10\x00\x00".to_vec();
    bytes.resize(bytes.len() + 0x10_0000, 0x05);
    assert_eq!(decode_all(&bytes), Err(AmfError::TooManyNodes));
}

#[test]
fn string_longer_than_64k_encodes_as_long_string() {
    let long = "x".repeat(70_000);
    let bytes = bytes_of(&Amf0Value::String(long.clone()));
    assert_eq!(bytes[0], 0x0c);
    assert_eq!(decode_all(&bytes), Ok(vec![Amf0Value::LongString(long)]));
}

#[test]
fn overlong_and_empty_keys_are_normalised() {
    let key = "é".repeat(40_000); // 80,000 bytes: cut to 65,534 (a character boundary)
    let value = Amf0Value::object([
        (key.clone(), Amf0Value::Null),
        (String::new(), Amf0Value::Null),
    ]);
    let decoded = decode_all(&bytes_of(&value)).expect("normalised object decodes");
    let props = decoded[0].properties().expect("an object");
    assert_eq!(props.len(), 1);
    assert_eq!(props[0].0.len(), 65_534);
    assert!(key.starts_with(&props[0].0));
}

fn arb_key() -> impl Strategy<Value = String> + Clone {
    "[a-z]{1,6}|\\PC{1,12}"
}

fn finite_f64() -> impl Strategy<Value = f64> {
    any::<f64>().prop_filter("NaN is not equal to itself", |f| !f.is_nan())
}

pub(crate) fn arb_amf0() -> impl Strategy<Value = Amf0Value> {
    let leaf = prop_oneof![
        finite_f64().prop_map(Amf0Value::Number),
        any::<bool>().prop_map(Amf0Value::Boolean),
        "\\PC{0,20}".prop_map(Amf0Value::String),
        Just(Amf0Value::Null),
        Just(Amf0Value::Undefined),
        any::<u16>().prop_map(Amf0Value::Reference),
        (finite_f64(), any::<i16>())
            .prop_map(|(millis, time_zone)| Amf0Value::Date { millis, time_zone }),
        "\\PC{0,20}".prop_map(Amf0Value::LongString),
        "\\PC{0,20}".prop_map(Amf0Value::XmlDocument),
        crate::proto::amf3::tests::arb_amf3().prop_map(Amf0Value::Amf3),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        let props = prop::collection::vec((arb_key(), inner.clone()), 0..6);
        prop_oneof![
            props.clone().prop_map(Amf0Value::Object),
            props.clone().prop_map(Amf0Value::EcmaArray),
            prop::collection::vec(inner, 0..6).prop_map(Amf0Value::StrictArray),
            ("\\PC{0,8}", props).prop_map(|(class_name, properties)| {
                Amf0Value::TypedObject {
                    class_name,
                    properties,
                }
            }),
        ]
    })
}

fn has_ecma_array(value: &Amf0Value) -> bool {
    match value {
        Amf0Value::EcmaArray(_) => true,
        Amf0Value::StrictArray(items) => items.iter().any(has_ecma_array),
        other => other
            .properties()
            .is_some_and(|p| p.iter().any(|(_, v)| has_ecma_array(v))),
    }
}

proptest! {
    #[test]
    fn any_message_round_trips(values in prop::collection::vec(arb_amf0(), 0..4)) {
        let mut bytes = Vec::new();
        encode_all(&values, &mut bytes);
        prop_assert_eq!(decode_all(&bytes), Ok(values));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        crate::fuzzing::amf0_decode(&bytes);
    }

    #[test]
    fn truncating_a_valid_message_is_an_error_not_a_panic(
        value in arb_amf0(), cut in any::<prop::sample::Index>()
    ) {
        let bytes = bytes_of(&value);
        let cut = cut.index(bytes.len());
        let mut input = &bytes[..cut];
        let result = decode(&mut input);
        // An ECMA array may legitimately end with the input (see above).
        prop_assert!(result.is_err() || has_ecma_array(&value), "{:?}", result);
    }
}
