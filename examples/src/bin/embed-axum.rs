//! The embedding example as a program: `cargo run -p agentwire-examples --bin embed-axum`,
//! then connect to ws://127.0.0.1:3000/ws with a token minted by
//! `agentwire token --jwt-secret "$SECRET" --sub you` (the secret is `AGENTWIRE_JWT_SECRET`,
//! at least 32 bytes). Ctrl-C shuts it down gracefully.

use agentwire_examples::embed;
use agentwire_server::Config;

#[tokio::main]
async fn main() -> Result<(), agentwire_examples::embed::BoxError> {
    let secret = std::env::var("AGENTWIRE_JWT_SECRET")
        .map_err(|_| "set AGENTWIRE_JWT_SECRET (at least 32 bytes)")?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("listening on http://{}", listener.local_addr()?);
    embed::serve(listener, &secret, Config::default(), async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
}
