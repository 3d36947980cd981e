//! RFC 7016 §2.1.2 variable-length unsigned integers (7 bits a byte, high bit "more",
//! most significant first) and §2.1.3 option lists (length VLU, type VLU, value; a zero
//! length is a marker that ends a list).

use super::error::{Result, RtmfpError};

/// A u64 needs at most 10 groups of 7 bits.
const MAX_LEN: usize = 10;

pub(crate) fn put(mut v: u64, out: &mut Vec<u8>) {
    let mut buf = [0u8; MAX_LEN];
    let mut i = MAX_LEN;
    loop {
        i -= 1;
        buf[i] = (v & 0x7f) as u8 | if i == MAX_LEN - 1 { 0 } else { 0x80 };
        v >>= 7;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

pub(crate) fn len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

/// Reads one VLU from the front of `buf` and advances it.
pub(crate) fn read(buf: &mut &[u8]) -> Result<u64> {
    let mut v: u64 = 0;
    for (i, &b) in buf.iter().enumerate() {
        if v > (u64::MAX >> 7) {
            return Err(RtmfpError::VluOverflow);
        }
        v = (v << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            *buf = &buf[i + 1..];
            return Ok(v);
        }
    }
    Err(RtmfpError::Truncated("variable-length integer"))
}

/// A VLU length then that many bytes.
pub(crate) fn read_field<'a>(buf: &mut &'a [u8]) -> Result<&'a [u8]> {
    let n = read(buf)?;
    let n = usize::try_from(n).map_err(|_| RtmfpError::Truncated("field"))?;
    if n > buf.len() {
        return Err(RtmfpError::Truncated("field"));
    }
    let (field, rest) = buf.split_at(n);
    *buf = rest;
    Ok(field)
}

pub(crate) fn put_field(field: &[u8], out: &mut Vec<u8>) {
    put(field.len() as u64, out);
    out.extend_from_slice(field);
}

/// One option of an option list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Opt<'a> {
    pub kind: u64,
    pub value: &'a [u8],
}

/// Reads one option; `None` for a marker (zero length).
pub(crate) fn read_option<'a>(buf: &mut &'a [u8]) -> Result<Option<Opt<'a>>> {
    let mut body = read_field(buf)?;
    if body.is_empty() {
        return Ok(None);
    }
    let kind = read(&mut body)?;
    Ok(Some(Opt { kind, value: body }))
}

pub(crate) fn put_option(kind: u64, value: &[u8], out: &mut Vec<u8>) {
    put((len(kind) + value.len()) as u64, out);
    put(kind, out);
    out.extend_from_slice(value);
}

/// The options of a list up to its first marker (or its end); a malformed option ends the
/// iteration with an error item.
pub(crate) fn options(mut list: &[u8]) -> impl Iterator<Item = Result<Opt<'_>>> {
    let mut done = false;
    std::iter::from_fn(move || {
        if done || list.is_empty() {
            return None;
        }
        match read_option(&mut list) {
            Ok(Some(o)) => Some(Ok(o)),
            Ok(None) => {
                done = true;
                None
            }
            Err(e) => {
                done = true;
                Some(Err(e))
            }
        }
    })
}

/// The first option of `kind` in a list (before any marker); malformed lists find nothing.
pub(crate) fn find_option(list: &[u8], kind: u64) -> Option<&[u8]> {
    options(list)
        .map_while(|o| o.ok())
        .find(|o| o.kind == kind)
        .map(|o| o.value)
}

/// Splits an option list that ends with a marker: (the list's bytes, the rest after the
/// marker). Used by User Data chunks, whose options precede the data.
pub(crate) fn split_terminated_list<'a>(buf: &mut &'a [u8]) -> Result<&'a [u8]> {
    let start = *buf;
    while read_option(buf)?.is_some() {}
    // The marker is one byte (a zero VLU); the list is what precedes it.
    let used = start.len() - buf.len();
    Ok(&start[..used - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vlu_round_trips_and_matches_the_rfc_layout() {
        let mut out = Vec::new();
        put(0, &mut out);
        put(0x7f, &mut out);
        put(0x80, &mut out);
        put(300, &mut out);
        assert_eq!(out, [0x00, 0x7f, 0x81, 0x00, 0x82, 0x2c]);
        let mut s = &out[..];
        for want in [0u64, 0x7f, 0x80, 300] {
            assert_eq!(read(&mut s), Ok(want));
        }
        assert!(s.is_empty());
        for v in [u64::MAX, 1 << 63, 12345678901234] {
            let mut o = Vec::new();
            put(v, &mut o);
            assert_eq!(o.len(), len(v));
            assert_eq!(read(&mut &o[..]), Ok(v));
        }
    }

    #[test]
    fn vlu_refuses_truncation_and_overflow() {
        assert!(read(&mut &[0x81u8][..]).is_err());
        assert_eq!(read(&mut &[0xffu8; 11][..]), Err(RtmfpError::VluOverflow));
    }

    #[test]
    fn option_lists() {
        let mut l = Vec::new();
        put_option(0x1d, &[2, 9, 9], &mut l);
        put_option(0x0a, b"", &mut l);
        l.push(0); // marker
        l.extend_from_slice(b"data");
        assert_eq!(l[..2], [4, 0x1d]);
        assert_eq!(find_option(&l, 0x1d), Some(&[2u8, 9, 9][..]));
        assert_eq!(find_option(&l, 0x0a), Some(&[][..]));
        let mut s = &l[..];
        let list = split_terminated_list(&mut s).expect("list");
        assert_eq!(s, b"data");
        assert_eq!(options(list).count(), 2);
    }
}
