//! The `transport` map: recipient address → `lmtp:inet:<ip>:<port>` of the backend serving the
//! mailbox. Pure decision logic over a lookup function, so it is tested without LMDB.

use mailscale_roles::{Backend, RolesError, Route, UserState};

use super::codec::{parse_request, Reply};

/// The map names this server answers (`socketmap:inet:host:port:<name>` in Postfix's config).
pub const TRANSPORT_MAP: &str = "transport";

/// Answers one request payload.
///
/// `lookup` is [`mailscale_roles::Roles::lookup`] (or a stand-in in tests).
pub fn answer(payload: &[u8], lookup: impl Fn(&str) -> Result<Option<Route>, RolesError>) -> Reply {
    let request = match parse_request(payload) {
        Ok(r) => r,
        Err(e) => return Reply::Perm(e.to_string()),
    };
    if request.name != TRANSPORT_MAP {
        return Reply::Perm("unknown map".into());
    }
    transport(request.key, lookup)
}

/// The users an address may belong to, most specific first: the whole address (user names may
/// contain `@`), its local part, the local part without a `+detail` (as mailstored's LMTP
/// resolves recipients). Empty for keys that are not addresses: domains (`example.org`,
/// `.example.org`), `@example.org`, `*`. Postfix looks those up after the address; NOTFOUND
/// lets it fall back to its other tables and its default transport.
pub fn candidates(key: &str) -> Vec<String> {
    let key = key.to_ascii_lowercase();
    let Some((local, domain)) = key.rsplit_once('@') else {
        return Vec::new();
    };
    if local.is_empty() || domain.is_empty() {
        return Vec::new();
    }
    let mut out = vec![key.clone(), local.to_string()];
    if let Some((base, _detail)) = local.split_once('+') {
        if !base.is_empty() {
            out.push(base.to_string());
        }
    }
    out
}

/// Looks a recipient up and says where Postfix should deliver it.
///
/// - a user with a role: `OK lmtp:inet:<ip>:<lmtp port>` of the backend serving it now (the
///   partner when the own backend is in failover), `TEMP` when no backend serves it (down, or in
///   failover with its partner not up) or while the user is being moved (mail waits in the queue
///   rather than landing on the side being emptied);
/// - a user still on the old platform (`legacy`) and unknown users: `NOTFOUND`, so Postfix uses its
///   next table or its default transport;
/// - database errors: `TEMP`, never a bounce.
pub fn transport(key: &str, lookup: impl Fn(&str) -> Result<Option<Route>, RolesError>) -> Reply {
    for user in candidates(key) {
        match lookup(&user) {
            Ok(Some(route)) => return route_reply(&route),
            Ok(None) | Err(RolesError::InvalidUsername(_)) => continue,
            Err(e) => return Reply::Temp(format!("roles database error: {e}")),
        }
    }
    Reply::NotFound
}

fn route_reply(route: &Route) -> Reply {
    match route.user.state {
        UserState::Active => {}
        UserState::Moving => return Reply::Temp("mailbox is being moved".into()),
        UserState::Legacy { .. } => return Reply::NotFound,
    }
    match route.serving() {
        Some(backend) => Reply::Ok(lmtp_nexthop(backend)),
        None => Reply::Temp("backend unavailable".into()),
    }
}

