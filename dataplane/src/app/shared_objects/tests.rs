//! Shared-object semantics in memory: users are plain numbers, time a number of ms.

use super::*;

const A: u32 = 1;
const B: u32 = 2;
const C: u32 = 3;

fn no_store(_: &str) -> Option<Stored> {
    None
}

struct Room {
    sos: SharedObjects<u32>,
    config: SoConfig,
    now_ms: u64,
}

fn msg(name: &str, version: u32, persistent: bool, events: Vec<SoEvent>) -> SoMessage {
    SoMessage {
        name: name.into(),
        version,
        persistent,
        events,
    }
}

fn set(key: &str, value: Amf0Value) -> SoEvent {
    SoEvent::RequestChange {
        key: key.into(),
        value,
    }
}

fn num(n: f64) -> Amf0Value {
    Amf0Value::Number(n)
}

impl Room {
    fn new() -> Room {
        Room {
            sos: SharedObjects::default(),
            config: SoConfig::default(),
            now_ms: 0,
        }
    }

    fn send(&mut self, user: u32, m: SoMessage) -> Outcome<u32> {
        self.sos
            .on_message(user, m, self.now_ms, &self.config, &mut no_store)
    }

    fn use_it(&mut self, user: u32) -> Outcome<u32> {
        self.send(user, msg("chat", 0, false, vec![SoEvent::Use]))
    }
}

#[test]
fn a_user_gets_use_success_clear_then_every_slot() {
    let mut room = Room::new();
    let out = room.use_it(A);
    assert_eq!(
        out.sends,
        [(
            To::User(A),
            msg("chat", 0, false, vec![SoEvent::UseSuccess, SoEvent::Clear])
        )]
    );
    room.send(
        A,
        msg(
            "chat",
            0,
            false,
            vec![set("x", num(1.0)), set("y", num(2.0))],
        ),
    );
    // The late joiner gets the whole object at the current version.
    let out = room.use_it(B);
    assert_eq!(
        out.sends,
        [(
            To::User(B),
            msg(
                "chat",
                1,
                false,
                vec![
                    SoEvent::UseSuccess,
                    SoEvent::Clear,
                    SoEvent::Change(vec![("x".into(), num(1.0)), ("y".into(), num(2.0))]),
                ]
            )
        )]
    );
}

#[test]
fn a_change_batch_is_one_version_success_to_the_sender_change_to_the_others() {
    let mut room = Room::new();
    room.use_it(A);
    room.use_it(B);
    let out = room.send(
        A,
        msg(
            "chat",
            0,
            false,
            vec![set("x", num(1.0)), set("y", num(2.0))],
        ),
    );
    assert_eq!(
        out.sends,
        [
            (
                To::User(A),
                msg(
                    "chat",
                    1,
                    false,
                    vec![SoEvent::Success("x".into()), SoEvent::Success("y".into())]
                )
            ),
            (
                To::AllBut(A),
                msg(
                    "chat",
                    1,
                    false,
                    vec![SoEvent::Change(vec![
                        ("x".into(), num(1.0)),
                        ("y".into(), num(2.0))
                    ])]
                )
            ),
        ]
    );
    // Null removes; a removal request too; the version rises once more.
    let out = room.send(
        B,
        msg(
            "chat",
            1,
            false,
            vec![
                set("x", Amf0Value::Null),
                SoEvent::RequestRemove("y".into()),
            ],
        ),
    );
    assert_eq!(
        out.sends[1],
        (
            To::AllBut(B),
            msg(
                "chat",
                2,
                false,
                vec![SoEvent::Remove("x".into()), SoEvent::Remove("y".into())]
            )
        )
    );
    assert_eq!(room.sos.get("chat").map(|so| so.slot_count()), Some(0));
}

