//! The offline queue: messages for home nodes that are not connected (PROTOCOL.md §7.4).
//!
//! Caps (spec §7.2 plus what W26 says the reference lacks): per node at most
//! `messages_per_node` messages and `bytes_per_node` bytes; at most `max_nodes` queues and
//! `max_bytes` in all. Past any cap a new message is refused (the sender hears REFUSED and
//! keeps it): unlike the reference, nothing already queued is dropped to make room, so a
//! hostile sender cannot flush a node's queue by flooding it. Messages older than `max_age` are dropped by
//! [`OfflineQueue::expire`] and never released. Time is an argument.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use crate::config::OfflineLimits;

/// A message waiting for its recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    /// The sender's message id.
    pub message_id: [u8; 16],
    /// The end-to-end envelope.
    pub envelope: Vec<u8>,
    at: Instant,
}

/// Why a message was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OfflineRefused {
    /// The message alone is larger than a node's byte cap.
    #[error("message larger than the per-node cap")]
    TooLarge,
    /// The queue count cap is reached and this node has no queue.
    #[error("too many queued nodes")]
    TooManyNodes,
    /// The global byte cap is reached.
    #[error("offline queue full")]
    Full,
    /// This node's message or byte cap is reached.
    #[error("the node's offline queue is full")]
    NodeFull,
}

#[derive(Debug, Default)]
struct NodeQueue {
    messages: VecDeque<Queued>,
    bytes: usize,
}

/// All offline queues of a relay.
#[derive(Debug)]
pub struct OfflineQueue {
    limits: OfflineLimits,
    nodes: HashMap<[u8; 32], NodeQueue>,
    bytes: usize,
    messages: usize,
}

impl OfflineQueue {
    /// An empty queue with these caps.
    pub fn new(limits: OfflineLimits) -> Self {
        Self {
            limits,
            nodes: HashMap::new(),
            bytes: 0,
            messages: 0,
        }
    }

    /// Queues a message for `recipient` (after dropping its expired ones).
    ///
    /// # Errors
    /// [`OfflineRefused`] when a per-node or relay-wide cap would be exceeded.
    pub fn push(
        &mut self,
        now: Instant,
        recipient: [u8; 32],
        message_id: [u8; 16],
        envelope: Vec<u8>,
    ) -> Result<(), OfflineRefused> {
        let len = envelope.len();
        if len > self.limits.bytes_per_node {
            return Err(OfflineRefused::TooLarge);
        }
        if !self.nodes.contains_key(&recipient) && self.nodes.len() >= self.limits.max_nodes {
            return Err(OfflineRefused::TooManyNodes);
        }
        let max_age = self.limits.max_age();
        let node = self.nodes.entry(recipient).or_default();
        // Expired messages are never released: make their room first.
        while let Some(old) = node
            .messages
            .pop_front_if(|m| now.saturating_duration_since(m.at) >= max_age)
        {
            node.bytes -= old.envelope.len();
            self.bytes -= old.envelope.len();
            self.messages -= 1;
        }
        if node.messages.len() >= self.limits.messages_per_node
            || node.bytes + len > self.limits.bytes_per_node
        {
            return Err(OfflineRefused::NodeFull);
        }
        if self.bytes + len > self.limits.max_bytes {
            if node.messages.is_empty() {
                self.nodes.remove(&recipient);
            }
            return Err(OfflineRefused::Full);
        }
        node.bytes += len;
        node.messages.push_back(Queued {
            message_id,
            envelope,
            at: now,
        });
        self.bytes += len;
        self.messages += 1;
        Ok(())
    }

    /// Takes every unexpired message for `recipient`, oldest first.
    pub fn take(&mut self, now: Instant, recipient: &[u8; 32]) -> Vec<Queued> {
        let Some(node) = self.nodes.remove(recipient) else {
            return Vec::new();
        };
        self.bytes -= node.bytes;
        self.messages -= node.messages.len();
        let max_age = self.limits.max_age();
        node.messages
            .into_iter()
            .filter(|m| now.saturating_duration_since(m.at) < max_age)
            .collect()
    }

    /// Drops every message older than the age cap, and empty queues.
    pub fn expire(&mut self, now: Instant) {
        let max_age = self.limits.max_age();
        let (mut bytes, mut messages) = (0, 0);
        self.nodes.retain(|_, node| {
            while node
                .messages
                .front()
                .is_some_and(|m| now.saturating_duration_since(m.at) >= max_age)
            {
                if let Some(old) = node.messages.pop_front() {
                    node.bytes -= old.envelope.len();
                }
            }
            bytes += node.bytes;
            messages += node.messages.len();
            !node.messages.is_empty()
        });
        self.bytes = bytes;
        self.messages = messages;
    }

    /// `(nodes, messages, bytes)` held.
    pub fn stats(&self) -> (usize, usize, usize) {
        (self.nodes.len(), self.messages, self.bytes)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn limits() -> OfflineLimits {
        OfflineLimits {
            messages_per_node: 3,
            bytes_per_node: 100,
            max_age_secs: 60,
            max_nodes: 2,
            max_bytes: 150,
        }
    }

    #[test]
    fn per_node_caps_refuse_and_release_in_order() {
        let now = Instant::now();
        let mut q = OfflineQueue::new(limits());
        for i in 2..5u8 {
            q.push(now, [1; 32], [i; 16], vec![i; 10]).unwrap();
        }
        assert_eq!(
            q.push(now, [1; 32], [5; 16], vec![5; 10]),
            Err(OfflineRefused::NodeFull),
            "the message cap refuses the newest, it keeps the oldest"
        );
        assert_eq!(q.stats(), (1, 3, 30));
        let got: Vec<u8> = q
            .take(now, &[1; 32])
            .iter()
            .map(|m| m.message_id[0])
            .collect();
        assert_eq!(got, vec![2, 3, 4]);
        assert_eq!(q.stats(), (0, 0, 0));
        q.push(now, [1; 32], [0; 16], vec![0; 60]).unwrap();
        assert_eq!(
            q.push(now, [1; 32], [1; 16], vec![0; 60]),
            Err(OfflineRefused::NodeFull)
        );
        assert_eq!(q.stats(), (1, 1, 60), "byte cap kept the oldest");
        let later = now + Duration::from_secs(61);
        q.push(later, [1; 32], [1; 16], vec![0; 60]).unwrap();
        assert_eq!(q.stats(), (1, 1, 60), "an expired message made room");
        assert_eq!(
            q.push(now, [1; 32], [2; 16], vec![0; 101]),
            Err(OfflineRefused::TooLarge)
        );
    }

    #[test]
    fn relay_wide_caps_refuse_and_age_expires() {
        let now = Instant::now();
        let mut q = OfflineQueue::new(limits());
        q.push(now, [1; 32], [0; 16], vec![0; 80]).unwrap();
        q.push(now, [2; 32], [0; 16], vec![0; 60]).unwrap();
        assert_eq!(
            q.push(now, [3; 32], [0; 16], vec![0; 1]),
            Err(OfflineRefused::TooManyNodes)
        );
        assert_eq!(
            q.push(now, [2; 32], [1; 16], vec![0; 20]),
            Err(OfflineRefused::Full)
        );
        let later = now + Duration::from_secs(61);
        assert!(q.take(later, &[1; 32]).is_empty(), "expired on release");
        q.expire(later);
        assert_eq!(q.stats(), (0, 0, 0));
    }
}
