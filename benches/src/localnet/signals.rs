//! Ctrl-C and SIGTERM: both set one flag that the main loop polls, so the job stops its
//! children in order and prints the summary instead of dying with them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;

/// Set once SIGINT or SIGTERM arrived.
#[derive(Debug, Clone, Default)]
pub struct Stop(Arc<AtomicBool>);

impl Stop {
    /// Whether a stop was asked for.
    pub fn requested(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Installs the handlers (on a thread of their own, with a one-thread tokio runtime).
///
/// # Errors
/// The runtime or a handler could not be set up.
pub fn install() -> anyhow::Result<Stop> {
    let stop = Stop::default();
    let flag = stop.0.clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("signal runtime")?;
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            rt.block_on(async move {
                use tokio::signal::unix::{SignalKind, signal};
                let handlers = signal(SignalKind::interrupt())
                    .and_then(|i| Ok((i, signal(SignalKind::terminate())?)));
                let (mut int, mut term) = match handlers {
                    Ok(h) => {
                        let _ = tx.send(Ok(()));
                        h
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
                flag.store(true, Ordering::Relaxed);
            });
        })
        .context("signal thread")?;
    rx.recv()
        .context("signal thread ended")?
        .context("installing signal handlers")?;
    Ok(stop)
}
