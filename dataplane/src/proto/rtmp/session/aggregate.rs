//! Aggregate messages (type 22): a run of FLV tags in one message.

use super::{SessionError, SessionEvent};
use crate::proto::rtmp::message::{msg_type, Message};

/// An aggregate message is a run of FLV tags (type, 24-bit size, 24+8-bit timestamp, 24-bit
/// stream id, body, 32-bit back pointer); each becomes its own message, with timestamps
/// rebased on the aggregate's own.
pub(super) fn split(message: &Message, events: &mut Vec<SessionEvent>) -> Result<(), SessionError> {
    let payload = &message.payload;
    let mut pos = 0usize;
    let mut first_ts: Option<u32> = None;
    while pos < payload.len() {
        let header = payload
            .get(pos..pos + 11)
            .ok_or(SessionError::Aggregate("truncated tag header"))?;
        let type_id = header[0];
        let size =
            (usize::from(header[1]) << 16) | (usize::from(header[2]) << 8) | usize::from(header[3]);
        let ts = (u32::from(header[7]) << 24)
            | (u32::from(header[4]) << 16)
            | (u32::from(header[5]) << 8)
            | u32::from(header[6]);
        let body_start = pos + 11;
        let body_end = body_start
            .checked_add(size)
            .ok_or(SessionError::Aggregate("tag size overflows"))?;
        if body_end > payload.len() {
            return Err(SessionError::Aggregate("tag body past the end"));
        }
        let base = *first_ts.get_or_insert(ts);
        let sub = Message {
            csid: message.csid,
            timestamp: message.timestamp.wrapping_add(ts.wrapping_sub(base)),
            type_id,
            stream_id: message.stream_id,
            payload: payload.slice(body_start..body_end),
        };
        match type_id {
            msg_type::AUDIO | msg_type::VIDEO => events.push(SessionEvent::Media { message: sub }),
            msg_type::DATA_AMF0 => events.push(SessionEvent::Data { message: sub }),
            _ => {}
        }
        // Skip the 4-byte back pointer; a missing final one is tolerated.
        pos = body_end + 4;
    }
    Ok(())
}
