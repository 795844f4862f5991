//! A node's traffic: a `NodeClient` started on the seed's relays, a sender that sends at a
//! fixed rate to random peers, a receiver that checks every content, and a stats line a
//! second.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ournet_client::discovery::{
    DiscoveryClient, DiscoveryConfig, PinnedSeed, create_discovery_client,
};
use ournet_client::{NodeClient, NodeConfig, SendOptions, SendOutcome, create_node_client};
use ournet_proto::address::NodeAddress;
use ournet_proto::keys::{EncryptionKeypair, IdentityKeypair, IdentityPublicKey};
use ournet_proto::privacy::PrivacyLevel;
use rand_chacha::ChaCha20Rng;
use rand_core::{OsRng, RngCore, SeedableRng};
use tokio::io::AsyncBufReadExt;

use super::Args;
use super::payload::{self, Checked};
use super::stats::{Counters, MAX_SAMPLES, PeersLine, ReadyLine, StatsLine};

/// Sends not finished yet past which the sender skips its turn (the network is slower than
/// the asked rate; counted as `backlog` drops rather than queued without bound).
const MAX_IN_FLIGHT: usize = 512;

/// What the sender and receiver count beside the client's own counters.
#[derive(Debug, Default)]
struct Local {
    bytes_sent: AtomicU64,
    bytes_received: AtomicU64,
    corrupt: AtomicU64,
    one_way_us: Mutex<Vec<u64>>,
    drops: Mutex<BTreeMap<String, u64>>,
}

impl Local {
    fn drop_for(&self, reason: &str) {
        let mut d = self.drops.lock().unwrap_or_else(PoisonError::into_inner);
        *d.entry(reason.to_owned()).or_default() += 1;
    }
}

/// Runs the node until a signal or the end of stdin.
///
/// # Errors
/// The node could not join or its address could not be had.
pub async fn run(args: Args, sizes: Vec<usize>, privacy: PrivacyLevel) -> anyhow::Result<()> {
    let discovery = Arc::new(discovery(&args)?);
    let node = join(&args, privacy, discovery.clone()).await?;
    let address = node.address().context("no address after start")?;
    discovery
        .publish_address(&address)
        .await
        .context("publishing the address to the seed")?;
    let ready = ReadyLine {
        event: "ready".into(),
        address: address.to_string(),
    };
    emit(&serde_json::to_string(&ready)?);
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let peers = read_peers(&mut stdin).await?;
    let local = Arc::new(Local::default());
    let started = Instant::now();
    let tasks = [
        tokio::spawn(receive(node.clone(), local.clone())),
        tokio::spawn(send(node.clone(), local.clone(), peers, sizes, args)),
        tokio::spawn(report(node.clone(), local.clone(), started)),
    ];
    wait_for_stop(&mut stdin).await;
    for t in &tasks {
        t.abort();
    }
    node.stop().await;
    print_stats(&node, &local, started);
    Ok(())
}

/// The discovery client, the seed's key pinned.
fn discovery(args: &Args) -> anyhow::Result<DiscoveryClient> {
    let key = IdentityPublicKey::from_hex(&args.seed_key).context("--seed-key")?;
    let config = DiscoveryConfig {
        seeds: vec![PinnedSeed {
            url: args.seed_url.clone(),
            key,
        }],
        ..DiscoveryConfig::default()
    };
    create_discovery_client(config).context("the discovery client")
}

async fn join(
    args: &Args,
    privacy: PrivacyLevel,
    discovery: Arc<DiscoveryClient>,
) -> anyhow::Result<NodeClient> {
    std::fs::create_dir_all(&args.state_dir)?;
    let mut config = NodeConfig::new(
        IdentityKeypair::generate(&mut OsRng),
        EncryptionKeypair::generate(&mut OsRng),
        discovery,
    );
    config.target_connections = args.homes.max(1);
    config.min_connections = 1;
    config.privacy_level = privacy;
    if let Some(hops) = &args.mix_hops {
        config.privacy_config = Some(super::mix::mix_config(privacy, hops)?);
    }
    config.state_path = Some(args.state_dir.join("node.state"));
    let node = create_node_client(config).context("creating the node")?;
    node.start().await.context("starting the node")?;
    Ok(node)
}

async fn read_peers(
    stdin: &mut tokio::io::Lines<tokio::io::BufReader<tokio::io::Stdin>>,
) -> anyhow::Result<Vec<NodeAddress>> {
    let line = stdin
        .next_line()
        .await?
        .context("stdin closed before the peers line")?;
    let peers: PeersLine = serde_json::from_str(&line).context("the peers line")?;
    let now = payload::now_us() / 1_000_000;
    peers
        .peers
        .iter()
        .map(|p| NodeAddress::parse(p, now).map_err(|e| anyhow::anyhow!("a peer address: {e}")))
        .collect()
}

