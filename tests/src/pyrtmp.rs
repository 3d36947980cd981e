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
