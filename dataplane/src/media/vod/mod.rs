//! Video on demand: files as the source of a stream. What a stream name names on disk
//! (`content_path`); the shared per-file index and the play semantics come next to it.

pub(crate) mod content_path;
