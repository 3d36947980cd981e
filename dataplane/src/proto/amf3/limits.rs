//! Limits that keep hostile AMF input from exhausting the stack or memory, and the budget
//! that enforces them over one message (shared by an AMF0 message and its AMF3 values).

use crate::proto::AmfError;

/// Deepest nesting of containers: real commands and metadata nest 2–4 deep, and every level
/// costs a stack frame in the decoder, the encoder and `Drop`.
pub(crate) const MAX_DEPTH: usize = 64;

/// Most values one message may decode to, counting copies made for AMF3 references and for
/// the object table: references let a few bytes stand for a large subtree, and even without
/// them a one-byte null becomes a 128-byte value. A million values (128 MiB at worst, plus
/// payload) is far above any real command or metadata object (a three-hour file's keyframe
/// index is some 10,000) and still bounded.
pub(crate) const MAX_NODES: usize = 1_000_000;

/// Most string, byte-array and vector payload bytes one message may decode to, copies
/// included. An RTMP message carries at most 16 MiB (24-bit length); the object table
/// holds a copy of every complex value, so nested data counts once per enclosing
/// container: four times the largest message leaves room for that.
pub(crate) const MAX_PAYLOAD_BYTES: usize = 64 << 20;

/// Most items reserved up front for one array, vector or dictionary: beyond that the
/// vector grows as items actually decode, so a declared count cannot make a short or
/// failing message allocate much (nested containers each reserve at once).
pub(crate) const MAX_PREALLOCATED_ITEMS: usize = 1024;

/// What is left of the limits above while one message is decoded.
#[derive(Debug, Clone)]
pub(crate) struct DecodeBudget {
    nodes: usize,
    bytes: usize,
}

impl Default for DecodeBudget {
    fn default() -> Self {
        DecodeBudget {
            nodes: MAX_NODES,
            bytes: MAX_PAYLOAD_BYTES,
        }
    }
}

impl DecodeBudget {
    pub(crate) fn nodes(&mut self, n: usize) -> Result<(), AmfError> {
        self.nodes = self.nodes.checked_sub(n).ok_or(AmfError::TooManyNodes)?;
        Ok(())
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<(), AmfError> {
        self.bytes = self.bytes.checked_sub(n).ok_or(AmfError::TooLarge)?;
        Ok(())
    }
}

/// Never reserve room for more items than the rest of the input could encode, whatever
/// count the input declares: each item takes at least `min_item_len` bytes.
pub(crate) fn capacity(declared: usize, remaining_input: usize, min_item_len: usize) -> usize {
    declared
        .min(remaining_input / min_item_len.max(1))
        .min(MAX_PREALLOCATED_ITEMS)
}
