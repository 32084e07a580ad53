//! From the roles database's answer ([`mailscale_roles::Route`]) to where nginx proxies.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use mailscale_roles::{Route, UserState};

use crate::decision::{Backend, Routing};

/// IMAP and POP3 ports of a legacy (not yet migrated) address given without a port.
const LEGACY_PORTS: (u16, u16) = (143, 110);

/// Where a verified user goes: the serving backend (its own, or its partner in failover); a
/// temporary failure while the user is being moved or nobody serves the mailbox; the old
/// platform for a legacy user (`ip` → IMAP 143 / POP3 110, `ip:port` → that port for both).
pub fn routing(route: Option<&Route>) -> Routing {
    let Some(route) = route else { return Routing::NoRole };
    match &route.user.state {
        UserState::Moving => Routing::Unavailable("the mailbox is being moved".into()),
        UserState::Legacy { address } => {
            if let Ok(ip) = address.parse::<IpAddr>() {
                Routing::Backend(Backend { ip, imap_port: LEGACY_PORTS.0, pop3_port: LEGACY_PORTS.1 })
            } else if let Ok(sa) = address.parse::<SocketAddr>() {
                Routing::Backend(Backend { ip: sa.ip(), imap_port: sa.port(), pop3_port: sa.port() })
            } else {
                Routing::Unavailable(format!("legacy address {address:?} is not an IP address (nginx needs one)"))
            }
        }
        UserState::Active => match route.serving() {
            Some(b) => Routing::Backend(Backend { ip: b.ip, imap_port: b.imap, pop3_port: b.pop3 }),
            None => Routing::Unavailable(format!(
                "backend {} is {}{}",
                route.backend.name,
                route.backend.state,
                route.partner.as_ref().map(|p| format!(", partner {} is {}", p.name, p.state)).unwrap_or_default()
            )),
        },
    }
}

/// Most users a [`RoutingCache`] remembers before it starts over.
pub const ROUTING_CACHE_MAX_ENTRIES: usize = 100_000;

/// A worker's routings of recent lookups, kept while the roles database's generation
/// ([`mailscale_roles::Roles::generation`]) stays the same: any commit (a role change, a
/// failover) empties it, so an answer never differs from a fresh lookup's; it only saves the
/// read transaction and the decoding while nothing changes.
#[derive(Debug, Default)]
pub struct RoutingCache {
    generation: u64,
    routes: HashMap<String, Routing>,
}

impl RoutingCache {
    /// The routing of `user` as of `generation` (read *before* `lookup` runs): the kept one if
    /// the generation is unchanged, else `lookup`'s, which is then kept. Errors are not kept.
    ///
    /// # Errors
    ///
    /// `lookup`'s error.
    pub fn get_or_lookup<E>(
        &mut self,
        generation: u64,
        user: &str,
        lookup: impl FnOnce() -> Result<Routing, E>,
    ) -> Result<Routing, E> {
        if generation != self.generation {
            self.routes.clear();
            self.generation = generation;
        }
        if let Some(routing) = self.routes.get(user) {
            return Ok(routing.clone());
        }
        let routing = lookup()?;
        if self.routes.len() >= ROUTING_CACHE_MAX_ENTRIES {
            self.routes.clear();
        }
        self.routes.insert(user.to_owned(), routing.clone());
        Ok(routing)
    }
}

#[cfg(test)]
mod tests {
    use mailscale_roles::{Backend as RB, BackendState, UserRole};

    use super::*;

    fn backend(name: &str, ip: &str, state: BackendState, partner: Option<&str>) -> RB {
        RB {
            name: name.into(),
            ip: ip.parse().unwrap(),
            imap: 10143,
            pop3: 10110,
            lmtp: 10024,
            partner: partner.map(Into::into),
            state,
        }
    }

    fn route(state: UserState, own: BackendState, partner: Option<BackendState>) -> Route {
        Route {
            user: UserRole { backend: "a1".into(), state },
            backend: backend("a1", "127.0.0.1", own, partner.map(|_| "a2")),
            partner: partner.map(|s| backend("a2", "127.0.0.2", s, Some("a1"))),
        }
    }

    fn b(ip: &str, imap: u16, pop3: u16) -> Routing {
        Routing::Backend(Backend { ip: ip.parse().unwrap(), imap_port: imap, pop3_port: pop3 })
    }

    #[test]
    fn routes() {
        use BackendState::*;
        assert_eq!(routing(None), Routing::NoRole);
        assert_eq!(routing(Some(&route(UserState::Active, Up, None))), b("127.0.0.1", 10143, 10110));
        assert_eq!(routing(Some(&route(UserState::Active, Failover, Some(Up)))), b("127.0.0.2", 10143, 10110));
        assert!(matches!(routing(Some(&route(UserState::Active, Down, Some(Up)))), Routing::Unavailable(_)));
        assert!(matches!(routing(Some(&route(UserState::Active, Failover, Some(Down)))), Routing::Unavailable(_)));
        assert!(matches!(routing(Some(&route(UserState::Moving, Up, None))), Routing::Unavailable(_)));
        let legacy = |a: &str| routing(Some(&route(UserState::Legacy { address: a.into() }, Up, None)));
        assert_eq!(legacy("192.0.2.9"), b("192.0.2.9", 143, 110));
        assert_eq!(legacy("192.0.2.9:1143"), b("192.0.2.9", 1143, 1143));
        assert!(matches!(legacy("old.example.org"), Routing::Unavailable(_)));
    }

    #[test]
    fn routing_cache_keeps_answers_only_within_a_generation() {
        let mut cache = RoutingCache::default();
        let up = b("127.0.0.1", 10143, 10110);
        let partner = b("127.0.0.2", 10143, 10110);
        let mut lookups = 0;
        let mut get = |cache: &mut RoutingCache, generation, routing: &Routing| {
            cache.get_or_lookup(generation, "carol", || {
                lookups += 1;
                Ok::<_, ()>(routing.clone())
            })
        };
        assert_eq!(get(&mut cache, 7, &up), Ok(up.clone()));
        assert_eq!(get(&mut cache, 7, &partner), Ok(up.clone()), "same generation: kept");
        // A commit (e.g. failover to the partner) is seen by the very next login.
        assert_eq!(get(&mut cache, 8, &partner), Ok(partner.clone()));
        assert_eq!(get(&mut cache, 8, &up), Ok(partner));
        drop(get);
        assert_eq!(lookups, 2);
        // Errors are not kept.
        assert_eq!(cache.get_or_lookup(8, "dave", || Err("lmdb")), Err("lmdb"));
        assert_eq!(cache.get_or_lookup(8, "dave", || Ok::<_, &str>(Routing::NoRole)), Ok(Routing::NoRole));
    }
}
