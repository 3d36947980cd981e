//! Video on demand: files as the source of a stream. What a stream name names on disk
//! (`content_path`), the index of a file shared by all its viewers (`index`) and how it is
//! built from an FLV file (`flv_index`) or an ISO one (`iso_index`).

pub(crate) mod block_cache;
pub(crate) mod content_path;
pub(crate) mod file_play;
pub(crate) mod flv_index;
pub(crate) mod index;
pub(crate) mod indexer;
pub(crate) mod iso_index;
pub(crate) mod pacing;
pub(crate) mod play_order;
pub(crate) mod play_status;
pub(crate) mod playback;
pub(crate) mod sample_frames;
pub(crate) mod server_playlist;