#[test]
fn of_two_concurrent_changes_of_a_slot_the_first_wins_and_the_loser_gets_its_value() {
    let mut room = Room::new();
    room.use_it(A);
    room.use_it(B);
    // Both saw version 0 and set x; A's request reaches the owner first.
    room.send(A, msg("chat", 0, false, vec![set("x", num(1.0))]));
    let out = room.send(
        B,
        msg(
            "chat",
            0,
            false,
            vec![set("x", num(2.0)), set("z", num(3.0))],
        ),
    );
    assert_eq!(
        out.sends,
        [
            (
                To::User(B),
                msg(
                    "chat",
                    2,
                    false,
                    // x: reject (a change with the winning value); z applied.
                    vec![
                        SoEvent::Change(vec![("x".into(), num(1.0))]),
                        SoEvent::Success("z".into())
                    ]
                )
            ),
            (
                To::AllBut(B),
                msg(
                    "chat",
                    2,
                    false,
                    vec![SoEvent::Change(vec![("z".into(), num(3.0))])]
                )
            ),
        ]
    );
    assert_eq!(
        room.sos.get("chat").and_then(|so| so.get("x")),
        Some(&num(1.0))
    );
    // A may change its own slot again without having seen its success yet.
    let out = room.send(A, msg("chat", 0, false, vec![set("x", num(5.0))]));
    assert_eq!(out.sends[0].1.events, [SoEvent::Success("x".into())]);
    // B, now up to date, may change it.
    let out = room.send(B, msg("chat", 3, false, vec![set("x", num(6.0))]));
    assert_eq!(out.sends[0].1.events, [SoEvent::Success("x".into())]);
}

#[test]
fn send_reaches_every_user_the_sender_included() {
    let mut room = Room::new();
    room.use_it(A);
    room.use_it(B);
    let send = SoEvent::SendMessage {
        handler: "say".into(),
        args: vec![Amf0Value::string("hi")],
    };
    let out = room.send(A, msg("chat", 0, false, vec![send.clone()]));
    assert_eq!(
        out.sends,
        [(To::All, msg("chat", 0, false, vec![send.clone()]))]
    );
    // Not from someone who does not use it.
    let out = room.send(C, msg("chat", 0, false, vec![send]));
    assert!(out.sends.is_empty());
    assert_eq!(out.warnings.len(), 1);
}

#[test]
fn a_temporary_object_lives_while_anyone_uses_it() {
    let mut room = Room::new();
    room.use_it(A);
    room.use_it(B);
    room.send(A, msg("chat", 0, false, vec![set("x", num(1.0))]));
    room.send(A, msg("chat", 1, false, vec![SoEvent::Release]));
    assert!(room.sos.get("chat").is_some());
    room.sos.leave(B);
    assert!(room.sos.is_empty(), "gone with its last user");
    let out = room.use_it(C);
    assert_eq!(out.sends[0].1.version, 0, "a new object");
}

#[test]
fn persistence_must_match_and_a_persistent_object_is_loaded_from_its_store() {
    let mut room = Room::new();
    room.use_it(A);
    let out = room.send(B, msg("chat", 0, true, vec![SoEvent::Use]));
    assert!(matches!(
        &out.sends[0].1.events[..],
        [SoEvent::Status { code, .. }] if code == code::BAD_PERSISTENCE
    ));
    let mut store = |name: &str| (name == "kept").then(|| (7, vec![("k".to_string(), num(9.0))]));
    let out = room.sos.on_message(
        A,
        msg("kept", 7, true, vec![SoEvent::Use, set("k", num(10.0))]),
        0,
        &room.config,
        &mut store,
    );
    assert_eq!(
        out.sends[0].1,
        msg(
            "kept",
            7,
            true,
            vec![
                SoEvent::UseSuccess,
                SoEvent::Change(vec![("k".into(), num(9.0))])
            ]
        ),
        "no clear for a persistent object"
    );
    assert_eq!(out.persist, ["kept"]);
    // Kept in memory with nobody using it.
    room.sos.leave(A);
    assert_eq!(room.sos.get("kept").map(|so| so.version()), Some(8));
}

