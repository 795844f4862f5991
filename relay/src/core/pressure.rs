//! Acting on back pressure (PROTOCOL.md §8): when the worker's load crosses the threshold
//! (`ournet_proto::flow::BackPressure`, evaluated every sweep), reading stops on the client
//! links that carry the heaviest circuits, and resumes on all of them at release.
//!
//! Policy, in order:
//! * only client links are paused, never a link to or from a relay: if two loaded relays each
//!   stopped reading the other, neither queue would drain and both would stall (the deadlock
//!   the flow-control design warns about). Relay links are slowed end to end by SENDME windows;
//! * a link's weight is the sum over the circuits whose CREATE came on it of their recent
//!   RELAY cells (halved each sweep) and the bytes they buffer;
//! * the heaviest links are paused until they carry half the client weight, so a single bulk
//!   sender is stopped while light interactive ones keep flowing. While pressure stays on, each
//!   sweep repeats the choice (a new heavy link is paused too).

use std::collections::HashMap;

use super::{Action, ConnId, Relay};
use crate::metrics;

impl Relay {
    /// Decays circuit weights and applies a back-pressure state `change` (from
    /// `BackPressure::update`): pauses the heaviest client links while active, resumes every
    /// paused link at release.
    pub(super) fn apply_back_pressure(&mut self, change: Option<bool>) {
        let weights = self.circuits.weigh_and_decay();
        if change == Some(false) {
            self.resume_all();
        } else if self.back_pressure.is_active() {
            let conns = &self.conns;
            let eligible = |id: ConnId| {
                conns
                    .get(&id)
                    .is_some_and(|c| !c.relay_peer && !c.closing && c.link_is_open())
            };
            for id in heaviest_links(&weights, eligible) {
                self.pause(id);
            }
        }
        let paused = self.conns.values().filter(|c| c.read_paused).count();
        metrics::set(&self.metrics.paused_links, paused as u64);
    }

    fn pause(&mut self, id: ConnId) {
        if let Some(conn) = self.conns.get_mut(&id)
            && !conn.read_paused
        {
            conn.read_paused = true;
            self.actions.push_back(Action::PauseRead(id));
        }
    }

    fn resume_all(&mut self) {
        for (id, conn) in &mut self.conns {
            if std::mem::take(&mut conn.read_paused) {
                self.actions.push_back(Action::ResumeRead(*id));
            }
        }
    }
}

/// The links to pause: by weight, heaviest first (ties by id), until they cover half of the
/// eligible weight. Links of zero weight are never chosen.
fn heaviest_links(weights: &[(ConnId, usize)], eligible: impl Fn(ConnId) -> bool) -> Vec<ConnId> {
    let mut per_link: HashMap<ConnId, usize> = HashMap::new();
    for (id, w) in weights {
        if eligible(*id) {
            let e = per_link.entry(*id).or_default();
            *e = e.saturating_add(*w);
        }
    }
    let total: usize = per_link.values().fold(0, |a, w| a.saturating_add(*w));
    let mut links: Vec<(usize, ConnId)> = per_link
        .into_iter()
        .filter(|(_, w)| *w > 0)
        .map(|(id, w)| (w, id))
        .collect();
    links.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut covered = 0usize;
    let mut out = Vec::new();
    for (w, id) in links {
        if covered.saturating_mul(2) >= total {
            break;
        }
        covered = covered.saturating_add(w);
        out.push(id);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_heaviest_eligible_links_covering_half_the_weight_are_chosen() {
        let w = [
            (ConnId(1), 100),
            (ConnId(2), 700),
            (ConnId(1), 50),
            (ConnId(3), 5000),
            (ConnId(4), 0),
        ];
        // Link 3 is a relay link: never eligible.
        let chosen = heaviest_links(&w, |id| id != ConnId(3));
        assert_eq!(chosen, vec![ConnId(2)]);
        let even = [(ConnId(1), 10), (ConnId(2), 10), (ConnId(3), 10)];
        assert_eq!(heaviest_links(&even, |_| true), vec![ConnId(1), ConnId(2)]);
        assert!(heaviest_links(&[(ConnId(4), 0)], |_| true).is_empty());
    }
}
