//! `stratactl`: operator commands over stratad's control socket, the long-running manager
//! (`serve`), and the sysctl tuning profiles (`tune`).

use clap::{Parser, Subcommand};
use control::client::{Answer, ControlClient, Unsolicited};
use control::manager::{Manager, ManagerOptions};
use control::manager_config::{ManagerConfig, DEFAULT_HTTP};
use control::protocol::{Call, Reply, DEFAULT_SOCKET};
use control::{multicast_command, rpc_cli, so_command, table, tune, vod_command};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "stratactl", version, about = "Manage a running stratad")]
struct Cli {
    /// stratad's control socket [default: /run/strata/stratad.sock, or the serve config's]
    #[arg(long, global = true, env = "STRATA_SOCKET")]
    socket: Option<PathBuf>,
    /// Print the reply's JSON as received instead of a table
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Version, uptime, workers, connections, bytes and rates
    Status,
    /// Live streams: publisher, codecs, bitrates, viewers
    Streams,
    /// Connected clients
    Clients,
    /// Files under the content root (of APP or APP/INSTANCE): the name to play, the size
    Vod { target: Option<String> },
    /// Upstream groups of relay pulls and pushes: addresses, state, attempts, which is
    /// active, since
    Upstreams {
        /// The standing FCAddChild links instead, each with its group's live streams
        #[arg(long)]
        links: bool,
    },
    /// Disconnect a client by id
    Kick { id: u64 },
    /// Disconnect a stream's publisher (app/instance/name or app/name)
    Stop { stream: String },
    /// Make stratad re-read its configuration file
    Reload,
    /// Application scripts: `app reload APP` unloads APP's instances (its clients get
    /// AppShutdown) so its scripts load again, changed or not
    App {
        #[command(subcommand)]
        action: AppAction,
    },
    /// Remote shared objects of an application instance (APP or APP/INSTANCE)
    So {
        #[command(subcommand)]
        action: so_command::SoAction,
    },
    /// Multicast outputs: list, add, remove (streams as MPEG-TS to multicast groups)
    Multicast {
        #[command(subcommand)]
        action: multicast_command::MulticastAction,
    },
    /// Print events (connect, publish, play...) until interrupted
    Events,
    /// Call a method on a client and print what it returns (ARGS: JSON values)
    Call {
        client: u64,
        method: String,
        args: Vec<String>,
        /// How long to wait for the client's answer [default: 5000]
        #[arg(long)]
        timeout_ms: Option<u64>,
    },
    /// Call a method on every client of APP or APP/INSTANCE, on every worker (no answer)
    Broadcast {
        target: String,
        method: String,
        args: Vec<String>,
    },
    /// Run the manager: admin API, Prometheus metrics, auth hooks
    Serve {
        /// Where to serve HTTP [default: 127.0.0.1:8086]
        #[arg(long)]
        http: Option<String>,
        /// The manager's TOML configuration (hooks, timeouts, reconnect backoff)
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// sysctl tuning profiles (see tuning/README.md)
    Tune {
        #[command(subcommand)]
        action: TuneAction,
        /// A directory of profiles to look in first
        #[arg(long, global = true)]
        profiles: Option<PathBuf>,
    },
}

#[derive(Subcommand, Clone)]
enum AppAction {
    /// Unload APP's instances; its next client (or load_on_startup) loads its scripts
    Reload { app: String },
}

#[derive(Subcommand, Clone)]
enum TuneAction {
    /// Compare a profile with the running system (no root needed)
    Check { profile: String },
    /// Write the keys that differ through /proc/sys (root)
    Apply { profile: String },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("stratactl: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode, String> {
    let socket = cli.socket.clone();
    let one_shot = |call: Call| -> Result<Answer, String> {
        let path = socket
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET));
        let mut client = ControlClient::connect(&path).map_err(|e| e.to_string())?;
        client.call(call).map_err(|e| e.to_string())
    };
    match cli.command {
        Command::Status => show(one_shot(Call::Status)?, cli.json),
        Command::Streams => show(one_shot(Call::Streams)?, cli.json),
        Command::Clients => show(one_shot(Call::Clients)?, cli.json),
        Command::Vod { target } => show(one_shot(vod_command::call(target.as_deref()))?, cli.json),
        Command::Upstreams { links: false } => show(one_shot(Call::Upstreams)?, cli.json),
        Command::Upstreams { links: true } => show(one_shot(Call::UpstreamLinks)?, cli.json),
        Command::Kick { id } => show(one_shot(Call::Kick { client: id })?, cli.json),
        Command::Stop { stream } => show(one_shot(Call::StopStream { stream })?, cli.json),
        Command::Reload => show(one_shot(Call::Reload)?, cli.json),
        Command::App {
            action: AppAction::Reload { app },
        } => show(one_shot(Call::AppReload { app })?, cli.json),
        Command::So { action } => show(one_shot(Call::So(so_command::call(action)))?, cli.json),
        Command::Multicast { action } => show(
            one_shot(Call::Multicast(multicast_command::call(action)))?,
            cli.json,
        ),
        Command::Events => events(
            &socket.unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET)),
            cli.json,
        ),
        Command::Call {
            client,
            method,
            args,
            timeout_ms,
        } => {
            let path = socket.unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET));
            let answer = rpc_cli::call(&path, client, method, rpc_cli::args(&args), timeout_ms)?;
            match (answer.result, answer.error) {
                (_, Some(e)) => Err(format!(
                    "the client answered _error: {} ({})",
                    e.description, e.code
                )),
                (Some(v), None) => {
                    println!("{v}");
                    Ok(ExitCode::SUCCESS)
                }
                (None, None) => Ok(ExitCode::SUCCESS),
            }
        }
        Command::Broadcast {
            target,
            method,
            args,
        } => {
            let path = socket.unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET));
            println!(
                "{}",
                rpc_cli::broadcast(&path, &target, method, rpc_cli::args(&args))?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve { http, config } => serve(socket, http, config),
        Command::Tune { action, profiles } => tune_cmd(action, profiles.as_deref()),
    }
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Prints a reply: its `result` JSON as received with `--json`, else a table or a line.
fn show(answer: Answer, json: bool) -> Result<ExitCode, String> {
    if json {
        let value: serde_json::Value =
            serde_json::from_str(&answer.line).map_err(|e| e.to_string())?;
        let failed = value.get("error").is_some();
        let out = value.get("result").or(value.get("error")).unwrap_or(&value);
        println!("{out}");
        if failed {
            answer.into_result().map_err(|e| e.to_string())?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let text = match answer.into_result().map_err(|e| e.to_string())? {
        Reply::Status(s) => table::status(&s),
        Reply::Streams { streams } => table::streams(&streams, now()),
        Reply::Clients { clients } => table::clients(&clients, now()),
        Reply::Answer { answer } => format!(
            "{}\n",
            serde_json::to_string(&answer).map_err(|e| e.to_string())?
        ),
        Reply::Upstreams { upstreams } => table::upstreams(&upstreams, now()),
        Reply::SharedObjects { shared_objects } => so_command::table(&shared_objects),
        Reply::VodFiles {
            vod_files,
            truncated,
        } => vod_command::table(&vod_files, truncated),
        Reply::Multicast { multicast } => multicast_command::table(&multicast),
        Reply::Done { done, message } => {
            let msg = message.unwrap_or_else(|| if done { "done" } else { "not done" }.into());
            if !done {
                return Err(msg);
            }
            format!("{msg}\n")
        }
    };
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

fn events(socket: &Path, json: bool) -> Result<ExitCode, String> {
    let mut client = ControlClient::connect(socket).map_err(|e| e.to_string())?;
    client.request(Call::Subscribe).map_err(|e| e.to_string())?;
    let mut out = std::io::stdout();
    loop {
        match client.next_unsolicited(Duration::from_secs(1)) {
            Ok(None) => continue,
            Ok(Some((line, Unsolicited::Event(e)))) => {
                let text = match (json, line) {
                    (true, Some(line)) => line,
                    (true, None) => serde_json::to_string(&e).map_err(|e| e.to_string())?,
                    (false, _) => table::event(&e),
                };
                if writeln!(out, "{text}").and_then(|_| out.flush()).is_err() {
                    return Ok(ExitCode::SUCCESS); // stdout closed (piped into head, say)
                }
            }
            Ok(Some((_, Unsolicited::Auth(_)))) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
}

fn serve(
    socket: Option<PathBuf>,
    http: Option<String>,
    config: Option<PathBuf>,
) -> Result<ExitCode, String> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    let file = match &config {
        Some(path) => ManagerConfig::load(path)?,
        None => ManagerConfig::default(),
    };
    let opts = ManagerOptions {
        socket: socket
            .or(file.socket)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET)),
        http: http.or(file.http).unwrap_or_else(|| DEFAULT_HTTP.into()),
        hooks: file.hooks,
        reconnect: file.reconnect,
    };
    let manager = Manager::start(opts).map_err(|e| e.to_string())?;
    manager.wait();
    Ok(ExitCode::SUCCESS)
}

fn tune_cmd(action: TuneAction, profiles: Option<&Path>) -> Result<ExitCode, String> {
    let (TuneAction::Check { profile } | TuneAction::Apply { profile }) = action.clone();
    let path = tune::find_profile(&profile, &tune::profile_dirs(profiles))?;
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let entries = tune::parse_profile(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let root = Path::new(tune::PROC_SYS);
    println!("profile {}", path.display());
    match action {
        TuneAction::Check { .. } => {
            let rows: Vec<Vec<String>> = tune::check(root, &entries)
                .into_iter()
                .map(|c| {
                    vec![
                        c.key,
                        c.wanted,
                        c.current.unwrap_or_else(|| "-".into()),
                        c.status.to_string(),
                    ]
                })
                .collect();
            print!(
                "{}",
                table::render(&["KEY", "WANTED", "CURRENT", "STATUS"], &rows)
            );
            Ok(ExitCode::SUCCESS)
        }
        TuneAction::Apply { .. } => {
            // SAFETY: geteuid has no preconditions and cannot fail.
            if unsafe { libc::geteuid() } != 0 {
                return Err(format!(
                    "tune apply needs root (it writes {}); nothing was changed. \
                     See what would change with: stratactl tune check {profile}",
                    tune::PROC_SYS
                ));
            }
            let mut failed = 0;
            let mut changed = 0;
            for (c, outcome) in tune::apply(root, &entries) {
                match outcome {
                    tune::Outcome::Changed { old, new } => {
                        changed += 1;
                        println!("{}: {old} -> {new}", c.key);
                    }
                    tune::Outcome::AlreadyOk => println!("{}: {} (unchanged)", c.key, c.status),
                    tune::Outcome::Skipped(why) => {
                        println!("{}: skipped, unavailable: {why}", c.key)
                    }
                    tune::Outcome::Failed(why) => {
                        failed += 1;
                        println!("{}: FAILED: {why}", c.key);
                    }
                }
            }
            println!("{changed} changed, {failed} failed");
            Ok(if failed > 0 {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}
