//! Reload: the configuration in force, where it came from, and replacing it without a
//! restart (SIGHUP or `stratactl reload`). Workers get the new one through their mailboxes
//! and switch at their next loop turn.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tracing::info;

use crate::config::Config;
use crate::engine::cross::WorkerMsg;
use crate::engine::listener;
use crate::engine::Shared;

/// What the command line fixed, which a reload of the file must not undo.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen: Vec<SocketAddr>,
    pub workers: Option<usize>,
    /// `--content-root`: vod.root.
    pub content_root: Option<PathBuf>,
}

impl Overrides {
    /// Puts the command line's choices over the file's.
    fn apply(&self, config: &mut Config) {
        if !self.listen.is_empty() {
            config.server.listen = self.listen.clone();
        }
        if let Some(w) = self.workers {
            config.server.workers = w;
        }
        if let Some(root) = &self.content_root {
            config.vod.root = Some(root.clone());
        }
    }
}

/// The configuration the workers run with, and how to read it again.
pub(super) struct RunningConfig {
    current: Arc<Config>,
    /// The file it came from; none when stratad was started without `--config`.
    path: Option<PathBuf>,
    overrides: Overrides,
}

impl RunningConfig {
    /// The configuration read at start-up, with the command line's overrides applied.
    pub(super) fn new(mut config: Config, path: Option<PathBuf>, overrides: Overrides) -> Self {
        overrides.apply(&mut config);
        RunningConfig {
            current: Arc::new(config),
            path,
            overrides,
        }
    }

    pub(super) fn current(&self) -> &Arc<Config> {
        &self.current
    }

