//! A blocking client of stratad's control socket: one request at a time, for `stratactl`'s
//! one-shot commands and the manager's admin API.

use crate::line_reader::{self, Line, LineReader};
use crate::protocol::{
    AuthRequest, Call, ErrorBody, Event, Reply, Request, Response, ServerLine, PROTOCOL_VERSION,
};
use std::fmt;
use std::io::{self, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a one-shot request may wait for its response: stratad answers from memory, so
/// anything near this means it is wedged.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub enum ClientError {
    /// Nothing listens at the path (missing socket, or a stale one).
    NoStratad {
        path: PathBuf,
    },
    /// The socket exists but we may not use it.
    PermissionDenied {
        path: PathBuf,
    },
    Io {
        path: PathBuf,
        source: io::Error,
    },
    /// stratad did not answer in time.
    Timeout {
        path: PathBuf,
        waited: Duration,
    },
    /// stratad closed the connection before answering.
    Closed {
        path: PathBuf,
    },
    /// stratad sent something we do not understand as an answer.
    Protocol {
        path: PathBuf,
        message: String,
    },
    /// stratad answered with an error.
    Server(ErrorBody),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::NoStratad { path } => write!(
                f,
                "no stratad at {} (is it running? is --socket right?)",
                path.display()
            ),
            ClientError::PermissionDenied { path } => write!(
                f,
                "permission denied on {} (run as root, stratad's user, or a member of the socket's group)",
                path.display()
            ),
            ClientError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            ClientError::Timeout { path, waited } => write!(
                f,
                "stratad at {} did not answer within {:.1}s",
                path.display(),
                waited.as_secs_f64()
            ),
            ClientError::Closed { path } => write!(
                f,
                "stratad at {} closed the connection before answering",
                path.display()
            ),
            ClientError::Protocol { path, message } => {
                write!(f, "unexpected answer from {}: {message}", path.display())
            }
            ClientError::Server(e) => write!(f, "stratad refused: {} ({})", e.message, e.code),
        }
    }
}

impl std::error::Error for ClientError {}

/// Maps a failed `connect` to the error an operator can act on.
pub fn connect_error(path: &Path, e: io::Error) -> ClientError {
    let path = path.to_path_buf();
    match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => {
            ClientError::NoStratad { path }
        }
        io::ErrorKind::PermissionDenied => ClientError::PermissionDenied { path },
        _ => ClientError::Io { path, source: e },
    }
}

/// A line from stratad other than the answer being waited for.
#[derive(Debug, Clone, PartialEq)]
pub enum Unsolicited {
    Event(Event),
    Auth(AuthRequest),
}

/// One connection to stratad's control socket.
pub struct ControlClient {
    path: PathBuf,
    writer: UnixStream,
    reader: LineReader<UnixStream>,
    next_id: u64,
    timeout: Duration,
    /// Events and auth requests that arrived while waiting for a response.
    pending: Vec<Unsolicited>,
}

/// A response with the exact line it came in (for `--json`).
#[derive(Debug, Clone)]
pub struct Answer {
    pub line: String,
    pub response: Response,
}

impl Answer {
    /// The result, or the server's error as a `ClientError`.
    pub fn into_result(self) -> Result<Reply, ClientError> {
        match (self.response.result, self.response.error) {
            (_, Some(e)) => Err(ClientError::Server(e)),
            (Some(r), None) => Ok(r),
            (None, None) => Err(ClientError::Server(ErrorBody {
                code: "internal".into(),
                message: "response with neither result nor error".into(),
            })),
        }
    }
}

impl ControlClient {
    pub fn connect(path: &Path) -> Result<ControlClient, ClientError> {
        ControlClient::connect_with_timeout(path, DEFAULT_TIMEOUT)
    }

