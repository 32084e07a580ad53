//! Serves the Postfix socketmap on a roles database directory, standalone:
//!
//! ```text
//! socketmap DB_DIR LISTEN_ADDR      e.g.  socketmap /var/lib/mailscale/roles 127.0.0.1:2526
//! ```
//!
//! Prints `listening on ADDR` on stdout once it accepts connections (the tests start it on port
//! 0 and read the port from that line). Opens the database read-only: a writer (mailctl, the
//! follower) keeps changing it, and every lookup sees its latest commit.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let mut args = std::env::args_os().skip(1);
    let (Some(db), Some(listen), None) = (args.next(), args.next(), args.next()) else {
        anyhow::bail!("usage: socketmap DB_DIR LISTEN_ADDR");
    };
    let db = PathBuf::from(db);
    let listen = listen.to_str().context("LISTEN_ADDR is not UTF-8")?.to_string();
    let roles = mailscale_roles::Roles::open_read_only(&db)?;
    let listener = tokio::net::TcpListener::bind(&listen).await.with_context(|| format!("listen on {listen}"))?;
    println!("listening on {}", listener.local_addr()?);
    std::io::stdout().flush()?;
    mailscale_rolesd::socketmap::serve(listener, Arc::new(roles)).await?;
    Ok(())
}
