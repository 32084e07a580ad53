//! The replication protocol's messages, as bytes (no sockets here; see README.md "Protocol").
//!
//! The follower opens with one text line, `HELLO <token> <last_applied_seq>\n`. Everything after
//! it, from the primary, is a sequence of frames: a 4-byte big-endian length, then that many bytes
//! of a bincode-encoded [`Frame`].

use mailscale_roles::{Change, Snapshot};
use serde::{Deserialize, Serialize};

/// Longest HELLO line accepted, newline included.
pub const MAX_HELLO: usize = 1024;
/// Largest frame accepted: a snapshot of a few million users fits.
pub const MAX_FRAME: usize = 512 << 20;

/// One message from the primary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Frame {
    /// The whole database at `snapshot.seq`; replaces everything the follower has. CHANGE frames
    /// with sequences from `snapshot.seq + 1` follow.
    Snapshot(Snapshot),
    /// One changelog entry; sequences are dense and increasing.
    Change { seq: u64, change: Change },
    /// Sent every second: the primary's last sequence and its clock (unix seconds).
    Heartbeat { last_seq: u64, unix_time: u64 },
    /// The primary refuses the follower (bad token, malformed HELLO) and closes the connection.
    Refused { reason: String },
}

/// What can go wrong decoding the protocol.
#[derive(thiserror::Error, Debug, PartialEq, Eq)]
pub enum WireError {
    /// Not an error: more bytes are needed (mini-redis `frame::Error::Incomplete`).
    #[error("incomplete frame")]
    Incomplete,
    #[error("frame of {0} bytes is over the limit of {MAX_FRAME}")]
    TooLarge(usize),
    #[error("undecodable frame: {0}")]
    Malformed(String),
    #[error("expected \"HELLO <token> <seq>\", got {0:?}")]
    BadHello(String),
}

/// A follower's greeting.
#[derive(PartialEq, Eq)]
pub struct Hello {
    pub token: String,
    pub last_seq: u64,
}

impl std::fmt::Debug for Hello {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hello").field("token", &"***").field("last_seq", &self.last_seq).finish()
    }
}

impl Hello {
    /// The line on the wire, newline included.
    pub fn encode(&self) -> Vec<u8> {
        format!("HELLO {} {}\n", self.token, self.last_seq).into_bytes()
    }

    /// Parses one line (with or without its `\n` / `\r\n`). Tokens are one word of printable
    /// ASCII.
    ///
    /// # Errors
    /// [`WireError::BadHello`], which never contains the token.
    pub fn parse(line: &[u8]) -> Result<Hello, WireError> {
        let bad = |why: &str| WireError::BadHello(why.to_string());
        let line = std::str::from_utf8(line).map_err(|_| bad("non-UTF-8 line"))?;
        let line = line.trim_end_matches(['\r', '\n']);
        let mut words = line.split(' ');
        match (words.next(), words.next(), words.next(), words.next()) {
            (Some("HELLO"), Some(token), Some(seq), None) if !token.is_empty() => {
                let last_seq = seq.parse().map_err(|_| bad("sequence is not a number"))?;
                Ok(Hello { token: token.to_string(), last_seq })
            }
            (Some(cmd), ..) if cmd != "HELLO" => Err(WireError::BadHello(cmd.chars().take(20).collect())),
            _ => Err(bad("HELLO with the wrong number of words")),
        }
    }
}

/// Appends `frame`, length-prefixed, to `out`.
///
/// # Panics
/// When the encoded frame exceeds 4 GiB (a snapshot that large is refused before, by
/// [`MAX_FRAME`] on the reading side; the writer's database is limited to 1 GiB).
pub fn encode(frame: &Frame, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    bincode::serialize_into(&mut *out, frame).expect("bincode into a Vec cannot fail");
    let len = u32::try_from(out.len() - start - 4).expect("frame under 4 GiB");
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
}

/// Decodes the first frame in `buf`: the frame and how many bytes it used.
///
/// # Errors
/// [`WireError::Incomplete`] when `buf` holds only part of a frame; [`WireError::TooLarge`];
/// [`WireError::Malformed`].
pub fn decode(buf: &[u8]) -> Result<(Frame, usize), WireError> {
    let len = frame_len(buf)?;
    if buf.len() < 4 + len {
        return Err(WireError::Incomplete);
    }
    let frame = bincode::deserialize(&buf[4..4 + len]).map_err(|e| WireError::Malformed(e.to_string()))?;
    Ok((frame, 4 + len))
}

/// The announced body length of the frame at the start of `buf`.
///
/// # Errors
/// [`WireError::Incomplete`] under 4 bytes; [`WireError::TooLarge`].
pub fn frame_len(buf: &[u8]) -> Result<usize, WireError> {
    let Some(head) = buf.get(..4) else {
        return Err(WireError::Incomplete);
    };
    let len = u32::from_be_bytes(head.try_into().expect("4 bytes")) as usize;
    if len > MAX_FRAME {
        return Err(WireError::TooLarge(len));
    }
    Ok(len)
}

#[cfg(test)]
mod tests {
    use mailscale_roles::{UserRole, UserState};

    use super::*;

    #[test]
    fn hello_round_trip_and_refusals() {
        let hello = Hello { token: "s3cret".into(), last_seq: 42 };
        assert_eq!(hello.encode(), b"HELLO s3cret 42\n");
        assert_eq!(Hello::parse(&hello.encode()).unwrap(), hello);
        assert_eq!(Hello::parse(b"HELLO t 0\r\n").unwrap().last_seq, 0);
        for bad in [&b"HELO t 1"[..], b"HELLO t", b"HELLO t x", b"HELLO  1", b"HELLO t 1 2", b"\xff"] {
            assert!(Hello::parse(bad).is_err(), "{bad:?}");
        }
        let err = Hello::parse(b"HELLO s3cret -1").unwrap_err().to_string();
        assert!(!err.contains("s3cret"), "the token never reaches an error message: {err}");
        assert!(!format!("{hello:?}").contains("s3cret"));
    }

    #[test]
    fn frames_round_trip_in_pieces() {
        let frames = vec![
            Frame::Change {
                seq: 7,
                change: Change::SetUser {
                    user: "alice".into(),
                    role: UserRole { backend: "a1".into(), state: UserState::Active },
                },
            },
            Frame::Heartbeat { last_seq: 7, unix_time: 1_700_000_000 },
            Frame::Snapshot(Snapshot::default()),
        ];
        let mut buf = Vec::new();
        for f in &frames {
            encode(f, &mut buf);
        }
        let mut got = Vec::new();
        let mut at = 0;
        while at < buf.len() {
            for cut in at..at + 4 {
                assert_eq!(decode(&buf[at..cut]), Err(WireError::Incomplete));
            }
            let (frame, used) = decode(&buf[at..]).unwrap();
            assert_eq!(decode(&buf[at..at + used - 1]), Err(WireError::Incomplete));
            got.push(frame);
            at += used;
        }
        assert_eq!(got, frames);
    }

    #[test]
    fn oversized_and_garbage_frames_are_errors() {
        assert_eq!(frame_len(&u32::MAX.to_be_bytes()), Err(WireError::TooLarge(u32::MAX as usize)));
        assert!(matches!(decode(&[0, 0, 0, 2, 0xff, 0xff]), Err(WireError::Malformed(_))));
    }
}
