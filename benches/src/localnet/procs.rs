//! Child processes of a local network: start, read their stdout line by line, stop them.
//!
//! Every child runs in its own process group, so the terminal's Ctrl-C reaches only
//! `localnet`, which then stops the children in order (nodes, relays, seed) and still has
//! their last figures for the summary. Each child's stderr goes to a log file in the run
//! directory.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rustix::process::{Pid, Signal};

/// A child process; SIGKILLed on drop if still running.
#[derive(Debug)]
pub struct Proc {
    /// What the report calls it (`seed`, `relay-1`, `node-2`).
    pub name: String,
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Proc {
    /// Starts `cmd` with stderr to `log` and hands each stdout line to `on_line` on a thread
    /// of its own (which drains the pipe until the child exits, so it never blocks on a full
    /// pipe).
    ///
    /// # Errors
    /// The log file or the spawn failed.
    pub fn spawn(
        name: &str,
        mut cmd: Command,
        log: &Path,
        mut on_line: impl FnMut(&str) + Send + 'static,
    ) -> anyhow::Result<Self> {
        let log = std::fs::File::create(log).with_context(|| format!("{}", log.display()))?;
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        let stdout = child.stdout.take().context("child stdout")?;
        std::thread::Builder::new()
            .name(format!("{name}-stdout"))
            .spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    on_line(&line);
                }
            })
            .context("stdout reader thread")?;
        let stdin = child.stdin.take();
        Ok(Self {
            name: name.to_owned(),
            child,
            stdin,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The child's stdin (nodes read their peers' addresses there).
    pub fn stdin(&mut self) -> Option<&mut ChildStdin> {
        self.stdin.as_mut()
    }

    /// Whether it has exited (and reaps it if so).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Sends `sig`; a process that is already gone is not an error.
    pub fn signal(&self, sig: Signal) {
        if let Some(pid) = Pid::from_raw(self.child.id().cast_signed()) {
            let _ = rustix::process::kill_process(pid, sig);
        }
    }

    /// SIGTERM, then SIGKILL if it has not exited within `grace`; returns the exit status.
    pub fn stop(&mut self, grace: Duration) -> Option<std::process::ExitStatus> {
        self.stdin = None;
        if let Some(st) = self.exited() {
            return Some(st);
        }
        self.signal(Signal::TERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Some(st) = self.exited() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        self.child.wait().ok()
    }

    /// SIGKILL now (the failover demonstration) and reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.exited().is_none() {
            self.kill();
        }
    }
}

/// A one-shot "ready" mailbox: the stdout reader calls [`ReadySender::send`] with the first
/// line that says the child is ready; [`ReadyReceiver::wait`] waits for it.
pub fn ready_channel() -> (ReadySender, ReadyReceiver) {
    let (tx, rx) = mpsc::sync_channel(1);
    (ReadySender(tx), ReadyReceiver(rx))
}

/// The reader side of [`ready_channel`].
#[derive(Debug, Clone)]
pub struct ReadySender(mpsc::SyncSender<String>);

impl ReadySender {
    /// Hands over the ready line (only the first is kept).
    pub fn send(&self, line: &str) {
        let _ = self.0.try_send(line.to_owned());
    }
}

/// The waiting side of [`ready_channel`].
#[derive(Debug)]
pub struct ReadyReceiver(mpsc::Receiver<String>);

impl ReadyReceiver {
    /// The ready line, or an error naming `proc` if it exits or stays silent for `timeout`.
    ///
    /// # Errors
    /// The child exited first, or the timeout passed.
    pub fn wait(&self, proc: &mut Proc, timeout: Duration) -> anyhow::Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.0.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => return Ok(line),
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    bail!("{} closed its stdout before it was ready", proc.name)
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            if let Some(st) = proc.exited() {
                bail!("{} exited before it was ready ({st})", proc.name);
            }
            if Instant::now() > deadline {
                bail!("{} was not ready within {timeout:?}", proc.name);
            }
        }
    }
}

/// CPU time (user + system) and resident memory of a process, from `/proc`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// CPU seconds since the process started.
    pub cpu_secs: f64,
    /// Resident set size in KiB.
    pub rss_kib: u64,
}

/// Reads [`Usage`] of `pid`; `None` once the process is gone.
pub fn usage(pid: u32) -> Option<Usage> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat(5); `rest` starts at field 3.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let hz = rustix::param::clock_ticks_per_second();
    #[expect(
        clippy::cast_precision_loss,
        reason = "CPU ticks of one run fit in f64"
    )]
    let cpu_secs = ticks as f64 / hz as f64;
    Some(Usage { cpu_secs, rss_kib })
}
