//! A TCP relay that delays everything it forwards, both ways, by a fixed time: a link with
//! real latency between two "hosts" on loopback (this kernel has no netem). A close on one
//! side reaches the other side after the same delay, as a peer's FIN or RST would. Every
//! thread ends when the proxy is dropped (a stop flag and short socket timeouts), also when
//! the test panics.

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often blocked threads look at the stop flag.
const POLL: Duration = Duration::from_millis(20);

pub struct DelayProxy {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    threads: Arc<Mutex<Vec<JoinHandle<()>>>>,
    acceptor: Option<JoinHandle<()>>,
}

/// Bytes read at `.0`, to be written at `.0 + delay`; `None`: the far side closed.
type Item = (Instant, Option<Vec<u8>>);

impl DelayProxy {
    /// Listens on a free port of `ip` and relays each connection to `to`, `delay` each way.
    pub fn start(ip: IpAddr, to: SocketAddr, delay: Duration) -> DelayProxy {
        let listener = TcpListener::bind((ip, 0)).expect("bind the delay proxy");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("proxy address");
        let stop = Arc::new(AtomicBool::new(false));
        let threads = Arc::new(Mutex::new(Vec::new()));
        let (stop2, threads2) = (Arc::clone(&stop), Arc::clone(&threads));
        let acceptor = std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let Ok(upstream) = TcpStream::connect_timeout(&to, Duration::from_secs(2))
                        else {
                            continue; // The client sees its connection close.
                        };
                        let mut spawned = relay(client, upstream, delay, &stop2);
                        if let Ok(mut t) = threads2.lock() {
                            t.append(&mut spawned);
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(POLL),
                    Err(_) => std::thread::sleep(POLL),
                }
            }
        });
        DelayProxy {
            addr,
            stop,
            threads,
            acceptor: Some(acceptor),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
        let threads = self
            .threads
            .lock()
            .map(|mut t| std::mem::take(&mut *t))
            .unwrap_or_default();
        for t in threads {
            let _ = t.join();
        }
    }
}

/// Two directions, each a reader and a delayed writer.
fn relay(
    client: TcpStream,
    upstream: TcpStream,
    delay: Duration,
    stop: &Arc<AtomicBool>,
) -> Vec<JoinHandle<()>> {
    let mut threads = Vec::new();
    for (from, to) in [(&client, &upstream), (&upstream, &client)] {
        let (Ok(from), Ok(to)) = (from.try_clone(), to.try_clone()) else {
            continue;
        };
        let (tx, rx) = channel();
        let stop_r = Arc::clone(stop);
        threads.push(std::thread::spawn(move || read_side(from, tx, &stop_r)));
        let stop_w = Arc::clone(stop);
        threads.push(std::thread::spawn(move || {
            write_side(to, rx, delay, &stop_w)
        }));
    }
    threads
}

fn read_side(mut from: TcpStream, tx: Sender<Item>, stop: &AtomicBool) {
    let _ = from.set_read_timeout(Some(POLL));
    let mut buf = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::Relaxed) {
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if tx.send((Instant::now(), Some(buf[..n].to_vec()))).is_err() {
                    return;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    let _ = tx.send((Instant::now(), None));
}

fn write_side(mut to: TcpStream, rx: Receiver<Item>, delay: Duration, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        let (at, bytes) = match rx.recv_timeout(POLL) {
            Ok(item) => item,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let due = at + delay;
        while Instant::now() < due && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(due.saturating_duration_since(Instant::now()).min(POLL));
        }
        match bytes {
            Some(b) if to.write_all(&b).is_ok() => {}
            _ => break,
        }
    }
    let _ = to.shutdown(Shutdown::Both);
}