    /// Re-reads the configuration file. On any error the running configuration stays and
    /// the error says why; on success every worker is sent the new one, and the message
    /// says what changed.
    pub(super) fn reload(&mut self, shared: &Shared) -> Result<String, String> {
        let Some(path) = self.path.clone() else {
            return Err("stratad was started without --config: there is no file to reload".into());
        };
        let mut new = Config::load(&path).map_err(|e| e.to_string())?;
        self.overrides.apply(&mut new);
        let old = &self.current;
        let added: Vec<_> = new
            .server
            .listen
            .iter()
            .filter(|a| !old.server.listen.contains(a))
            .copied()
            .collect();
        let removed: Vec<_> = old
            .server
            .listen
            .iter()
            .filter(|a| !new.server.listen.contains(a))
            .copied()
            .collect();
        listener::check_bindable(&added)?;
        let mut notes = Vec::new();
        if new.server.workers != old.server.workers {
            notes.push("the worker count changes only at restart".to_string());
            new.server.workers = old.server.workers;
        }
        if new.control.socket != old.control.socket {
            notes.push("the control socket path changes only at restart".to_string());
        }
        let apps: Vec<&str> = new.applications.iter().map(|a| a.name.as_str()).collect();
        let mut message = format!(
            "reloaded {}: applications {}, listeners added {:?}, removed {:?}",
            path.display(),
            if apps.is_empty() {
                "any".to_string()
            } else {
                apps.join(",")
            },
            added,
            removed
        );
        if !notes.is_empty() {
            message.push_str("; ");
            message.push_str(&notes.join("; "));
        }
        let new = Arc::new(new);
        for mailbox in &shared.mailboxes {
            mailbox.post(WorkerMsg::Reload(Arc::clone(&new)));
            mailbox.wake();
        }
        if let Some(scripts) = &shared.scripts {
            scripts.send(crate::scripts::ToScripts::Reload(Arc::clone(&new)));
        }
        self.current = new;
        info!(%message, "configuration reloaded");
        Ok(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::workers::shared_state;

    /// A configuration file of its own for one test, removed on drop.
    struct File(PathBuf);

    impl File {
        fn new(name: &str, text: &str) -> File {
            let path = std::env::temp_dir()
                .join(format!("strata-reload-{}-{name}.toml", std::process::id()));
            std::fs::write(&path, text).expect("write config");
            File(path)
        }

        fn rewrite(&self, text: &str) {
            std::fs::write(&self.0, text).expect("rewrite config");
        }
    }

    impl Drop for File {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn received(rx: &crate::engine::mailbox::MailboxReceiver<WorkerMsg>) -> Option<Arc<Config>> {
        match rx.try_recv() {
            Some(WorkerMsg::Reload(config)) => Some(config),
            _ => None,
        }
    }

    #[test]
    fn a_reload_keeps_what_the_command_line_fixed() {
        let file = File::new("overrides", "[server]\nworkers = 2\n");
        let fixed: SocketAddr = "127.0.0.1:19350".parse().expect("addr");
        let overrides = Overrides {
            listen: vec![fixed],
            workers: None,
            content_root: None,
        };
        let config = Config::load(&file.0).expect("config");
        let mut running = RunningConfig::new(config, Some(file.0.clone()), overrides);
        assert_eq!(running.current().server.listen, vec![fixed]);

        file.rewrite("[server]\nlisten = [\"127.0.0.1:1\"]\nworkers = 4\n\n[[application]]\nname = \"live\"\n");
        let (shared, receivers) = shared_state(2).expect("mailboxes");
        let message = running.reload(&shared).expect("reloaded");
        assert!(message.contains("applications live"), "{message}");
        assert!(
            message.contains("the worker count changes only at restart"),
            "{message}"
        );
        for rx in &receivers.workers {
            let config = received(rx).expect("every worker gets the new configuration");
            assert!(Arc::ptr_eq(&config, running.current()));
            assert_eq!(config.server.listen, vec![fixed]);
            assert_eq!(config.server.workers, 2);
            assert!(config.application("live").is_some());
            assert!(config.application("other").is_none());
        }
    }

    #[test]
    fn a_file_that_does_not_load_leaves_the_running_configuration() {
        let file = File::new("broken", "[server]\nworkers = 1\n");
        let config = Config::load(&file.0).expect("config");
        let mut running = RunningConfig::new(config, Some(file.0.clone()), Overrides::default());
        let before = Arc::clone(running.current());
        file.rewrite("[server]\nchunk_size = 0\n");
        let (shared, receivers) = shared_state(1).expect("mailboxes");
        let error = running.reload(&shared).expect_err("refused");
        assert!(error.contains("chunk_size"), "{error}");
        assert!(Arc::ptr_eq(running.current(), &before));
        assert!(received(&receivers.workers[0]).is_none());
    }

    #[test]
    fn a_bad_host_ini_at_reload_leaves_the_running_groups() {
        let ini =
            std::env::temp_dir().join(format!("strata-reload-{}-host.ini", std::process::id()));
        std::fs::write(&ini, "server1 127.0.0.2;127.0.0.3 lsc_origin\n").expect("host.ini");
        let file = File::new(
            "host-ini",
            &format!(
                "[[application]]\nname = \"edge\"\nrole = \"edge\"\nhost_ini = {:?}\n",
                ini.file_name().and_then(|n| n.to_str()).expect("name")
            ),
        );
        let config = Config::load(&file.0).expect("config");
        let mut running = RunningConfig::new(config, Some(file.0.clone()), Overrides::default());
        let before = Arc::clone(running.current());
        assert_eq!(before.applications[0].upstreams.len(), 1);
        std::fs::write(
            &ini,
            "server1 127.0.0.2;127.0.0.3 lsc_origin\nserver2 oops lsc_origin\n",
        )
        .expect("host.ini");
        let (shared, receivers) = shared_state(1).expect("mailboxes");
        let error = running.reload(&shared).expect_err("refused");
        let _ = std::fs::remove_file(&ini);
        assert!(error.contains("host.ini:2: expected"), "{error}");
        assert!(Arc::ptr_eq(running.current(), &before));
        assert!(received(&receivers.workers[0]).is_none());
    }

    #[test]
    fn without_a_file_there_is_nothing_to_reload() {
        let mut running = RunningConfig::new(Config::default(), None, Overrides::default());
        let (shared, receivers) = shared_state(1).expect("mailboxes");
        let error = running.reload(&shared).expect_err("refused");
        assert!(error.contains("without --config"), "{error}");
        assert!(received(&receivers.workers[0]).is_none());
    }
}
