use proptest::prelude::*;

use super::*;

fn ok(text: &str) -> Vec<UpstreamGroup> {
    match parse(text.as_bytes(), "host.ini") {
        Ok(g) => g,
        Err(e) => panic!("{text:?} should parse: {e}"),
    }
}

fn err(text: &str) -> HostIniError {
    match parse(text.as_bytes(), "host.ini") {
        Ok(g) => panic!("{text:?} should be refused, parsed {g:?}"),
        Err(e) => e,
    }
}

fn addr(host: &str, port: u16) -> UpstreamAddr {
    UpstreamAddr {
        host: host.into(),
        port,
    }
}

#[test]
fn the_seeds_examples_parse() {
    // The intermediate node's host.ini from the seed, comment line included.
    let groups = ok("#server group name primaryIP;secondaryIP appToConnect \n\
         server1 10.41.1.215;10.200.1.169 livestreamcast_origin  \n\
         server2 10.41.1.216;10.200.1.170 livestreamcast_origin  \n");
    assert_eq!(groups.len(), 2);
    assert_eq!(groups[0].label, "server1");
    assert_eq!(groups[0].primary, addr("10.41.1.215", 1935));
    assert_eq!(groups[0].secondary, addr("10.200.1.169", 1935));
    assert_eq!(groups[0].app, "livestreamcast_origin");
    assert_eq!(groups[0].instance, None);
    assert_eq!(groups[0].line, 2);
    assert_eq!(groups[1].line, 3);
    assert_ne!(groups[0].primary, groups[0].secondary);

    // "Primary only (no secondary)": the same machine twice.
    let groups = ok("# no secondary in the group from Encoder 3\n\
         server3 192.168.1.7;192.168.1.7 livestreamcast_origin\n");
    assert_eq!(groups[0].primary, groups[0].secondary);

    // The installation steps' sample: a label with a space in it.
    let groups = ok("server 1 192.168.1.1;192.168.1.2 livestreamcast_origin\n");
    assert_eq!(groups[0].label, "server 1");
}

#[test]
fn ports_hostnames_instances_and_ipv6() {
    let groups = ok("a 127.0.0.2:1936;origin-b.example.net livecast/room1\r\n\
         \tb\t[::1]:19350;[fe80::1]  edge_app\n");
    assert_eq!(groups[0].primary, addr("127.0.0.2", 1936));
    assert_eq!(groups[0].secondary, addr("origin-b.example.net", 1935));
    assert_eq!(groups[0].app, "livecast");
    assert_eq!(groups[0].instance.as_deref(), Some("room1"));
    assert_eq!(groups[1].label, "b");
    assert_eq!(groups[1].primary, addr("::1", 19350));
    assert_eq!(groups[1].secondary, addr("fe80::1", 1935));
    assert_eq!(groups[1].primary.to_string(), "[::1]:19350");
}

#[test]
fn a_bom_blank_lines_and_indented_comments_are_fine() {
    let groups = ok("\u{feff}\n   \n  # indented comment\nserver1 h1;h2 app\n\n");
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].line, 4);
}

