//! A client's access to streams and shared objects as an application script sets it
//! (AMS's `client.readAccess` and `client.writeAccess`): semicolon-separated names or
//! folders; `/` is everything, an empty list nothing. `live/cam` grants the stream (or
//! object) `live/cam` and everything below `live/cam/`. Read: play a stream, use an object;
//! write: publish a stream, change an object or send on it.

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Access {
    read: Vec<String>,
    write: Vec<String>,
}

fn list(text: &str) -> Vec<String> {
    text.split(';')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|e| e.trim_matches('/').to_string())
        .collect()
}

fn grants(list: &[String], name: &str) -> bool {
    let name = name.trim_start_matches('/');
    list.iter().any(|e| {
        e.is_empty()
            || name == e
            || (name.starts_with(e.as_str()) && name.as_bytes().get(e.len()) == Some(&b'/'))
    })
}

impl Access {
    /// None when both grant everything (the default: nothing to check).
    pub(crate) fn parse(read: &str, write: &str) -> Option<Access> {
        let access = Access {
            read: list(read),
            write: list(write),
        };
        let all = |l: &[String]| l.iter().any(String::is_empty);
        (!(all(&access.read) && all(&access.write))).then_some(access)
    }

    pub(crate) fn can_read(&self, stream: &str) -> bool {
        grants(&self.read, stream)
    }

    pub(crate) fn can_write(&self, stream: &str) -> bool {
        grants(&self.write, stream)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_grant_names_and_folders() {
        assert_eq!(
            Access::parse("/", "/"),
            None,
            "everything: nothing to check"
        );
        let a = Access::parse("/", "cams/public; /shows/").expect("a list");
        assert!(a.can_read("anything"));
        assert!(a.can_write("cams/public"));
        assert!(a.can_write("cams/public/one"));
        assert!(!a.can_write("cams/publicity"));
        assert!(a.can_write("/shows/tonight"));
        assert!(!a.can_write("cams"));
        let none = Access::parse("", "").expect("nothing");
        assert!(!none.can_read("x") && !none.can_write("x"));
    }
}
