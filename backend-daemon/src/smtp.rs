//! A minimal SMTP client (RFC 5321) for what Sieve sends at delivery — redirects and vacation
//! replies — through the configured relay (`[sieve] relay`). One message per connection, no
//! TLS and no AUTH: the relay is a trusted MTA on loopback or the private network, as the LMTP
//! listener's MTA is. Pipelining is not used, so any server works.

use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Sends `message` from `from` (empty: the null sender `<>`) to `to` through `relay`
/// (`HOST:PORT`). The whole transaction must finish within `timeout`.
///
/// # Errors
/// Connection failures, timeouts and any reply other than the expected 2xx/3xx, with the
/// command and the server's reply in the message.
pub async fn send(
    relay: &str,
    helo: &str,
    from: &str,
    to: &str,
    message: &[u8],
    timeout: Duration,
) -> anyhow::Result<()> {
    tokio::time::timeout(timeout, transaction(relay, helo, from, to, message))
        .await
        .map_err(|_| anyhow::anyhow!("relay {relay}: no answer within {}s", timeout.as_secs()))?
}

async fn transaction(relay: &str, helo: &str, from: &str, to: &str, message: &[u8]) -> anyhow::Result<()> {
    let tcp = TcpStream::connect(relay).await.with_context(|| format!("relay {relay}: cannot connect"))?;
    let mut s = BufReader::new(tcp);
    expect(&mut s, "greeting", 220).await?;
    command(&mut s, &format!("EHLO {helo}"), 250).await?;
    command(&mut s, &format!("MAIL FROM:<{from}>"), 250).await?;
    command(&mut s, &format!("RCPT TO:<{to}>"), 250).await?;
    command(&mut s, "DATA", 354).await?;
    s.get_mut().write_all(&dot_stuff(message)).await?;
    expect(&mut s, "end of DATA", 250).await?;
    let _ = command(&mut s, "QUIT", 221).await;
    Ok(())
}

async fn command(s: &mut BufReader<TcpStream>, line: &str, code: u16) -> anyhow::Result<()> {
    s.get_mut().write_all(format!("{line}\r\n").as_bytes()).await?;
    expect(s, line, code).await
}

/// Reads one (possibly multi-line) reply and checks its code.
async fn expect(s: &mut BufReader<TcpStream>, what: &str, code: u16) -> anyhow::Result<()> {
    let mut text = String::new();
    loop {
        let mut line = String::new();
        if s.read_line(&mut line).await? == 0 {
            bail!("relay closed the connection after {what}");
        }
        if line.len() > 4096 {
            bail!("relay sent an overlong reply line after {what}");
        }
        text.push_str(line.trim_end());
        if line.as_bytes().get(3) != Some(&b'-') {
            break;
        }
        text.push(' ');
    }
    let got: u16 = text.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
    if got != code {
        bail!("relay answered {what:?} with {text:?}");
    }
    Ok(())
}

/// The DATA section: CRLF line ends (bare LF converted), leading dots doubled (RFC 5321
/// 4.5.2), and the final `.` line.
fn dot_stuff(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 64);
    let mut at_line_start = true;
    for (i, &b) in message.iter().enumerate() {
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        if b == b'\n' && (i == 0 || message[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(b);
        at_line_start = b == b'\n';
    }
    if !at_line_start {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_is_dot_stuffed_with_crlf() {
        assert_eq!(dot_stuff(b"a\r\n.b\n..c"), b"a\r\n..b\r\n...c\r\n.\r\n");
        assert_eq!(dot_stuff(b".\r\n"), b"..\r\n.\r\n");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn talks_to_a_scripted_server() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let server = tokio::spawn(async move {
            let (tcp, _) = l.accept().await.unwrap();
            let mut s = BufReader::new(tcp);
            let mut seen = Vec::new();
            s.get_mut().write_all(b"220 hi\r\n").await.unwrap();
            for reply in ["250-x\r\n250 ok\r\n", "250 ok\r\n", "250 ok\r\n", "354 go\r\n"] {
                let mut line = String::new();
                s.read_line(&mut line).await.unwrap();
                seen.push(line);
                s.get_mut().write_all(reply.as_bytes()).await.unwrap();
            }
            let mut data = String::new();
            while !data.ends_with("\r\n.\r\n") {
                s.read_line(&mut data).await.unwrap();
            }
            s.get_mut().write_all(b"250 queued\r\n").await.unwrap();
            (seen, data)
        });
        send(&addr, "me", "", "a@b", b"Subject: x\r\n\r\n.hi\r\n", Duration::from_secs(5)).await.unwrap();
        let (seen, data) = server.await.unwrap();
        assert_eq!(seen[1], "MAIL FROM:<>\r\n");
        assert_eq!(seen[2], "RCPT TO:<a@b>\r\n");
        assert_eq!(data, "Subject: x\r\n\r\n..hi\r\n.\r\n");
    }
}
