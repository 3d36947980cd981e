//! strata-load: N RTMP players (and optionally a real-time FLV publisher) against one stream,
//! with a line a second and a report at the end. See BENCHMARKS.md.
//!
//!   strata-load rtmp://127.0.0.1:1935/app/stream -n 2000 --server-pid PID
//!   strata-load rtmp://127.0.0.1:1935/app/stream -n 0 --publish bench.flv --duration 600
//!   strata-load rtmp://127.0.0.1:1935/app/stream -n 500 --rtmfp --server-pid PID
//!   strata-load gen-media [--out FILE] [--seconds 60] [--rendition full|500k]
//!   strata-load ceiling [-n 2000] [--rate-mbps 2.16 | --rate-mbps 0 --write-size 65536] [--json]
//!   ip netns exec NS strata-load ceiling --udp [-n 500] [--rate-mbps 2.15] [--rtp] [--scatter] [--zerocopy [--drain-every 8]] [--hugepage] [--no-loop] [--json]
//!   ip netns exec NS strata-load ceiling --udp --uring [--zerocopy [--registered]] [-n 500] [--json]
//!   strata-load ceiling --udp --unicast [-n 500] [--interval-ms 150] [--gso] [--json]
//!   strata-load multicast-config --streams 1 --groups 500 >> strata.toml
//!   ip netns exec NS strata-load multicast-ab --control SOCK --server-pid PID -n 100

use std::path::PathBuf;
use std::time::Duration;

use benches::load::LoadConfig;
use benches::run::{run, RunConfig};
use benches::url::RtmpUrl;
use clap::{Parser, Subcommand, ValueEnum};
use dataplane::proto::rtmp::handshake::HandshakeKind;

#[derive(Parser)]
#[command(
    name = "strata-load",
    about = "RTMP load tool: N players (and a real-time FLV publisher) against one stream",
    args_conflicts_with_subcommands = true
)]
struct Args {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    /// rtmp://HOST:PORT/APP/STREAM
    url: Option<String>,
    /// Players.
    #[arg(short = 'n', long, default_value_t = 100)]
    players: usize,
    /// Player threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Players started per second (0: all at once).
    #[arg(long, default_value_t = 0.0)]
    ramp: f64,
    /// Run time in seconds, players' joining included; the tool always stops after it.
    #[arg(long, default_value_t = 30.0)]
    duration: f64,
    /// Seconds after everyone joined before the steady window starts.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Seconds after the last player started to wait for all to play before measuring
    /// the steady window anyway.
    #[arg(long, default_value_t = 8.0)]
    settle_timeout: f64,
    /// Also publish this FLV file to the stream (real time, looping).
    #[arg(long, value_name = "FILE.flv")]
    publish: Option<PathBuf>,
    /// The server's pid: its CPU and RSS are sampled from /proc.
    #[arg(long, value_name = "PID")]
    server_pid: Option<u32>,
    /// Print the final report as JSON (per-second lines go to stderr).
    #[arg(long)]
    json: bool,
    /// Handshake the players use.
    #[arg(long, value_enum, default_value_t = Hs::Simple)]
    handshake: Hs,
    /// SO_RCVBUF of each player socket in bytes (0: kernel autotuning for RTMP players, 1 MiB
    /// for RTMFP ones).
    #[arg(long, default_value_t = 0)]
    rcvbuf: usize,
    /// SO_RCVLOWAT in bytes once a player has its first picture (0: off); fewer wake-ups
    /// against servers that write each message separately.
    #[arg(long, default_value_t = 0)]
    rcvlowat: usize,
    /// Pin player threads to these cores (comma-separated).
    #[arg(long, value_delimiter = ',')]
    cpus: Vec<usize>,
    /// Allow a host other than 127.0.0.1/localhost (traffic leaves the machine).
    #[arg(long)]
    allow_remote: bool,
    /// RTMFP players: the URL's host and port over UDP (rtmfp://HOST:PORT/APP), one UDP
    /// socket each; the publisher (--publish) stays RTMP.
    #[arg(long)]
    rtmfp: bool,
    /// With --rtmfp: each player's certificate offers only the 1,024-bit Diffie-Hellman key,
    /// as Flash Player's does. MonaServer2 needs this: it reads only a certificate's first
    /// key and answers in 1,024 bits, which players offering 2,048 bits first drop.
    #[arg(long, requires = "rtmfp")]
    rtmfp_flash_keys: bool,
}

