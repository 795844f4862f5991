//! [`NodeClient`]: a node of the network, with home relays that deliver to it, a send path
//! with end-to-end ACKs and bounded retries, and a receive queue with exactly-once delivery.
//!
//! Tasks: one maintenance task keeps `target_connections` homes and rotates them (spec
//! §5.11-§5.13), one task per home watches its circuit (messages in, PING round trips, death),
//! one task per rotated-out home ends its drain, one task per message in flight builds
//! circuits and retries, one task sends cover cells when enabled, and one schedules loop
//! cover messages while mixing is on (`loops`). They share [`Inner`]; [`NodeClient`] is a
//! cheap clone of it. [`NodeClient::stop`] ends them all.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ournet_proto::address::NodeAddress;
use ournet_proto::circuit::PathHop;
use ournet_proto::keys::{EncryptionKeypair, IdentityKeypair, IdentityPublicKey};
use ournet_proto::privacy::{
    CoverTrafficConfig, LoopCoverConfig, PrivacyLevel, TrafficAnalysisMitigationConfig,
};
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;

use crate::config::{Diversity, NodeConfig, Rotation, SendOptions, Timeouts};
use crate::directory::{RelayDirectory, RelayInfo};
use crate::error::ClientError;
use crate::link::{self, LinkHandle};
use crate::pacing::Pacing;
use crate::stats::{Counters, NodeStats};

mod batch;
mod follow;
mod home;
mod loops;
mod pool;
mod recv;
mod rotation;
mod send;
mod shutdown;
mod store;

use store::Store;

/// Finished outcomes remembered for [`NodeClient::wait_outcome`] (oldest forgotten first).
const MAX_REMEMBERED_OUTCOMES: usize = 65_536;

/// A message id: random, chosen by the sender, signed inside the envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(pub [u8; 16]);

impl std::fmt::Display for MessageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// How a send ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendOutcome {
    /// The recipient opened the message and its ACK verified against the envelope's token.
    Acked {
        /// From `send_message` to the verified ACK.
        latency: Duration,
        /// Attempts used (1 = no retry).
        attempts: u32,
    },
    /// A home relay of the recipient holds it for the (offline) recipient, and no ACK came
    /// within `Timeouts::queued_ack`. It will be delivered when the recipient comes online.
    Queued {
        /// Attempts used.
        attempts: u32,
    },
    /// Every attempt failed (W5: bounded).
    Failed {
        /// What the last attempt ran into.
        reason: String,
        /// Attempts used.
        attempts: u32,
    },
}

/// A message handed to the app: opened, its sender authenticated by the envelope signature
/// (W16), and never handed over twice.
#[derive(Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    /// The sender's identity key, as verified.
    pub sender: IdentityPublicKey,
    /// The sender's message id.
    pub message_id: MessageId,
    /// The content, any bytes (W6).
    pub content: Vec<u8>,
}

impl std::fmt::Debug for ReceivedMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceivedMessage")
            .field("sender", &self.sender)
            .field("message_id", &self.message_id)
            .field("content_len", &self.content.len())
            .finish()
    }
}

/// One home relay as the node sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HomeStatus {
    /// The relay's router id.
    pub router_id: String,
    /// Its link endpoint.
    pub addr: SocketAddr,
    /// The last PING round trip, once one came back.
    pub rtt: Option<Duration>,
}

/// A node client. Clones share one node.
#[derive(Debug, Clone)]
pub struct NodeClient {
    inner: Arc<Inner>,
}

