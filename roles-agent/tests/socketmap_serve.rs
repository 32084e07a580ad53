//! The socketmap server on a real roles database and a real TCP socket: lookups, changes seen by
//! the next lookup, failover, malformed and oversized input, many connections.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mailscale_roles::{Backend, BackendState, Roles, UserRole, UserState};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn backend(name: &str, lmtp: u16, partner: Option<&str>) -> Backend {
    Backend {
        name: name.into(),
        ip: "127.0.0.1".parse().unwrap(),
        imap: 143,
        pop3: 110,
        lmtp,
        partner: partner.map(Into::into),
        state: BackendState::Up,
    }
}

fn active(backend: &str) -> UserRole {
    UserRole { backend: backend.into(), state: UserState::Active }
}

/// a1 (lmtp 2401) and a2 (2402) partners, b1 (2403) alone; demo1 on a1, demo2 on b1.
async fn start() -> (tempfile::TempDir, Arc<Roles>, SocketAddr) {
    let dir = tempfile::tempdir().unwrap();
    let roles = Arc::new(Roles::open(dir.path()).unwrap());
    roles.set_backend(backend("a1", 2401, None)).unwrap();
    roles.set_backend(backend("a2", 2402, Some("a1"))).unwrap();
    roles.set_backend(backend("a1", 2401, Some("a2"))).unwrap();
    roles.set_backend(backend("b1", 2403, None)).unwrap();
    roles.set_user("demo1", active("a1")).unwrap();
    roles.set_user("demo2", active("b1")).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(mailscale_rolesd::socketmap::serve(listener, roles.clone()));
    (dir, roles, addr)
}

struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Client {
        Client { stream: TcpStream::connect(addr).await.unwrap(), buf: Vec::new() }
    }

    async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// The next reply, or `None` when the server closed the connection.
    async fn reply(&mut self) -> Option<String> {
        loop {
            if let Some(colon) = self.buf.iter().position(|&b| b == b':') {
                let len: usize = std::str::from_utf8(&self.buf[..colon]).unwrap().parse().unwrap();
                if self.buf.len() > colon + len + 1 {
                    assert_eq!(self.buf[colon + 1 + len], b',', "reply not terminated");
                    let text = String::from_utf8(self.buf[colon + 1..colon + 1 + len].to_vec()).unwrap();
                    self.buf.drain(..colon + len + 2);
                    return Some(text);
                }
            }
            let mut chunk = [0u8; 4096];
            let read = tokio::time::timeout(Duration::from_secs(5), self.stream.read(&mut chunk));
            match read.await.expect("no reply within 5 s") {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    async fn ask(&mut self, request: &str) -> String {
        self.send_raw(format!("{}:{request},", request.len()).as_bytes()).await;
        self.reply().await.expect("connection closed instead of a reply")
    }
}

#[tokio::test]
async fn lookups_follow_moves_and_failover_without_restart() {
    let (_dir, roles, addr) = start().await;
    let mut c = Client::connect(addr).await;
    assert_eq!(c.ask("transport demo1@example.org").await, "OK lmtp:inet:127.0.0.1:2401");
    assert_eq!(c.ask("transport DEMO2+news@example.org").await, "OK lmtp:inet:127.0.0.1:2403");
    assert_eq!(c.ask("transport nobody@example.org").await, "NOTFOUND ");
    assert_eq!(c.ask("transport example.org").await, "NOTFOUND ");
    assert_eq!(c.ask("virtual demo1@example.org").await, "PERM unknown map");

    roles.set_user("demo1", active("b1")).unwrap();
    assert_eq!(c.ask("transport demo1@example.org").await, "OK lmtp:inet:127.0.0.1:2403");

    roles.set_user("demo1", active("a1")).unwrap();
    roles.set_backend(Backend { state: BackendState::Failover, ..backend("a1", 2401, Some("a2")) }).unwrap();
    assert_eq!(c.ask("transport demo1@example.org").await, "OK lmtp:inet:127.0.0.1:2402");

    roles.set_backend(Backend { state: BackendState::Down, ..backend("a2", 2402, Some("a1")) }).unwrap();
    assert_eq!(c.ask("transport demo1@example.org").await, "TEMP backend unavailable");
}

#[tokio::test]
async fn pipelined_and_split_requests() {
    let (_dir, _roles, addr) = start().await;
    let mut c = Client::connect(addr).await;
    c.send_raw(b"27:transport demo1@example.org,27:transport demo2@example.org,").await;
    assert_eq!(c.reply().await.unwrap(), "OK lmtp:inet:127.0.0.1:2401");
    assert_eq!(c.reply().await.unwrap(), "OK lmtp:inet:127.0.0.1:2403");
    for piece in [&b"2"[..], b"7:transp", b"ort demo1@exa", b"mple.org", b","] {
        c.send_raw(piece).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(c.reply().await.unwrap(), "OK lmtp:inet:127.0.0.1:2401");
}

#[tokio::test]
async fn malformed_input_gets_perm_and_close_and_the_server_keeps_serving() {
    let (_dir, _roles, addr) = start().await;
    let cases: [(&[u8], &str); 5] = [
        (b"abc:transport x@y,", "PERM malformed netstring length"),
        (b"27:transport demo1@example.org;", "PERM netstring not terminated"),
        (b"999999999:", "PERM netstring too long: 999999999 bytes"),
        (b"100001:", "PERM netstring too long: 100001 bytes"),
        (b":,", "PERM malformed netstring length"),
    ];
    for (input, want) in cases {
        let mut c = Client::connect(addr).await;
        c.send_raw(input).await;
        let reply = c.reply().await.unwrap_or_else(|| panic!("no reply to {input:?}"));
        assert!(reply.starts_with(want), "{input:?}: {reply:?}");
        assert_eq!(c.reply().await, None, "connection left open after {input:?}");
    }
    // A request error inside a good netstring keeps the connection.
    let mut c = Client::connect(addr).await;
    assert!(c.ask("transport").await.starts_with("PERM malformed request"));
    c.send_raw(b"18:transport \xff\xfe@x.org,").await;
    assert_eq!(c.reply().await.unwrap(), "PERM request is not UTF-8");
    assert_eq!(c.ask("transport demo1@example.org").await, "OK lmtp:inet:127.0.0.1:2401");
}

#[tokio::test]
async fn oversized_payload_is_refused_after_a_big_send() {
    let (_dir, _roles, addr) = start().await;
    let mut c = Client::connect(addr).await;
    let mut big = b"200000:transport ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 200_000));
    big.push(b',');
    // The server answers as soon as it has read the length; the rest may be refused.
    let _ = c.stream.write_all(&big).await;
    let reply = c.reply().await.expect("no PERM reply before close");
    assert!(reply.starts_with("PERM netstring too long"), "{reply:?}");
    let mut c = Client::connect(addr).await;
    assert_eq!(c.ask("transport demo2@example.org").await, "OK lmtp:inet:127.0.0.1:2403");
}

#[tokio::test]
async fn largest_allowed_request_is_answered() {
    let (_dir, _roles, addr) = start().await;
    let mut c = Client::connect(addr).await;
    let key = format!("{}@example.org", "a".repeat(100_000 - "transport @example.org".len()));
    let reply = c.ask(&format!("transport {key}")).await;
    assert_eq!(reply, "NOTFOUND ");
}

#[tokio::test]
async fn many_connections_at_once() {
    let (_dir, _roles, addr) = start().await;
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            tokio::spawn(async move {
                let mut c = Client::connect(addr).await;
                for _ in 0..20 {
                    assert_eq!(c.ask("transport demo1@example.org").await, "OK lmtp:inet:127.0.0.1:2401");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test]
async fn idle_connections_are_closed_and_slots_are_freed() {
    let (_dir, roles, _) = start().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let limits = mailscale_rolesd::socketmap::Limits {
        idle_timeout: Duration::from_millis(300),
        max_connections: 1,
        ..Default::default()
    };
    tokio::spawn(mailscale_rolesd::socketmap::serve_with(listener, roles, limits));

    let mut first = Client::connect(addr).await;
    assert_eq!(first.ask("transport demo1@example.org").await, "OK lmtp:inet:127.0.0.1:2401");
    // The only slot is taken: a second client waits (its connection sits in the backlog).
    let mut second = Client::connect(addr).await;
    second.send_raw(b"27:transport demo2@example.org,").await;
    let early = tokio::time::timeout(Duration::from_millis(150), second.reply()).await;
    assert!(early.is_err(), "served beyond max_connections: {early:?}");
    // A half-sent request does not keep a connection alive past the idle timeout.
    first.send_raw(b"27:transport").await;
    assert_eq!(first.reply().await, None, "idle connection not closed");
    assert_eq!(second.reply().await.as_deref(), Some("OK lmtp:inet:127.0.0.1:2403"));
}