#[test]
fn malformed_lines_name_the_line_and_the_reason() {
    let cases: &[(&str, usize, &str)] = &[
        ("server1 10.0.0.1 app\n", 1, "no `primary;secondary`"),
        ("# c\n10.0.0.1;10.0.0.2 app\n", 2, "no label"),
        ("s 10.0.0.1;10.0.0.2\n", 1, "no upstream application"),
        ("s 10.0.0.1;10.0.0.2 app extra\n", 1, "unexpected \"extra\""),
        ("s 10.0.0.1; app\n", 1, "secondary address: empty"),
        ("s ;10.0.0.1 app\n", 1, "primary address: empty"),
        ("s 10.0.0.1;10.0.0.2;10.0.0.3 app\n", 1, "secondary address"),
        (
            "s 10.0.0.300;10.0.0.2 app\n",
            1,
            "neither an IP address nor a hostname",
        ),
        ("s h_1;h2 app\n", 1, "neither an IP address nor a hostname"),
        ("s h1:0;h2 app\n", 1, "port \"0\""),
        ("s h1:70000;h2 app\n", 1, "port \"70000\""),
        ("s h1:x;h2 app\n", 1, "port \"x\""),
        ("s ::1;h2 app\n", 1, "needs brackets"),
        ("s [::1;h2 app\n", 1, "without ']'"),
        ("s [nope]:1;h2 app\n", 1, "not an IPv6 address"),
        ("s [::1]1935;h2 app\n", 1, "expected ':port'"),
        ("s h1;h2 a/b/c\n", 1, "`app` or `app/instance`"),
        ("s h1;h2 /inst\n", 1, "empty part"),
        ("s h1;h2 app/\n", 1, "empty part"),
        ("s h1;h2 app\ns h3;h4 app\n", 2, "already defined on line 1"),
        ("# only comments\n\n", 0, "no server groups"),
    ];
    for (text, line, reason) in cases {
        let e = err(text);
        assert_eq!(e.line, *line, "{text:?}: {e}");
        assert!(e.reason.contains(reason), "{text:?}: {e}");
        assert_eq!(e.path, "host.ini");
        let shown = e.to_string();
        assert!(shown.starts_with(&format!("host.ini:{line}: ")), "{shown}");
    }
}

#[test]
fn bytes_that_are_not_utf8_name_their_line() {
    let e = parse(b"s h1;h2 app\n# ok\ns \xff;h2 app\n", "h").expect_err("not UTF-8");
    assert_eq!((e.line, e.reason.as_str()), (3, "not UTF-8 text"));
}

#[test]
fn load_names_a_missing_file() {
    let e = load(std::path::Path::new("/nonexistent/strata/host.ini")).expect_err("missing");
    assert_eq!(e.line, 0);
    assert!(e
        .to_string()
        .starts_with("/nonexistent/strata/host.ini:0: cannot read"));
}

fn any_host() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|o| std::net::Ipv4Addr::from(o).to_string()),
        any::<u128>().prop_map(|v| std::net::Ipv6Addr::from(v).to_string()),
        "[a-z][a-z0-9-]{0,10}[a-z0-9](\\.[a-z][a-z0-9]{0,8}){0,3}",
    ]
}

fn any_group() -> impl Strategy<Value = UpstreamGroup> {
    (
        "[A-Za-z0-9_]{1,8}( [A-Za-z0-9_]{1,8}){0,2}",
        any_host(),
        1u16..,
        any_host(),
        1u16..,
        "[A-Za-z0-9_.-]{1,12}",
        proptest::option::of("[A-Za-z0-9_.-]{1,12}"),
    )
        .prop_map(|(label, h1, p1, h2, p2, app, instance)| UpstreamGroup {
            label,
            primary: addr(&h1, p1),
            secondary: addr(&h2, p2),
            app,
            instance,
            line: 0,
        })
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = parse(&data, "fuzz");
    }

    #[test]
    fn arbitrary_text_never_panics(text in "[ -~\t\n#;:/\\[\\]]{0,200}") {
        if let Err(e) = parse(text.as_bytes(), "fuzz") {
            prop_assert!(!e.reason.is_empty());
        }
    }

    /// Groups written as host.ini lines (with comments between them) parse back to the same
    /// groups, on the right lines.
    #[test]
    fn written_groups_parse_back(groups in proptest::collection::vec(any_group(), 1..6)) {
        let mut text = String::from("# generated\n");
        let mut expected = Vec::new();
        for (i, g) in groups.iter().enumerate() {
            let mut g = g.clone();
            g.label = format!("{}{i}", g.label); // labels are unique per file
            g.line = 2 + 2 * i;
            text.push_str(&format!("{g}\n# between\n"));
            expected.push(g);
        }
        prop_assert_eq!(ok(&text), expected);
    }
}
