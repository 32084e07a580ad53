//! The connection shell shared by IMAP, POP3 and LMTP: a plain or TLS stream, an input buffer
//! with line-size limits, read/write timeouts, and STARTTLS that discards pipelined plaintext.
//! COMPRESS=DEFLATE (RFC 4978) is a layer above the stream, in `deflate.rs`.

pub mod deflate;

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// A client socket, before or after TLS.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Why reading a line failed.
#[derive(Debug)]
pub enum LineError {
    /// The peer closed the connection.
    Closed,
    /// No complete line within the timeout.
    Timeout,
    /// The line exceeds the limit; the rest of it up to its LF has been discarded.
    TooLong,
    Io(io::Error),
}

/// One client connection.
pub struct Conn {
    stream: Option<Stream>,
    buf: Vec<u8>,
    pub read_timeout: Duration,
    pub write_timeout: Duration,
    out: Vec<u8>,
    /// COMPRESS=DEFLATE, once active: input is inflated into `buf`, `out` deflated on flush.
    deflate: Option<Box<deflate::Deflate>>,
}

impl Conn {
    pub fn new(stream: Stream, read_timeout: Duration, write_timeout: Duration) -> Self {
        Conn {
            stream: Some(stream),
            buf: Vec::with_capacity(8192),
            read_timeout,
            write_timeout,
            out: Vec::new(),
            deflate: None,
        }
    }

    pub fn is_compressed(&self) -> bool {
        self.deflate.is_some()
    }

    /// Starts COMPRESS=DEFLATE in both directions (RFC 4978 3), to be called right after the
    /// tagged OK was flushed uncompressed. As with STARTTLS, anything buffered is discarded: a
    /// client sends nothing after COMPRESS before it has seen the OK.
    pub fn start_deflate(&mut self) {
        self.buf.clear();
        self.deflate = Some(Box::default());
    }

    pub fn is_tls(&self) -> bool {
        matches!(self.stream, Some(Stream::Tls(_)))
    }

