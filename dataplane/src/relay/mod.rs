//! Links between servers: the upstream groups of intermediate and edge applications
//! (host.ini, LiveStreamCast's format), one upstream link's conversation in the client
//! role (`link`), a push relay's conversation with its target (`push`), a server-side
//! script's NetConnection to another application (`script_link`), retry delays
//! (`backoff`), the failover rules (`failover`), timestamps across a switch (`rebase`), and
//! the commands between tiers (`tier`). The engine opens the connections and feeds them
//! (engine/worker/upstream.rs, engine/worker/push.rs).

pub(crate) mod backoff;
pub(crate) mod catalog;
pub(crate) mod client_setup;
pub(crate) mod failover;
pub(crate) mod host_ini;
pub(crate) mod link;
pub(crate) mod pull_url;
pub(crate) mod push;
pub(crate) mod rebase;
pub(crate) mod registration;
pub(crate) mod script_link;
pub(crate) mod standby;
#[cfg(test)]
pub(crate) mod test_peer;
pub(crate) mod tier;
