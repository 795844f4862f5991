//! Not built yet (placeholder so the binary's layout exists; it refuses to run).

/// Options.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Refuses: not built yet.
///
/// # Errors
/// Always.
pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("ournet-bench localnet is not built yet")
}