#[test]
fn limits_refuse_with_a_status_and_leave_object_and_client_sound() {
    let mut room = Room::new();
    room.config.max_slots = 2;
    room.config.max_bytes = 64;
    room.config.max_objects = 1;
    room.config.max_changes_per_sec = 3;
    room.use_it(A);
    let out = room.send(
        A,
        msg(
            "chat",
            0,
            false,
            vec![set("a", num(1.0)), set("b", num(2.0)), set("c", num(3.0))],
        ),
    );
    let to_a = &out.sends[0].1.events;
    assert_eq!(
        to_a[2],
        SoEvent::Remove("c".into()),
        "the refused slot goes back"
    );
    assert!(matches!(&to_a[3], SoEvent::Status { code, .. } if code == code::LIMIT));
    assert_eq!(out.warnings.len(), 1);

    // Bytes: a long string does not fit.
    room.now_ms += 10_000;
    let out = room.send(
        A,
        msg(
            "chat",
            1,
            false,
            vec![set("a", Amf0Value::string("x".repeat(100)))],
        ),
    );
    assert_eq!(
        out.sends[0].1.events[0],
        SoEvent::Change(vec![("a".into(), num(1.0))])
    );
    assert!(room.sos.get("chat").is_some_and(|so| so.bytes() <= 64));

    // Objects per instance.
    let out = room.send(A, msg("other", 0, false, vec![SoEvent::Use]));
    assert!(
        matches!(&out.sends[..], [(To::User(A), m)] if matches!(&m.events[..], [SoEvent::Status { .. }]))
    );

    // Changes per second: 3 allowed at once, then refused until time passes.
    room.now_ms += 10_000;
    for i in 0..3 {
        let out = room.send(A, msg("chat", 1, false, vec![set("a", num(f64::from(i)))]));
        assert_eq!(out.sends[0].1.events[0], SoEvent::Success("a".into()));
    }
    let out = room.send(A, msg("chat", 4, false, vec![set("a", num(9.0))]));
    assert!(out.warnings[0].contains("per second"), "{:?}", out.warnings);
    room.now_ms += 1000;
    let out = room.send(A, msg("chat", 4, false, vec![set("a", num(9.0))]));
    assert_eq!(out.sends[0].1.events[0], SoEvent::Success("a".into()));

    // Sends count against the same rate: a flood reaches nobody past it.
    let say = || SoEvent::SendMessage {
        handler: "say".into(),
        args: vec![],
    };
    let out = room.send(A, msg("chat", 5, false, vec![say(), say(), say()]));
    assert_eq!(
        out.sends.iter().filter(|(to, _)| *to == To::All).count(),
        2,
        "two of the three left in this second"
    );
    assert!(
        matches!(&out.sends[2], (To::User(A), m) if matches!(&m.events[..], [SoEvent::Status { .. }]))
    );
}

#[test]
fn an_operator_change_reaches_every_user_and_clear_empties_the_object() {
    let mut room = Room::new();
    room.use_it(A);
    room.use_it(B);
    let out = room
        .sos
        .operator_set("chat", "x", Some(num(1.0)), &room.config, &mut no_store)
        .expect("set");
    assert_eq!(
        out.sends,
        [(
            To::All,
            msg(
                "chat",
                1,
                false,
                vec![SoEvent::Change(vec![("x".into(), num(1.0))])]
            )
        )]
    );
    // A client change based on version 0 of x loses to the operator's.
    let out = room.send(A, msg("chat", 0, false, vec![set("x", num(2.0))]));
    assert_eq!(
        out.sends[0].1.events,
        [SoEvent::Change(vec![("x".into(), num(1.0))])]
    );
    let out = room
        .sos
        .operator_clear("chat", &mut no_store)
        .expect("clear");
    assert_eq!(
        out.sends,
        [(To::All, msg("chat", 2, false, vec![SoEvent::Clear]))]
    );
    assert!(room
        .sos
        .operator_set("nothing", "x", None, &room.config, &mut no_store)
        .is_err());
}
