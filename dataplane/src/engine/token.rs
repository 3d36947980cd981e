//! What a completion belongs to, packed into the ring's 64-bit user_data.
//!
//! Connection slots are reused, so a token carries the slot's generation: a completion that
//! arrives for a slot that has since been freed and reused is recognised and ignored.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum OpKind {
    Accept = 1,
    /// A connection's multishot receive into the clients' buffers (`Io::bufs`).
    Recv = 2,
    Send = 3,
    Mailbox = 4,
    /// Completions nobody waits for: cancellations, and the `LinkTimeout` beside a connect
    /// (the connect's own completion says whether it timed out).
    Cancel = 5,
    /// An outbound TCP connect (slot: its entry in `Connects`).
    Connect = 6,
    /// A UDP socket's multishot receive (slot: the socket in `UdpSockets`).
    UdpRecv = 7,
    /// One datagram's send (slot: its send buffer in `UdpSockets`).
    UdpSend = 8,
    /// A file write or sync (slot: its entry in `FileOps`).
    File = 9,
    /// A file read (slot: its entry in `FileReads`).
    FileRead = 10,
    /// A multicast output's batched send (slot: the output in the worker's `Multicasts`).
    MulticastSend = 11,
    /// A file open beneath a directory (slot: its entry in `FileOpens`).
    FileOpen = 12,
    /// A connection's multishot receive into the ingest buffers (`Io::ingest`): a publisher's
    /// or an upstream link's.
    IngestRecv = 13,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Token {
    pub(crate) kind: OpKind,
    pub(crate) slot: u32,
    pub(crate) generation: u32,
}

const GENERATION_BITS: u32 = 24;
pub(crate) const GENERATION_MASK: u64 = (1 << GENERATION_BITS) - 1;

impl Token {
    pub(crate) fn new(kind: OpKind, slot: u32, generation: u32) -> Self {
        Token {
            kind,
            slot,
            generation: generation & GENERATION_MASK as u32,
        }
    }

    pub(crate) fn to_user_data(self) -> u64 {
        (u64::from(self.kind as u8) << 56)
            | (u64::from(self.slot) << GENERATION_BITS)
            | (u64::from(self.generation) & GENERATION_MASK)
    }

    pub(crate) fn from_user_data(data: u64) -> Option<Self> {
        let kind = match (data >> 56) as u8 {
            1 => OpKind::Accept,
            2 => OpKind::Recv,
            3 => OpKind::Send,
            4 => OpKind::Mailbox,
            5 => OpKind::Cancel,
            6 => OpKind::Connect,
            7 => OpKind::UdpRecv,
            8 => OpKind::UdpSend,
            9 => OpKind::File,
            10 => OpKind::FileRead,
            11 => OpKind::MulticastSend,
            12 => OpKind::FileOpen,
            13 => OpKind::IngestRecv,
            _ => return None,
        };
        let slot = ((data >> GENERATION_BITS) & 0xFFFF_FFFF) as u32;
        Some(Token {
            kind,
            slot,
            generation: (data & GENERATION_MASK) as u32,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_user_data() {
        let t = Token::new(OpKind::Send, 123_456, 0xFF_FFFF);
        assert_eq!(Token::from_user_data(t.to_user_data()), Some(t));
        assert_eq!(Token::from_user_data(0), None);
        for kind in [
            OpKind::Connect,
            OpKind::UdpRecv,
            OpKind::UdpSend,
            OpKind::File,
            OpKind::FileRead,
            OpKind::MulticastSend,
            OpKind::FileOpen,
        ] {
            let t = Token::new(kind, 7, 9);
            assert_eq!(Token::from_user_data(t.to_user_data()), Some(t));
        }
    }
}
