//! Who lost the loops, and what to do about it (Loopix §4.2: loops detect an n-1 or blocking
//! attack on the node's provider, here its home relays, or on its paths).
//!
//! Every loop outcome in the tracker's window carries the [`LoopRoute`] it took: the home it
//! was to return through and the first hop of its path. [`suspect`] blames one relay when
//! its loops lost at least the alarm ratio *and* the loops that avoided it did not: taking it
//! out of the window would clear the alarm. Losses spread over many relays blame no one (a
//! network-wide problem, or an attacker on the middle hops, which change every loop).
//! [`decide`] turns the blame into at most one reaction per [`LoopCoverConfig::reaction_gap`]:
//! leave a suspect home, or avoid a suspect first hop, so one attack cannot cause a storm of
//! rotations.
//!
//! Pure functions of the window, `now` and the config: the client only carries them out.
//!
//! [`LoopCoverConfig::reaction_gap`]: super::LoopCoverConfig::reaction_gap

use std::time::{Duration, Instant};

/// Loops through a relay needed before it can be blamed: one or two losses are chance.
pub const MIN_SUSPECT_OUTCOMES: usize = 3;

/// The relays a loop depended on, by identity key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LoopRoute {
    /// The node's home the loop was sent to, which was to hand it back.
    pub home: [u8; 32],
    /// The first hop of the loop's path (sees the node's address).
    pub first_hop: [u8; 32],
}

/// One loop's fate, with its route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoopOutcome {
    /// Where it went.
    pub route: LoopRoute,
    /// Not back within the return timeout.
    pub lost: bool,
}

/// The part a suspect relay played on the loops it lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SuspectRole {
    /// One of the node's homes (its Loopix provider).
    Home,
    /// The first hop of the lost loops' paths.
    FirstHop,
}

/// The relay [`suspect`] blames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Suspect {
    /// Its identity key.
    pub relay: [u8; 32],
    /// Its part in the lost loops.
    pub role: SuspectRole,
    /// Loops through it lost in the window.
    pub lost: usize,
    /// Loops through it in the window.
    pub outcomes: usize,
}

/// What the node does about an alarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AlarmAction {
    /// Replace this home (make-before-break) and keep it out for a cooldown.
    LeaveHome([u8; 32]),
    /// Keep this relay out of paths for a cooldown.
    AvoidFirstHop([u8; 32]),
    /// A suspect, but the node reacted less than `reaction_gap` ago: warn only.
    Hold,
    /// No single relay explains the losses: warn only.
    Unattributed,
}

impl AlarmAction {
    /// Whether the node acts (and the tracker starts a fresh window).
    pub fn reacts(&self) -> bool {
        matches!(self, Self::LeaveHome(_) | Self::AvoidFirstHop(_))
    }
}

/// The relay that explains the losses in `window` at alarm ratio `ratio`, if one does.
///
/// A candidate (any home or first hop in the window) needs [`MIN_SUSPECT_OUTCOMES`] loops,
/// at least one lost, a loss ratio of at least `ratio`, and the loops not through it below
/// `ratio` (or none). Among candidates the most losses win, then the highest loss ratio (the
/// more specific relay: a dropping first hop beats the single home all loops went through),
/// then a home.
pub fn suspect(window: &[LoopOutcome], ratio: f64) -> Option<Suspect> {
    let mut best: Option<Suspect> = None;
    for o in window {
        for (relay, role) in [
            (o.route.home, SuspectRole::Home),
            (o.route.first_hop, SuspectRole::FirstHop),
        ] {
            let Some(c) = candidate(window, relay, role, ratio) else {
                continue;
            };
            if best.is_none_or(|b| better(&c, &b)) {
                best = Some(c);
            }
        }
    }
    best
}

/// What to do about an alarm whose window blames `suspect`: react unless the last reaction
/// (at `last_reaction`) is less than `gap` before `now`.
pub fn decide(
    suspect: Option<&Suspect>,
    last_reaction: Option<Instant>,
    now: Instant,
    gap: Duration,
) -> AlarmAction {
    let Some(s) = suspect else {
        return AlarmAction::Unattributed;
    };
    if last_reaction.is_some_and(|t| now.saturating_duration_since(t) < gap) {
        return AlarmAction::Hold;
    }
    match s.role {
        SuspectRole::Home => AlarmAction::LeaveHome(s.relay),
        SuspectRole::FirstHop => AlarmAction::AvoidFirstHop(s.relay),
    }
}

/// Whether `route` went through `relay` in `role`.
pub fn through(route: &LoopRoute, relay: &[u8; 32], role: SuspectRole) -> bool {
    match role {
        SuspectRole::Home => route.home == *relay,
        SuspectRole::FirstHop => route.first_hop == *relay,
    }
}

/// `relay` in `role` as a suspect, if the window blames it.
fn candidate(
    window: &[LoopOutcome],
    relay: [u8; 32],
    role: SuspectRole,
    ratio: f64,
) -> Option<Suspect> {
    let (mut lost, mut outcomes, mut rest_lost, mut rest) = (0usize, 0usize, 0usize, 0usize);
    for o in window {
        if through(&o.route, &relay, role) {
            outcomes += 1;
            lost += usize::from(o.lost);
        } else {
            rest += 1;
            rest_lost += usize::from(o.lost);
        }
    }
    let high = |l: usize, n: usize| l as f64 >= ratio * n as f64;
    let blamed = outcomes >= MIN_SUSPECT_OUTCOMES
        && lost > 0
        && high(lost, outcomes)
        && (rest == 0 || !high(rest_lost, rest));
    blamed.then_some(Suspect {
        relay,
        role,
        lost,
        outcomes,
    })
}

