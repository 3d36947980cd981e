//! What the upstream groups of each intermediate or edge application have live, as their
//! standing FCAddChild links (`relay::registration`) report it: per group, whether it is
//! registered now and the names of its active publishers (addStream / removeStream, and the
//! list an upstream sends at registration). Plain data, no I/O: the engine keeps one for
//! all workers and asks it two things. Whether a name is worth a pull (`lookup`: a play or
//! subscribe for a name that no registered group lists, with every group registered, is
//! answered StreamNotFound at once and dials nobody), and which names appear or disappear
//! across all groups (the union is what an intermediate tells its own children).

use std::collections::{BTreeSet, HashMap};

/// The most names one group may list: an upstream that announces more is not a server of
/// ours behaving, and its link is closed rather than let it grow the list without bound.
pub(crate) const MAX_NAMES: usize = 10_000;
/// The longest stream name a list keeps (bytes).
pub(crate) const MAX_NAME_LEN: usize = 1_024;

#[derive(Debug, Default, Clone)]
struct GroupList {
    registered: bool,
    names: BTreeSet<String>,
}

/// What the lists say about one name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Known {
    /// Some group lists it.
    Listed,
    /// Every group is registered and none lists it.
    Absent,
    /// No list for the application, or a group is not registered (down, connecting, or an
    /// upstream that takes no children): only asking tells.
    Unknown,
}

/// A change of the union of an application's lists: `name` appeared (`live`) or is gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Change {
    pub(crate) name: String,
    pub(crate) live: bool,
}

#[derive(Debug, Default)]
pub(crate) struct Catalog {
    apps: HashMap<String, Vec<GroupList>>,
}

impl Catalog {
    /// `app` has `groups` upstream groups, none registered yet (at start, or its host.ini
    /// changed at a reload): what it listed before is gone.
    pub(crate) fn set_groups(&mut self, app: &str, groups: usize) -> Vec<Change> {
        let before = self.union(app);
        self.apps
            .insert(app.to_string(), vec![GroupList::default(); groups]);
        gone(before, &BTreeSet::new())
    }

    /// `app` no longer keeps lists (its role or host.ini went at a reload).
    pub(crate) fn remove_app(&mut self, app: &str) -> Vec<Change> {
        let before = self.union(app);
        self.apps.remove(app);
        gone(before, &BTreeSet::new())
    }

    /// Group `g` of `app` accepted FCAddChild: its list counts from now on (names it sent
    /// before its answer are kept).
    pub(crate) fn registered(&mut self, app: &str, g: usize) {
        if let Some(list) = self.group_mut(app, g) {
            list.registered = true;
        }
    }

    /// addStream / removeStream from group `g` of `app`; the change of the union, if any.
    /// An error (the list unchanged) for a name or a list past the bounds.
    pub(crate) fn stream(
        &mut self,
        app: &str,
        g: usize,
        name: &str,
        live: bool,
    ) -> Result<Option<Change>, String> {
        if live && name.len() > MAX_NAME_LEN {
            return Err(format!("a stream name of {} bytes", name.len()));
        }
        let before = self.lookup(app, name) == Known::Listed;
        let Some(list) = self.group_mut(app, g) else {
            return Ok(None);
        };
        if live {
            if list.names.len() >= MAX_NAMES && !list.names.contains(name) {
                return Err(format!("more than {MAX_NAMES} streams listed"));
            }
            list.names.insert(name.to_string());
        } else {
            list.names.remove(name);
        }
        let after = self.lookup(app, name) == Known::Listed;
        Ok((before != after).then(|| Change {
            name: name.to_string(),
            live: after,
        }))
    }

    /// Group `g`'s link is gone: it is unregistered and its list forgotten (it is sent
    /// again at the next registration); the names no group lists any more.
    pub(crate) fn lost(&mut self, app: &str, g: usize) -> Vec<Change> {
        let before = self.union(app);
        if let Some(list) = self.group_mut(app, g) {
            *list = GroupList::default();
        }
        gone(before, &self.union(app))
    }

    pub(crate) fn lookup(&self, app: &str, name: &str) -> Known {
        let Some(groups) = self.apps.get(app) else {
            return Known::Unknown;
        };
        if groups.iter().any(|g| g.names.contains(name)) {
            Known::Listed
        } else if !groups.is_empty() && groups.iter().all(|g| g.registered) {
            Known::Absent
        } else {
            Known::Unknown
        }
    }

