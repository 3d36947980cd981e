//! A UDP relay that drops a share of the datagrams it forwards, both ways, at random: a
//! lossy link between a client and a server on loopback (this kernel has no netem, and the
//! test needs neither root nor nftables). Each client address gets an upstream socket of
//! its own, so the server sees one address per client, as through a NAT. The drops come
//! from a seeded generator and are counted, so a test can say it really ran through loss.
//! Every thread ends when the relay is dropped (a stop flag and short socket timeouts),
//! also when the test panics, and at the latest after `MAX_LIFE`.

use std::collections::hash_map::{Entry, HashMap};
use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often blocked threads look at the stop flag.
const POLL: Duration = Duration::from_millis(20);
/// No relay outlives this, whatever the test does.
const MAX_LIFE: Duration = Duration::from_secs(300);

/// Datagrams forwarded and dropped, both directions together.
#[derive(Default)]
struct Counts {
    forwarded: AtomicU64,
    dropped: AtomicU64,
}

/// Drops `percent` % of the datagrams it is asked about (xorshift64*, seeded: a failing
/// run's drop pattern depends only on the order of datagrams).
struct Dice {
    state: u64,
    percent: u64,
}

impl Dice {
    fn drop_this(&mut self) -> bool {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(0x2545_f491_4f6c_dd1d) % 100 < self.percent
    }
}

pub struct LossyUdpRelay {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    counts: Arc<Counts>,
    threads: Arc<Mutex<Vec<JoinHandle<()>>>>,
    front: Option<JoinHandle<()>>,
}

impl LossyUdpRelay {
    /// Listens on a free UDP port of `ip` and relays each client to `to`, dropping
    /// `percent` % of the datagrams each way.
    pub fn start(ip: IpAddr, to: SocketAddr, percent: u64, seed: u64) -> LossyUdpRelay {
        let front = UdpSocket::bind((ip, 0)).expect("bind the lossy relay");
        front.set_read_timeout(Some(POLL)).expect("read timeout");
        let addr = front.local_addr().expect("relay address");
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(Counts::default());
        let threads = Arc::new(Mutex::new(Vec::new()));
        let dice = Arc::new(Mutex::new(Dice {
            state: seed | 1,
            percent,
        }));
        let (stop2, counts2, threads2) =
            (Arc::clone(&stop), Arc::clone(&counts), Arc::clone(&threads));
        let front_thread = std::thread::spawn(move || {
            let born = Instant::now();
            let mut upstreams: HashMap<SocketAddr, UdpSocket> = HashMap::new();
            let mut buf = vec![0u8; 65_536];
            while !stop2.load(Ordering::Relaxed) && born.elapsed() < MAX_LIFE {
                let (n, client) = match front.recv_from(&mut buf) {
                    Ok(got) => got,
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                        continue
                    }
                    Err(_) => break,
                };
                if let Entry::Vacant(slot) = upstreams.entry(client) {
                    let Some((up, back)) = upstream(&front, to.ip()) else {
                        continue;
                    };
                    let t = back_thread(
                        back,
                        up.try_clone().expect("clone"),
                        client,
                        Arc::clone(&stop2),
                        Arc::clone(&counts2),
                        Arc::clone(&dice),
                    );
                    if let Ok(mut ts) = threads2.lock() {
                        ts.push(t);
                    }
                    slot.insert(up);
                }
                if roll(&dice) {
                    counts2.dropped.fetch_add(1, Ordering::Relaxed);
                } else if let Some(up) = upstreams.get(&client) {
                    let _ = up.send_to(&buf[..n], to);
                    counts2.forwarded.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        LossyUdpRelay {
            addr,
            stop,
            counts,
            threads,
            front: Some(front_thread),
        }
    }

    /// Where clients send.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Datagrams dropped so far, both ways.
    pub fn dropped(&self) -> u64 {
        self.counts.dropped.load(Ordering::Relaxed)
    }

    /// Datagrams forwarded so far, both ways.
    pub fn forwarded(&self) -> u64 {
        self.counts.forwarded.load(Ordering::Relaxed)
    }
}

fn roll(dice: &Mutex<Dice>) -> bool {
    dice.lock().map(|mut d| d.drop_this()).unwrap_or(false)
}

/// A socket toward the server for one client (on an address of the server's family), and
/// the front socket again for the replies to it.
fn upstream(front: &UdpSocket, server: IpAddr) -> Option<(UdpSocket, UdpSocket)> {
    let bind: SocketAddr = if server.is_ipv6() {
        "[::1]:0".parse().ok()?
    } else {
        "127.0.0.1:0".parse().ok()?
    };
    let up = UdpSocket::bind(bind).ok()?;
    up.set_read_timeout(Some(POLL)).ok()?;
    Some((up, front.try_clone().ok()?))
}

/// Server to client: what the upstream socket receives goes out of the front socket.
fn back_thread(
    front: UdpSocket,
    up: UdpSocket,
    client: SocketAddr,
    stop: Arc<AtomicBool>,
    counts: Arc<Counts>,
    dice: Arc<Mutex<Dice>>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let born = Instant::now();
        let mut buf = vec![0u8; 65_536];
        while !stop.load(Ordering::Relaxed) && born.elapsed() < MAX_LIFE {
            let n = match up.recv_from(&mut buf) {
                Ok((n, _)) => n,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    continue
                }
                Err(_) => break,
            };
            if roll(&dice) {
                counts.dropped.fetch_add(1, Ordering::Relaxed);
            } else {
                let _ = front.send_to(&buf[..n], client);
                counts.forwarded.fetch_add(1, Ordering::Relaxed);
            }
        }
    })
}

impl Drop for LossyUdpRelay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.front.take() {
            let _ = t.join();
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