    fn stream(&mut self) -> io::Result<&mut Stream> {
        self.stream
            .as_mut()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "connection lost during TLS handshake"))
    }

    /// Bytes received but not consumed yet.
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    /// Drops `n` bytes from the front of the input buffer.
    pub fn consume(&mut self, n: usize) {
        self.buf.drain(..n);
    }

    /// Takes everything buffered.
    pub fn take_buffered(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }

    /// Reads more bytes into the buffer (at most `limit` at once); 0 means EOF.
    ///
    /// # Errors
    /// [`io::ErrorKind::TimedOut`] after `timeout`, socket errors.
    pub async fn fill(&mut self, timeout: Duration) -> io::Result<usize> {
        if self.deflate.is_some() {
            return self.fill_inflated(timeout).await;
        }
        let mut chunk = [0u8; 16384];
        let s = self.stream()?;
        let n = tokio::time::timeout(timeout, s.read(&mut chunk))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "read timeout"))??;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// [`Conn::fill`] under COMPRESS: inflates (in bounded steps) until at least one byte is
    /// appended, reading compressed input as needed. Cancel-safe like a plain read (IDLE
    /// selects on it): whatever was read is kept in the inflater before the next await.
    ///
    /// # Errors
    /// As [`Conn::fill`], and [`io::ErrorKind::InvalidData`] for input that is not DEFLATE.
    async fn fill_inflated(&mut self, timeout: Duration) -> io::Result<usize> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut chunk = [0u8; 16384];
        loop {
            let z = self.deflate.as_mut().expect("called under COMPRESS only");
            let n = z.inflate(&mut self.buf)?;
            if n > 0 {
                return Ok(n);
            }
            if z.ended() {
                return Ok(0);
            }
            let s =
                self.stream.as_mut().ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "connection lost"))?;
            let n = tokio::time::timeout_at(deadline, s.read(&mut chunk))
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "read timeout"))??;
            if n == 0 {
                return Ok(0);
            }
            z.receive(&chunk[..n]);
        }
    }

    /// Reads one line (without CRLF / LF). Lines longer than `max` are discarded up to their LF
    /// and reported as [`LineError::TooLong`] so the caller can answer and go on.
    pub async fn read_line(&mut self, max: usize) -> Result<Vec<u8>, LineError> {
        let mut scanned = 0;
        let mut too_long = false;
        loop {
            if let Some(pos) = self.buf[scanned..].iter().position(|&b| b == b'\n') {
                let end = scanned + pos;
                if too_long || end > max {
                    self.buf.drain(..=end);
                    return Err(LineError::TooLong);
                }
                let mut line: Vec<u8> = self.buf.drain(..=end).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(line);
            }
            if self.buf.len() > max {
                too_long = true;
                self.buf.clear();
            }
            scanned = self.buf.len();
            let timeout = self.read_timeout;
            match self.fill(timeout).await {
                Ok(0) => return Err(LineError::Closed),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::TimedOut => return Err(LineError::Timeout),
                Err(e) => return Err(LineError::Io(e)),
            }
        }
    }

    /// Queues bytes; [`Conn::flush`] sends them.
    pub fn queue(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    /// Sends what is queued, giving up after the write timeout (a client that stopped reading).
    ///
    /// # Errors
    /// [`io::ErrorKind::TimedOut`], socket errors.
    pub async fn flush(&mut self) -> io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let mut out = std::mem::take(&mut self.out);
        if let Some(z) = self.deflate.as_mut() {
            let mut wire = Vec::with_capacity(out.len() / 2 + 64);
            z.deflate(&out, &mut wire)?;
            out = wire;
        }
        let timeout = self.write_timeout;
        let s = self.stream()?;
        tokio::time::timeout(timeout, async {
            s.write_all(&out).await?;
            s.flush().await
        })
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "write timeout: client is not reading"))?
    }

    /// Sends queued replies unless another complete command is already buffered, so that a
    /// pipelined batch (LMTP RFC 2920, POP3 RFC 2449) is answered in one write.
    ///
    /// # Errors
    /// As [`Conn::flush`].
    pub async fn flush_unless_pipelined(&mut self) -> io::Result<()> {
        if self.buf.contains(&b'\n') {
            Ok(())
        } else {
            self.flush().await
        }
    }

    /// Queues and sends.
    ///
    /// # Errors
    /// As [`Conn::flush`].
    pub async fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.queue(bytes);
        self.flush().await
    }

    /// Upgrades to TLS. Anything the client pipelined after the STARTTLS command is discarded
    /// (it was sent in the clear and must not be treated as protected input).
    ///
    /// # Errors
    /// Handshake errors; the connection is unusable afterwards.
    pub async fn starttls(&mut self, acceptor: &TlsAcceptor) -> io::Result<()> {
        self.buf.clear();
        match self.stream.take() {
            Some(Stream::Plain(tcp)) => {
                let tls = tokio::time::timeout(self.read_timeout, acceptor.accept(tcp))
                    .await
                    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timeout"))??;
                self.stream = Some(Stream::Tls(Box::new(tls)));
                Ok(())
            }
            other => {
                self.stream = other;
                Err(io::Error::other("TLS is already active"))
            }
        }
    }

    /// Best-effort orderly close.
    pub async fn shutdown(&mut self) {
        let _ = self.flush().await;
        if let Some(s) = self.stream.as_mut() {
            let _ = tokio::time::timeout(Duration::from_secs(2), s.shutdown()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test(flavor = "multi_thread")]
    async fn long_lines_are_refused_whole_or_in_pieces() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::spawn(async move {
            let mut c = TcpStream::connect(addr).await.unwrap();
            c.write_all(b"short\r\n").await.unwrap();
            c.write_all(&[b'x'; 3000]).await.unwrap();
            c.write_all(b"\r\nnext\r\n").await.unwrap();
            c
        });
        let (tcp, _) = listener.accept().await.unwrap();
        let _c = client.await.unwrap();
        let mut conn = Conn::new(Stream::Plain(tcp), Duration::from_secs(5), Duration::from_secs(5));
        assert_eq!(conn.read_line(2048).await.unwrap(), b"short");
        assert!(matches!(conn.read_line(2048).await, Err(LineError::TooLong)));
        assert_eq!(conn.read_line(2048).await.unwrap(), b"next");
    }
}