/// `lmtp:inet:<ip>:<port>`; IPv6 addresses in brackets, as Postfix's LMTP client wants them.
pub fn lmtp_nexthop(backend: &Backend) -> String {
    let port = backend.lmtp;
    match backend.ip {
        std::net::IpAddr::V4(ip) => format!("lmtp:inet:{ip}:{port}"),
        std::net::IpAddr::V6(ip) => format!("lmtp:inet:[{ip}]:{port}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mailscale_roles::{BackendState, UserRole};

    fn backend(name: &str, ip: &str, lmtp: u16, state: BackendState, partner: Option<&str>) -> Backend {
        Backend {
            name: name.into(),
            ip: ip.parse().unwrap(),
            imap: 143,
            pop3: 110,
            lmtp,
            partner: partner.map(Into::into),
            state,
        }
    }

    /// alice on a1 (up), bob on b1 (failover, partner b2 up), carol on c1 (failover, partner
    /// down), dave on d1 (down), erin moving, frank legacy, "team@lists" a user with an `@`.
    fn lookup(user: &str) -> Result<Option<Route>, RolesError> {
        let user = mailscale_roles::validate_username(user)?;
        let role = |b: &str, state| UserRole { backend: b.into(), state };
        let route = |r, b, p| Some(Route { user: r, backend: b, partner: p });
        Ok(match user.as_str() {
            "alice" => {
                route(role("a1", UserState::Active), backend("a1", "10.0.0.1", 24, BackendState::Up, None), None)
            }
            "bob" => route(
                role("b1", UserState::Active),
                backend("b1", "10.0.1.1", 24, BackendState::Failover, Some("b2")),
                Some(backend("b2", "10.0.1.2", 2424, BackendState::Up, Some("b1"))),
            ),
            "carol" => route(
                role("c1", UserState::Active),
                backend("c1", "10.0.2.1", 24, BackendState::Failover, Some("c2")),
                Some(backend("c2", "10.0.2.2", 24, BackendState::Down, Some("c1"))),
            ),
            "dave" => {
                route(role("d1", UserState::Active), backend("d1", "10.0.3.1", 24, BackendState::Down, None), None)
            }
            "erin" => route(role("a1", UserState::Moving), backend("a1", "10.0.0.1", 24, BackendState::Up, None), None),
            "frank" => route(
                role("a1", UserState::Legacy { address: "old:143".into() }),
                backend("a1", "10.0.0.1", 24, BackendState::Up, None),
                None,
            ),
            "team@lists" => {
                route(role("v6", UserState::Active), backend("v6", "::1", 24, BackendState::Up, None), None)
            }
            "broken" => return Err(RolesError::Invalid("disk on fire".into())),
            _ => None,
        })
    }

    fn ask(payload: &str) -> String {
        answer(payload.as_bytes(), lookup).to_string()
    }

    #[test]
    fn addresses_resolve_to_the_serving_backend() {
        assert_eq!(ask("transport alice@example.org"), "OK lmtp:inet:10.0.0.1:24");
        assert_eq!(ask("transport Alice@Example.ORG"), "OK lmtp:inet:10.0.0.1:24");
        assert_eq!(ask("transport alice+lists@example.org"), "OK lmtp:inet:10.0.0.1:24");
        assert_eq!(ask("transport team@lists"), "OK lmtp:inet:[::1]:24");
    }

    #[test]
    fn failover_goes_to_the_partner_only_when_it_is_up() {
        assert_eq!(ask("transport bob@example.org"), "OK lmtp:inet:10.0.1.2:2424");
        assert_eq!(ask("transport carol@example.org"), "TEMP backend unavailable");
        assert_eq!(ask("transport dave@example.org"), "TEMP backend unavailable");
    }

    #[test]
    fn user_states() {
        assert_eq!(ask("transport erin@example.org"), "TEMP mailbox is being moved");
        assert_eq!(ask("transport frank@example.org"), "NOTFOUND ");
    }

    #[test]
    fn unknown_users_and_domains_are_not_found() {
        for key in ["nobody@example.org", "example.org", ".example.org", "@example.org", "*", "alice", "alice@", "+x@y"]
        {
            assert_eq!(ask(&format!("transport {key}")), "NOTFOUND ", "{key}");
        }
        assert_eq!(ask("transport we!rd@example.org"), "NOTFOUND ");
    }

    #[test]
    fn database_errors_are_temporary() {
        assert_eq!(ask("transport broken@example.org"), "TEMP roles database error: invalid value: disk on fire");
    }

    #[test]
    fn bad_requests_are_permanent_errors() {
        assert_eq!(ask("virtual alice@example.org"), "PERM unknown map");
        assert_eq!(ask("transport"), "PERM malformed request (want \"<name> <key>\")");
        assert_eq!(answer(b"transport \xff@x", lookup).to_string(), "PERM request is not UTF-8");
    }

    #[test]
    fn candidate_order() {
        assert_eq!(candidates("A+b@X.org"), ["a+b@x.org", "a+b", "a"]);
        assert_eq!(candidates("a@b@c"), ["a@b@c", "a@b"]);
        assert!(candidates("example.org").is_empty());
    }
}
