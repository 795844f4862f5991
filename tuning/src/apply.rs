//! Carrying out a [`Plan`]: the only code in this crate that changes the host.
//!
//! It runs only from `ournet-tune apply` without `--dry-run`. Each change is one file write
//! under the given root; a failed write is reported and the others still run, so one queue a
//! driver refuses to steer does not leave the sysctls unset.

use std::fs;
use std::io;
use std::path::Path;

use crate::plan::{Change, Plan};

/// The outcome of one change.
#[derive(Debug)]
pub struct Outcome<'a> {
    /// The change.
    pub change: &'a Change,
    /// Whether the write worked.
    pub result: io::Result<()>,
}

/// Writes every change of `plan` under `root` (`/` on a real host). Parent directories are
/// created only for the sysctl drop-in (`/proc` and `/sys` files exist or cannot be made).
pub fn execute<'a>(plan: &'a Plan, root: &Path) -> Vec<Outcome<'a>> {
    plan.changes
        .iter()
        .map(|change| Outcome {
            change,
            result: write(root, change),
        })
        .collect()
}

fn write(root: &Path, change: &Change) -> io::Result<()> {
    let path = root.join(&change.path);
    if change.path.starts_with("etc/")
        && let Some(dir) = path.parent()
    {
        fs::create_dir_all(dir)?;
    }
    fs::write(path, change.new.as_bytes())
}
