//! io_uring availability: the `io_uring_disabled` sysctl and a real ring setup.
//!
//! The probe goes through the `io-uring` crate's safe API (`IoUring::new`,
//! `Submitter::register_probe`), so this crate stays `forbid(unsafe_code)` (STYLE.md: unsafe
//! lives in `relay/` only). It sets up an 8-entry ring and drops it: the same test the relay's
//! `--backend auto` makes before it falls back to epoll.

use super::Root;
use crate::snapshot::{IoUringState, UringProbe};

/// Reads the sysctl and probes a ring.
pub(super) fn read(root: &Root) -> IoUringState {
    IoUringState {
        disabled_sysctl: root
            .text("proc/sys/kernel/io_uring_disabled")
            .and_then(|t| t.parse().ok()),
        probe: probe(),
    }
}

#[cfg(target_os = "linux")]
fn probe() -> Option<UringProbe> {
    use io_uring::opcode;

    let ring = match io_uring::IoUring::new(8) {
        Ok(ring) => ring,
        Err(e) => {
            return Some(UringProbe::Failed {
                error: e.to_string(),
            });
        }
    };
    let mut ops = io_uring::Probe::new();
    let multishot_recv =
        ring.submitter().register_probe(&mut ops).is_ok() && ops.is_supported(opcode::SendZc::CODE);
    Some(UringProbe::Ok {
        ext_arg: ring.params().is_feature_ext_arg(),
        multishot_recv,
    })
}

#[cfg(not(target_os = "linux"))]
fn probe() -> Option<UringProbe> {
    None
}
