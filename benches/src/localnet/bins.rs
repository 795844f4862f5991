//! Finding the seed and relay binaries a local network runs.
//!
//! A newcomer runs `cargo run --release -p ournet-bench -- localnet` from a fresh clone, so
//! the job builds what it needs itself: when the workspace it was built from is still on disk
//! and `cargo` runs, it asks cargo to build `ournet-seed` and `ournet-relay` in the chosen
//! profile (a no-op when they are up to date) and takes the paths cargo reports. Otherwise
//! (an installed `ournet-bench`) it looks next to its own executable. Client nodes are this
//! executable itself (`ournet-bench node`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

/// The executables of one local network.
#[derive(Debug, Clone)]
pub struct Bins {
    /// `ournet-seed`.
    pub seed: PathBuf,
    /// `ournet-relay`.
    pub relay: PathBuf,
    /// `ournet-bench` (run as `ournet-bench node`).
    pub node: PathBuf,
}

/// How to get the binaries.
#[derive(Debug, Clone)]
pub struct Source {
    /// Build or take the debug profile instead of release.
    pub debug: bool,
    /// Never run cargo: take the binaries from `dir` (or next to this executable).
    pub no_build: bool,
    /// Where prebuilt binaries are (with `no_build`).
    pub dir: Option<PathBuf>,
}

const NAMES: [&str; 2] = ["ournet-seed", "ournet-relay"];

/// Builds or finds the binaries.
///
/// # Errors
/// A failed build, or a binary that is nowhere to be found.
pub fn resolve(src: &Source) -> anyhow::Result<Bins> {
    let node = std::env::current_exe().context("finding this executable")?;
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let built = if src.no_build || !workspace.join("Cargo.toml").is_file() {
        None
    } else {
        Some(cargo_build(&workspace, src.debug)?)
    };
    let found = match built {
        Some(paths) => paths,
        None => {
            let dir = match &src.dir {
                Some(d) => d.clone(),
                None => node
                    .parent()
                    .context("this executable has no directory")?
                    .to_path_buf(),
            };
            let paths: Vec<PathBuf> = NAMES.iter().map(|n| dir.join(n)).collect();
            for p in &paths {
                if !p.is_file() {
                    bail!("{} not found (build it, or pass --bin-dir)", p.display());
                }
            }
            paths
        }
    };
    let [seed, relay]: [PathBuf; 2] = found
        .try_into()
        .map_err(|_| anyhow::anyhow!("expected two binaries"))?;
    Ok(Bins { seed, relay, node })
}

/// `cargo build` of the seed and relay binaries; their paths as cargo reports them (so a
/// custom target directory is honoured).
fn cargo_build(workspace: &Path, debug: bool) -> anyhow::Result<Vec<PathBuf>> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    without_crate_env(&mut cmd)
        .current_dir(workspace)
        .args(["build", "--message-format=json-render-diagnostics"]);
    for n in NAMES {
        cmd.args(["-p", n, "--bin", n]);
    }
    if !debug {
        cmd.arg("--release");
    }
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo build (pass --no-build to use prebuilt binaries)")?;
    if !out.status.success() {
        bail!("cargo build of {NAMES:?} failed");
    }
    let mut found = vec![None; NAMES.len()];
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let (Some(name), Some(exe)) = (msg["target"]["name"].as_str(), msg["executable"].as_str())
        else {
            continue;
        };
        if let Some(i) = NAMES.iter().position(|n| *n == name) {
            found[i] = Some(PathBuf::from(exe));
        }
    }
    found
        .into_iter()
        .zip(NAMES)
        .map(|(p, n)| p.with_context(|| format!("cargo did not report the {n} executable")))
        .collect()
}

/// `cmd` without the variables cargo sets for the crate it runs (`CARGO_MANIFEST_DIR`,
/// `CARGO_PKG_*`, ...), for a `cargo build` started from a process `cargo run` or `cargo test`
/// started.
///
/// Build scripts track some of them (ring's reruns when `CARGO_MANIFEST_DIR` changes), so a
/// build that inherited them found ring's environment changed whenever the build before it
/// came from elsewhere (a shell, another test crate, the `cargo run` that started this
/// process) and rebuilt ring and everything above it: inside a test, a minute or more of
/// compiling on a loaded machine. Without them the build is the one a shell makes.
pub fn without_crate_env(cmd: &mut Command) -> &mut Command {
    for (key, _) in std::env::vars_os() {
        if key.to_str().is_some_and(is_crate_var) {
            cmd.env_remove(&key);
        }
    }
    cmd
}

/// Whether `key` is one of the variables cargo sets for the crate it builds or tests.
fn is_crate_var(key: &str) -> bool {
    key.starts_with("CARGO_PKG_")
        || matches!(
            key,
            "CARGO_MANIFEST_DIR"
                | "CARGO_MANIFEST_PATH"
                | "CARGO_MANIFEST_LINKS"
                | "CARGO_CRATE_NAME"
                | "CARGO_BIN_NAME"
                | "CARGO_PRIMARY_PACKAGE"
                | "CARGO_TARGET_TMPDIR"
                | "OUT_DIR"
        )
}
