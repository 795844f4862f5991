//! `ournet-tune`: check (and on request tune) a host for an our-network relay.
//! See `ournet-tune --help` and `docs/OPERATORS.md`.
#![forbid(unsafe_code)]
use std::io::Write as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use ournet_tune::plan::{SYSCTL_DROPIN, plan};
use ournet_tune::read::{Root, read_host};
use ournet_tune::report::{CheckReport, plan_text, table};
use ournet_tune::snapshot::HostSnapshot;
use ournet_tune::{apply, judge, relay_config};

/// Checks a Linux host for an our-network relay: kernel, io_uring, limits, network sysctls,
/// CPUs, NIC queues and IRQs, and the relay's workers and pinning. Changes nothing unless
/// `apply` is run without `--dry-run`.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print a table of settings: current, wanted, why, fix. Exit status 1 when a finding is
    /// IMPORTANT, 0 otherwise (2 on an error).
    Check {
        /// Print JSON instead of the table.
        #[arg(long)]
        json: bool,
        /// The relay's TOML config, to judge its workers and pinning against this host.
        #[arg(long, value_name = "FILE")]
        relay_config: Option<PathBuf>,
        /// Judge a recorded snapshot (from `ournet-tune snapshot`) instead of this host.
        #[arg(long, value_name = "FILE", conflicts_with = "relay_config")]
        snapshot: Option<PathBuf>,
    },
    /// Print what was read from this host as JSON (to record it, or to attach to a report).
    Snapshot {
        /// The relay's TOML config, recorded with the host.
        #[arg(long, value_name = "FILE")]
        relay_config: Option<PathBuf>,
    },
    /// Write the sysctl drop-in (/etc/sysctl.d/60-ournet-relay.conf) and live values, and
    /// steer NIC IRQs, RPS and XPS onto the relay's pinned workers. Needs root.
    Apply {
        /// Show what would change and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// The relay's TOML config: IRQs follow its pinned workers (without it, only sysctls).
        #[arg(long, value_name = "FILE")]
        relay_config: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln_error(&e);
            ExitCode::from(2)
        }
    }
}

#[allow(clippy::print_stderr, reason = "the CLI's error message")]
fn eprintln_error(e: &anyhow::Error) {
    eprintln!("ournet-tune: {e:#}");
}

fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Command::Check {
            json,
            relay_config,
            snapshot,
        } => {
            let snap = match snapshot {
                Some(path) => load_snapshot(&path)?,
                None => host(relay_config.as_deref())?,
            };
            check(&snap, json)
        }
        Command::Snapshot { relay_config } => {
            let snap = host(relay_config.as_deref())?;
            out(&format!("{}\n", serde_json::to_string_pretty(&snap)?))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Apply {
            dry_run,
            relay_config,
        } => apply_cmd(&host(relay_config.as_deref())?, dry_run),
    }
}

/// Writes to stdout; a closed pipe (`ournet-tune check | head`) ends the output quietly.
fn out(text: &str) -> std::io::Result<()> {
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r,
    }
}

fn host(relay_config: Option<&Path>) -> anyhow::Result<HostSnapshot> {
    let relay = relay_config.map(relay_config::read).transpose()?;
    Ok(read_host(&Root::host(), relay))
}

fn load_snapshot(path: &Path) -> anyhow::Result<HostSnapshot> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

fn check(snap: &HostSnapshot, json: bool) -> anyhow::Result<ExitCode> {
    let findings = judge::judge(snap);
    let report = CheckReport::new(&findings);
    if json {
        out(&format!("{}\n", serde_json::to_string_pretty(&report)?))?;
    } else {
        out(&table(&findings))?;
    }
    Ok(if report.important {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn apply_cmd(snap: &HostSnapshot, dry_run: bool) -> anyhow::Result<ExitCode> {
    let root = Path::new("/");
    let dropin = std::fs::read_to_string(root.join(SYSCTL_DROPIN)).ok();
    let plan = plan(snap, dropin.as_deref());
    out(&plan_text(&plan))?;
    if dry_run {
        out("dry run: nothing changed\n")?;
        return Ok(ExitCode::SUCCESS);
    }
    if plan.changes.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    anyhow::ensure!(
        std::fs::metadata("/proc/self")?.uid() == 0,
        "apply writes /etc/sysctl.d, /proc/sys and /proc/irq: run it as root (or see --dry-run)"
    );
    let mut failed = false;
    for outcome in apply::execute(&plan, root) {
        match &outcome.result {
            Ok(()) => out(&format!("wrote /{}\n", outcome.change.path))?,
            Err(e) => {
                failed = true;
                out(&format!("FAILED /{}: {e}\n", outcome.change.path))?;
            }
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