/// Makes a node from `config`, loading its state file if there is one. Nothing is
/// connected until [`NodeClient::start`].
///
/// # Errors
/// [`ClientError::Config`] for out-of-range counts or a zero maintenance interval;
/// [`ClientError::Privacy`] for a privacy config that fails `validate()`;
/// [`ClientError::State`] for a state file that cannot be read, is another node's, or is
/// corrupt.
pub fn create_node_client(config: NodeConfig) -> Result<NodeClient, ClientError> {
    if config.target_connections == 0
        || config.target_connections > ournet_proto::address::MAX_HOMES
        || config.min_connections > config.target_connections
    {
        return Err(ClientError::Config(
            "need 1 <= min_connections <= target_connections <= MAX_HOMES",
        ));
    }
    if config.maintenance_interval.is_zero() {
        return Err(ClientError::Config("maintenance_interval must not be zero"));
    }
    let store = Store::open(config.state_path.clone(), &config.identity)?;
    let privacy = config.privacy_config.clone().unwrap_or_else(|| {
        TrafficAnalysisMitigationConfig::from_privacy_level(config.privacy_level)
    });
    privacy.validate()?;
    let loops = loops::Loops::new(&config.identity, config.loop_cover);
    let (incoming_tx, incoming_rx) = mpsc::channel(config.receive_queue.max(1));
    let (shutdown, _) = watch::channel(true);
    let inner = Inner {
        identity: Arc::new(config.identity),
        encryption: config.encryption,
        directory: config.directory,
        settings: Settings {
            target: config.target_connections,
            min: config.min_connections.max(1),
            diversity: config.diversity,
            cover: config.cover,
            loop_cover: config.loop_cover,
            timeouts: config.timeouts,
            maintenance: config.maintenance_interval,
            rotation: config.rotation,
            max_retries: config.max_retries,
            address_ttl: config.address_ttl,
            max_pending: config.max_pending,
        },
        counters: Counters::default(),
        store,
        links: tokio::sync::Mutex::new(HashMap::new()),
        pool: Mutex::new(HashMap::new()),
        homes: Mutex::new(Vec::new()),
        draining: Mutex::new(Vec::new()),
        failover_pending: AtomicBool::new(false),
        cooldown: Mutex::new(HashMap::new()),
        address: Mutex::new(None),
        recipients: follow::Addresses::default(),
        outcomes: Mutex::new(Outcomes::default()),
        incoming_tx,
        incoming_rx: tokio::sync::Mutex::new(incoming_rx),
        privacy: Mutex::new(privacy),
        batch: batch::Batch::default(),
        loops,
        shutdown,
        tasks: Mutex::new(Vec::new()),
        homes_changed: Notify::new(),
        last_activity: Mutex::new(Instant::now()),
    };
    Ok(NodeClient {
        inner: Arc::new(inner),
    })
}

impl NodeClient {
    /// Connects to home relays (at least `min_connections`), signs the node's address, starts
    /// the maintenance tasks and resumes the sends the state file holds. Does nothing on a
    /// running node.
    ///
    /// # Errors
    /// [`ClientError::TooFewHomes`] or [`ClientError::Directory`]; the node is then stopped.
    pub async fn start(&self) -> Result<(), ClientError> {
        let inner = &self.inner;
        if inner.is_running() {
            return Ok(());
        }
        inner.shutdown.send_replace(false);
        // Before any HOME_AUTH: a home hands over the loops it queued at once.
        inner.loops.restore(inner.store.loops());
        inner.store.set_loops(Vec::new());
        let got = home::ensure_homes(inner).await;
        if got < inner.settings.min {
            self.stop().await;
            return Err(ClientError::TooFewHomes {
                got,
                wanted: inner.settings.min,
            });
        }
        inner.spawn(home::maintain(inner.clone()));
        inner.spawn(home::cover(inner.clone()));
        inner.spawn(batch::flusher(inner.clone()));
        inner.spawn(loops::run(inner.clone()));
        for p in inner.store.pending() {
            send::resume(inner, p);
        }
        Ok(())
    }

    /// Stops every task, destroys every circuit (homes, draining homes, send circuits,
    /// including those of interrupted sends) and closes every link, then saves the state.
    /// Returns once all of that is done. Sends in flight stay in the state file and resume
    /// at the next start.
    pub async fn stop(&self) {
        shutdown::stop(&self.inner).await;
    }

    /// The node's identity key.
    pub fn identity(&self) -> IdentityPublicKey {
        self.inner.identity.public()
    }

