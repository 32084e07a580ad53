//! Placeholder while the imap module is written.
use std::net::SocketAddr;
use std::sync::Arc;

pub async fn serve(
    _ctx: Arc<crate::server::Ctx>,
    _conn: crate::net::Conn,
    _peer: SocketAddr,
) -> anyhow::Result<()> {
    anyhow::bail!("imap is not built yet")
}
