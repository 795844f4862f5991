//! A minimal receiver: connects to home relays, prints its address, then prints every message.
//!
//! ```text
//! cargo run -p ournet-client --example receiver -- RELAY...
//! RELAY = IDENTITY_HEX,ONION_KEY_HEX,LINK_KEY_HEX,HOST:PORT
//! ```
#![allow(clippy::print_stdout, reason = "an example prints")]
#![allow(clippy::print_stderr, reason = "an example prints")]

#[path = "support/common.rs"]
mod common;

use ournet_client::create_node_client;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let relays: Vec<String> = std::env::args().skip(1).collect();
    if relays.is_empty() {
        eprintln!("usage: receiver IDENTITY,ONION_KEY,LINK_KEY,HOST:PORT ...");
        std::process::exit(2);
    }
    let node = create_node_client(common::config(&relays)?)?;
    node.start().await?;
    let address = node.address().ok_or("no home relay came up")?;
    println!("{address}");
    while let Some(msg) = node.recv().await {
        println!(
            "from {}: {}",
            msg.sender,
            String::from_utf8_lossy(&msg.content)
        );
    }
    node.stop().await;
    Ok(())
}
