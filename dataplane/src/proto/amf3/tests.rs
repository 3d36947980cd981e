//! AMF3 codec tests: literal bytes for every marker and table, round trips, hostile input.

use proptest::prelude::*;

use super::{decode, encode, Amf3Decoder, Amf3Encoder, Amf3Traits, Amf3Value};
use crate::proto::AmfError;

fn bytes_of(v: &Amf3Value) -> Vec<u8> {
    let mut out = Vec::new();
    encode(v, &mut out);
    out
}

fn decode_exact(bytes: &[u8]) -> Result<Amf3Value, AmfError> {
    let mut input = bytes;
    let v = decode(&mut input)?;
    assert!(input.is_empty(), "{bytes:02x?} left {input:02x?}");
    Ok(v)
}

fn s(v: &str) -> Amf3Value {
    Amf3Value::String(v.into())
}

fn anonymous(dynamic: bool, sealed_names: &[&str]) -> Amf3Traits {
    Amf3Traits {
        class_name: String::new(),
        dynamic,
        externalizable: false,
        sealed_names: sealed_names.iter().map(|n| n.to_string()).collect(),
    }
}

#[test]
fn every_marker_decodes_from_literal_bytes_and_encodes_back() {
    let cases: Vec<(&[u8], Amf3Value)> = vec![
        (b"\x00", Amf3Value::Undefined),
        (b"\x01", Amf3Value::Null),
        (b"\x02", Amf3Value::Boolean(false)),
        (b"\x03", Amf3Value::Boolean(true)),
        (b"\x04\x00", Amf3Value::Integer(0)),
        (b"\x04\x7f", Amf3Value::Integer(127)),
        (b"\x04\x81\x00", Amf3Value::Integer(128)),
        (b"\x04\xff\x7f", Amf3Value::Integer(0x3fff)),
        (b"\x04\x81\x80\x00", Amf3Value::Integer(0x4000)),
        (b"\x04\x80\xc0\x80\x00", Amf3Value::Integer(0x20_0000)),
        (b"\x04\xbf\xff\xff\xff", Amf3Value::Integer((1 << 28) - 1)),
        (b"\x04\xc0\x80\x80\x00", Amf3Value::Integer(-(1 << 28))),
        (b"\x04\xff\xff\xff\xff", Amf3Value::Integer(-1)),
        (
            b"\x05\x3f\xf8\x00\x00\x00\x00\x00\x00",
            Amf3Value::Double(1.5),
        ),
        (b"\x06\x01", s("")),
        (b"\x06\x05hi", s("hi")),
        (b"\x07\x09<a/>", Amf3Value::XmlDocument("<a/>".into())),
        (
            b"\x08\x01\x42\x77\x48\x76\xe8\x00\x00\x00",
            Amf3Value::Date(1.6e12),
        ),
        (
            b"\x09\x05\x03k\x04\x01\x01\x02\x03",
            Amf3Value::Array {
                associative: vec![("k".into(), Amf3Value::Integer(1))],
                dense: vec![Amf3Value::Boolean(false), Amf3Value::Boolean(true)],
            },
        ),
        (
            // Sealed member `x`, dynamic member `y`, anonymous class.
            b"\x0a\x1b\x01\x03x\x04\x01\x03y\x04\x02\x01",
            Amf3Value::Object {
                traits: anonymous(true, &["x"]),
                sealed: vec![Amf3Value::Integer(1)],
                dynamic: vec![("y".into(), Amf3Value::Integer(2))],
                external: None,
            },
        ),
        (b"\x0b\x09<b/>", Amf3Value::Xml("<b/>".into())),
        (b"\x0c\x07\x01\x02\x03", Amf3Value::ByteArray(vec![1, 2, 3])),
        (
            b"\x0d\x05\x01\x00\x00\x00\x01\xff\xff\xff\xff",
            Amf3Value::VectorInt {
                fixed: true,
                items: vec![1, -1],
            },
        ),
        (
            b"\x0e\x03\x00\xff\xff\xff\xff",
            Amf3Value::VectorUint {
                fixed: false,
                items: vec![u32::MAX],
            },
        ),
        (
            b"\x0f\x03\x00\x3f\xf8\x00\x00\x00\x00\x00\x00",
            Amf3Value::VectorDouble {
                fixed: false,
                items: vec![1.5],
            },
        ),
        (
            b"\x10\x05\x00\x03*\x01\x06\x03a",
            Amf3Value::VectorObject {
                fixed: false,
                type_name: "*".into(),
                items: vec![Amf3Value::Null, s("a")],
            },
        ),
        (
            b"\x11\x03\x01\x06\x03k\x04\x05",
            Amf3Value::Dictionary {
                weak_keys: true,
                entries: vec![(s("k"), Amf3Value::Integer(5))],
            },
        ),
    ];
    for (bytes, expected) in cases {
        assert_eq!(decode_exact(bytes), Ok(expected.clone()), "{bytes:02x?}");
        assert_eq!(bytes_of(&expected), bytes, "{expected:?}");
    }
}

