//! Hostnames in host.ini (issue 9): an edge whose group names its origin `localhost:PORT`
//! resolves it off the worker's thread and plays through it; a name that does not resolve
//! is a failed attempt saying so (retried), and the edge keeps serving.

use e2e::bounds;
use e2e::publisher::publish_sample;
use e2e::recorder::Recorder;
use e2e::scratch_dir::ScratchDir;
use e2e::server::free_addr_on;
use e2e::server::{Server, ServerOptions};
use e2e::tiers::{host, origin_at};

#[test]
fn an_upstream_named_by_hostname_is_resolved_and_played() {
    let dir = ScratchDir::new("tiers-resolve");
    let origin = origin_at(free_addr_on(host(1)));
    let _publisher = publish_sample(&origin.url("lsc_origin/cam"));
    let host_ini = dir.join("host.ini");
    let port = origin.port();
    std::fs::write(
        &host_ini,
        format!(
            "#server group name primaryIP;secondaryIP appToConnect\n\
             nowhere no-such-host.invalid:{port};no-such-host.invalid:{port} lsc_origin\n\
             server1 localhost:{port};localhost:{port} lsc_origin\n"
        ),
    )
    .expect("host.ini");
    let edge = Server::start_with(ServerOptions {
        config: Some(format!(
            "[[application]]\nname = \"lsc_edge\"\nrole = \"edge\"\nhost_ini = {:?}\n",
            host_ini.display().to_string()
        )),
        host: Some(host(5)),
        rust_log: "info,dataplane=debug".into(),
        ..ServerOptions::default()
    });
    let mut viewer = Recorder::start(&edge.url("lsc_edge/cam"));
    viewer.assert_keeps_receiving(bounds::STREAM_UP);
    let log = edge.log();
    assert!(
        log.contains("upstream plays") && log.contains("group=server1"),
        "{log}"
    );
    assert!(
        edge.wait_log_line(&["cannot resolve no-such-host.invalid"], bounds::MESSAGE)
            .is_some(),
        "the unresolvable group's attempt did not fail saying why:\n{}",
        edge.log()
    );
    viewer.assert_keeps_receiving(bounds::MESSAGE);
}
