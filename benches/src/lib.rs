//! Criterion benchmarks and the `strata-load` load tool (see BENCHMARKS.md).
//!
//! The load tool's parts: [`url`] (what to connect to), [`skim`] (a chunk parser that does
//! not reassemble media), [`player`] (one player, sans-IO), [`load`] (the epoll loop that runs
//! thousands of them per thread), [`flv`] and [`publisher`] (a real-time FLV publisher),
//! [`procstat`] (CPU and memory from /proc), `limits` (the descriptor limit), [`run`] and [`report`], and [`media`] (the
//! benchmark stream, made with ffmpeg). [`ceiling`] measures what the simplest possible
//! server (the same bytes written to N sockets) costs on this machine; [`epoll`] is the
//! epoll wrapper the players and the ceiling share. [`so_bench`] measures remote shared
//! objects: N users of one object, one changing it at a fixed rate. `rtmfp_load` runs RTMFP
//! players (`--rtmfp`) in place of [`load`]'s RTMP ones. [`udp_ceiling`] is the
//! ceiling of multicast outputs: the same datagrams, batched as stratad batches them;
//! [`multicast_ab`] measures outputs against it inside one stratad run; [`udp_unicast`] is
//! the floor of RTMFP viewers (`ceiling --udp --unicast`).

pub mod ceiling;
pub mod connect_bench;
pub mod epoll;
pub mod flv;
mod limits;
pub mod load;
pub mod media;
mod msg_zerocopy;
pub mod multicast_ab;
pub mod player;
pub mod procstat;
pub mod publisher;
pub mod report;
mod rtmfp_load;
pub mod run;
pub mod skim;
pub mod so_bench;
pub mod table;
pub mod udp_ceiling;
pub mod udp_unicast;
mod udp_uring;
pub mod url;
