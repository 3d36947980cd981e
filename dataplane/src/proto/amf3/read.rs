//! Big-endian primitives and the U29 variable-length integer, read from the front of a slice.

use crate::proto::AmfError;

pub(crate) fn take<'a>(input: &mut &'a [u8], n: usize) -> Result<&'a [u8], AmfError> {
    if input.len() < n {
        return Err(AmfError::TruncatedAmf3);
    }
    let (head, tail) = input.split_at(n);
    *input = tail;
    Ok(head)
}

pub(crate) fn u8(input: &mut &[u8]) -> Result<u8, AmfError> {
    let (&first, rest) = input.split_first().ok_or(AmfError::TruncatedAmf3)?;
    *input = rest;
    Ok(first)
}

fn array<const N: usize>(input: &mut &[u8]) -> Result<[u8; N], AmfError> {
    let mut buf = [0u8; N];
    buf.copy_from_slice(take(input, N)?);
    Ok(buf)
}

pub(crate) fn u32(input: &mut &[u8]) -> Result<u32, AmfError> {
    array(input).map(u32::from_be_bytes)
}

pub(crate) fn i32(input: &mut &[u8]) -> Result<i32, AmfError> {
    array(input).map(i32::from_be_bytes)
}

pub(crate) fn f64(input: &mut &[u8]) -> Result<f64, AmfError> {
    array(input).map(f64::from_be_bytes)
}

/// Up to four bytes: seven bits from each of the first three (high bit = more follow), all
/// eight of the fourth.
pub(crate) fn u29(input: &mut &[u8]) -> Result<u32, AmfError> {
    let mut value = 0u32;
    for _ in 0..3 {
        let byte = u8(input)?;
        if byte & 0x80 == 0 {
            return Ok((value << 7) | u32::from(byte));
        }
        value = (value << 7) | u32::from(byte & 0x7F);
    }
    Ok((value << 8) | u32::from(u8(input)?))
}

/// The integer type is the U29 read as two's complement over 29 bits.
pub(crate) fn sign_extend_29(raw: u32) -> i32 {
    ((raw << 3) as i32) >> 3
}
