//! COMPRESS=DEFLATE (RFC 4978): raw DEFLATE (RFC 1951, no zlib header or trailer) in both
//! directions, as a layer between [`super::Conn`]'s buffers and its plain or TLS stream. Owns
//! no socket: bytes in, bytes out.
//!
//! Output is finished with a sync flush (RFC 4978 4: "the server MUST flush the compressor
//! output after each response batch") so the client can inflate every response it was sent.
//! Input is inflated in bounded steps: a few kilobytes of compressed input can expand a
//! thousandfold, so at most [`MAX_INFLATE_STEP`] bytes come out of one step and the caller's
//! line and literal limits see them before more is inflated.

use std::io;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// Most inflated bytes one [`Deflate::inflate`] call appends.
pub const MAX_INFLATE_STEP: usize = 64 * 1024;

/// The two DEFLATE streams of one connection, with byte counts for the log.
pub struct Deflate {
    tx: Compress,
    rx: Decompress,
    /// Compressed input received and not inflated yet (at most one socket read plus what a
    /// capped step left over).
    pending: Vec<u8>,
    /// The client ended its DEFLATE stream (a final block): nothing more can follow.
    ended: bool,
}

impl Default for Deflate {
    fn default() -> Self {
        Self::new()
    }
}

impl Deflate {
    pub fn new() -> Self {
        Deflate {
            tx: Compress::new(Compression::default(), false),
            rx: Decompress::new(false),
            pending: Vec::new(),
            ended: false,
        }
    }

    /// Whether the client's stream has ended and everything before its end was inflated.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Takes compressed bytes read from the socket.
    pub fn receive(&mut self, compressed: &[u8]) {
        self.pending.extend_from_slice(compressed);
    }

    /// Inflates pending input into `out`, at most [`MAX_INFLATE_STEP`] bytes. Returns how many
    /// bytes were appended; 0 means more input is needed (or the stream ended).
    ///
    /// # Errors
    /// [`io::ErrorKind::InvalidData`] when the input is not valid DEFLATE; the stream is
    /// unusable afterwards.
    pub fn inflate(&mut self, out: &mut Vec<u8>) -> io::Result<usize> {
        let mut chunk = [0u8; 16384];
        let mut produced = 0;
        // Even with no input left, the inflater may hold output that did not fit last time.
        while produced < MAX_INFLATE_STEP && !self.ended {
            let room = chunk.len().min(MAX_INFLATE_STEP - produced);
            let (in0, out0) = (self.rx.total_in(), self.rx.total_out());
            let status = self
                .rx
                .decompress(&self.pending, &mut chunk[..room], FlushDecompress::None)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("invalid compressed data: {e}")))?;
            let used = (self.rx.total_in() - in0) as usize;
            let made = (self.rx.total_out() - out0) as usize;
            self.pending.drain(..used);
            out.extend_from_slice(&chunk[..made]);
            produced += made;
            if status == Status::StreamEnd {
                self.ended = true;
            }
            if used == 0 && made == 0 {
                break;
            }
        }
        Ok(produced)
    }

    /// Compresses `data` and sync-flushes, appending to `out`: the peer can inflate all of
    /// `data` from what was appended.
    ///
    /// # Errors
    /// Compressor errors (not expected with valid parameters).
    pub fn deflate(&mut self, data: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        let mut input = data;
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(input.len() / 2 + 4096);
            }
            let in0 = self.tx.total_in();
            self.tx.compress_vec(input, out, FlushCompress::Sync).map_err(io::Error::other)?;
            input = &input[(self.tx.total_in() - in0) as usize..];
            // A flush is complete when the compressor stopped with output space left over.
            if input.is_empty() && out.len() < out.capacity() {
                return Ok(());
            }
        }
    }

    /// (compressed in, inflated in, raw out, compressed out) byte counts.
    pub fn totals(&self) -> (u64, u64, u64, u64) {
        (self.rx.total_in(), self.rx.total_out(), self.tx.total_in(), self.tx.total_out())
    }
}

impl Drop for Deflate {
    fn drop(&mut self) {
        let (cin, rin, rout, cout) = self.totals();
        tracing::debug!(
            compressed_in = cin,
            inflated_in = rin,
            raw_out = rout,
            compressed_out = cout,
            "COMPRESS=DEFLATE totals"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A peer's side of the same streams, built from flate2 directly.
    fn peer_deflate(c: &mut Compress, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.len() + 1024);
        c.compress_vec(data, &mut out, FlushCompress::Sync).unwrap();
        out
    }

    #[test]
    fn responses_inflate_completely_after_each_flush() {
        let mut z = Deflate::new();
        let mut client = Decompress::new(false);
        for batch in [&b"* OK first\r\n"[..], &b"a1 OK [READ-WRITE] SELECT completed\r\n"[..]] {
            let mut wire = Vec::new();
            z.deflate(batch, &mut wire).unwrap();
            assert!(wire.ends_with(&[0, 0, 0xff, 0xff]), "sync flush marker");
            let mut plain = Vec::with_capacity(4096);
            client.decompress_vec(&wire, &mut plain, FlushDecompress::Sync).unwrap();
            assert_eq!(plain, batch);
        }
    }

    #[test]
    fn large_output_is_flushed_whole() {
        let mut z = Deflate::new();
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
        let mut wire = Vec::new();
        z.deflate(&data, &mut wire).unwrap();
        let mut plain = Vec::with_capacity(data.len() + 1024);
        Decompress::new(false).decompress_vec(&wire, &mut plain, FlushDecompress::Sync).unwrap();
        assert_eq!(plain, data);
    }

    #[test]
    fn a_bomb_is_inflated_in_bounded_steps() {
        let mut c = Compress::new(Compression::best(), false);
        let bomb = peer_deflate(&mut c, &vec![b'a'; 10 * 1024 * 1024]);
        assert!(bomb.len() < 64 * 1024, "{} compressed bytes", bomb.len());
        let mut z = Deflate::new();
        z.receive(&bomb);
        let mut total = 0;
        loop {
            let mut out = Vec::new();
            let n = z.inflate(&mut out).unwrap();
            assert!(n <= MAX_INFLATE_STEP && out.len() == n);
            if n == 0 {
                break;
            }
            total += n;
        }
        assert_eq!(total, 10 * 1024 * 1024);
    }

    #[test]
    fn split_input_needs_more_and_garbage_is_an_error() {
        let mut c = Compress::new(Compression::default(), false);
        let wire = peer_deflate(&mut c, b"a1 NOOP\r\n");
        let mut z = Deflate::new();
        let mut out = Vec::new();
        z.receive(&wire[..1]);
        let first = z.inflate(&mut out).unwrap();
        z.receive(&wire[1..]);
        let rest = z.inflate(&mut out).unwrap();
        assert_eq!(first + rest, 9);
        assert_eq!(out, b"a1 NOOP\r\n");

        let mut z = Deflate::new();
        z.receive(&[0xff; 64]);
        let e = z.inflate(&mut Vec::new()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }
}
