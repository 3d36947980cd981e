//! `stratactl vod [APP[/INSTANCE]]` and `GET /api/v1/vod[/APP[/INSTANCE]]`: the files under
//! stratad's content root, by the name a client plays them.

use crate::protocol::{Call, VodFileInfo};
use crate::table::{bytes, render};

/// The control call for `APP`, `APP/INSTANCE`, or nothing (every application).
pub fn call(target: Option<&str>) -> Call {
    match target.map(str::trim).filter(|t| !t.is_empty()) {
        None => Call::Vod {
            app: None,
            instance: None,
        },
        Some(t) => {
            let (app, instance) = crate::rpc_cli::target(t);
            Call::Vod {
                app: Some(app),
                instance,
            }
        }
    }
}

pub fn table(files: &[VodFileInfo], truncated: bool) -> String {
    let mut out = if files.is_empty() {
        "no files\n".to_string()
    } else {
        let rows: Vec<Vec<String>> = files
            .iter()
            .map(|f| {
                vec![
                    f.app.clone(),
                    f.instance.clone(),
                    f.name.clone(),
                    bytes(f.size),
                    f.duration_s.map_or("-".into(), |s| format!("{s:.1} s")),
                ]
            })
            .collect();
        render(&["APP", "INSTANCE", "NAME", "SIZE", "DURATION"], &rows)
    };
    if truncated {
        out += "(more files: the listing stopped at its bound)\n";
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_name_an_app_or_an_instance() {
        let vod = |app: Option<&str>, instance: Option<&str>| Call::Vod {
            app: app.map(String::from),
            instance: instance.map(String::from),
        };
        assert_eq!(call(None), vod(None, None));
        assert_eq!(call(Some(" ")), vod(None, None));
        assert_eq!(call(Some("vod")), vod(Some("vod"), None));
        assert_eq!(call(Some("vod/room1")), vod(Some("vod"), Some("room1")));
    }
}
