//! Real peers nobody here wrote, installed once per machine: the Python MCP client and
//! `jsonschema` (a venv), and from npm the TypeScript MCP SDK, InfluxData's official MCP
//! server and Ajv (`tests/e2e/node_modules`). `.ci/run` installs both before the tests; a
//! developer's first `cargo test` does it here.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const E2E: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e");

/// The folder of the peer scripts (`tests/e2e`).
pub fn e2e_dir() -> &'static Path {
    Path::new(E2E)
}

/// A Python with `tests/e2e/requirements.txt`: `$TOKENWARDEN_TEST_PYTHON`, or a venv made once
/// under target/.
pub fn python() -> PathBuf {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| {
        if let Ok(p) = std::env::var("TOKENWARDEN_TEST_PYTHON") {
            return p.into();
        }
        let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("mcp-venv");
        let py = venv.join("bin/python");
        let ready = Command::new(&py)
            .args(["-c", "import mcp, httpx2, jsonschema"])
            .status()
            .is_ok_and(|s| s.success());
        if !ready {
            let made = Command::new("python3")
                .args(["-m", "venv"])
                .arg(&venv)
                .status();
            assert!(
                made.is_ok_and(|s| s.success()),
                "cannot create a Python venv at {} (python3 -m venv)",
                venv.display()
            );
            let pip = Command::new(venv.join("bin/pip"))
                .args(["install", "-q", "-r"])
                .arg(e2e_dir().join("requirements.txt"))
                .status();
            assert!(
                pip.is_ok_and(|s| s.success()),
                "cannot install tests/e2e/requirements.txt into {}; is PyPI reachable?",
                venv.display()
            );
        }
        py
    })
    .clone()
}

/// `node`, with `tests/e2e/node_modules` installed from its lock file (`npm ci`) if missing.
pub fn node() -> &'static str {
    static READY: OnceLock<()> = OnceLock::new();
    READY.get_or_init(|| {
        if e2e_dir().join("node_modules/.package-lock.json").exists() {
            return;
        }
        let ci = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(e2e_dir())
            .status();
        assert!(
            ci.is_ok_and(|s| s.success()),
            "cannot install tests/e2e's npm packages (npm ci in {E2E}); is the npm registry reachable?"
        );
    });
    "node"
}