async fn wait_for_stop(stdin: &mut tokio::io::Lines<tokio::io::BufReader<tokio::io::Stdin>>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return;
    };
    let eof = async { while let Ok(Some(_)) = stdin.next_line().await {} };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
        () = eof => {}
    }
}

async fn receive(node: NodeClient, local: Arc<Local>) {
    while let Some(msg) = node.recv().await {
        local
            .bytes_received
            .fetch_add(msg.content.len() as u64, Ordering::Relaxed);
        match payload::check(&msg.content) {
            Checked::Intact(Some(sent)) => {
                let mut s = local
                    .one_way_us
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                if s.len() < MAX_SAMPLES {
                    s.push(payload::now_us().saturating_sub(sent));
                }
            }
            Checked::Intact(None) => {}
            Checked::Corrupt => {
                local.corrupt.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

async fn send(
    node: NodeClient,
    local: Arc<Local>,
    peers: Vec<NodeAddress>,
    sizes: Vec<usize>,
    args: Args,
) {
    if peers.is_empty() || args.rate <= 0.0 {
        return;
    }
    let mut rng = ChaCha20Rng::from_rng(OsRng).unwrap_or_else(|_| ChaCha20Rng::from_seed([7; 32]));
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let pick = |rng: &mut ChaCha20Rng, n: usize| {
        usize::try_from(rng.next_u64() % u64::try_from(n).unwrap_or(1)).unwrap_or(0)
    };
    for seq in 0.. {
        if args.messages > 0 && seq >= args.messages {
            return;
        }
        tick.tick().await;
        if node.pending_sends() >= MAX_IN_FLIGHT {
            local.drop_for("backlog");
            continue;
        }
        let (Some(to), Some(&size)) = (
            peers.get(pick(&mut rng, peers.len())),
            sizes.get(pick(&mut rng, sizes.len())),
        ) else {
            return;
        };
        let content = payload::make(seq, size);
        match node
            .send_message(to, &content, SendOptions::default())
            .await
        {
            Ok(id) => {
                local.bytes_sent.fetch_add(size as u64, Ordering::Relaxed);
                let (node, local) = (node.clone(), local.clone());
                tokio::spawn(async move {
                    if let Ok(SendOutcome::Failed { reason, .. }) = node.wait_outcome(id).await {
                        local.drop_for(&failure_kind(&reason));
                    }
                });
            }
            Err(e) => local.drop_for(&format!("send: {e}")),
        }
    }
}

/// A failure reason without its variable parts (ids, addresses), so drops group by kind.
fn failure_kind(reason: &str) -> String {
    reason
        .split([':', '('])
        .next()
        .unwrap_or(reason)
        .trim()
        .to_owned()
}

async fn report(node: NodeClient, local: Arc<Local>, started: Instant) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    loop {
        tick.tick().await;
        print_stats(&node, &local, started);
    }
}

fn print_stats(node: &NodeClient, local: &Local, started: Instant) {
    let s = node.get_stats();
    let ack_us = node
        .take_latencies()
        .iter()
        .take(MAX_SAMPLES)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .collect();
    let one_way_us = std::mem::take(
        &mut *local
            .one_way_us
            .lock()
            .unwrap_or_else(PoisonError::into_inner),
    );
    let line = StatsLine {
        event: "stats".into(),
        uptime_s: started.elapsed().as_secs_f64(),
        counters: Counters {
            sent: s.sent,
            acked: s.acked,
            failed: s.failed,
            retries: s.retries,
            received: s.received,
            duplicates: s.duplicates,
            corrupt: local.corrupt.load(Ordering::Relaxed),
            bytes_sent: local.bytes_sent.load(Ordering::Relaxed),
            bytes_received: local.bytes_received.load(Ordering::Relaxed),
        },
        ack_us,
        one_way_us,
        drops: local
            .drops
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone(),
    };
    if let Ok(text) = serde_json::to_string(&line) {
        emit(&text);
    }
}

/// Writes one line on stdout; a reader that went away (localnet stopped) is not an error.
fn emit(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

/// Refuses option values the node cannot run with.
///
/// # Errors
/// A negative or absurd rate.
pub fn check_args(args: &Args) -> anyhow::Result<()> {
    if !(0.0..=100_000.0).contains(&args.rate) {
        bail!("--rate must be 0 to 100000 messages per second");
    }
    Ok(())
}
