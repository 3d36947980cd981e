//! The files under stratad's content root, as `stratactl vod` and the admin API list them.

use serde::{Deserialize, Serialize};

/// One file a client can play.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VodFileInfo {
    pub app: String,
    /// `_definst_` for the default instance.
    pub instance: String,
    /// The name a client plays it by: `dir/clip` for `dir/clip.flv`, `mp4:dir/clip.mp4`.
    pub name: String,
    /// Bytes.
    pub size: u64,
    /// Seconds, when a worker holds the file's index (while the file is being played).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<f64>,
}
