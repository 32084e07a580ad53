//! The replication protocol's frames (Cyrus's `sync_support` dlists, here serde + bincode): a
//! 4-byte big-endian length, then one bincode-encoded [`Request`] or [`Response`]. Pure: bytes in,
//! typed messages out; the socket is in [`super::conn`].

use mailstore::{Flags, Guid, MailboxName, MailboxState, MessageRecord, ReplOp, UserSettings};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// Frames above this size are refused before they are read: the largest batch a primary sends
/// plus one message at the largest size LMTP and APPEND accept.
pub fn max_frame(max_message: usize) -> usize {
    BATCH_BYTES + max_message + 1024 * 1024
}

/// The primary splits a user's update so that message contents of one `Apply` stay below this.
pub const BATCH_BYTES: usize = 64 * 1024 * 1024;

/// What the primary asks of its replica, one user at a time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Request {
    /// First on every link: the sender's epoch (see `state.rs`). Nothing else is answered
    /// before it.
    Hello { epoch: u64, name: String },
    /// Keeps an idle link checked (a stalled path is noticed within seconds).
    Ping,
    /// Every user the replica holds (after a promotion: users only the partner has).
    Users,
    /// One message file, for a message only the replica holds (rescued after a split).
    Fetch { user: String, guid: Guid },
    /// The user's mailbox states, subscriptions and digest.
    UserState { user: String },
    /// The replica's records of one mailbox with MODSEQ above `since_modseq` (0: all of them).
    Records { user: String, mailbox_unique_id: String, since_modseq: u64 },
    /// Which of these message files the replica lacks.
    HaveGuids { user: String, guids: Vec<Guid> },
    /// Apply these changes in one transaction.
    Apply { user: String, ops: Vec<Op> },
}

/// The replica's answers, in request order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Response {
    /// The link is accepted; the replica's epoch.
    Hello {
        epoch: u64,
    },
    /// Refused: this side is the primary at `epoch`; the sender must not replicate to it.
    Fenced {
        epoch: u64,
    },
    Pong,
    Users(Vec<String>),
    Content(Vec<u8>),
    State {
        mailboxes: Vec<MailboxState>,
        subscriptions: Vec<String>,
        settings: UserSettings,
        digest: String,
    },
    Records(Vec<(u32, MessageRecord)>),
    Missing(Vec<Guid>),
    Applied {
        digest: String,
    },
    Error {
        text: String,
    },
}

/// [`ReplOp`] as it travels: mailbox names as plain strings, validated again on arrival.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Op {
    Mailbox { unique_id: String, name: String, uidvalidity: u32, special_use: Option<String> },
    Message { mailbox: String, uid: u32, record: MessageRecord, raw: Option<Vec<u8>> },
    Flags { mailbox: String, uid: u32, flags: Flags, modseq: u64 },
    Expunge { mailbox: String, uids: Vec<u32> },
    Counters { mailbox: String, last_uid: u32, highestmodseq: u64 },
    DeleteMailbox { unique_id: String },
    Subscriptions(Vec<String>),
    Settings(UserSettings),
}

impl Op {
    /// Bytes of message content this op carries.
    pub fn content_len(&self) -> usize {
        match self {
            Op::Message { raw: Some(r), .. } => r.len(),
            _ => 0,
        }
    }

