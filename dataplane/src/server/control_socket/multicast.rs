//! `multicast` requests: the list (the configuration's outputs and those added at run
//! time) is this thread's; adding or removing one is told to every worker
//! (`WorkerMsg::MulticastAdd`/`MulticastRemove`), and the worker where a matching stream
//! enters opens or closes its output there.

use control_protocol::{MulticastCall, MulticastListed, Reply};

use super::ControlServer;
use crate::engine::cross::WorkerMsg;
use crate::multicast::spec::{validate, MulticastSpec};

/// Outputs an operator may add at run time: each is a socket per matching stream.
const MAX_ADDED: usize = 1024;

impl ControlServer {
    pub(super) fn multicast(&mut self, token: u64, id: u64, call: MulticastCall) {
        match call {
            MulticastCall::List => {
                let config = self
                    .config
                    .current()
                    .multicast
                    .iter()
                    .map(|o| MulticastListed {
                        output: o.clone(),
                        origin: "config".into(),
                    });
                let added = self.multicast_added.iter().map(|o| MulticastListed {
                    output: o.clone(),
                    origin: "runtime".into(),
                });
                let multicast = config.chain(added).collect();
                self.respond(token, id, Reply::Multicast { multicast });
            }
            MulticastCall::Add { output } => {
                if let Err(why) = validate(&output) {
                    return self.respond_error(token, id, "bad_request", &why);
                }
                if self.multicast_known(&output.stream, output.group) {
                    let why = format!("{} already goes to {}", output.stream, output.group);
                    return self.respond_error(token, id, "bad_request", &why);
                }
                if self.multicast_added.len() >= MAX_ADDED {
                    let why = "too many multicast outputs added at run time";
                    return self.respond_error(token, id, "bad_request", why);
                }
                self.multicast_added.push(output.clone());
                for w in 0..self.shared.mailboxes.len() {
                    self.post(w, WorkerMsg::MulticastAdd(output.clone()));
                }
                self.respond_done(token, id);
            }
            MulticastCall::Remove { stream, group } => {
                let before = self.multicast_added.len();
                self.multicast_added
                    .retain(|o| !(o.stream == stream && o.group == group));
                if self.multicast_added.len() == before {
                    let why = if self.multicast_known(&stream, group) {
                        format!(
                            "{stream} to {group} is in the configuration file: edit it and reload"
                        )
                    } else {
                        format!("no multicast output of {stream} to {group}")
                    };
                    return self.respond_error(token, id, "not_found", &why);
                }
                for w in 0..self.shared.mailboxes.len() {
                    let (stream, group) = (stream.clone(), group);
                    self.post(w, WorkerMsg::MulticastRemove { stream, group });
                }
                self.respond_done(token, id);
            }
        }
    }

    fn multicast_known(&self, stream: &str, group: std::net::SocketAddr) -> bool {
        let same = |o: &MulticastSpec| o.stream == stream && o.group == group;
        self.config.current().multicast.iter().any(same) || self.multicast_added.iter().any(same)
    }
}
