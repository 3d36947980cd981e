//! AMF values as JSON and back: how RPC arguments and results cross to the manager, its
//! webhooks and operators (`stratactl call`, the admin API). The mapping is documented in
//! README.md ("RPC: AMF as JSON"); in short, JSON's own types map to themselves and every
//! AMF type JSON lacks is an object with one `$`-named marker key:
//!
//! | AMF                                   | JSON                                   |
//! | ------------------------------------- | -------------------------------------- |
//! | number, AMF3 integer/double           | number (NaN, ±Infinity: `{"$number": "NaN"}`) |
//! | string, long string                   | string                                 |
//! | boolean, null                         | boolean, null                          |
//! | undefined                             | `{"$undefined": true}`                 |
//! | anonymous object                      | object (`{"$object": {...}}` if a key starts with `$`) |
//! | ECMA array                            | `{"$ecma": {...}}` (AMF3: `"$dense": [...]` too) |
//! | strict array, AMF3 dense array, vectors | array                                |
//! | typed object                          | `{"$class": name, ...properties}`      |
//! | AMF3 externalizable object            | `{"$class": name, "$external": base64}` |
//! | date                                  | `{"$date": milliseconds since the epoch}` |
//! | XML document, AMF3 XML                | `{"$xml": text}`                       |
//! | AMF3 ByteArray                        | `{"$bytes": base64}`                   |
//! | AMF3 Dictionary                       | `{"$dictionary": [[key, value], ...]}` |
//! | AMF0 reference                        | `{"$ref": index}`                      |
//!
//! From JSON, values come back as AMF0 (AMF3 only for a ByteArray, which AMF0 lacks, behind
//! the 0x11 marker). JSON objects have no order, so properties come back in key order.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::{Map, Number, Value};

use crate::proto::amf0::Amf0Value;
use crate::proto::amf3::Amf3Value;

/// An AMF value as JSON.
pub(crate) fn to_json(value: &Amf0Value) -> Value {
    match value {
        Amf0Value::Number(n) => number(*n),
        Amf0Value::Boolean(b) => Value::Bool(*b),
        Amf0Value::String(s) | Amf0Value::LongString(s) => Value::String(s.clone()),
        Amf0Value::Object(props) => plain_object(props.iter().map(|(k, v)| (k, to_json(v)))),
        Amf0Value::Null => Value::Null,
        Amf0Value::Undefined => undefined(),
        Amf0Value::Reference(i) => marked("$ref", Value::from(*i)),
        Amf0Value::EcmaArray(props) => marked("$ecma", properties(props)),
        Amf0Value::StrictArray(items) => Value::Array(items.iter().map(to_json).collect()),
        Amf0Value::Date { millis, .. } => marked("$date", number(*millis)),
        Amf0Value::XmlDocument(s) => marked("$xml", Value::String(s.clone())),
        Amf0Value::TypedObject {
            class_name,
            properties,
        } => typed(class_name, properties.iter().map(|(k, v)| (k, to_json(v)))),
        Amf0Value::Amf3(v) => amf3_to_json(v),
    }
}