    /// # Errors
    /// A mailbox name that is not valid here.
    pub fn into_repl(self) -> Result<ReplOp, String> {
        Ok(match self {
            Op::Mailbox { unique_id, name, uidvalidity, special_use } => ReplOp::Mailbox {
                unique_id,
                name: MailboxName::new(&name).map_err(|e| format!("mailbox name {name:?}: {e}"))?,
                uidvalidity,
                special_use,
            },
            Op::Message { mailbox, uid, record, raw } => ReplOp::Message { mailbox, uid, record, raw },
            Op::Flags { mailbox, uid, flags, modseq } => ReplOp::Flags { mailbox, uid, flags, modseq },
            Op::Expunge { mailbox, uids } => ReplOp::Expunge { mailbox, uids },
            Op::Counters { mailbox, last_uid, highestmodseq } => ReplOp::Counters { mailbox, last_uid, highestmodseq },
            Op::DeleteMailbox { unique_id } => ReplOp::DeleteMailbox { unique_id },
            Op::Subscriptions(s) => ReplOp::Subscriptions(s),
            Op::Settings(s) => ReplOp::Settings(s),
        })
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FrameError {
    #[error("replication frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error("malformed replication frame: {0}")]
    Malformed(String),
}

/// One frame: length prefix and body.
///
/// # Errors
/// A message that bincode cannot encode (none of ours).
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, FrameError> {
    let body = bincode::serialize(msg).map_err(|e| FrameError::Malformed(e.to_string()))?;
    let len =
        u32::try_from(body.len()).map_err(|_| FrameError::TooLarge { len: body.len(), max: u32::MAX as usize })?;
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// The body length announced by a frame header, checked against `max`.
///
/// # Errors
/// [`FrameError::TooLarge`], before any of the body is read.
pub fn body_len(header: [u8; 4], max: usize) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(header) as usize;
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    Ok(len)
}

/// Decodes the first frame of `buf`: `Ok(None)` while incomplete, else the message and the
/// bytes it took.
///
/// # Errors
/// An oversized or undecodable frame.
pub fn decode<T: DeserializeOwned>(buf: &[u8], max: usize) -> Result<Option<(T, usize)>, FrameError> {
    let Some(header) = buf.get(..4) else {
        return Ok(None);
    };
    let len = body_len(header.try_into().expect("4 bytes"), max)?;
    let Some(body) = buf.get(4..4 + len) else {
        return Ok(None);
    };
    Ok(Some((decode_body(body)?, 4 + len)))
}

/// Decodes a frame body (after its header).
///
/// # Errors
/// [`FrameError::Malformed`].
pub fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, FrameError> {
    bincode::deserialize(body).map_err(|e| FrameError::Malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> MessageRecord {
        MessageRecord {
            guid: Guid::of(b"x"),
            size: 1,
            internaldate: 1_700_000_000,
            tz_minutes: 60,
            modseq: 7,
            flags: Flags { system: mailstore::flag::SEEN, keywords: vec!["$Label1".into()] },
        }
    }

    #[test]
    fn requests_round_trip_and_split_anywhere() {
        let reqs = vec![
            Request::Hello { epoch: 3, name: "a1".into() },
            Request::Ping,
            Request::Users,
            Request::Fetch { user: "alice".into(), guid: Guid::of(b"a") },
            Request::UserState { user: "alice".into() },
            Request::Records { user: "alice".into(), mailbox_unique_id: "u1".into(), since_modseq: 3 },
            Request::HaveGuids { user: "alice".into(), guids: vec![Guid::of(b"a")] },
            Request::Apply {
                user: "alice".into(),
                ops: vec![
                    Op::Mailbox { unique_id: "u1".into(), name: "Work".into(), uidvalidity: 9, special_use: None },
                    Op::Message { mailbox: "u1".into(), uid: 1, record: record(), raw: Some(b"x".to_vec()) },
                    Op::Subscriptions(vec!["Work".into()]),
                    Op::Settings(UserSettings {
                        scripts: vec![("main".into(), "keep;".into())],
                        active_script: Some("main".into()),
                        quota_limit: Some(1 << 20),
                    }),
                ],
            },
        ];
        let mut bytes = Vec::new();
        for r in &reqs {
            bytes.extend(encode(r).unwrap());
        }
        // Every prefix short of a whole frame is Incomplete, not an error.
        let first = encode(&reqs[0]).unwrap().len();
        for cut in 0..first {
            assert_eq!(decode::<Request>(&bytes[..cut], 1 << 20).unwrap(), None);
        }
        let mut at = 0;
        let mut got = Vec::new();
        while let Some((r, n)) = decode::<Request>(&bytes[at..], 1 << 20).unwrap() {
            got.push(r);
            at += n;
        }
        assert_eq!(got, reqs);
        assert_eq!(at, bytes.len());
    }

    #[test]
    fn responses_round_trip() {
        for r in [
            Response::Records(vec![(4, record())]),
            Response::Fenced { epoch: 2 },
            Response::Users(vec!["a".into()]),
            Response::Content(b"x".to_vec()),
        ] {
            let (back, _) = decode::<Response>(&encode(&r).unwrap(), 1 << 20).unwrap().unwrap();
            assert_eq!(back, r);
        }
    }

    #[test]
    fn oversized_frames_are_refused_from_the_header() {
        let header = (10_000u32).to_be_bytes();
        assert_eq!(decode::<Request>(&header, 9_999), Err(FrameError::TooLarge { len: 10_000, max: 9_999 }));
        assert!(FrameError::TooLarge { len: 10_000, max: 9_999 }.to_string().contains("exceeds the limit"));
        assert!(max_frame(50 << 20) > BATCH_BYTES + (50 << 20));
    }

    #[test]
    fn garbage_is_malformed_and_names_are_checked_on_arrival() {
        let mut bytes = 3u32.to_be_bytes().to_vec();
        bytes.extend([0xff, 0xff, 0xff]);
        assert!(matches!(decode::<Request>(&bytes, 100), Err(FrameError::Malformed(_))));
        let bad = Op::Mailbox { unique_id: "u".into(), name: "".into(), uidvalidity: 1, special_use: None };
        assert!(bad.into_repl().unwrap_err().contains("mailbox name"));
    }
}
