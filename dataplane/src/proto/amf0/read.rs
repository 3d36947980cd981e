//! Big-endian primitives and AMF0 strings, read from the front of a slice.

use crate::proto::AmfError;

pub(crate) fn take<'a>(input: &mut &'a [u8], n: usize) -> Result<&'a [u8], AmfError> {
    if input.len() < n {
        return Err(AmfError::TruncatedAmf0);
    }
    let (head, tail) = input.split_at(n);
    *input = tail;
    Ok(head)
}

pub(crate) fn u8(input: &mut &[u8]) -> Result<u8, AmfError> {
    let (&first, rest) = input.split_first().ok_or(AmfError::TruncatedAmf0)?;
    *input = rest;
    Ok(first)
}

fn array<const N: usize>(input: &mut &[u8]) -> Result<[u8; N], AmfError> {
    let mut buf = [0u8; N];
    buf.copy_from_slice(take(input, N)?);
    Ok(buf)
}

pub(crate) fn u16(input: &mut &[u8]) -> Result<u16, AmfError> {
    array(input).map(u16::from_be_bytes)
}

pub(crate) fn i16(input: &mut &[u8]) -> Result<i16, AmfError> {
    array(input).map(i16::from_be_bytes)
}

pub(crate) fn u32(input: &mut &[u8]) -> Result<u32, AmfError> {
    array(input).map(u32::from_be_bytes)
}

pub(crate) fn f64(input: &mut &[u8]) -> Result<f64, AmfError> {
    array(input).map(f64::from_be_bytes)
}

fn utf8(bytes: &[u8]) -> Result<String, AmfError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| AmfError::InvalidUtf8)
}

/// UTF-8: a 16-bit length, then the bytes.
pub(crate) fn short_string(input: &mut &[u8]) -> Result<String, AmfError> {
    let len = u16(input)?;
    utf8(take(input, usize::from(len))?)
}

/// UTF-8-long: a 32-bit length, then the bytes.
pub(crate) fn long_string(input: &mut &[u8]) -> Result<String, AmfError> {
    let len = u32(input)?;
    let len = usize::try_from(len).map_err(|_| AmfError::TruncatedAmf0)?;
    utf8(take(input, len)?)
}
