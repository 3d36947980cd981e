//! AMF3 type markers (AMF3 specification, section 3.1).

pub(crate) const UNDEFINED: u8 = 0x00;
pub(crate) const NULL: u8 = 0x01;
pub(crate) const FALSE: u8 = 0x02;
pub(crate) const TRUE: u8 = 0x03;
pub(crate) const INTEGER: u8 = 0x04;
pub(crate) const DOUBLE: u8 = 0x05;
pub(crate) const STRING: u8 = 0x06;
pub(crate) const XML_DOC: u8 = 0x07;
pub(crate) const DATE: u8 = 0x08;
pub(crate) const ARRAY: u8 = 0x09;
pub(crate) const OBJECT: u8 = 0x0A;
pub(crate) const XML: u8 = 0x0B;
pub(crate) const BYTE_ARRAY: u8 = 0x0C;
pub(crate) const VECTOR_INT: u8 = 0x0D;
pub(crate) const VECTOR_UINT: u8 = 0x0E;
pub(crate) const VECTOR_DOUBLE: u8 = 0x0F;
pub(crate) const VECTOR_OBJECT: u8 = 0x10;
pub(crate) const DICTIONARY: u8 = 0x11;

/// The largest and smallest values of the 29-bit signed integer type; others are doubles.
pub(crate) const INTEGER_MAX: i32 = (1 << 28) - 1;
pub(crate) const INTEGER_MIN: i32 = -(1 << 28);
/// A U29 holds 29 bits; every length and count on the wire is one, less its flag bit(s).
pub(crate) const U29_MAX: u32 = (1 << 29) - 1;

/// Externalizable Flex classes whose body is exactly one AMF3 value (BlazeDS and PyAMF
/// agree), so their length can be found; any other externalizable class is opaque.
pub(crate) const SINGLE_VALUE_EXTERNALIZABLE: &[&str] = &[
    "flex.messaging.io.ArrayCollection",
    "flex.messaging.io.ObjectProxy",
];
