//! Strata's management side: a client of `stratad`'s control socket and the pieces of
//! `stratactl` (tables, the manager with its admin API, metrics and auth hooks, and the
//! sysctl tuning profiles).

pub mod admin_api;
mod admin_so;
pub mod client;
pub mod hooks;
pub mod line_reader;
pub mod manager;
pub mod manager_config;
pub mod metrics;
pub mod multicast_command;
mod rpc_api;
pub mod rpc_cli;
mod rpc_hook;
pub mod so_command;
pub mod table;
pub mod tune;
pub mod vod_command;

/// The control socket's wire types live in their own crate (`control/protocol`) so that
/// `stratad` shares them without linking this crate's HTTP server and client.
pub use control_protocol as protocol;
