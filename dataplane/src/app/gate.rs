//! A client's gate for decisions made elsewhere: today the manager's auth hooks (connect,
//! publish, play); later `onConnect`-style scripts. While a decision is outstanding the
//! client's later work waits behind it, in order, and the transport keeps running: nothing
//! here blocks, and nothing here knows the transport (`E` is whatever it delivers).

use std::collections::VecDeque;

use super::net_connection::Action;
use crate::config::{AuthAction, AuthConfig};

/// Messages a client may send while a decision is outstanding; more is abuse.
pub(crate) const MAX_DEFERRED: usize = 1024;

/// What a gated client does next, once nothing is outstanding.
#[derive(Debug)]
pub(crate) enum Next<E> {
    /// An action of the command that was waiting (they keep their order).
    Action(Action),
    /// A message that arrived meanwhile.
    Event(E),
}

/// Too many messages arrived while a decision was outstanding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TooMany;

#[derive(Debug)]
pub(crate) struct Gate<E> {
    /// The outstanding decision: its request id and the action it decides.
    waiting: Option<(u64, Action)>,
    /// Actions behind it, from the same command: they go before any later message.
    actions: VecDeque<Action>,
    events: VecDeque<E>,
}

impl<E> Default for Gate<E> {
    fn default() -> Self {
        Gate {
            waiting: None,
            actions: VecDeque::new(),
            events: VecDeque::new(),
        }
    }
}

/// Which decision `action` needs under `auth`, if any.
pub(crate) fn needs_decision(action: &Action, auth: &AuthConfig) -> Option<AuthAction> {
    let kind = match action {
        Action::Accepted { .. } => AuthAction::Connect,
        Action::StartPublish { .. } => AuthAction::Publish,
        Action::StartPlay { .. } => AuthAction::Play,
        _ => return None,
    };
    auth.asks(kind).then_some(kind)
}

impl<E> Gate<E> {
    pub(crate) fn is_waiting(&self) -> bool {
        self.waiting.is_some()
    }

    /// `action` waits for decision `request`.
    pub(crate) fn wait(&mut self, request: u64, action: Action) {
        self.waiting = Some((request, action));
    }

    /// An action that comes while a decision is outstanding waits behind it.
    pub(crate) fn defer_action(&mut self, action: Action) {
        self.actions.push_back(action);
    }

    /// A message that comes while a decision is outstanding waits behind it.
    pub(crate) fn defer_event(&mut self, event: E) -> Result<(), TooMany> {
        if self.events.len() >= MAX_DEFERRED {
            return Err(TooMany);
        }
        self.events.push_back(event);
        Ok(())
    }

    /// Decision `request` arrived (or timed out): the action it decides, if it is the one
    /// outstanding (a late answer to a request already settled finds nothing).
    pub(crate) fn decided(&mut self, request: u64) -> Option<Action> {
        match &self.waiting {
            Some((r, _)) if *r == request => self.waiting.take().map(|(_, a)| a),
            _ => None,
        }
    }

    /// What to do next, while nothing is outstanding: the waiting command's other actions
    /// first, then the messages that arrived meanwhile.
    pub(crate) fn next_up(&mut self) -> Option<Next<E>> {
        if self.waiting.is_some() {
            return None;
        }
        if let Some(a) = self.actions.pop_front() {
            return Some(Next::Action(a));
        }
        self.events.pop_front().map(Next::Event)
    }

    /// The client goes away: forget everything; returns the outstanding request, if any.
    pub(crate) fn clear(&mut self) -> Option<u64> {
        self.actions.clear();
        self.events.clear();
        self.waiting.take().map(|(r, _)| r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(reason: &str) -> Action {
        Action::Close {
            reason: reason.into(),
        }
    }

    #[test]
    fn work_behind_a_decision_keeps_its_order() {
        let mut g: Gate<&str> = Gate::default();
        g.wait(7, close("held"));
        g.defer_action(close("same command"));
        g.defer_event("later message").expect("room");
        assert!(
            g.next_up().is_none(),
            "nothing runs while a decision is outstanding"
        );
        assert!(g.decided(8).is_none(), "an answer to another request");
        assert!(matches!(g.decided(7), Some(Action::Close { reason }) if reason == "held"));
        assert!(
            matches!(g.next_up(), Some(Next::Action(Action::Close { reason })) if reason == "same command")
        );
        assert!(matches!(g.next_up(), Some(Next::Event("later message"))));
        assert!(g.next_up().is_none());
    }

    #[test]
    fn a_flood_while_waiting_is_refused() {
        let mut g: Gate<u32> = Gate::default();
        g.wait(1, close("held"));
        for i in 0..MAX_DEFERRED as u32 {
            g.defer_event(i).expect("room");
        }
        assert_eq!(g.defer_event(0), Err(TooMany));
        assert_eq!(g.clear(), Some(1));
        assert!(g.next_up().is_none());
    }

    #[test]
    fn only_configured_actions_are_gated() {
        let auth = AuthConfig {
            on: vec![AuthAction::Publish],
            ..AuthConfig::default()
        };
        let accepted = Action::Accepted { reply: vec![] };
        assert_eq!(needs_decision(&accepted, &auth), None);
        let publish = Action::StartPublish {
            stream_id: 1,
            key: crate::media::StreamKey::new("live", "_definst_", "cam"),
            mode: crate::app::request::PublishMode::Live,
            query: None,
        };
        assert_eq!(needs_decision(&publish, &auth), Some(AuthAction::Publish));
        assert_eq!(needs_decision(&close("x"), &auth), None);
    }
}