    /// The node's signed address (its text form is `to_string()`), re-signed whenever its
    /// homes change; `None` before the first home is up.
    pub fn address(&self) -> Option<NodeAddress> {
        self.inner
            .address
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Seals `content` for `to`, saves it as pending and starts sending it over a 3-hop
    /// circuit (with mixing on, a fresh 3- to 5-hop one) to one of `to`'s homes. Returns at once with the id; the outcome comes from
    /// [`NodeClient::wait_outcome`].
    ///
    /// # Errors
    /// [`ClientError::NotRunning`], [`ClientError::Busy`] past `max_pending` sends in flight,
    /// [`ClientError::Address`] for an expired address,
    /// [`ClientError::Envelope`] for content over the maximum, [`ClientError::State`] when the
    /// pending send cannot be saved.
    pub async fn send_message(
        &self,
        to: &NodeAddress,
        content: &[u8],
        options: SendOptions,
    ) -> Result<MessageId, ClientError> {
        send::send_message(&self.inner, to, content, options).await
    }

    /// Waits for the outcome of message `id`.
    ///
    /// # Errors
    /// [`ClientError::UnknownMessage`] for an id this node never sent (or forgot: it keeps
    /// the last 65,536 outcomes).
    pub async fn wait_outcome(&self, id: MessageId) -> Result<SendOutcome, ClientError> {
        let mut rx = {
            let o = self.inner.lock_outcomes();
            match o.map.get(&id) {
                Some(tx) => tx.subscribe(),
                None => return Err(ClientError::UnknownMessage),
            }
        };
        loop {
            if let Some(outcome) = rx.borrow_and_update().clone() {
                return Ok(outcome);
            }
            if rx.changed().await.is_err() {
                return Err(ClientError::UnknownMessage);
            }
        }
    }

    /// The next message for this node; `None` once the node is dropped.
    pub async fn recv(&self) -> Option<ReceivedMessage> {
        self.inner.incoming_rx.lock().await.recv().await
    }

    /// A snapshot of the counters (atomics: cheap to call every second).
    pub fn get_stats(&self) -> NodeStats {
        let mut stats = self.inner.counters.snapshot();
        self.inner.loops.fill(&mut stats);
        stats
    }

    /// The send-to-ACK latencies recorded since the last call (at most
    /// [`crate::stats::LATENCY_SAMPLES`], newest kept).
    pub fn take_latencies(&self) -> Vec<Duration> {
        self.inner.counters.take_latencies()
    }

    /// Sends not finished yet (including those waiting for a restart).
    pub fn pending_sends(&self) -> usize {
        self.inner.store.pending_count()
    }

    /// The current home relays.
    pub fn homes(&self) -> Vec<HomeStatus> {
        self.inner
            .lock_homes()
            .iter()
            .map(|h| HomeStatus {
                router_id: h.relay.router_id.clone(),
                addr: h.relay.hop.addr,
                rtt: *h.rtt.lock().unwrap_or_else(|p| p.into_inner()),
            })
            .collect()
    }

    /// The privacy level in force.
    pub fn privacy_level(&self) -> PrivacyLevel {
        self.inner.privacy_config().privacy_level
    }

    /// Switches to `level`'s preset at run time: new messages get its batching and jitter, and
    /// every link its pacing (PARANOID: a constant cell rate from now on).
    pub async fn set_privacy_level(&self, level: PrivacyLevel) {
        // The presets are valid by construction (proto's privacy tests check each one).
        let preset = TrafficAnalysisMitigationConfig::from_privacy_level(level);
        if let Err(e) = self.set_privacy_config(preset).await {
            tracing::error!("privacy preset {level:?} refused: {e}");
        }
    }

    /// As [`NodeClient::set_privacy_level`], with a config of one's own. Turning
    /// `mix_network.enabled` on makes the next sends take mix paths and starts loop cover
    /// traffic.
    ///
    /// # Errors
    /// [`ClientError::Privacy`] for a config that fails `validate()` (the same check as at
    /// [`create_node_client`]); the node keeps its current config.
    pub async fn set_privacy_config(
        &self,
        config: TrafficAnalysisMitigationConfig,
    ) -> Result<(), ClientError> {
        config.validate()?;
        let pacing = Pacing::for_config(&config);
        *self.inner.privacy.lock().unwrap_or_else(|p| p.into_inner()) = config;
        let links: Vec<LinkHandle> = self.inner.links.lock().await.values().cloned().collect();
        for l in links {
            let _ = l.set_pacing(pacing).await;
        }
        Ok(())
    }
}

/// What the node was configured with, minus the keys and the directory.
#[derive(Debug)]
struct Settings {
    target: usize,
    min: usize,
    diversity: Diversity,
    cover: CoverTrafficConfig,
    loop_cover: LoopCoverConfig,
    timeouts: Timeouts,
    maintenance: Duration,
    rotation: Rotation,
    max_retries: u32,
    address_ttl: Duration,
    max_pending: usize,
}

/// Outcomes by message id: a watch per message, forgotten oldest first once finished.
#[derive(Debug, Default)]
struct Outcomes {
    map: HashMap<MessageId, watch::Sender<Option<SendOutcome>>>,
    finished: VecDeque<MessageId>,
}

/// The node's shared state.
#[derive(Debug)]
struct Inner {
    identity: Arc<IdentityKeypair>,
    encryption: EncryptionKeypair,
    directory: Arc<dyn RelayDirectory>,
    settings: Settings,
    counters: Counters,
    store: Store,
    links: tokio::sync::Mutex<HashMap<[u8; 32], LinkHandle>>,
    pool: Mutex<HashMap<pool::PoolKey, pool::SendCircuit>>,
    homes: Mutex<Vec<home::Home>>,
    /// Rotated-out homes still delivering until their drain ends (not in the address).
    draining: Mutex<Vec<home::Home>>,
    /// A home was lost and the maintenance task has not replaced it yet: no rotation now.
    failover_pending: AtomicBool,
    cooldown: Mutex<HashMap<String, Instant>>,
    address: Mutex<Option<NodeAddress>>,
    /// The newest addresses of recipients whose homes moved.
    recipients: follow::Addresses,
    outcomes: Mutex<Outcomes>,
    incoming_tx: mpsc::Sender<ReceivedMessage>,
    incoming_rx: tokio::sync::Mutex<mpsc::Receiver<ReceivedMessage>>,
    privacy: Mutex<TrafficAnalysisMitigationConfig>,
    batch: batch::Batch,
    loops: loops::Loops,
    shutdown: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    homes_changed: Notify,
    last_activity: Mutex<Instant>,
}

impl Inner {
    /// The link to `hop`'s relay: the open one, or a new one.
    async fn link_to(&self, hop: &PathHop) -> Result<LinkHandle, ClientError> {
        let key = hop.identity.to_bytes();
        {
            let mut links = self.links.lock().await;
            if let Some(l) = links.get(&key)
                && !l.is_closed()
            {
                return Ok(l.clone());
            }
            links.retain(|_, l| !l.is_closed());
        }
        // Connect without the lock, so one unreachable relay does not hold up every send. Two
        // racing connects to one relay both work; the map keeps the later one.
        let pacing = Pacing::for_config(&self.privacy_config());
        let handle = link::connect(hop, self.settings.timeouts.connect, pacing).await?;
        if !self.is_running() {
            return Err(ClientError::NotRunning);
        }
        let mut links = self.links.lock().await;
        if let Some(l) = links.get(&key)
            && !l.is_closed()
        {
            // Another connect won the race: keep one link per relay, so that every link is
            // in the map for `stop` and a rotated-out home's link can be told apart.
            let winner = l.clone();
            drop(links);
            handle.close().await;
            return Ok(winner);
        }
        links.insert(key, handle.clone());
        Ok(handle)
    }

