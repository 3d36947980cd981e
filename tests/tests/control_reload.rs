//! Reload through the control socket while a real player plays (issue 4, point 4): a new
//! application appears, a limit changes, a broken file is refused, and the player never
//! notices.

use control::client::ControlClient;
use control::protocol::{Call, Reply};
use e2e::bounds;
use e2e::publisher::publish_sample;
use e2e::recorder::Recorder;
use e2e::rtmp_client::RtmpClient;
use e2e::scratch_dir::ScratchDir;
use e2e::server::{Server, ServerOptions};
use std::path::Path;
use std::time::Duration;

fn config(socket: &Path, apps: &[&str], max_lag_ms: u32) -> String {
    let mut text = format!(
        "[control]\nsocket = {:?}\n[live]\ndrop_lag_ms = 3000\nmax_lag_ms = {max_lag_ms}\n",
        socket.display().to_string()
    );
    for app in apps {
        text.push_str(&format!("[[application]]\nname = \"{app}\"\n"));
    }
    text
}

fn reload(socket: &Path) -> Result<Reply, String> {
    let mut client = ControlClient::connect(socket).map_err(|e| e.to_string())?;
    client.request(Call::Reload).map_err(|e| e.to_string())
}

#[test]
fn reload_adds_an_application_while_a_player_plays() {
    let dir = ScratchDir::new("reload");
    let socket = dir.join("stratad.sock");
    let server = Server::start_with(ServerOptions {
        config: Some(config(&socket, &["live"], 10_000)),
        ..ServerOptions::default()
    });
    let url = server.url("live/test");
    let mut publisher = publish_sample(&url);
    let mut viewer = Recorder::start(&url);
    viewer.assert_keeps_receiving(bounds::STREAM_UP);

    // Before the reload the second application does not exist.
    let refused = RtmpClient::connected(server.addr(), "other");
    assert!(
        refused.is_err(),
        "an unlisted application was accepted before the reload"
    );

    // The file stratad was started with, rewritten: one application more, a longer lag limit.
    let config_path = server.dir().join("stratad.toml");
    std::fs::write(&config_path, config(&socket, &["live", "other"], 20_000))
        .expect("rewrite config");
    match reload(&socket) {
        Ok(Reply::Done {
            done: true,
            message,
        }) => {
            let message = message.unwrap_or_default();
            assert!(
                message.contains("other"),
                "reload message does not name the new application: {message}"
            );
        }
        other => panic!("reload answered {other:?}"),
    }

    viewer.assert_keeps_receiving(Duration::from_secs(10));
    let mut client = RtmpClient::connected(server.addr(), "other")
        .expect("the new application accepts clients after reload");
    client.shutdown();

    // A broken file is refused and the running configuration stays.
    std::fs::write(&config_path, "[server]\nchunk_size = 0\n").expect("break config");
    let err = reload(&socket).expect_err("a broken configuration was accepted");
    assert!(
        err.contains("chunk_size"),
        "the error does not say what is wrong: {err}"
    );
    let mut client =
        RtmpClient::connected(server.addr(), "other").expect("the running configuration stayed");
    client.shutdown();

    viewer.assert_keeps_receiving(Duration::from_secs(10));
    assert!(
        viewer.child.is_running(),
        "the player stopped during the reloads:\n{}",
        viewer.child.stderr()
    );
    assert!(
        publisher.is_running(),
        "the publisher stopped during the reloads:\n{}",
        publisher.stderr()
    );
}

/// A stratad started with its listeners from the file alone (the harness's `--listen` is a
/// command-line override, which a reload deliberately keeps), killed by pid on drop.
struct FileConfiguredServer(std::process::Child);

impl Drop for FileConfiguredServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn listen_config(socket: &Path, addr: std::net::SocketAddr) -> String {
    format!(
        "[server]\nlisten = [\"{addr}\"]\n[control]\nsocket = {:?}\n",
        socket.display().to_string()
    )
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + timeout;
    while !f() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn reload_moves_listeners_without_dropping_connections() {
    let dir = ScratchDir::new("reload-listen");
    let socket = dir.join("stratad.sock");
    let config_path = dir.join("stratad.toml");
    let (a, b) = (e2e::server::free_addr(), e2e::server::free_addr());
    std::fs::write(&config_path, listen_config(&socket, a)).expect("write config");
    let log = std::fs::File::create(dir.join("stratad.log")).expect("log");
    let child = std::process::Command::new(e2e::server::stratad_bin())
        .arg("--config")
        .arg(&config_path)
        .arg("--workers")
        .arg("2")
        .stdout(log.try_clone().expect("dup"))
        .stderr(log)
        .spawn()
        .expect("start stratad");
    let _server = FileConfiguredServer(child);
    let accepts =
        |addr| std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok();
    wait_for(
        "stratad accepts on the first address",
        Duration::from_secs(10),
        || accepts(a),
    );

    let url = format!("rtmp://{a}/live/test");
    let mut publisher = publish_sample(&url);
    let mut viewer = Recorder::start(&url);
    viewer.assert_keeps_receiving(bounds::STREAM_UP);

    std::fs::write(&config_path, listen_config(&socket, b)).expect("rewrite config");
    match reload(&socket) {
        Ok(Reply::Done {
            done: true,
            message,
        }) => {
            let message = message.unwrap_or_default();
            assert!(
                message.contains(&b.to_string()) && message.contains(&a.to_string()),
                "{message}"
            );
        }
        other => panic!("reload answered {other:?}"),
    }
    wait_for("the new address accepts", Duration::from_secs(5), || {
        accepts(b)
    });
    wait_for(
        "the removed address refuses",
        Duration::from_secs(5),
        || !accepts(a),
    );
    let mut client = RtmpClient::connected(b, "live").expect("RTMP on the new address");
    client.shutdown();

    // Connections made through the removed listener carry on.
    viewer.assert_keeps_receiving(Duration::from_secs(10));
    assert!(
        publisher.is_running(),
        "the publisher was dropped:\n{}",
        publisher.stderr()
    );
}

#[test]
fn sighup_reloads_the_file_and_a_broken_one_is_refused() {
    let dir = ScratchDir::new("reload-sighup");
    let socket = dir.join("stratad.sock");
    let mut server = Server::start_with(ServerOptions {
        config: Some(config(&socket, &["live"], 10_000)),
        ..ServerOptions::default()
    });
    assert!(
        RtmpClient::connected(server.addr(), "other").is_err(),
        "an unlisted application was accepted before the reload"
    );

    let config_path = server.dir().join("stratad.toml");
    std::fs::write(&config_path, config(&socket, &["live", "other"], 20_000))
        .expect("rewrite config");
    server.signal(libc::SIGHUP);
    let line = server.wait_log_line(&["configuration reloaded (SIGHUP)"], bounds::STREAM_UP);
    let line = line.unwrap_or_else(|| panic!("no reload logged after SIGHUP:\n{}", server.log()));
    assert!(line.contains("other"), "{line}");
    let mut client = RtmpClient::connected(server.addr(), "other")
        .expect("the new application accepts clients after SIGHUP");
    client.shutdown();

    std::fs::write(&config_path, "[server]\nchunk_size = 0\n").expect("break config");
    server.signal(libc::SIGHUP);
    let refused = server.wait_log_line(&["reload refused", "chunk_size"], bounds::STREAM_UP);
    assert!(refused.is_some(), "no refusal logged:\n{}", server.log());
    server.assert_alive();
    let mut client =
        RtmpClient::connected(server.addr(), "other").expect("the running configuration stayed");
    client.shutdown();
}
