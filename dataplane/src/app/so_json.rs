//! Shared-object slot values between AMF (what clients store) and JSON (what operators and
//! backends read and write through `so get/set`). The mapping is documented with the
//! control protocol's `SoCall`: null, booleans, numbers, strings, arrays and objects map
//! both ways; richer AMF types read as their nearest JSON form.

use serde_json::{Map, Number, Value};

use crate::proto::amf0::Amf0Value;
use crate::proto::amf3::Amf3Value;

/// The class name of a typed object, as a property of its JSON form.
const CLASS: &str = "__class";

pub(crate) fn to_amf(value: &Value) -> Amf0Value {
    match value {
        Value::Null => Amf0Value::Null,
        Value::Bool(b) => Amf0Value::Boolean(*b),
        Value::Number(n) => Amf0Value::Number(n.as_f64().unwrap_or(0.0)),
        Value::String(s) => Amf0Value::string(s.as_str()),
        Value::Array(items) => Amf0Value::StrictArray(items.iter().map(to_amf).collect()),
        Value::Object(map) => {
            let properties = map
                .iter()
                .filter(|(k, _)| k.as_str() != CLASS)
                .map(|(k, v)| (k.clone(), to_amf(v)))
                .collect();
            match map.get(CLASS).and_then(Value::as_str) {
                Some(class) => Amf0Value::TypedObject {
                    class_name: class.to_string(),
                    properties,
                },
                None => Amf0Value::Object(properties),
            }
        }
    }
}

fn number(n: f64) -> Value {
    Number::from_f64(n).map_or(Value::Null, Value::Number)
}

fn object<'a, T: 'a>(
    pairs: impl IntoIterator<Item = &'a (String, T)>,
    f: impl Fn(&T) -> Value,
) -> Map<String, Value> {
    pairs.into_iter().map(|(k, v)| (k.clone(), f(v))).collect()
}

pub(crate) fn to_json(value: &Amf0Value) -> Value {
    match value {
        Amf0Value::Number(n) => number(*n),
        Amf0Value::Boolean(b) => Value::Bool(*b),
        Amf0Value::String(s) | Amf0Value::LongString(s) | Amf0Value::XmlDocument(s) => {
            Value::String(s.clone())
        }
        Amf0Value::Object(p) | Amf0Value::EcmaArray(p) => Value::Object(object(p, to_json)),
        Amf0Value::TypedObject {
            class_name,
            properties,
        } => {
            let mut map = object(properties, to_json);
            map.insert(CLASS.into(), Value::String(class_name.clone()));
            Value::Object(map)
        }
        Amf0Value::Null | Amf0Value::Undefined | Amf0Value::Reference(_) => Value::Null,
        Amf0Value::StrictArray(items) => Value::Array(items.iter().map(to_json).collect()),
        Amf0Value::Date { millis, .. } => number(*millis),
        Amf0Value::Amf3(v) => amf3_to_json(v),
    }
}

fn amf3_to_json(value: &Amf3Value) -> Value {
    match value {
        Amf3Value::Undefined | Amf3Value::Null => Value::Null,
        Amf3Value::Boolean(b) => Value::Bool(*b),
        Amf3Value::Integer(i) => Value::from(*i),
        Amf3Value::Double(d) | Amf3Value::Date(d) => number(*d),
        Amf3Value::String(s) | Amf3Value::XmlDocument(s) | Amf3Value::Xml(s) => {
            Value::String(s.clone())
        }
        Amf3Value::Array { associative, dense } if associative.is_empty() => {
            Value::Array(dense.iter().map(amf3_to_json).collect())
        }
        Amf3Value::Array { associative, dense } => {
            let mut map = object(associative, amf3_to_json);
            for (i, v) in dense.iter().enumerate() {
                map.insert(i.to_string(), amf3_to_json(v));
            }
            Value::Object(map)
        }
        Amf3Value::Object {
            traits,
            sealed,
            dynamic,
            ..
        } => {
            let mut map: Map<String, Value> = traits
                .sealed_names
                .iter()
                .zip(sealed)
                .map(|(k, v)| (k.clone(), amf3_to_json(v)))
                .collect();
            map.extend(object(dynamic, amf3_to_json));
            if !traits.class_name.is_empty() {
                map.insert(CLASS.into(), Value::String(traits.class_name.clone()));
            }
            Value::Object(map)
        }
        Amf3Value::ByteArray(b) => Value::Array(b.iter().map(|x| Value::from(*x)).collect()),
        Amf3Value::VectorInt { items, .. } => Value::from(items.clone()),
        Amf3Value::VectorUint { items, .. } => Value::from(items.clone()),
        Amf3Value::VectorDouble { items, .. } => {
            Value::Array(items.iter().map(|d| number(*d)).collect())
        }
        Amf3Value::VectorObject { items, .. } => {
            Value::Array(items.iter().map(amf3_to_json).collect())
        }
        Amf3Value::Dictionary { entries, .. } => Value::Array(
            entries
                .iter()
                .map(|(k, v)| Value::Array(vec![amf3_to_json(k), amf3_to_json(v)]))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_values_round_trip_through_amf() {
        let v = serde_json::json!({"n": 1.5, "s": "x", "b": true, "z": null, "a": [1.0, "two"],
            "t": {"__class": "Point", "x": 1.0}});
        assert_eq!(to_json(&to_amf(&v)), v);
    }

    #[test]
    fn amf3_values_read_as_their_nearest_json() {
        let v = Amf0Value::Amf3(Amf3Value::Array {
            associative: vec![],
            dense: vec![Amf3Value::Integer(3), Amf3Value::ByteArray(vec![1, 2])],
        });
        assert_eq!(to_json(&v), serde_json::json!([3, [1, 2]]));
    }
}