    fn privacy_config(&self) -> TrafficAnalysisMitigationConfig {
        self.privacy
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn is_running(&self) -> bool {
        !*self.shutdown.borrow()
    }

    fn spawn(&self, fut: impl Future<Output = ()> + Send + 'static) {
        let handle = tokio::spawn(fut);
        let mut tasks = self.lock_tasks();
        tasks.retain(|t| !t.is_finished());
        tasks.push(handle);
    }

    fn touch(&self) {
        *self.last_activity.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    fn lock_tasks(&self) -> std::sync::MutexGuard<'_, Vec<JoinHandle<()>>> {
        self.tasks.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_homes(&self) -> std::sync::MutexGuard<'_, Vec<home::Home>> {
        self.homes.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_draining(&self) -> std::sync::MutexGuard<'_, Vec<home::Home>> {
        self.draining.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_outcomes(&self) -> std::sync::MutexGuard<'_, Outcomes> {
        self.outcomes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a send so `wait_outcome` can find it.
    fn register_outcome(&self, id: MessageId) {
        let (tx, _) = watch::channel(None);
        self.lock_outcomes().map.insert(id, tx);
    }

    /// Publishes a send's outcome.
    fn finish_outcome(&self, id: MessageId, outcome: SendOutcome) {
        let mut o = self.lock_outcomes();
        let tx = o.map.entry(id).or_insert_with(|| watch::channel(None).0);
        tx.send_replace(Some(outcome));
        o.finished.push_back(id);
        while o.finished.len() > MAX_REMEMBERED_OUTCOMES {
            if let Some(old) = o.finished.pop_front() {
                o.map.remove(&old);
            }
        }
    }

    /// Whether the address is past half its lifetime.
    fn address_is_stale(&self) -> bool {
        let guard = self.address.lock().unwrap_or_else(|p| p.into_inner());
        guard.as_ref().is_some_and(|a| {
            let half = a.expires_at.saturating_sub(a.issued_at) / 2;
            unix_now() >= a.issued_at.saturating_add(half)
        })
    }

    /// Re-signs the address over the current homes and publishes it through the directory,
    /// where senders look it up. A failed publish is only logged: the address still works
    /// for whoever has it, and the next change publishes again.
    async fn readdress(&self) {
        if let Some(addr) = self.resign_address() {
            self.publish_address(&addr).await;
        }
    }

    /// Publishes `addr` through the directory (a failure is only logged, as in
    /// [`Self::readdress`]).
    async fn publish_address(&self, addr: &NodeAddress) {
        if let Err(e) = self.directory.publish(addr).await {
            tracing::warn!("publishing the node address: {e}");
        }
    }

    /// Re-signs the node's address over the current homes and returns it (`None` with no
    /// home, or if signing failed: the last address stays). Each new address is issued
    /// strictly later than the last (seeds keep the newest `issued_at`), even for two
    /// changes within a second.
    fn resign_address(&self) -> Option<NodeAddress> {
        let homes: Vec<PathHop> = self
            .lock_homes()
            .iter()
            .take(ournet_proto::address::MAX_HOMES)
            .map(|h| h.relay.hop.clone())
            .collect();
        if homes.is_empty() {
            return None;
        }
        let clock = unix_now();
        let last = self
            .address
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map_or(0, |a| a.issued_at);
        // Never more than a minute ahead of the clock: verifiers tolerate five.
        let now = clock.max(last.saturating_add(1).min(clock.saturating_add(60)));
        // Validity counts from the clock, so a bumped issue time never lengthens it.
        let expires = clock
            .saturating_add(self.settings.address_ttl.as_secs().max(1))
            .max(now.saturating_add(1));
        match NodeAddress::sign(
            &self.identity,
            self.encryption.public(),
            homes,
            now,
            expires,
        ) {
            Ok(a) => {
                *self.address.lock().unwrap_or_else(|p| p.into_inner()) = Some(a.clone());
                Some(a)
            }
            Err(e) => {
                tracing::warn!("signing the node address: {e}");
                None
            }
        }
    }
}

/// Wall-clock unix seconds (address validity, envelope timestamps, the dedup window).
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Shuffles relays with a fresh generator (Fisher-Yates through `proto`'s batch order).
fn shuffled(mut relays: Vec<RelayInfo>) -> Vec<RelayInfo> {
    let order = ournet_proto::privacy::BatchingConfig {
        enabled: true,
        randomize_order: true,
        ..ournet_proto::privacy::BatchingConfig::DEFAULT
    };
    order.order_batch(&mut relays, &mut crate::rng::fresh_rng());
    relays
}