#[test]
fn strings_are_referenced_but_the_empty_string_never_enters_the_table() {
    // ["", "ab", "", "ab" by reference 0]; had "" entered the table, 0 would be "".
    let bytes = b"\x09\x09\x01\x06\x01\x06\x05ab\x06\x01\x06\x00";
    let expected = Amf3Value::Array {
        associative: vec![],
        dense: vec![s(""), s("ab"), s(""), s("ab")],
    };
    assert_eq!(decode_exact(bytes), Ok(expected.clone()));
    assert_eq!(bytes_of(&expected), bytes);
}

#[test]
fn traits_are_referenced_and_objects_resolve_to_copies() {
    let point = |x: i32| Amf3Value::Object {
        traits: Amf3Traits {
            class_name: "P".into(),
            dynamic: false,
            externalizable: false,
            sealed_names: vec!["x".into()],
        },
        sealed: vec![Amf3Value::Integer(x)],
        dynamic: vec![],
        external: None,
    };
    // [P{x:1}, P{x:2} (traits ref 0), object ref 1 = the first P]: the array is object 0.
    let bytes = b"\x09\x07\x01\x0a\x13\x03P\x03x\x04\x01\x0a\x01\x04\x02\x0a\x02";
    let decoded = decode_exact(bytes).expect("decodes");
    assert_eq!(
        decoded,
        Amf3Value::Array {
            associative: vec![],
            dense: vec![point(1), point(2), point(1)]
        }
    );
    // The encoder writes the traits by reference and the object again in full.
    assert_eq!(
        bytes_of(&decoded),
        b"\x09\x07\x01\x0a\x13\x03P\x03x\x04\x01\x0a\x01\x04\x02\x0a\x01\x04\x01"
    );
}

#[test]
fn every_complex_value_enters_the_object_table_before_its_children() {
    // [date, xmldoc, xml, bytearray, vector<int>, dictionary{}, [], ref 1..=7 ...]:
    // the outer array is object 0, the others 1..=7 in order.
    let mut bytes = b"\x09\x1d\x01".to_vec();
    bytes.extend_from_slice(b"\x08\x01\x00\x00\x00\x00\x00\x00\x00\x00"); // 1 date
    bytes.extend_from_slice(b"\x07\x03d"); // 2 xml document
    bytes.extend_from_slice(b"\x0b\x03x"); // 3 xml
    bytes.extend_from_slice(b"\x0c\x03\x09"); // 4 byte array
    bytes.extend_from_slice(b"\x0d\x01\x00"); // 5 vector<int>
    bytes.extend_from_slice(b"\x11\x01\x00"); // 6 dictionary
    bytes.extend_from_slice(b"\x09\x01\x01"); // 7 array
    for (marker, index) in [
        (0x08u8, 1u8),
        (0x07, 2),
        (0x0b, 3),
        (0x0c, 4),
        (0x0d, 5),
        (0x11, 6),
        (0x09, 7),
    ] {
        bytes.extend_from_slice(&[marker, index << 1]);
    }
    let Ok(Amf3Value::Array { dense, .. }) = decode_exact(&bytes) else {
        panic!("an array")
    };
    assert_eq!(dense.len(), 14);
    assert_eq!(dense[..7], dense[7..]);
}

#[test]
fn a_reference_to_an_unfinished_object_is_a_cycle() {
    // An array whose only element refers to the array itself.
    assert_eq!(
        decode_exact(b"\x09\x03\x01\x09\x00"),
        Err(AmfError::ReferenceCycle(0))
    );
}

#[test]
fn bad_references_are_errors() {
    assert_eq!(
        decode_exact(b"\x06\x02"),
        Err(AmfError::BadStringReference(1))
    );
    assert_eq!(
        decode_exact(b"\x0c\x04"),
        Err(AmfError::BadObjectReference(2))
    );
    assert_eq!(
        decode_exact(b"\x0a\x05"),
        Err(AmfError::BadTraitsReference(1))
    );
    assert_eq!(
        decode_exact(b"\x12"),
        Err(AmfError::UnknownAmf3Marker(0x12))
    );
}

