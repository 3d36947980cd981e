//! The AMF3 decoder: one value at a time, resolving the three reference tables.

use super::limits::{capacity, DecodeBudget, MAX_DEPTH};
use super::marker::{self, SINGLE_VALUE_EXTERNALIZABLE};
use super::read;
use super::{Amf3Traits, Amf3Value};
use crate::proto::AmfError;

/// A completed entry of the object table, with what a reference to it costs.
#[derive(Debug)]
struct Complete {
    value: Amf3Value,
    nodes: usize,
    bytes: usize,
    height: usize,
}

/// Complex values enter the object table before their children are decoded (so indices
/// follow the spec's order); until they are complete a reference to them is a cycle.
#[derive(Debug)]
enum Slot {
    Pending,
    Complete(Complete),
}

/// Decodes AMF3 values, keeping the string, object and traits tables across calls. One
/// decoder spans one message: its tables and its [`limits`](super::limits) budget grow
/// with every value it decodes.
#[derive(Debug, Default)]
pub struct Amf3Decoder {
    strings: Vec<String>,
    objects: Vec<Slot>,
    traits: Vec<Amf3Traits>,
    budget: DecodeBudget,
    depth: usize,
}

impl Amf3Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Fresh tables, but the budget and nesting depth of an enclosing AMF0 message, so that
    /// neither resets at each 0x11 switch.
    pub(crate) fn nested(budget: DecodeBudget, depth: usize) -> Self {
        Amf3Decoder {
            budget,
            depth,
            ..Self::default()
        }
    }

    pub(crate) fn into_budget(self) -> DecodeBudget {
        self.budget
    }

    /// Decodes one value; advances `input` past it. On error `input` is left wherever the
    /// error was found, and the tables are unusable for further values.
    pub fn decode(&mut self, input: &mut &[u8]) -> Result<Amf3Value, AmfError> {
        self.value(input)
    }

    fn value(&mut self, input: &mut &[u8]) -> Result<Amf3Value, AmfError> {
        self.budget.nodes(1)?;
        let m = read::u8(input)?;
        Ok(match m {
            marker::UNDEFINED => Amf3Value::Undefined,
            marker::NULL => Amf3Value::Null,
            marker::FALSE => Amf3Value::Boolean(false),
            marker::TRUE => Amf3Value::Boolean(true),
            marker::INTEGER => Amf3Value::Integer(read::sign_extend_29(read::u29(input)?)),
            marker::DOUBLE => Amf3Value::Double(read::f64(input)?),
            marker::STRING => Amf3Value::String(self.string(input)?),
            marker::XML_DOC | marker::XML => {
                let header = read::u29(input)?;
                if header & 1 == 0 {
                    return self.object_ref(header >> 1);
                }
                let text = self.utf8(input, header >> 1)?;
                let value = if m == marker::XML {
                    Amf3Value::Xml(text)
                } else {
                    Amf3Value::XmlDocument(text)
                };
                let slot = self.reserve();
                self.complete(slot, value)?
            }
            marker::DATE => {
                let header = read::u29(input)?;
                if header & 1 == 0 {
                    return self.object_ref(header >> 1);
                }
                let value = Amf3Value::Date(read::f64(input)?);
                let slot = self.reserve();
                self.complete(slot, value)?
            }
            marker::ARRAY => self.array(input)?,
            marker::OBJECT => self.object(input)?,
            marker::BYTE_ARRAY => {
                let header = read::u29(input)?;
                if header & 1 == 0 {
                    return self.object_ref(header >> 1);
                }
                let len = (header >> 1) as usize;
                self.budget.bytes(len)?;
                let value = Amf3Value::ByteArray(read::take(input, len)?.to_vec());
                let slot = self.reserve();
                self.complete(slot, value)?
            }
            marker::VECTOR_INT
            | marker::VECTOR_UINT
            | marker::VECTOR_DOUBLE
            | marker::VECTOR_OBJECT => self.vector(m, input)?,
            marker::DICTIONARY => self.dictionary(input)?,
            other => return Err(AmfError::UnknownAmf3Marker(other)),
        })
    }

    /// A UTF-8-vr: an inline string (entering the table unless empty) or a reference.
    fn string(&mut self, input: &mut &[u8]) -> Result<String, AmfError> {
        let header = read::u29(input)?;
        if header & 1 == 0 {
            let index = header >> 1;
            let s = self
                .strings
                .get(index as usize)
                .ok_or(AmfError::BadStringReference(index))?;
            self.budget.bytes(s.len())?;
            return Ok(s.clone());
        }
        let s = self.utf8(input, header >> 1)?;
        if !s.is_empty() {
            self.strings.push(s.clone());
        }
        Ok(s)
    }

    fn utf8(&mut self, input: &mut &[u8], len: u32) -> Result<String, AmfError> {
        let len = len as usize;
        self.budget.bytes(len)?;
        let bytes = read::take(input, len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| AmfError::InvalidUtf8)
    }

    fn reserve(&mut self) -> usize {
        self.objects.push(Slot::Pending);
        self.objects.len() - 1
    }

    /// Fills a reserved slot with a copy of the finished value (charged to the budget, as
    /// the copy is real memory) and hands the value back.
    fn complete(&mut self, slot: usize, value: Amf3Value) -> Result<Amf3Value, AmfError> {
        let (nodes, bytes, height) = measure(&value);
        self.budget.nodes(nodes)?;
        self.budget.bytes(bytes)?;
        if let Some(entry) = self.objects.get_mut(slot) {
            *entry = Slot::Complete(Complete {
                value: value.clone(),
                nodes,
                bytes,
                height,
            });
        }
        Ok(value)
    }

    fn object_ref(&mut self, index: u32) -> Result<Amf3Value, AmfError> {
        match self.objects.get(index as usize) {
            None => Err(AmfError::BadObjectReference(index)),
            Some(Slot::Pending) => Err(AmfError::ReferenceCycle(index)),
            Some(Slot::Complete(c)) => {
                // The copy lands at the current depth: keep the whole tree within the limit
                // so that dropping or encoding it cannot overflow the stack.
                if self.depth + c.height > MAX_DEPTH {
                    return Err(AmfError::TooDeep);
                }
                self.budget.nodes(c.nodes)?;
                self.budget.bytes(c.bytes)?;
                Ok(c.value.clone())
            }
        }
    }

    fn enter(&mut self) -> Result<(), AmfError> {
        if self.depth >= MAX_DEPTH {
            return Err(AmfError::TooDeep);
        }
        self.depth += 1;
        Ok(())
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    /// Runs `body` one level deeper; the depth is restored even when it fails.
    fn nest<T>(
        &mut self,
        body: impl FnOnce(&mut Self) -> Result<T, AmfError>,
    ) -> Result<T, AmfError> {
        self.enter()?;
        let result = body(self);
        self.leave();
        result
    }

    fn array(&mut self, input: &mut &[u8]) -> Result<Amf3Value, AmfError> {
        let header = read::u29(input)?;
        if header & 1 == 0 {
            return self.object_ref(header >> 1);
        }
        let slot = self.reserve();
        let value = self.nest(|d| {
            let mut associative = Vec::new();
            loop {
                let key = d.string(input)?;
                if key.is_empty() {
                    break;
                }
                let v = d.value(input)?;
                associative.push((key, v));
            }
            let count = (header >> 1) as usize;
            let mut dense = Vec::with_capacity(capacity(count, input.len(), 1));
            for _ in 0..count {
                dense.push(d.value(input)?);
            }
            Ok(Amf3Value::Array { associative, dense })
        })?;
        self.complete(slot, value)
    }

    fn traits(&mut self, header: u32, input: &mut &[u8]) -> Result<Amf3Traits, AmfError> {
        if header & 0b10 == 0 {
            let index = header >> 2;
            let traits = self
                .traits
                .get(index as usize)
                .ok_or(AmfError::BadTraitsReference(index))?;
            let names: usize = traits.sealed_names.iter().map(String::len).sum();
            self.budget.bytes(names + traits.class_name.len())?;
            return Ok(traits.clone());
        }
        let traits = if header & 0b100 != 0 {
            // The remaining bits of U29O-traits-ext are not significant.
            Amf3Traits {
                class_name: self.string(input)?,
                dynamic: false,
                externalizable: true,
                sealed_names: Vec::new(),
            }
        } else {
            let count = (header >> 4) as usize;
            let class_name = self.string(input)?;
            let mut sealed_names = Vec::with_capacity(capacity(count, input.len(), 1));
            for _ in 0..count {
                sealed_names.push(self.string(input)?);
            }
            Amf3Traits {
                class_name,
                dynamic: header & 0b1000 != 0,
                externalizable: false,
                sealed_names,
            }
        };
        self.traits.push(traits.clone());
        Ok(traits)
    }

    fn object(&mut self, input: &mut &[u8]) -> Result<Amf3Value, AmfError> {
        let header = read::u29(input)?;
        if header & 1 == 0 {
            return self.object_ref(header >> 1);
        }
        let traits = self.traits(header, input)?;
        let slot = self.reserve();
        // An externalized body is kept as bytes, but copies of this object are encoded with
        // the body inline: its height counts towards the depth of every copy.
        let mut body_height = 0;
        let value = self.nest(|d| {
            if traits.externalizable {
                if !SINGLE_VALUE_EXTERNALIZABLE.contains(&traits.class_name.as_str()) {
                    return Err(AmfError::Externalizable(traits.class_name.clone()));
                }
                // The body may refer to this message's tables; keep it self-contained by
                // storing it re-encoded with fresh tables.
                let inner = d.value(input)?;
                body_height = measure(&inner).2 + 1;
                let mut body = Vec::new();
                super::encode(&inner, &mut body);
                return Ok(Amf3Value::Object {
                    traits,
                    sealed: Vec::new(),
                    dynamic: Vec::new(),
                    external: Some(body),
                });
            }
            let count = traits.sealed_names.len();
            let mut sealed = Vec::with_capacity(capacity(count, input.len(), 1));
            for _ in 0..count {
                sealed.push(d.value(input)?);
            }
            let mut dynamic = Vec::new();
            if traits.dynamic {
                loop {
                    let key = d.string(input)?;
                    if key.is_empty() {
                        break;
                    }
                    let v = d.value(input)?;
                    dynamic.push((key, v));
                }
            }
            Ok(Amf3Value::Object {
                traits,
                sealed,
                dynamic,
                external: None,
            })
        })?;
        let value = self.complete(slot, value)?;
        if let Some(Slot::Complete(c)) = self.objects.get_mut(slot) {
            c.height = c.height.max(body_height);
        }
        Ok(value)
    }

    fn vector(&mut self, m: u8, input: &mut &[u8]) -> Result<Amf3Value, AmfError> {
        let header = read::u29(input)?;
        if header & 1 == 0 {
            return self.object_ref(header >> 1);
        }
        let count = (header >> 1) as usize;
        let fixed = read::u8(input)? != 0;
        let slot = self.reserve();
        let value = match m {
            marker::VECTOR_INT => {
                let mut items = Vec::with_capacity(capacity(count, input.len(), 4));
                for _ in 0..count {
                    items.push(read::i32(input)?);
                }
                Amf3Value::VectorInt { fixed, items }
            }
            marker::VECTOR_UINT => {
                let mut items = Vec::with_capacity(capacity(count, input.len(), 4));
                for _ in 0..count {
                    items.push(read::u32(input)?);
                }
                Amf3Value::VectorUint { fixed, items }
            }
            marker::VECTOR_DOUBLE => {
                let mut items = Vec::with_capacity(capacity(count, input.len(), 8));
                for _ in 0..count {
                    items.push(read::f64(input)?);
                }
                Amf3Value::VectorDouble { fixed, items }
            }
            _ => self.nest(|d| {
                let type_name = d.string(input)?;
                let mut items = Vec::with_capacity(capacity(count, input.len(), 1));
                for _ in 0..count {
                    items.push(d.value(input)?);
                }
                Ok(Amf3Value::VectorObject {
                    fixed,
                    type_name,
                    items,
                })
            })?,
        };
        self.complete(slot, value)
    }

    fn dictionary(&mut self, input: &mut &[u8]) -> Result<Amf3Value, AmfError> {
        let header = read::u29(input)?;
        if header & 1 == 0 {
            return self.object_ref(header >> 1);
        }
        let count = (header >> 1) as usize;
        let weak_keys = read::u8(input)? != 0;
        let slot = self.reserve();
        let value = self.nest(|d| {
            let mut entries = Vec::with_capacity(capacity(count, input.len(), 2));
            for _ in 0..count {
                let key = d.value(input)?;
                let v = d.value(input)?;
                entries.push((key, v));
            }
            Ok(Amf3Value::Dictionary { weak_keys, entries })
        })?;
        self.complete(slot, value)
    }
}

