//! stratad: the Strata data plane. With no arguments, a live RTMP server on 0.0.0.0:1935
//! that accepts any application.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use dataplane::config::Config;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "stratad",
    version,
    about = "Strata data plane: live RTMP fan-out on a thread-per-core io_uring engine"
)]
struct Args {
    /// Address to accept RTMP on (repeatable); overrides server.listen in the config.
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Vec<SocketAddr>,
    /// Worker threads, one per core by default; overrides server.workers.
    #[arg(long, value_name = "N")]
    workers: Option<usize>,
    /// Configuration file (TOML); see strata.example.toml. SIGHUP or `stratactl reload`
    /// re-reads it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Unix socket for stratactl; overrides control.socket (default /run/strata/stratad.sock).
    #[arg(long, value_name = "PATH")]
    control_socket: Option<PathBuf>,
    /// Directory of the files served as VOD (`<root>/<app>/<instance>/<name>`); overrides
    /// vod.root.
    #[arg(long, value_name = "DIR")]
    content_root: Option<PathBuf>,
}

fn main() {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colour codes would break every grep of the log; only a terminal gets them.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let config = match &args.config {
        Some(path) => match Config::load(path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("stratad: {e}");
                std::process::exit(2);
            }
        },
        None => Config::default(),
    };
    let options = dataplane::server::Options {
        config,
        config_path: args.config,
        control_socket: args.control_socket,
        overrides: dataplane::server::Overrides {
            listen: args.listen,
            workers: args.workers,
            content_root: args.content_root,
        },
    };
    if let Err(e) = dataplane::server::run(options) {
        eprintln!("stratad: {e}");
        std::process::exit(1);
    }
}