fn amf3_to_json(value: &Amf3Value) -> Value {
    match value {
        Amf3Value::Undefined => undefined(),
        Amf3Value::Null => Value::Null,
        Amf3Value::Boolean(b) => Value::Bool(*b),
        Amf3Value::Integer(i) => Value::from(*i),
        Amf3Value::Double(d) => number(*d),
        Amf3Value::String(s) => Value::String(s.clone()),
        Amf3Value::XmlDocument(s) | Amf3Value::Xml(s) => marked("$xml", Value::String(s.clone())),
        Amf3Value::Date(ms) => marked("$date", number(*ms)),
        Amf3Value::Array { associative, dense } if associative.is_empty() => {
            Value::Array(dense.iter().map(amf3_to_json).collect())
        }
        Amf3Value::Array { associative, dense } => {
            let mut m = Map::new();
            let assoc = associative
                .iter()
                .map(|(k, v)| (k.clone(), amf3_to_json(v)));
            m.insert("$ecma".into(), Value::Object(assoc.collect()));
            if !dense.is_empty() {
                let items = dense.iter().map(amf3_to_json).collect();
                m.insert("$dense".into(), Value::Array(items));
            }
            Value::Object(m)
        }
        Amf3Value::Object {
            traits,
            sealed,
            dynamic,
            external,
        } => {
            if let Some(bytes) = external {
                let mut m = Map::new();
                m.insert("$class".into(), Value::String(traits.class_name.clone()));
                m.insert("$external".into(), Value::String(BASE64.encode(bytes)));
                return Value::Object(m);
            }
            let props = traits
                .sealed_names
                .iter()
                .zip(sealed)
                .chain(dynamic.iter().map(|(k, v)| (k, v)))
                .map(|(k, v)| (k, amf3_to_json(v)));
            if traits.class_name.is_empty() {
                plain_object(props)
            } else {
                typed(&traits.class_name, props)
            }
        }
        Amf3Value::ByteArray(bytes) => marked("$bytes", Value::String(BASE64.encode(bytes))),
        Amf3Value::VectorInt { items, .. } => items.iter().map(|i| Value::from(*i)).collect(),
        Amf3Value::VectorUint { items, .. } => items.iter().map(|i| Value::from(*i)).collect(),
        Amf3Value::VectorDouble { items, .. } => items.iter().map(|d| number(*d)).collect(),
        Amf3Value::VectorObject { items, .. } => items.iter().map(amf3_to_json).collect(),
        Amf3Value::Dictionary { entries, .. } => {
            let pairs = entries
                .iter()
                .map(|(k, v)| Value::Array(vec![amf3_to_json(k), amf3_to_json(v)]))
                .collect();
            marked("$dictionary", Value::Array(pairs))
        }
    }
}

fn number(n: f64) -> Value {
    match Number::from_f64(n) {
        Some(n) => Value::Number(n),
        None => {
            let name = if n.is_nan() {
                "NaN"
            } else if n > 0.0 {
                "Infinity"
            } else {
                "-Infinity"
            };
            marked("$number", Value::String(name.into()))
        }
    }
}

fn undefined() -> Value {
    marked("$undefined", Value::Bool(true))
}

fn marked(key: &str, value: Value) -> Value {
    let mut m = Map::new();
    m.insert(key.into(), value);
    Value::Object(m)
}

fn properties(props: &[(String, Amf0Value)]) -> Value {
    Value::Object(props.iter().map(|(k, v)| (k.clone(), to_json(v))).collect())
}

/// An anonymous object; wrapped in `$object` when one of its keys would read as a marker.
fn plain_object<'a>(props: impl Iterator<Item = (&'a String, Value)>) -> Value {
    let m: Map<String, Value> = props.map(|(k, v)| (k.clone(), v)).collect();
    if m.keys().any(|k| k.starts_with('$')) {
        marked("$object", Value::Object(m))
    } else {
        Value::Object(m)
    }
}

fn typed<'a>(class: &str, props: impl Iterator<Item = (&'a String, Value)>) -> Value {
    let mut m = Map::new();
    m.insert("$class".into(), Value::String(class.into()));
    for (k, v) in props {
        m.insert(k.clone(), v);
    }
    Value::Object(m)
}

/// A JSON value that does not follow the mapping (a marker with a value of the wrong type).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct JsonAmfError(String);

fn bad(what: &str, value: &Value) -> JsonAmfError {
    let mut shown = value.to_string();
    if shown.len() > 80 {
        let cut = (0..=80)
            .rev()
            .find(|i| shown.is_char_boundary(*i))
            .unwrap_or(0);
        shown.truncate(cut);
        shown.push('…');
    }
    JsonAmfError(format!("{what}: {shown}"))
}