/// Nodes, payload bytes and height (containers on the longest path) of a value, i.e. what a
/// copy of it costs. Recursion is bounded: every decoded tree is at most `MAX_DEPTH` deep.
fn measure(value: &Amf3Value) -> (usize, usize, usize) {
    fn child(m: &mut (usize, usize, usize), v: &Amf3Value) {
        let (n, b, h) = measure(v);
        m.0 += n;
        m.1 += b;
        m.2 = m.2.max(h + 1);
    }
    let mut m = (1, 0, 0);
    match value {
        Amf3Value::Undefined
        | Amf3Value::Null
        | Amf3Value::Boolean(_)
        | Amf3Value::Integer(_)
        | Amf3Value::Double(_)
        | Amf3Value::Date(_) => {}
        Amf3Value::String(s) | Amf3Value::XmlDocument(s) | Amf3Value::Xml(s) => m.1 += s.len(),
        Amf3Value::ByteArray(b) => m.1 += b.len(),
        Amf3Value::VectorInt { items, .. } => m.1 += items.len() * 4,
        Amf3Value::VectorUint { items, .. } => m.1 += items.len() * 4,
        Amf3Value::VectorDouble { items, .. } => m.1 += items.len() * 8,
        Amf3Value::Array { associative, dense } => {
            m.2 = 1;
            for (k, v) in associative {
                m.1 += k.len();
                child(&mut m, v);
            }
            for v in dense {
                child(&mut m, v);
            }
        }
        Amf3Value::Object {
            traits,
            sealed,
            dynamic,
            external,
        } => {
            m.2 = 1;
            m.1 += traits.class_name.len();
            m.1 += traits.sealed_names.iter().map(String::len).sum::<usize>();
            m.1 += external.as_ref().map_or(0, Vec::len);
            for v in sealed {
                child(&mut m, v);
            }
            for (k, v) in dynamic {
                m.1 += k.len();
                child(&mut m, v);
            }
        }
        Amf3Value::VectorObject {
            type_name, items, ..
        } => {
            m.2 = 1;
            m.1 += type_name.len();
            for v in items {
                child(&mut m, v);
            }
        }
        Amf3Value::Dictionary { entries, .. } => {
            m.2 = 1;
            for (k, v) in entries {
                child(&mut m, k);
                child(&mut m, v);
            }
        }
    }
    m
}
