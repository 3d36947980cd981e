//! Links between servers: the upstream groups of intermediate and edge applications
//! (host.ini, LiveStreamCast's format) and, later, the links and failover built on them.

pub(crate) mod host_ini;
