//! Strata's management side: the control-protocol types shared with `stratad`, a client of
//! its control socket, and the pieces of `stratactl` (tables, the manager with its admin
//! API, metrics and auth hooks, and the sysctl tuning profiles).

pub mod admin_api;
pub mod client;
pub mod hooks;
pub mod line_reader;
pub mod manager;
pub mod manager_config;
pub mod metrics;
pub mod protocol;
pub mod table;
pub mod tune;