    /// Every name some group of `app` lists.
    pub(crate) fn union(&self, app: &str) -> BTreeSet<String> {
        self.apps
            .get(app)
            .map(|groups| {
                groups
                    .iter()
                    .flat_map(|g| g.names.iter().cloned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Group `g`'s list, for `stratactl upstreams`.
    pub(crate) fn names(&self, app: &str, g: usize) -> Vec<String> {
        self.apps
            .get(app)
            .and_then(|groups| groups.get(g))
            .map(|list| list.names.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn group_mut(&mut self, app: &str, g: usize) -> Option<&mut GroupList> {
        self.apps.get_mut(app)?.get_mut(g)
    }
}

fn gone(before: BTreeSet<String>, after: &BTreeSet<String>) -> Vec<Change> {
    before
        .into_iter()
        .filter(|n| !after.contains(n))
        .map(|name| Change { name, live: false })
        .collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn change(name: &str, live: bool) -> Option<Change> {
        Some(Change {
            name: name.into(),
            live,
        })
    }

    #[test]
    fn a_name_is_absent_only_when_every_group_is_registered_and_none_lists_it() {
        let mut c = Catalog::default();
        assert_eq!(c.lookup("edge", "cam"), Known::Unknown, "no lists at all");
        c.set_groups("edge", 2);
        assert_eq!(c.lookup("edge", "cam"), Known::Unknown);
        c.registered("edge", 0);
        assert_eq!(
            c.lookup("edge", "cam"),
            Known::Unknown,
            "group 1 not registered"
        );
        c.registered("edge", 1);
        assert_eq!(c.lookup("edge", "cam"), Known::Absent);
        assert_eq!(c.stream("edge", 1, "cam", true), Ok(change("cam", true)));
        assert_eq!(c.lookup("edge", "cam"), Known::Listed);
        assert_eq!(c.lookup("other", "cam"), Known::Unknown);
        // A group that goes down makes what only it listed unknown, not absent.
        assert_eq!(
            c.lost("edge", 1),
            [Change {
                name: "cam".into(),
                live: false
            }]
        );
        assert_eq!(c.lookup("edge", "cam"), Known::Unknown);
        assert_eq!(c.names("edge", 1), Vec::<String>::new());
    }

    #[test]
    fn the_union_changes_only_when_the_first_group_lists_a_name_or_the_last_drops_it() {
        let mut c = Catalog::default();
        c.set_groups("i", 2);
        c.registered("i", 0);
        c.registered("i", 1);
        assert_eq!(c.stream("i", 0, "cam", true), Ok(change("cam", true)));
        assert_eq!(c.stream("i", 1, "cam", true), Ok(None));
        assert_eq!(
            c.stream("i", 0, "cam", true),
            Ok(None),
            "a repeated addStream"
        );
        assert_eq!(
            c.stream("i", 0, "cam", false),
            Ok(None),
            "group 1 still has it"
        );
        assert_eq!(c.lost("i", 0), []);
        assert_eq!(c.stream("i", 1, "cam", false), Ok(change("cam", false)));
        assert_eq!(
            c.stream("i", 1, "x", false),
            Ok(None),
            "removeStream of nothing"
        );
        assert_eq!(c.stream("i", 5, "x", true), Ok(None), "no such group");
        // A reload with new groups forgets the old lists.
        c.stream("i", 1, "a", true).expect("listed");
        assert_eq!(
            c.set_groups("i", 1),
            [Change {
                name: "a".into(),
                live: false
            }]
        );
        assert_eq!(c.lookup("i", "a"), Known::Unknown);
        c.stream("i", 0, "b", true).expect("listed");
        assert_eq!(
            c.remove_app("i"),
            [Change {
                name: "b".into(),
                live: false
            }]
        );
    }

    #[test]
    fn a_list_past_its_bounds_is_refused_and_left_as_it_was() {
        let mut c = Catalog::default();
        c.set_groups("e", 1);
        let long = "x".repeat(MAX_NAME_LEN + 1);
        assert!(c.stream("e", 0, &long, true).is_err());
        for i in 0..MAX_NAMES {
            c.stream("e", 0, &format!("s{i}"), true)
                .expect("within bounds");
        }
        let e = c
            .stream("e", 0, "one-more", true)
            .expect_err("past the bound");
        assert!(e.contains("more than"), "{e}");
        assert_eq!(c.union("e").len(), MAX_NAMES);
        // Known names and removals still go.
        assert_eq!(c.stream("e", 0, "s1", true), Ok(None));
        assert!(c.stream("e", 0, "s1", false).expect("removed").is_some());
    }

    proptest! {
        /// Whatever the groups say, the changes reported add up to the union.
        #[test]
        fn changes_track_the_union(
            ops in proptest::collection::vec((0usize..3, 0u8..4, any::<bool>(), any::<bool>()), 0..80)
        ) {
            let mut c = Catalog::default();
            c.set_groups("a", 3);
            let mut seen = BTreeSet::new();
            for (g, name, live, lose) in ops {
                let name = format!("s{name}");
                let changes = if lose {
                    c.lost("a", g)
                } else {
                    c.stream("a", g, &name, live).ok().flatten().into_iter().collect()
                };
                for ch in changes {
                    let consistent = if ch.live {
                        seen.insert(ch.name)
                    } else {
                        seen.remove(&ch.name)
                    };
                    prop_assert!(consistent);
                }
                prop_assert_eq!(&seen, &c.union("a"));
            }
        }
    }
}