#[test]
fn integers_outside_29_bits_encode_as_doubles() {
    for i in [1 << 28, -(1 << 28) - 1, i32::MAX, i32::MIN] {
        assert_eq!(
            decode_exact(&bytes_of(&Amf3Value::Integer(i))),
            Ok(Amf3Value::Double(f64::from(i)))
        );
    }
}

#[test]
fn opaque_externalizable_objects_are_rejected() {
    assert_eq!(
        decode_exact(b"\x0a\x07\x07a.B\x00"),
        Err(AmfError::Externalizable("a.B".into()))
    );
}

#[test]
fn array_collection_body_is_one_value_kept_self_contained() {
    // ArrayCollection wrapping ["ab"], followed by "ab" by reference in the same message.
    let mut bytes = b"\x09\x05\x01\x0a\x07\x43flex.messaging.io.ArrayCollection".to_vec();
    bytes.extend_from_slice(b"\x09\x03\x01\x06\x05ab\x06\x02");
    let decoded = decode_exact(&bytes).expect("decodes");
    let Amf3Value::Array { dense, .. } = &decoded else {
        panic!("an array")
    };
    assert_eq!(dense[1], s("ab"));
    let Amf3Value::Object {
        external: Some(body),
        traits,
        ..
    } = &dense[0]
    else {
        panic!("an object")
    };
    assert!(traits.externalizable);
    assert_eq!(
        decode_exact(body),
        Ok(Amf3Value::Array {
            associative: vec![],
            dense: vec![s("ab")]
        })
    );
    assert_eq!(decode_exact(&bytes_of(&decoded)), Ok(decoded.clone()));
    assert_eq!(bytes_of(&decoded), bytes);
}

#[test]
fn huge_declared_counts_do_not_preallocate() {
    for bytes in [
        &b"\x09\xff\xff\xff\xff\x01"[..],
        b"\x0d\xff\xff\xff\xff\x00",
        b"\x11\xff\xff\xff\xff\x00",
    ] {
        assert!(decode_exact(bytes).is_err(), "{bytes:02x?}");
    }
}

#[test]
fn nesting_beyond_the_limit_is_rejected() {
    let deep = |levels: usize| {
        let mut bytes = b"\x09\x03\x01".repeat(levels);
        bytes.push(0x01);
        bytes
    };
    assert!(decode_exact(&deep(64)).is_ok());
    assert_eq!(decode_exact(&deep(65)), Err(AmfError::TooDeep));
}

#[test]
fn references_cannot_build_a_tree_deeper_than_the_limit() {
    // A 40-deep array, then an array 30 deep whose innermost element refers to it.
    let mut bytes = b"\x09\x05\x01".to_vec();
    bytes.extend_from_slice(&b"\x09\x03\x01".repeat(40));
    bytes.push(0x01);
    bytes.extend_from_slice(&b"\x09\x03\x01".repeat(30));
    bytes.extend_from_slice(b"\x09\x02");
    assert_eq!(decode_exact(&bytes), Err(AmfError::TooDeep));
}

#[test]
fn reference_expansion_is_bounded_by_the_node_budget() {
    // Each level is an array of 16 references to the previous level: 16^n nodes from a
    // few hundred bytes.
    let mut bytes = Vec::new();
    let levels = 8u8;
    bytes.extend_from_slice(&[0x09, (levels << 1) | 1, 0x01]);
    bytes.extend_from_slice(b"\x09\x03\x01\x01"); // object 1: [null]
    for level in 0..levels - 1 {
        bytes.extend_from_slice(&[0x09, 0x21, 0x01]); // 16 dense items
        for _ in 0..16 {
            bytes.extend_from_slice(&[0x09, (level + 1) << 1]);
        }
    }
    assert_eq!(decode_exact(&bytes), Err(AmfError::TooManyNodes));
}

#[test]
fn a_decoder_keeps_its_tables_across_values() {
    let mut encoder = Amf3Encoder::new();
    let mut bytes = Vec::new();
    encoder.encode(&s("repeat"), &mut bytes);
    encoder.encode(&s("repeat"), &mut bytes);
    assert_eq!(bytes, b"\x06\x0drepeat\x06\x00");
    let mut decoder = Amf3Decoder::new();
    let mut input = bytes.as_slice();
    assert_eq!(decoder.decode(&mut input), Ok(s("repeat")));
    assert_eq!(decoder.decode(&mut input), Ok(s("repeat")));
    assert!(input.is_empty());
}

fn finite_f64() -> impl Strategy<Value = f64> {
    any::<f64>().prop_filter("NaN is not equal to itself", |f| !f.is_nan())
}

/// Few distinct names, so that string and traits references occur.
fn arb_name() -> impl Strategy<Value = String> + Clone {
    "[a-c]{1,2}|\\PC{1,8}"
}

