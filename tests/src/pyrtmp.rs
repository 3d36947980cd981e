//! python-librtmp (PyPI, over Debian's librtmp): an independent RTMP client that calls
//! server methods and answers the server's calls. `tests/run` installs it into a venv
//! under target/pyrtmp; `PYRTMP_PYTHON` names another interpreter that has it.

use crate::server::target_dir;
use std::path::PathBuf;

pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("PYRTMP_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = target_dir().join("pyrtmp/bin/python");
    assert!(
        venv.exists(),
        "{} is missing: run tests/run (it installs librtmp-dev and python-librtmp into \
         target/pyrtmp), or set PYRTMP_PYTHON",
        venv.display()
    );
    venv
}

/// The stratactl binary: `STRATACTL_BIN`, else the one beside the stratad under test
/// (the same build), else target/release, else target/debug.
pub fn stratactl_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("STRATACTL_BIN") {
        return PathBuf::from(p);
    }
    let beside = crate::server::stratad_bin().with_file_name("stratactl");
    let found = std::iter::once(beside)
        .chain(
            ["release", "debug"]
                .iter()
                .map(|p| target_dir().join(p).join("stratactl")),
        )
        .find(|p| p.exists());
    found.unwrap_or_else(|| {
        panic!("no stratactl binary: cargo build --bin stratactl (tests/run builds it)")
    })
}

/// A python-librtmp script (under tests/py) run against `url`, its stdout read line by line;
/// killed (by pid) when dropped, also when the test panics.
pub struct PyScript {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl PyScript {
    pub fn start(script: &str, url: &str) -> PyScript {
        PyScript::start_with_args(script, &[url])
    }

    /// The script with these arguments (its first is usually the URL).
    pub fn start_with_args(script: &str, args: &[&str]) -> PyScript {
        use std::io::{BufRead, BufReader};
        let path = crate::server::workspace_dir().join("tests/py").join(script);
        let mut child = std::process::Command::new(python())
            .arg(&path)
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("start python-librtmp");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        PyScript { child, lines }
    }

    /// The script's next line, within 30 s; `what` names it in the failure.
    pub fn next(&self, what: &str) -> String {
        self.lines
            .recv_timeout(std::time::Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("python-librtmp said nothing; expected {what}"))
    }
}

impl Drop for PyScript {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
