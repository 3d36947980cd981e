//! The on-disk form of a persistent shared object (sans-IO: bytes in and out; the engine's
//! `so_disk` reads and writes the files crash-safely).
//!
//! ```text
//! magic "STRATASO" | format u8 (1) | version u32 | slots u32 | body length u32 |
//! body: { key: u16 length + UTF-8, value: AMF0 }* | SHA-256 of everything before it
//! ```
//!
//! The file is replaced whole by rename, so a crash leaves the old or the new file; the
//! checksum catches what rename cannot (a disk or a copy that damaged it). A file that does
//! not decode is untrusted input like any other: an error, never a panic.

use sha2::{Digest, Sha256};

use super::shared_objects::Stored;
use crate::proto::amf0::{self, Amf0Value, MessageDecoder};

const MAGIC: &[u8; 8] = b"STRATASO";
const FORMAT: u8 = 1;
const HEADER: usize = 8 + 1 + 4 + 4 + 4;
const DIGEST: usize = 32;

#[derive(Debug, thiserror::Error, PartialEq)]
pub(crate) enum FileError {
    #[error("not a shared object file")]
    Magic,
    #[error("format {0} unknown")]
    Format(u8),
    #[error("truncated")]
    Truncated,
    #[error("checksum mismatch")]
    Checksum,
    #[error("slot {0}: {1}")]
    Slot(u32, String),
}

pub(crate) fn encode(version: u32, slots: &[(String, Amf0Value)]) -> Vec<u8> {
    let mut body = Vec::new();
    for (key, value) in slots {
        let key = key.as_bytes();
        let len = key.len().min(usize::from(u16::MAX));
        body.extend_from_slice(&(len as u16).to_be_bytes());
        body.extend_from_slice(&key[..len]);
        amf0::encode(value, &mut body);
    }
    let mut out = Vec::with_capacity(HEADER + body.len() + DIGEST);
    out.extend_from_slice(MAGIC);
    out.push(FORMAT);
    out.extend_from_slice(&version.to_be_bytes());
    let count = u32::try_from(slots.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&count.to_be_bytes());
    let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&body);
    let digest = Sha256::digest(&out);
    out.extend_from_slice(&digest);
    out
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

pub(crate) fn decode(bytes: &[u8]) -> Result<Stored, FileError> {
    if bytes.len() < HEADER + DIGEST {
        return Err(if bytes.starts_with(MAGIC) || bytes.len() < MAGIC.len() {
            FileError::Truncated
        } else {
            FileError::Magic
        });
    }
    if &bytes[..8] != MAGIC {
        return Err(FileError::Magic);
    }
    if bytes[8] != FORMAT {
        return Err(FileError::Format(bytes[8]));
    }
    let version = be32(&bytes[9..13]);
    let count = be32(&bytes[13..17]);
    let len = be32(&bytes[17..21]) as usize;
    if bytes.len() != HEADER + len + DIGEST {
        return Err(FileError::Truncated);
    }
    let (content, digest) = bytes.split_at(HEADER + len);
    if Sha256::digest(content).as_slice() != digest {
        return Err(FileError::Checksum);
    }
    let mut body = &content[HEADER..];
    let mut values = MessageDecoder::default();
    // Never reserve for more slots than the body could hold (3 bytes each at least).
    let mut slots = Vec::with_capacity((count as usize).min(body.len() / 3));
    for i in 0..count {
        if body.len() < 2 {
            return Err(FileError::Slot(i, "truncated".into()));
        }
        let klen = usize::from(u16::from_be_bytes([body[0], body[1]]));
        let Some(key) = body.get(2..2 + klen) else {
            return Err(FileError::Slot(i, "truncated key".into()));
        };
        let key = String::from_utf8(key.to_vec())
            .map_err(|_| FileError::Slot(i, "key is not UTF-8".into()))?;
        body = &body[2 + klen..];
        let value = values
            .value(&mut body)
            .map_err(|e| FileError::Slot(i, e.to_string()))?;
        slots.push((key, value));
    }
    if !body.is_empty() {
        return Err(FileError::Slot(count, "bytes after the last slot".into()));
    }
    Ok((version, slots))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn slots() -> Vec<(String, Amf0Value)> {
        vec![
            ("a".into(), Amf0Value::Number(1.0)),
            (
                "b".into(),
                Amf0Value::object([("c", Amf0Value::string("d"))]),
            ),
        ]
    }

    #[test]
    fn a_stored_object_reads_back() {
        assert_eq!(decode(&encode(9, &slots())), Ok((9, slots())));
        assert_eq!(decode(&encode(0, &[])), Ok((0, vec![])));
    }

    #[test]
    fn a_torn_or_damaged_file_is_an_error() {
        let good = encode(9, &slots());
        for cut in 0..good.len() {
            assert!(decode(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut flipped = good.clone();
        flipped[HEADER + 2] ^= 1;
        assert_eq!(decode(&flipped), Err(FileError::Checksum));
        assert_eq!(
            decode(b"something else entirely, long enough to be read"),
            Err(FileError::Magic)
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode(&data);
        }

        #[test]
        fn arbitrary_bodies_with_a_valid_checksum_never_panic(
            count in 0u32..8,
            body in proptest::collection::vec(any::<u8>(), 0..256),
        ) {
            let mut bytes = MAGIC.to_vec();
            bytes.push(FORMAT);
            bytes.extend_from_slice(&1u32.to_be_bytes());
            bytes.extend_from_slice(&count.to_be_bytes());
            bytes.extend_from_slice(&(body.len() as u32).to_be_bytes());
            bytes.extend_from_slice(&body);
            let digest = Sha256::digest(&bytes);
            bytes.extend_from_slice(&digest);
            let _ = decode(&bytes);
        }
    }
}