fn arb_traits() -> impl Strategy<Value = Amf3Traits> {
    (
        "[A-B]{0,1}",
        any::<bool>(),
        prop::collection::vec(arb_name(), 0..3),
    )
        .prop_map(|(class_name, dynamic, sealed_names)| Amf3Traits {
            class_name,
            dynamic,
            externalizable: false,
            sealed_names,
        })
}

/// An externalizable Flex ArrayCollection wrapping `inner`, as the decoder represents it.
fn array_collection(inner: &Amf3Value) -> Amf3Value {
    Amf3Value::Object {
        traits: Amf3Traits {
            class_name: "flex.messaging.io.ArrayCollection".into(),
            dynamic: false,
            externalizable: true,
            sealed_names: vec![],
        },
        sealed: vec![],
        dynamic: vec![],
        external: Some(bytes_of(inner)),
    }
}

pub(crate) fn arb_amf3() -> impl Strategy<Value = Amf3Value> {
    let leaf = prop_oneof![
        Just(Amf3Value::Undefined),
        Just(Amf3Value::Null),
        any::<bool>().prop_map(Amf3Value::Boolean),
        ((-(1 << 28))..(1 << 28)).prop_map(Amf3Value::Integer),
        finite_f64().prop_map(Amf3Value::Double),
        prop_oneof![arb_name(), Just(String::new())].prop_map(Amf3Value::String),
        "\\PC{0,10}".prop_map(Amf3Value::XmlDocument),
        finite_f64().prop_map(Amf3Value::Date),
        "\\PC{0,10}".prop_map(Amf3Value::Xml),
        prop::collection::vec(any::<u8>(), 0..10).prop_map(Amf3Value::ByteArray),
        (any::<bool>(), prop::collection::vec(any::<i32>(), 0..5))
            .prop_map(|(fixed, items)| Amf3Value::VectorInt { fixed, items }),
        (any::<bool>(), prop::collection::vec(any::<u32>(), 0..5))
            .prop_map(|(fixed, items)| Amf3Value::VectorUint { fixed, items }),
        (any::<bool>(), prop::collection::vec(finite_f64(), 0..5))
            .prop_map(|(fixed, items)| Amf3Value::VectorDouble { fixed, items }),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        let props = prop::collection::vec((arb_name(), inner.clone()), 0..4);
        prop_oneof![
            (props.clone(), prop::collection::vec(inner.clone(), 0..4))
                .prop_map(|(associative, dense)| Amf3Value::Array { associative, dense }),
            (arb_traits(), prop::collection::vec(inner.clone(), 3), props).prop_map(
                |(traits, mut sealed, dynamic)| {
                    sealed.truncate(traits.sealed_names.len());
                    let dynamic = if traits.dynamic { dynamic } else { Vec::new() };
                    Amf3Value::Object {
                        traits,
                        sealed,
                        dynamic,
                        external: None,
                    }
                }
            ),
            (
                any::<bool>(),
                "\\*|[A-B]{0,1}",
                prop::collection::vec(inner.clone(), 0..4)
            )
                .prop_map(|(fixed, type_name, items)| Amf3Value::VectorObject {
                    fixed,
                    type_name,
                    items
                }),
            (
                any::<bool>(),
                prop::collection::vec((inner.clone(), inner.clone()), 0..3)
            )
                .prop_map(|(weak_keys, entries)| Amf3Value::Dictionary { weak_keys, entries }),
            inner.prop_map(|v| array_collection(&v)),
        ]
    })
}

proptest! {
    #[test]
    fn any_value_round_trips(value in arb_amf3()) {
        prop_assert_eq!(decode_exact(&bytes_of(&value)), Ok(value));
    }

    #[test]
    fn a_sequence_round_trips_through_shared_tables(values in prop::collection::vec(arb_amf3(), 0..4)) {
        let mut encoder = Amf3Encoder::new();
        let mut bytes = Vec::new();
        for v in &values {
            encoder.encode(v, &mut bytes);
        }
        let mut decoder = Amf3Decoder::new();
        let mut input = bytes.as_slice();
        for v in &values {
            prop_assert_eq!(&decoder.decode(&mut input).expect("decodes"), v);
        }
        prop_assert!(input.is_empty());
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        crate::fuzzing::amf3_decode(&bytes);
    }

    #[test]
    fn arbitrary_bytes_after_a_marker_never_panic(
        m in 0u8..0x12, bytes in prop::collection::vec(any::<u8>(), 0..64)
    ) {
        let mut input = vec![m];
        input.extend(bytes);
        crate::fuzzing::amf3_decode(&input);
    }
}
