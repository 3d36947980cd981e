//! host.ini is untrusted input (issue 9, point 6): a bad line stops stratad from starting,
//! naming the file, the line and the reason; at reload the running groups stay.

use control::client::ControlClient;
use control::protocol::{Call, Reply};
use e2e::rtmp_client::RtmpClient;
use e2e::scratch_dir::ScratchDir;
use e2e::server::{free_addr, stratad_bin, Server, ServerOptions};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const GOOD: &str = "#server group name primaryIP;secondaryIP appToConnect\n\
                    server1 127.0.0.2;127.0.0.3 livestreamcast_origin\n\
                    server 2 127.0.0.4:1936;127.0.0.4:1936 livestreamcast_origin/room\n";
const BAD: &str = "#server group name primaryIP;secondaryIP appToConnect\n\
                   server1 127.0.0.2;127.0.0.3 livestreamcast_origin\n\
                   \n\
                   server2 127.0.0.4 livestreamcast_origin\n";

fn edge_config(socket: &Path, host_ini: &Path) -> String {
    format!(
        "[control]\nsocket = {:?}\n[[application]]\nname = \"livestreamcast_edge\"\n\
         role = \"edge\"\nhost_ini = {:?}\n",
        socket.display().to_string(),
        host_ini.display().to_string()
    )
}

#[test]
fn stratad_does_not_start_with_a_bad_host_ini() {
    let dir = ScratchDir::new("host-ini-start");
    // Relative to the configuration file, as an operator writes it.
    std::fs::write(dir.join("host.ini"), BAD).expect("host.ini");
    let config = dir.join("stratad.toml");
    std::fs::write(
        &config,
        "[[application]]\nname = \"livestreamcast_edge\"\nrole = \"edge\"\nhost_ini = \"host.ini\"\n",
    )
    .expect("config");
    let mut child = Command::new(stratad_bin())
        .arg("--config")
        .arg(&config)
        .arg("--listen")
        .arg(free_addr().to_string())
        .arg("--control-socket")
        .arg(dir.join("stratad.sock"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn stratad");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("stratad started with a bad host.ini");
    };
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
    }
    assert!(!status.success(), "stratad exited successfully: {stderr}");
    let expected = format!(
        "{}:4: expected `label primary;secondary application`",
        dir.join("host.ini").display()
    );
    assert!(
        stderr.contains(&expected),
        "the error does not name line and reason: {stderr}"
    );
}

#[test]
fn a_reload_with_a_bad_host_ini_keeps_the_running_one() {
    let dir = ScratchDir::new("host-ini-reload");
    let socket = dir.join("stratad.sock");
    let host_ini = dir.join("host.ini");
    std::fs::write(&host_ini, GOOD).expect("host.ini");
    let server = Server::start_with(ServerOptions {
        config: Some(edge_config(&socket, &host_ini)),
        ..ServerOptions::default()
    });
    let mut control = ControlClient::connect(&socket).expect("control socket");
    let groups = |control: &mut ControlClient| -> Vec<(String, String, String)> {
        match control
            .request(Call::UpstreamLinks)
            .expect("upstream links")
        {
            Reply::Upstreams { upstreams } => upstreams
                .into_iter()
                .map(|u| (u.group, u.primary, u.secondary))
                .collect(),
            other => panic!("upstream links answered {other:?}"),
        }
    };
    let running = groups(&mut control);
    assert_eq!(running.len(), 2, "{running:?}");
    std::fs::write(&host_ini, BAD).expect("break host.ini");
    let err = control
        .request(Call::Reload)
        .expect_err("a bad host.ini was accepted at reload");
    assert!(
        err.to_string().contains("host.ini:4: expected"),
        "the error does not name line and reason: {err}"
    );
    // Still serving the application it had.
    let mut client = RtmpClient::connected(server.addr(), "livestreamcast_edge")
        .expect("the running configuration stayed");
    client.shutdown();
    // Its groups too: the standing links are those of the good host.ini.
    assert_eq!(groups(&mut control), running);
    std::fs::write(&host_ini, GOOD).expect("fix host.ini");
    match control.request(Call::Reload) {
        Ok(Reply::Done { done: true, .. }) => {}
        other => panic!("a good host.ini was refused at reload: {other:?}"),
    }
}
