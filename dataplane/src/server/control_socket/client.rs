//! One connection to the control socket: line buffers and what it asked for.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Instant;

use control_protocol::MAX_LINE;

/// A subscriber that does not read its events is dropped past this, so a stuck manager
/// costs bounded memory.
pub(super) const MAX_PENDING_OUTPUT: usize = 4 * 1024 * 1024;

pub(super) struct Client {
    pub(super) stream: UnixStream,
    pub(super) uid: u32,
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
    pub(super) subscribed: bool,
    pub(super) last_request: Instant,
}

pub(super) enum ReadOutcome {
    Lines(Vec<String>),
    Closed,
    LineTooLong,
}

impl Client {
    pub(super) fn new(stream: UnixStream, uid: u32) -> Self {
        Client {
            stream,
            uid,
            rbuf: Vec::new(),
            wbuf: Vec::new(),
            subscribed: false,
            last_request: Instant::now(),
        }
    }

    /// Reads what is available and returns the complete lines.
    pub(super) fn read_lines(&mut self) -> ReadOutcome {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return ReadOutcome::Closed,
                Ok(n) => self.rbuf.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return ReadOutcome::Closed,
            }
            if self.rbuf.len() > MAX_LINE * 4 {
                break;
            }
        }
        let mut lines = Vec::new();
        while let Some(pos) = self.rbuf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.rbuf.drain(..=pos).collect();
            if line.len() > MAX_LINE {
                return ReadOutcome::LineTooLong;
            }
            lines.push(String::from_utf8_lossy(&line).trim().to_string());
        }
        if self.rbuf.len() > MAX_LINE {
            return ReadOutcome::LineTooLong;
        }
        ReadOutcome::Lines(lines)
    }

    /// Queues one JSON line; false when the client is too far behind (to be dropped).
    pub(super) fn send_line(&mut self, line: &str) -> bool {
        if self.wbuf.len() + line.len() > MAX_PENDING_OUTPUT {
            return false;
        }
        self.wbuf.extend_from_slice(line.as_bytes());
        self.wbuf.push(b'\n');
        true
    }

    pub(super) fn wants_write(&self) -> bool {
        !self.wbuf.is_empty()
    }

    pub(super) fn flush(&mut self) -> io::Result<()> {
        while !self.wbuf.is_empty() {
            match self.stream.write(&self.wbuf) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.wbuf.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}
