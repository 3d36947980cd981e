//! Reading the control protocol's JSON lines with a bound on their length, across read
//! timeouts (a line cut by a timeout is resumed, not lost).

use crate::protocol::MAX_LINE;
use std::io::{self, BufRead, BufReader, Read};

/// What one read produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A complete line, without its newline.
    Text(String),
    /// The peer closed the connection (any partial last line is dropped).
    Closed,
    /// A line longer than `MAX_LINE`: the stream is no longer in step, so the caller should
    /// drop the connection.
    TooLong,
    /// A line that is not UTF-8 (skipped; the stream stays in step).
    NotUtf8,
}

pub struct LineReader<R> {
    inner: BufReader<R>,
    partial: Vec<u8>,
}

impl<R: Read> LineReader<R> {
    pub fn new(inner: R) -> LineReader<R> {
        LineReader {
            inner: BufReader::new(inner),
            partial: Vec::new(),
        }
    }

    pub fn get_ref(&self) -> &R {
        self.inner.get_ref()
    }

    /// Reads one line of at most `MAX_LINE` bytes. Socket errors, including read timeouts
    /// (`WouldBlock`/`TimedOut`), come back as `Err`; bytes of a line read before the error
    /// are kept for the next call.
    pub fn read_line(&mut self) -> io::Result<Line> {
        loop {
            let available = match self.inner.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if available.is_empty() {
                self.partial.clear();
                return Ok(Line::Closed);
            }
            match available.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    self.partial.extend_from_slice(&available[..i]);
                    self.inner.consume(i + 1);
                    let mut line = std::mem::take(&mut self.partial);
                    if line.len() > MAX_LINE {
                        return Ok(Line::TooLong);
                    }
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                    return Ok(match String::from_utf8(line) {
                        Ok(text) => Line::Text(text),
                        Err(_) => Line::NotUtf8,
                    });
                }
                None => {
                    let n = available.len();
                    self.partial.extend_from_slice(available);
                    self.inner.consume(n);
                    if self.partial.len() > MAX_LINE {
                        self.partial.clear();
                        return Ok(Line::TooLong);
                    }
                }
            }
        }
    }
}

/// True for the error kinds a read timeout produces.
pub fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn lines_are_split_and_trimmed() {
        let mut r = LineReader::new(Cursor::new(b"one\r\ntwo\nthree".to_vec()));
        assert_eq!(r.read_line().ok(), Some(Line::Text("one".into())));
        assert_eq!(r.read_line().ok(), Some(Line::Text("two".into())));
        assert_eq!(r.read_line().ok(), Some(Line::Closed));
    }

    #[test]
    fn an_endless_line_is_refused_at_the_bound() {
        let mut r = LineReader::new(Cursor::new(vec![b'x'; MAX_LINE * 2]));
        assert_eq!(r.read_line().ok(), Some(Line::TooLong));
    }

    #[test]
    fn bytes_that_are_not_utf8_are_reported() {
        let mut r = LineReader::new(Cursor::new(b"\xff\xfe\nok\n".to_vec()));
        assert_eq!(r.read_line().ok(), Some(Line::NotUtf8));
        assert_eq!(r.read_line().ok(), Some(Line::Text("ok".into())));
    }

    /// Yields its chunks one per read, with a timeout error between them.
    struct Stuttering(Vec<Option<&'static [u8]>>);

    impl Read for Stuttering {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() {
                return Ok(0);
            }
            match self.0.remove(0) {
                Some(chunk) => {
                    buf[..chunk.len()].copy_from_slice(chunk);
                    Ok(chunk.len())
                }
                None => Err(io::ErrorKind::WouldBlock.into()),
            }
        }
    }

    #[test]
    fn a_line_cut_by_a_timeout_is_resumed() {
        let mut r = LineReader::new(Stuttering(vec![Some(b"{\"a\":"), None, Some(b"1}\n")]));
        assert!(r.read_line().is_err_and(|e| is_timeout(&e)));
        assert_eq!(r.read_line().ok(), Some(Line::Text("{\"a\":1}".into())));
    }
}