#[derive(Subcommand)]
enum Cmd {
    /// Make the benchmark stream with ffmpeg (H.264 + AAC, ~2.15 Mbit/s, 2 s GOP; or its
    /// 500 kbit/s rendition); prints its path.
    GenMedia {
        /// Output file [default: target/bench-media/bench.flv, bench-500k.flv for 500k]
        #[arg(long)]
        out: Option<PathBuf>,
        /// full: 1280x720, ~2.15 Mbit/s; 500k: 640x360, ~0.5 Mbit/s (same source and GOP).
        #[arg(long, default_value = "full", value_parser = benches::media::Rendition::parse)]
        rendition: benches::media::Rendition,
        #[arg(long, default_value_t = 60)]
        seconds: u32,
        /// Make it again even if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Print the comparison table of a directory of SERVER-N.json reports (benches/compare).
    Table { dir: PathBuf },
    /// Print a free TCP port of 127.0.0.1 (for scripts).
    FreePort,
    /// Remote shared objects: N users of one object, one of them changing a slot at
    /// --rate per second; time from a change to the last user seeing it, server CPU and
    /// memory per user.
    So {
        /// rtmp://127.0.0.1:PORT/APP/OBJECT (the object of that application's default
        /// instance)
        url: String,
        /// Users of the object.
        #[arg(short = 'n', long, default_value_t = 1000)]
        users: usize,
        /// Changes per second.
        #[arg(long, default_value_t = 100.0)]
        rate: f64,
        /// Seconds of changes once every user joined.
        #[arg(long, default_value_t = 20.0)]
        duration: f64,
        /// The server's pid: its CPU and RSS are sampled from /proc.
        #[arg(long, value_name = "PID")]
        server_pid: Option<u32>,
    },
    /// Connect rate: N clients connecting to APP (--concurrency at once), connects per
    /// second and p99 connect time; with --method, then calls per second into that method
    /// (e.g. a script's Client.prototype method). Run once against a scripted application
    /// and once against a plain one to see what the script costs.
    Connect {
        /// 127.0.0.1:PORT of stratad.
        #[arg(long)]
        addr: std::net::SocketAddr,
        #[arg(long)]
        app: String,
        #[arg(short = 'n', long, default_value_t = 1000)]
        clients: usize,
        #[arg(long, default_value_t = 50)]
        concurrency: usize,
        /// A method every client then calls back to back.
        #[arg(long)]
        method: Option<String>,
        /// Calls answered before the run ends.
        #[arg(long, default_value_t = 100_000)]
        calls: usize,
    },
    /// The ceiling: one pinned thread writing the same bytes to N loopback sockets with plain
    /// write(2), a sink reading them on another core; its CPU per Gbit/s is the baseline
    /// stratad's is compared with.
    Ceiling {
        /// Sockets.
        #[arg(short = 'n', long, default_value_t = 2000)]
        sockets: usize,
        /// Per socket, one write per interval (0: unpaced, --write-size bytes per write as
        /// fast as the sockets take them).
        #[arg(long, default_value_t = 2.16)]
        rate_mbps: f64,
        /// Paced mode: each socket gets one write of rate x interval bytes per interval
        /// [default: 100; with --udp 150, stratad's live.send_batch_ms].
        #[arg(long)]
        interval_ms: Option<u64>,
        /// Unpaced mode: bytes per write.
        #[arg(long, default_value_t = 65536)]
        write_size: usize,
        /// Pieces each write is split into (writev when above 1): what sending queued
        /// messages without joining them costs.
        #[arg(long, default_value_t = 1)]
        iovecs: usize,
        /// Run time in seconds, connecting included; the tool always stops after it.
        #[arg(long, default_value_t = 20.0)]
        duration: f64,
        /// Seconds after every socket connected before the steady window starts.
        #[arg(long, default_value_t = 3.0)]
        warmup: f64,
        /// Core the writer is pinned to.
        #[arg(long, default_value_t = 0)]
        cpu: usize,
        /// Core the sink (the reading side) is pinned to.
        #[arg(long, default_value_t = 1)]
        sink_cpu: usize,
        /// Print the report as JSON (per-second lines go to stderr).
        #[arg(long)]
        json: bool,
        /// UDP mode: -n multicast outputs, each one sendmsg (UDP GSO, 1316-byte datagrams)
        /// per interval to its own group, as stratad's outputs send; run it in a network
        /// namespace whose 224.0.0.0/4 routes through lo (the tool checks).
        #[arg(long)]
        udp: bool,
        /// UDP mode, unicast: -n viewers' RTMFP-sized datagrams (--rate-mbps each) from one
        /// socket to -n receiving sockets on 127.1.x.y, batched as stratad's RTMFP sends
        /// (every --interval-ms, all of it in sendmmsg calls): the floor stratad's RTMFP
        /// viewers are compared with. No namespace needed.
        #[arg(long)]
        unicast: bool,
        /// UDP unicast mode: one sendmsg with UDP_SEGMENT per viewer instead of sendmmsg.
        #[arg(long)]
        gso: bool,
        /// UDP unicast mode: bytes per datagram (stratad's RTMFP packets are 1,200).
        #[arg(long, default_value_t = benches::udp_unicast::DATAGRAM)]
        datagram: usize,
        /// UDP mode: an RTP header per datagram, as its own iovec.
        #[arg(long)]
        rtp: bool,
        /// UDP mode: each datagram gathered from two iovecs per TS packet (4-byte header,
        /// 184-byte payload from another buffer), as a muxer copying no payload would send.
        #[arg(long)]
        scatter: bool,
        /// UDP mode: send with MSG_ZEROCOPY (completions read from the error queue once per
        /// interval; the report counts sends the kernel copied anyway).
        #[arg(long)]
        zerocopy: bool,
        /// UDP mode with --zerocopy: read the error queues every this many intervals (two
        /// recvmsg calls per socket each time; the kernel merges notifications meanwhile).
        #[arg(long, default_value_t = 1)]
        drain_every: u32,
        /// UDP mode: the payload in a transparent huge page.
        #[arg(long)]
        hugepage: bool,
        /// UDP mode: every output's send of an interval submitted on one io_uring
        /// (IORING_OP_SEND; with --zerocopy IORING_OP_SEND_ZC).
        #[arg(long)]
        uring: bool,
        /// UDP mode with --uring --zerocopy: send from the payload registered as a fixed
        /// buffer (pinned once, not per send).
        #[arg(long)]
        registered: bool,
        /// UDP mode: IP_MULTICAST_LOOP off (no copy looped back to this host's stack).
        #[arg(long)]
        no_loop: bool,
        /// UDP mode: the first group (output i sends to it + i).
        #[arg(long, default_value = "239.20.0.1")]
        group: std::net::Ipv4Addr,
        /// UDP mode: the groups' port.
        #[arg(long, default_value_t = 5000)]
        port: u16,
    },
    /// `[[multicast]]` entries for stratad's multicast benchmark: STREAMS streams
    /// (live/bench0, ...) each to GROUPS groups, numbered from --group as `ceiling --udp`
    /// numbers its outputs.
    MulticastConfig {
        #[arg(long, default_value_t = 1)]
        streams: usize,
        #[arg(long, default_value_t = 500)]
        groups: usize,
        #[arg(long, default_value = "239.20.0.1")]
        group: std::net::Ipv4Addr,
        #[arg(long, default_value_t = 5000)]
        port: u16,
        #[arg(long)]
        rtp: bool,
    },
    /// Issue 14's many-to-one inside one stratad run: windows with an output per stream
    /// (added through the control socket), without, and without but with the UDP floor's
    /// sender pinned to stratad's core; stratad's worker thread's CPU in each (see
    /// benches/multicast many-to-one-ab, which starts stratad and the publishers).
    MulticastAb {
        /// stratad's control socket.
        #[arg(long)]
        control: PathBuf,
        #[arg(long, value_name = "PID")]
        server_pid: u32,
        /// Streams live/bench0 .. live/bench{N-1}, each to its own group.
        #[arg(short = 'n', long, default_value_t = 100)]
        streams: usize,
        #[arg(long, default_value_t = 6)]
        rounds: usize,
        /// Seconds measured per window.
        #[arg(long, default_value_t = 10.0)]
        window: f64,
        /// Seconds after each change before its window.
        #[arg(long, default_value_t = 3.0)]
        settle: f64,
        #[arg(long, default_value = "239.20.0.1")]
        group: std::net::Ipv4Addr,
        #[arg(long, default_value_t = 5000)]
        port: u16,
        #[arg(long)]
        rtp: bool,
        /// The worker thread measured.
        #[arg(long, default_value = "strata-w0")]
        worker: String,
        /// Core stratad's worker runs on (the floor's sender is pinned there).
        #[arg(long, default_value_t = 0)]
        cpu: usize,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Hs {
    Simple,
    Digest,
}

fn subcommand(cmd: Cmd) -> Result<(), String> {
    match cmd {
        Cmd::GenMedia {
            out,
            seconds,
            rendition,
            force,
        } => {
            let out =
                out.unwrap_or_else(|| benches::media::default_dir().join(rendition.file_name()));
            let p = benches::media::generate(&out, seconds, rendition, force)?;
            println!("{}", p.display());
        }
        Cmd::Table { dir } => {
            print!(
                "{}",
                benches::table::render(&benches::table::load_dir(&dir)?)
            );
        }
        Cmd::Ceiling {
            sockets,
            rate_mbps,
            interval_ms,
            write_size,
            iovecs,
            duration,
            warmup,
            cpu,
            sink_cpu,
            json,
            udp,
            rtp,
            scatter,
            zerocopy,
            drain_every,
            hugepage,
            uring,
            registered,
            no_loop,
            group,
            port,
            unicast,
            gso,
            datagram,
        } => {
            let secs = |v: f64, name: &str| {
                Duration::try_from_secs_f64(v)
                    .map_err(|_| format!("--{name} must be a number of seconds"))
            };
            if udp && unicast {
                let cfg = benches::udp_unicast::UnicastConfig {
                    viewers: sockets,
                    rate_mbps,
                    interval: Duration::from_millis(interval_ms.unwrap_or(150)),
                    datagram,
                    gso,
                    duration: secs(duration, "duration")?,
                    warmup: secs(warmup, "warmup")?,
                    cpu: Some(cpu),
                    sink_cpu: Some(sink_cpu),
                };
                let report = benches::udp_unicast::run(&cfg)?;
                return print_report(&report, json, report.human());
            }
            if udp {
                let cfg = benches::udp_ceiling::UdpCeilingConfig {
                    outputs: sockets,
                    first_group: group,
                    port,
                    rate_mbps,
                    interval: Duration::from_millis(interval_ms.unwrap_or(150)),
                    rtp,
                    scatter,
                    zerocopy,
                    drain_every,
                    hugepage,
                    uring: match (uring, zerocopy, registered) {
                        (false, _, false) => None,
                        (true, false, false) => Some(benches::udp_ceiling::UringSend::Copy),
                        (true, true, false) => Some(benches::udp_ceiling::UringSend::ZeroCopy),
                        (true, true, true) => Some(benches::udp_ceiling::UringSend::ZeroCopyFixed),
                        _ => return Err("--registered needs --uring --zerocopy".into()),
                    },
                    no_loop,
                    duration: secs(duration, "duration")?,
                    warmup: secs(warmup, "warmup")?,
                    cpu: Some(cpu),
                };
                let report = benches::udp_ceiling::run(&cfg)?;
                return print_report(&report, json, report.human());
            }
            let cfg = benches::ceiling::CeilingConfig {
                sockets,
                rate_mbps,
                interval: Duration::from_millis(interval_ms.unwrap_or(100)),
                write_size,
                iovecs,
                duration: secs(duration, "duration")?,
                warmup: secs(warmup, "warmup")?,
                writer_cpu: Some(cpu),
                sink_cpu: Some(sink_cpu),
                progress: if json {
                    benches::ceiling::Progress::Stderr
                } else {
                    benches::ceiling::Progress::Stdout
                },
            };
            let report = benches::ceiling::run(&cfg)?;
            if json {
                println!("{}", report.to_json());
            } else {
                print!("{}", report.to_table());
            }
        }
        Cmd::So {
            url,
            users,
            rate,
            duration,
            server_pid,
        } => {
            let url = RtmpUrl::parse(&url)?;
            if !matches!(url.host.as_str(), "127.0.0.1" | "localhost") {
                return Err("the so benchmark runs against 127.0.0.1 only".into());
            }
            let cfg = benches::so_bench::SoBenchConfig {
                object: url.stream.clone(),
                addr: url.resolve()?,
                app: url.app.clone(),
                tc_url: url.tc_url(),
                users,
                rate,
                duration: Duration::try_from_secs_f64(duration)
                    .map_err(|_| "--duration must be a number of seconds".to_string())?,
                server_pid,
            };
            print!("{}", benches::so_bench::run(&cfg)?.to_table());
        }
        Cmd::MulticastConfig {
            streams,
            groups,
            group,
            port,
            rtp,
        } => print!(
            "{}",
            benches::udp_ceiling::multicast_config(streams, groups, group, port, rtp)
        ),
        Cmd::Connect {
            addr,
            app,
            clients,
            concurrency,
            method,
            calls,
        } => {
            if !addr.ip().is_loopback() {
                return Err("the connect benchmark runs against loopback only".into());
            }
            let cfg = benches::connect_bench::ConnectBenchConfig {
                addr,
                app,
                clients,
                concurrency,
                method,
                calls,
            };
            print!("{}", benches::connect_bench::run(&cfg)?.to_table());
        }
        Cmd::MulticastAb {
            control,
            server_pid,
            streams,
            rounds,
            window,
            settle,
            group,
            port,
            rtp,
            worker,
            cpu,
            json,
        } => {
            let secs = |v: f64, name: &str| {
                Duration::try_from_secs_f64(v)
                    .map_err(|_| format!("--{name} must be a number of seconds"))
            };
            let cfg = benches::multicast_ab::MulticastAbConfig {
                control,
                server_pid,
                worker,
                streams,
                first_group: group,
                port,
                rtp,
                rounds,
                window: secs(window, "window")?,
                settle: secs(settle, "settle")?,
                floor_cpu: cpu,
            };
            let report = benches::multicast_ab::run(&cfg)?;
            print_report(&report, json, report.human())?;
        }
        Cmd::FreePort => {
            let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
            let port = l.local_addr().map_err(|e| e.to_string())?.port();
            println!("{port}");
        }
    }
    Ok(())
}

/// A benchmark's report as one JSON line, or as its human text.
fn print_report(report: &impl serde::Serialize, json: bool, human: String) -> Result<(), String> {
    if json {
        println!(
            "{}",
            serde_json::to_string(report).map_err(|e| e.to_string())?
        );
    } else {
        print!("{human}");
    }
    Ok(())
}

fn main() {
    let args = Args::parse();
    if let Some(cmd) = args.cmd {
        if let Err(e) = subcommand(cmd) {
            eprintln!("strata-load: {e}");
            std::process::exit(1);
        }
        return;
    }
    let Some(url) = args.url.as_deref() else {
        eprintln!("strata-load: give rtmp://HOST:PORT/APP/STREAM (or `gen-media`); see --help");
        std::process::exit(2);
    };
    let url = match RtmpUrl::parse(url) {
        Ok(u) => u,
        Err(e) => {
            eprintln!("strata-load: {e}");
            std::process::exit(2);
        }
    };
    let local = matches!(
        url.host.as_str(),
        "127.0.0.1" | "localhost" | "::1" | "[::1]"
    );
    if !local && !args.allow_remote {
        eprintln!(
            "strata-load: {} is not this machine; pass --allow-remote to load it",
            url.host
        );
        std::process::exit(2);
    }
    if args.duration.is_nan() || args.duration <= 0.0 {
        eprintln!("strata-load: --duration must be positive");
        std::process::exit(2);
    }
    let cfg = RunConfig {
        load: LoadConfig {
            url,
            players: args.players,
            threads: args.threads.max(1),
            ramp: args.ramp.max(0.0),
            handshake: match args.handshake {
                Hs::Simple => HandshakeKind::Simple,
                Hs::Digest => HandshakeKind::Digest,
            },
            rcvbuf: args.rcvbuf,
            rcvlowat: args.rcvlowat,
            cpus: args.cpus,
            rtmfp: args.rtmfp,
            rtmfp_flash_keys: args.rtmfp_flash_keys,
        },
        duration: Duration::from_secs_f64(args.duration),
        publish: args.publish,
        server_pid: args.server_pid,
        warmup: Duration::from_secs_f64(args.warmup.max(0.0)),
        settle_timeout: Duration::from_secs_f64(args.settle_timeout.max(0.0)),
        lines_to_stderr: args.json,
    };
    match run(&cfg) {
        Ok(report) => {
            if args.json {
                println!("{}", report.to_json());
            } else {
                print!("{}", report.to_table());
            }
            if report.publisher_error.is_some() {
                std::process::exit(1);
            }
        }
        Err(e) => {
            eprintln!("strata-load: {e}");
            std::process::exit(1);
        }
    }
}
