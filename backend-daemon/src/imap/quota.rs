//! QUOTA (RFC 9208): one quota root per user, named `""`, holding every mailbox of the user,
//! with the STORAGE resource (KiB). Usage and limit come from the store's quota accounting;
//! a user without a limit has no quota root.

use imap_codec::imap_types::core::{AString, IString, Vec1};
use imap_codec::imap_types::extensions::quota::{QuotaGet, Resource};
use imap_codec::imap_types::response::Data;
use mailstore::{MailboxName, UserStore};

use super::resp::{self, Rc};
use super::session::Refusal;
use crate::net::Conn;

/// Usage and limit in bytes (limit 0: none), the one place IMAP reads them.
fn usage_and_limit(user: &UserStore) -> Result<(u64, u64), Refusal> {
    Ok(crate::blocking(|| user.quota())?)
}

fn root() -> AString<'static> {
    AString::String(IString::try_from("").expect("empty quoted string"))
}

fn quota_data(used: u64, limit: u64) -> Vec<u8> {
    // RFC 9208 5.1: STORAGE in units of 1024 octets; usage rounded up.
    let q = QuotaGet::new(Resource::Storage, used.div_ceil(1024), limit / 1024);
    resp::data(Data::Quota { root: root(), quotas: Vec1::from(q) })
}

/// GETQUOTAROOT (RFC 9208 4.3): `* QUOTAROOT mailbox ""` and `* QUOTA "" (STORAGE u l)`.
///
/// # Errors
/// NO [NONEXISTENT] for a mailbox that does not exist; NO on store failure.
pub fn get_quota_root(user: &UserStore, name: &MailboxName, conn: &mut Conn) -> Result<(), Refusal> {
    crate::blocking(|| user.mailbox(name))?
        .filter(|m| !m.noselect)
        .ok_or_else(|| Refusal::no(format!("Mailbox does not exist: {name}")).with(Rc::Nonexistent))?;
    let (used, limit) = usage_and_limit(user)?;
    let roots = if limit > 0 { vec![root()] } else { Vec::new() };
    conn.queue(&resp::data(Data::QuotaRoot { mailbox: resp::mailbox(name.as_str()), roots }));
    if limit > 0 {
        conn.queue(&quota_data(used, limit));
    }
    Ok(())
}

/// GETQUOTA (RFC 9208 4.2) of the root `""`.
///
/// # Errors
/// NO for any other root, or when the user has no limit.
pub fn get_quota(user: &UserStore, name: &str, conn: &mut Conn) -> Result<(), Refusal> {
    let (used, limit) = usage_and_limit(user)?;
    if !name.is_empty() || limit == 0 {
        return Err(Refusal::no(format!("No such quota root: {name:?}")));
    }
    conn.queue(&quota_data(used, limit));
    Ok(())
}
