//! Control-protocol types shared by `stratad` and `stratactl`.

pub mod protocol;
