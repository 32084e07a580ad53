//! Helpers: run a script on a message, build expected actions.

use crate::{parse, Action, Envelope, Limits, MessageContext, Outcome, RuntimeError};

/// The envelope of most tests: from a colleague to the mailbox owner.
pub(super) fn env() -> Envelope {
    Envelope { from: "sender@example.org".into(), to: "me@example.com".into(), aliases: vec![] }
}

/// `\n` in test messages becomes CRLF, as on the wire.
pub(super) fn crlf(msg: &str) -> Vec<u8> {
    msg.replace("\r\n", "\n").replace('\n', "\r\n").into_bytes()
}

pub(super) fn try_run_env(script: &str, msg: &str, env: &Envelope, limits: &Limits) -> Result<Outcome, RuntimeError> {
    let script = parse(script).unwrap_or_else(|e| panic!("script does not parse: {e}\n{script}"));
    let raw = crlf(msg);
    script.run(&MessageContext::new(&raw), env, limits)
}

pub(super) fn run(script: &str, msg: &str) -> Vec<Action> {
    try_run_env(script, msg, &env(), &Limits::default()).unwrap().actions
}

pub(super) fn run_env(script: &str, msg: &str, env: &Envelope) -> Outcome {
    try_run_env(script, msg, env, &Limits::default()).unwrap()
}

/// The parse error of `script` as (line, column, message).
pub(super) fn parse_err(script: &str) -> (u32, u32, String) {
    match parse(script) {
        Ok(_) => panic!("script parsed but should not:\n{script}"),
        Err(e) => (e.line(), e.column(), e.message),
    }
}

pub(super) fn keep() -> Action {
    Action::Keep { flags: vec![] }
}

pub(super) fn keep_flags(flags: &[&str]) -> Action {
    Action::Keep { flags: flags.iter().map(|f| f.to_string()).collect() }
}

pub(super) fn fileinto(mailbox: &str) -> Action {
    Action::FileInto { mailbox: mailbox.into(), flags: vec![], copy: false }
}

pub(super) fn fileinto_flags(mailbox: &str, flags: &[&str]) -> Action {
    Action::FileInto { mailbox: mailbox.into(), flags: flags.iter().map(|f| f.to_string()).collect(), copy: false }
}

pub(super) fn redirect(address: &str) -> Action {
    Action::Redirect { address: address.into(), copy: false }
}
