//! A server with one live stream and a real ffmpeg viewer recording it: the stage for tests
//! that do something to the server and then prove the other clients did not notice.

use crate::bounds;
use crate::publisher::publish_sample;
use crate::recorder::Recorder;
use crate::server::{Server, ServerOptions};
use crate::tools::ChildGuard;
use std::time::Duration;

/// Application and stream every fixture publishes.
pub const APP: &str = "live";
pub const STREAM: &str = "test";

pub struct LiveFixture {
    // Field order is drop order: viewer and publisher go before the server.
    pub viewer: Recorder,
    pub publisher: ChildGuard,
    pub server: Server,
}

impl LiveFixture {
    pub fn start() -> LiveFixture {
        LiveFixture::start_with(ServerOptions::default())
    }

    /// Starts the server, the sample publisher on live/test and an ffmpeg viewer, and waits
    /// until the viewer is receiving.
    pub fn start_with(opts: ServerOptions) -> LiveFixture {
        let server = Server::start_with(opts);
        let url = server.url(&format!("{APP}/{STREAM}"));
        let publisher = publish_sample(&url);
        let viewer = Recorder::start(&url);
        let mut fixture = LiveFixture {
            viewer,
            publisher,
            server,
        };
        fixture.viewer.assert_keeps_receiving(bounds::STREAM_UP);
        fixture
    }

    pub fn url(&self) -> String {
        self.server.url(&format!("{APP}/{STREAM}"))
    }

    /// After the disturbance: the viewer keeps receiving, the publisher and server still run.
    pub fn assert_others_unaffected(&mut self) {
        self.viewer.assert_keeps_receiving(Duration::from_secs(10));
        assert!(
            self.publisher.is_running(),
            "the publisher exited:\n{}",
            self.publisher.stderr()
        );
        self.server.assert_alive();
    }
}
