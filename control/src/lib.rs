//! Control-protocol types shared by `stratad` and `stratactl`.
