//! A minimal sender: sends one message to an `ournet1:` address and waits for its ACK.
//!
//! ```text
//! cargo run -p ournet-client --example sender -- ADDRESS MESSAGE RELAY...
//! RELAY = IDENTITY_HEX,ONION_KEY_HEX,LINK_KEY_HEX,HOST:PORT
//! ```
#![allow(clippy::print_stdout, reason = "an example prints")]
#![allow(clippy::print_stderr, reason = "an example prints")]

#[path = "support/common.rs"]
mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use ournet_client::{SendOptions, create_node_client};
use ournet_proto::address::NodeAddress;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [address, message, relays @ ..] = &args[..] else {
        eprintln!("usage: sender ADDRESS MESSAGE IDENTITY,ONION_KEY,LINK_KEY,HOST:PORT ...");
        std::process::exit(2);
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let to = NodeAddress::parse(address, now)?;
    let node = create_node_client(common::config(relays)?)?;
    node.start().await?;
    let id = node
        .send_message(&to, message.as_bytes(), SendOptions::default())
        .await?;
    println!("sent {id}: {:?}", node.wait_outcome(id).await?);
    node.stop().await;
    Ok(())
}