/// A JSON value as AMF (see the module's table). Nesting is bounded by the JSON parser's
/// own recursion limit (serde_json: 128).
pub(crate) fn from_json(value: &Value) -> Result<Amf0Value, JsonAmfError> {
    Ok(match value {
        Value::Null => Amf0Value::Null,
        Value::Bool(b) => Amf0Value::Boolean(*b),
        Value::Number(n) => Amf0Value::Number(n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => Amf0Value::String(s.clone()),
        Value::Array(items) => {
            Amf0Value::StrictArray(items.iter().map(from_json).collect::<Result<_, _>>()?)
        }
        Value::Object(m) => object_from_json(m)?,
    })
}

fn object_from_json(m: &Map<String, Value>) -> Result<Amf0Value, JsonAmfError> {
    let single = if m.len() == 1 { m.iter().next() } else { None };
    if let Some((key, v)) = single {
        match key.as_str() {
            "$undefined" => return Ok(Amf0Value::Undefined),
            "$number" => {
                let n = match v.as_str() {
                    Some("NaN") => f64::NAN,
                    Some("Infinity") => f64::INFINITY,
                    Some("-Infinity") => f64::NEG_INFINITY,
                    _ => {
                        return Err(bad(
                            "$number must be \"NaN\", \"Infinity\" or \"-Infinity\"",
                            v,
                        ))
                    }
                };
                return Ok(Amf0Value::Number(n));
            }
            "$date" => {
                let millis = match v {
                    Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
                    Value::Object(_) => match from_json(v)? {
                        Amf0Value::Number(n) => n,
                        _ => return Err(bad("$date must be a number", v)),
                    },
                    _ => return Err(bad("$date must be a number", v)),
                };
                return Ok(Amf0Value::Date {
                    millis,
                    time_zone: 0,
                });
            }
            "$xml" => {
                let s = v.as_str().ok_or_else(|| bad("$xml must be a string", v))?;
                return Ok(Amf0Value::XmlDocument(s.into()));
            }
            "$bytes" => {
                let s = v.as_str().ok_or_else(|| bad("$bytes must be base64", v))?;
                let bytes = BASE64
                    .decode(s)
                    .map_err(|_| bad("$bytes must be base64", v))?;
                return Ok(Amf0Value::Amf3(Amf3Value::ByteArray(bytes)));
            }
            "$ref" => {
                let i = v
                    .as_u64()
                    .and_then(|i| u16::try_from(i).ok())
                    .ok_or_else(|| bad("$ref must be an integer 0..65535", v))?;
                return Ok(Amf0Value::Reference(i));
            }
            "$ecma" => {
                let props = v
                    .as_object()
                    .ok_or_else(|| bad("$ecma must be an object", v))?;
                return Ok(Amf0Value::EcmaArray(props_from_json(props)?));
            }
            "$object" => {
                let props = v
                    .as_object()
                    .ok_or_else(|| bad("$object must be an object", v))?;
                return Ok(Amf0Value::Object(props_from_json(props)?));
            }
            "$dictionary" => {
                // AMF0 has no dictionary: an ECMA array keyed by the keys' JSON text.
                let pairs = v
                    .as_array()
                    .ok_or_else(|| bad("$dictionary must be [[key, value], ...]", v))?;
                let mut props = Vec::with_capacity(pairs.len());
                for p in pairs {
                    let [k, v] = p.as_array().map(Vec::as_slice).unwrap_or_default() else {
                        return Err(bad("$dictionary must be [[key, value], ...]", p));
                    };
                    let key = k.as_str().map_or_else(|| k.to_string(), str::to_string);
                    props.push((key, from_json(v)?));
                }
                return Ok(Amf0Value::EcmaArray(props));
            }
            _ => {}
        }
    }
    if let Some(class) = m.get("$class") {
        let class_name = class
            .as_str()
            .ok_or_else(|| bad("$class must be a string", class))?
            .to_string();
        let rest = m.iter().filter(|(k, _)| *k != "$class");
        let properties = rest
            .map(|(k, v)| Ok((k.clone(), from_json(v)?)))
            .collect::<Result<_, JsonAmfError>>()?;
        return Ok(Amf0Value::TypedObject {
            class_name,
            properties,
        });
    }
    if let Some(ecma) = m.get("$ecma").filter(|_| m.contains_key("$dense")) {
        // An AMF3 mixed array: AMF0's ECMA array holds both, the dense part under "0", "1"...
        let assoc = ecma
            .as_object()
            .ok_or_else(|| bad("$ecma must be an object", ecma))?;
        let mut props = Vec::new();
        if let Some(dense) = m.get("$dense").and_then(Value::as_array) {
            for (i, v) in dense.iter().enumerate() {
                props.push((i.to_string(), from_json(v)?));
            }
        }
        props.extend(props_from_json(assoc)?);
        return Ok(Amf0Value::EcmaArray(props));
    }
    Ok(Amf0Value::Object(props_from_json(m)?))
}

fn props_from_json(m: &Map<String, Value>) -> Result<Vec<(String, Amf0Value)>, JsonAmfError> {
    m.iter()
        .map(|(k, v)| Ok((k.clone(), from_json(v)?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::proto::amf3::Amf3Traits;

    fn both_ways(amf: Amf0Value, expected: Value) {
        let j = to_json(&amf);
        assert_eq!(j, expected, "{amf:?} as JSON");
        assert_eq!(from_json(&j).as_ref(), Ok(&amf), "{j} as AMF");
    }

    #[test]
    fn json_types_map_to_themselves() {
        both_ways(Amf0Value::Number(1.5), json!(1.5));
        both_ways(Amf0Value::string("hi"), json!("hi"));
        both_ways(Amf0Value::Boolean(true), json!(true));
        both_ways(Amf0Value::Null, json!(null));
        both_ways(
            Amf0Value::StrictArray(vec![Amf0Value::Number(1.0), Amf0Value::Null]),
            json!([1.0, null]),
        );
        both_ways(
            Amf0Value::object([("a", Amf0Value::Number(1.0)), ("b", Amf0Value::string("x"))]),
            json!({"a": 1.0, "b": "x"}),
        );
    }

    #[test]
    fn amf_types_json_lacks_are_marked() {
        both_ways(Amf0Value::Undefined, json!({"$undefined": true}));
        both_ways(
            Amf0Value::Date {
                millis: 1e12,
                time_zone: 0,
            },
            json!({"$date": 1e12}),
        );
        both_ways(
            Amf0Value::EcmaArray(vec![("k".into(), Amf0Value::Number(2.0))]),
            json!({"$ecma": {"k": 2.0}}),
        );
        both_ways(
            Amf0Value::TypedObject {
                class_name: "com.example.User".into(),
                properties: vec![("name".into(), Amf0Value::string("ann"))],
            },
            json!({"$class": "com.example.User", "name": "ann"}),
        );
        both_ways(
            Amf0Value::Amf3(Amf3Value::ByteArray(vec![0, 1, 2, 255])),
            json!({"$bytes": "AAEC/w=="}),
        );
        both_ways(
            Amf0Value::XmlDocument("<a/>".into()),
            json!({"$xml": "<a/>"}),
        );
        both_ways(
            Amf0Value::Number(f64::INFINITY),
            json!({"$number": "Infinity"}),
        );
        both_ways(Amf0Value::Reference(3), json!({"$ref": 3}));
        both_ways(
            Amf0Value::object([("$x", Amf0Value::Null)]),
            json!({"$object": {"$x": null}}),
        );
        let nan = from_json(&json!({"$number": "NaN"})).expect("NaN");
        assert!(matches!(nan, Amf0Value::Number(n) if n.is_nan()));
    }

    #[test]
    fn amf3_values_become_json() {
        let user = Amf3Value::Object {
            traits: Amf3Traits {
                class_name: "User".into(),
                dynamic: true,
                externalizable: false,
                sealed_names: vec!["id".into()],
            },
            sealed: vec![Amf3Value::Integer(7)],
            dynamic: vec![("nick".into(), Amf3Value::String("z".into()))],
            external: None,
        };
        assert_eq!(
            to_json(&Amf0Value::Amf3(user)),
            json!({"$class": "User", "id": 7, "nick": "z"})
        );
        let mixed = Amf3Value::Array {
            associative: vec![("a".into(), Amf3Value::Date(5.0))],
            dense: vec![Amf3Value::Double(0.5)],
        };
        let j = to_json(&Amf0Value::Amf3(mixed));
        assert_eq!(j, json!({"$ecma": {"a": {"$date": 5.0}}, "$dense": [0.5]}));
        assert_eq!(
            from_json(&j),
            Ok(Amf0Value::EcmaArray(vec![
                ("0".into(), Amf0Value::Number(0.5)),
                (
                    "a".into(),
                    Amf0Value::Date {
                        millis: 5.0,
                        time_zone: 0
                    }
                ),
            ]))
        );
        let vector = Amf3Value::VectorInt {
            fixed: false,
            items: vec![1, -2],
        };
        assert_eq!(to_json(&Amf0Value::Amf3(vector)), json!([1, -2]));
        let dict = Amf3Value::Dictionary {
            weak_keys: false,
            entries: vec![(Amf3Value::Integer(1), Amf3Value::Boolean(true))],
        };
        assert_eq!(
            to_json(&Amf0Value::Amf3(dict)),
            json!({"$dictionary": [[1, true]]})
        );
        let ext = Amf3Value::Object {
            traits: Amf3Traits {
                class_name: "flex.messaging.io.ArrayCollection".into(),
                dynamic: false,
                externalizable: true,
                sealed_names: vec![],
            },
            sealed: vec![],
            dynamic: vec![],
            external: Some(vec![9]),
        };
        assert_eq!(
            to_json(&Amf0Value::Amf3(ext)),
            json!({"$class": "flex.messaging.io.ArrayCollection", "$external": "CQ=="})
        );
    }

    #[test]
    fn malformed_markers_are_errors_not_panics() {
        for bad in [
            json!({"$bytes": "not base64!"}),
            json!({"$bytes": 1}),
            json!({"$date": "soon"}),
            json!({"$number": "lots"}),
            json!({"$ref": 70000}),
            json!({"$ecma": []}),
            json!({"$class": 3}),
            json!({"$dictionary": [[1]]}),
            json!([{"$xml": false}]),
        ] {
            assert!(from_json(&bad).is_err(), "{bad}");
        }
    }

    /// AMF0 values in the mapping's canonical form: what JSON gives back exactly.
    fn canonical() -> impl Strategy<Value = Amf0Value> {
        let key = "[a-z]{1,6}";
        let leaf = prop_oneof![
            any::<f64>()
                .prop_filter("NaN is never equal", |n| !n.is_nan())
                .prop_map(Amf0Value::Number),
            any::<bool>().prop_map(Amf0Value::Boolean),
            ".{0,12}".prop_map(Amf0Value::String),
            Just(Amf0Value::Null),
            Just(Amf0Value::Undefined),
            (-1e13f64..1e13).prop_map(|millis| Amf0Value::Date {
                millis,
                time_zone: 0
            }),
            ".{0,12}".prop_map(Amf0Value::XmlDocument),
            any::<u16>().prop_map(Amf0Value::Reference),
            proptest::collection::vec(any::<u8>(), 0..16)
                .prop_map(|b| Amf0Value::Amf3(Amf3Value::ByteArray(b))),
        ];
        leaf.prop_recursive(4, 32, 6, move |inner| {
            // Sorted, distinct keys: a JSON object gives its properties back in key order.
            let props = proptest::collection::btree_map(key, inner.clone(), 0..4)
                .prop_map(|m| m.into_iter().collect::<Vec<_>>());
            prop_oneof![
                proptest::collection::vec(inner, 0..4).prop_map(Amf0Value::StrictArray),
                props.clone().prop_map(Amf0Value::Object),
                props.clone().prop_map(Amf0Value::EcmaArray),
                ("[A-Z][a-z]{0,5}", props).prop_map(|(class_name, properties)| {
                    Amf0Value::TypedObject {
                        class_name,
                        properties,
                    }
                }),
            ]
        })
    }

    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<f64>().prop_map(|n| json!(n)),
            any::<i64>().prop_map(|n| json!(n)),
            "\\$?[a-z]{0,6}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map(
                    prop_oneof![
                        Just("$class".to_string()),
                        Just("$bytes".to_string()),
                        Just("$date".to_string()),
                        Just("$ecma".to_string()),
                        Just("$dense".to_string()),
                        Just("$dictionary".to_string()),
                        "\\$?[a-z]{1,6}"
                    ],
                    inner,
                    0..4
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn amf_to_json_and_back_is_the_same_value(v in canonical()) {
            let j = to_json(&v);
            prop_assert_eq!(from_json(&j), Ok(v));
        }

        /// Whatever a webhook answers, it maps to AMF or to an error, and what it maps to
        /// encodes, decodes and maps to JSON again without panicking.
        #[test]
        fn any_json_maps_without_panicking(j in any_json()) {
            if let Ok(v) = from_json(&j) {
                let mut bytes = Vec::new();
                crate::proto::amf0::encode(&v, &mut bytes);
                let back = crate::proto::amf0::decode_all(&bytes).expect("our encoding decodes");
                let _ = back.iter().map(to_json).count();
            }
        }
    }
}