    pub fn connect_with_timeout(
        path: &Path,
        timeout: Duration,
    ) -> Result<ControlClient, ClientError> {
        let stream = UnixStream::connect(path).map_err(|e| connect_error(path, e))?;
        let io_err = |source| ClientError::Io {
            path: path.to_path_buf(),
            source,
        };
        stream.set_write_timeout(Some(timeout)).map_err(io_err)?;
        let reader = stream.try_clone().map_err(io_err)?;
        Ok(ControlClient {
            path: path.to_path_buf(),
            writer: stream,
            reader: LineReader::new(reader),
            next_id: 1,
            timeout,
            pending: Vec::new(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sends one request and waits for its response (events and auth requests arriving
    /// meanwhile are kept for `next_unsolicited`; lines that do not parse are skipped).
    pub fn call(&mut self, call: Call) -> Result<Answer, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&Request {
            v: PROTOCOL_VERSION,
            id,
            call,
        })?;
        let deadline = Instant::now() + self.timeout;
        loop {
            let Some(line) = self.read_line_until(deadline)? else {
                return Err(ClientError::Timeout {
                    path: self.path.clone(),
                    waited: self.timeout,
                });
            };
            match serde_json::from_str::<ServerLine>(&line) {
                Ok(ServerLine::Response(response)) if response.id == id => {
                    return Ok(Answer { line, response })
                }
                Ok(ServerLine::Response(_)) => {}
                Ok(ServerLine::Event(e)) => self.pending.push(Unsolicited::Event(e)),
                Ok(ServerLine::Auth(a)) => self.pending.push(Unsolicited::Auth(a.auth)),
                // Only a connection that sent `rpc_register` gets these.
                Ok(ServerLine::Rpc(_)) | Err(_) => {}
            }
        }
    }

    /// Sends a request, expects a result, and returns it.
    pub fn request(&mut self, call: Call) -> Result<Reply, ClientError> {
        self.call(call)?.into_result()
    }

    /// The next event or auth request, with its raw line; `Ok(None)` when `wait` passes
    /// without one. Lines that are not events or auth requests are skipped.
    pub fn next_unsolicited(
        &mut self,
        wait: Duration,
    ) -> Result<Option<(Option<String>, Unsolicited)>, ClientError> {
        if !self.pending.is_empty() {
            return Ok(Some((None, self.pending.remove(0))));
        }
        let deadline = Instant::now() + wait;
        loop {
            let Some(line) = self.read_line_until(deadline)? else {
                return Ok(None);
            };
            match serde_json::from_str::<ServerLine>(&line) {
                Ok(ServerLine::Event(e)) => return Ok(Some((Some(line), Unsolicited::Event(e)))),
                Ok(ServerLine::Auth(a)) => {
                    return Ok(Some((Some(line), Unsolicited::Auth(a.auth))))
                }
                _ => {}
            }
        }
    }

    fn send(&mut self, request: &Request) -> Result<(), ClientError> {
        let mut line = serde_json::to_vec(request).map_err(|e| ClientError::Protocol {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        line.push(b'\n');
        self.writer.write_all(&line).map_err(|source| {
            if source.kind() == io::ErrorKind::BrokenPipe {
                ClientError::Closed {
                    path: self.path.clone(),
                }
            } else {
                ClientError::Io {
                    path: self.path.clone(),
                    source,
                }
            }
        })
    }

    /// One line, or `None` at the deadline.
    fn read_line_until(&mut self, deadline: Instant) -> Result<Option<String>, ClientError> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            let io_err = |path: &Path, source| ClientError::Io {
                path: path.to_path_buf(),
                source,
            };
            self.reader
                .get_ref()
                .set_read_timeout(Some(left))
                .map_err(|e| io_err(&self.path, e))?;
            match self.reader.read_line() {
                Ok(Line::Text(text)) => return Ok(Some(text)),
                Ok(Line::Closed) => {
                    return Err(ClientError::Closed {
                        path: self.path.clone(),
                    })
                }
                Ok(Line::TooLong) => {
                    return Err(ClientError::Protocol {
                        path: self.path.clone(),
                        message: "line longer than the protocol allows".into(),
                    })
                }
                Ok(Line::NotUtf8) => continue,
                Err(e) if line_reader::is_timeout(&e) => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                    return Err(ClientError::Closed {
                        path: self.path.clone(),
                    })
                }
                Err(e) => return Err(io_err(&self.path, e)),
            }
        }
    }
}