/// Whether `a` explains the losses better than `b`.
fn better(a: &Suspect, b: &Suspect) -> bool {
    if a.lost != b.lost {
        return a.lost > b.lost;
    }
    // Compare lost/outcomes without division: a.lost == b.lost, so fewer outcomes is higher.
    if a.outcomes != b.outcomes {
        return a.outcomes < b.outcomes;
    }
    a.role == SuspectRole::Home && b.role == SuspectRole::FirstHop
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::t0;

    const H1: [u8; 32] = [1; 32];
    const H2: [u8; 32] = [2; 32];
    const F: [u8; 32] = [0xf0; 32];

    fn hop(i: u8) -> [u8; 32] {
        [0x10 + i; 32]
    }

    /// `n` outcomes home → first hops cycling over `hops` distinct relays, `lost` each.
    fn loops(home: [u8; 32], hops: u8, n: usize, lost: bool) -> Vec<LoopOutcome> {
        (0..n)
            .map(|i| LoopOutcome {
                route: LoopRoute {
                    home,
                    first_hop: hop(u8::try_from(i).unwrap() % hops),
                },
                lost,
            })
            .collect()
    }

    fn via(home: [u8; 32], first_hop: [u8; 32], n: usize, lost: bool) -> Vec<LoopOutcome> {
        vec![
            LoopOutcome {
                route: LoopRoute { home, first_hop },
                lost
            };
            n
        ]
    }

    #[test]
    fn the_home_that_drops_its_loops_is_blamed() {
        let mut w = loops(H1, 4, 8, true);
        w.extend(loops(H2, 4, 8, false));
        let s = suspect(&w, 0.25).unwrap();
        assert_eq!(
            s,
            Suspect {
                relay: H1,
                role: SuspectRole::Home,
                lost: 8,
                outcomes: 8
            }
        );
    }

    #[test]
    fn a_single_home_losing_everything_is_blamed_not_its_first_hops() {
        let w = loops(H1, 5, 10, true);
        let s = suspect(&w, 0.25).unwrap();
        assert_eq!((s.relay, s.role), (H1, SuspectRole::Home));
    }

    #[test]
    fn a_dropping_first_hop_is_blamed_rather_than_the_homes() {
        let mut w = via(H1, F, 3, true);
        w.extend(via(H2, F, 3, true));
        w.extend(loops(H1, 4, 8, false));
        w.extend(loops(H2, 4, 8, false));
        let s = suspect(&w, 0.25).unwrap();
        assert_eq!((s.relay, s.role, s.lost), (F, SuspectRole::FirstHop, 6));
        // With one home, the home also "explains" the losses; the first hop is more specific.
        let mut w = via(H1, F, 4, true);
        w.extend(loops(H1, 4, 8, false));
        let s = suspect(&w, 0.25).unwrap();
        assert_eq!((s.relay, s.role), (F, SuspectRole::FirstHop));
    }

    #[test]
    fn spread_losses_blame_no_one() {
        // Every home and first hop loses about a third: a middle hop or the network.
        let mut w = Vec::new();
        for i in 0..12u8 {
            let home = if i % 2 == 0 { H1 } else { H2 };
            w.push(LoopOutcome {
                route: LoopRoute {
                    home,
                    first_hop: hop(i % 3),
                },
                lost: i % 3 == i % 2,
            });
        }
        assert_eq!(suspect(&w, 0.25), None);
        assert_eq!(suspect(&[], 0.25), None);
    }

    #[test]
    fn too_few_loops_through_a_relay_blame_no_one() {
        let mut w = via(H1, F, 2, true);
        w.extend(loops(H2, 4, 20, false));
        assert_eq!(suspect(&w, 0.25), None);
        w.extend(via(H1, F, 1, true));
        assert!(suspect(&w, 0.25).is_some());
    }

    #[test]
    fn reactions_are_spaced_by_the_gap() {
        let t0 = t0();
        let gap = Duration::from_secs(600);
        let s = Suspect {
            relay: H1,
            role: SuspectRole::Home,
            lost: 4,
            outcomes: 4,
        };
        assert_eq!(decide(Some(&s), None, t0, gap), AlarmAction::LeaveHome(H1));
        let t1 = t0 + Duration::from_secs(599);
        assert_eq!(decide(Some(&s), Some(t0), t1, gap), AlarmAction::Hold);
        let t2 = t0 + gap;
        assert_eq!(
            decide(Some(&s), Some(t0), t2, gap),
            AlarmAction::LeaveHome(H1)
        );
        let hop = Suspect {
            role: SuspectRole::FirstHop,
            ..s
        };
        assert_eq!(
            decide(Some(&hop), None, t0, gap),
            AlarmAction::AvoidFirstHop(H1)
        );
        assert_eq!(decide(None, None, t0, gap), AlarmAction::Unattributed);
        assert!(!AlarmAction::Hold.reacts() && AlarmAction::LeaveHome(H2).reacts());
    }
}
