//! nginx FFI glue: the `ngx_http_mailauth_module` statics, the location configuration, the
//! directive setters ([`directives`]) and the content handler with its thread-pool bridge
//! ([`bridge`]). Everything it decides is delegated to the plain-Rust modules of the crate.
//! See README.md for the directives.

// The crate denies unsafe code; this module is the FFI boundary and the one exception.
#![allow(unsafe_code)]

mod bridge;
mod directives;

use std::ffi::{c_char, c_void};
use std::path::PathBuf;
use std::ptr::{addr_of, addr_of_mut};
use std::sync::Arc;
use std::time::Duration;

use mailscale_ticket::TicketKey;
use ngx::core::{NGX_CONF_ERROR, NGX_CONF_OK};
use ngx::ffi::{
    ngx_conf_t, ngx_http_module_t, ngx_module_t, ngx_str_t, ngx_thread_pool_add, ngx_thread_pool_t, ngx_uint_t,
    NGX_HTTP_MODULE, NGX_LOG_EMERG,
};
use ngx::http::{HttpModule, HttpModuleLocationConf};
use ngx::{ngx_conf_log_error, ngx_modules};

use crate::cache::{CacheSecret, LockoutPolicy};
use crate::decision::Policy;
use crate::directory::{Directory, Ldap, UsersFile};
use crate::flow::Settings;
use crate::store::{CredStore, Redis};

/// Default `mailauth_cache_ttl`.
const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(300);
/// Default `mailauth_ticket_ttl`: nginx uses the ticket at once; a short life limits replays.
const DEFAULT_TICKET_TTL: Duration = Duration::from_secs(60);
/// The thread pool used when `mailauth_thread_pool` is not given (nginx's built-in default).
const DEFAULT_POOL: &str = "default";

/// An nginx thread pool (from `thread_pool` in the main context), by name.
#[derive(Clone)]
struct ThreadPool {
    pool: *mut ngx_thread_pool_t,
}

impl ThreadPool {
    /// Looks the pool up (or registers it for `thread_pool`'s check: an undefined name other
    /// than `default` fails `nginx -t` with nginx's "unknown thread pool").
    fn add(cf: *mut ngx_conf_t, name: &str) -> Option<Self> {
        // nginx keeps the pointer to the name: give it bytes from the configuration pool.
        // SAFETY: cf is the configuration being parsed; ngx_pnalloc returns pool memory that
        // lives as long as the cycle, or null.
        let data = unsafe { ngx::ffi::ngx_pnalloc((*cf).pool, name.len()) }.cast::<u8>();
        if data.is_null() {
            return None;
        }
        // SAFETY: data has room for name.len() bytes and does not overlap `name`.
        unsafe { std::ptr::copy_nonoverlapping(name.as_ptr(), data, name.len()) };
        let mut s = ngx_str_t { len: name.len(), data };
        // SAFETY: called while parsing the configuration, with a valid cf and name.
        let pool = unsafe { ngx_thread_pool_add(cf, &mut s) };
        (!pool.is_null()).then_some(Self { pool })
    }
}

/// What a `mailauth` location needs at request time, built once when the configuration is
/// merged.
struct Runtime {
    settings: Arc<Settings>,
    roles_dir: PathBuf,
    ticket_key: Arc<TicketKey>,
    ticket_ttl: u64,
    /// Redis pool, directory pool.
    pools: [ThreadPool; 3],
}

/// Location configuration of the module. `None`: not set at this level (inherited).
#[derive(Default)]
struct LocConf {
    /// `mailauth;` in this location.
    enabled: bool,
    roles_dir: Option<PathBuf>,
    users: Option<Arc<UsersFile>>,
    ldap: Option<Arc<Ldap>>,
    /// URL, timeout.
    cache: Option<(String, Duration)>,
    cache_ttl: Option<Duration>,
    cache_secret: Option<CacheSecret>,
    ticket_key: Option<Arc<TicketKey>>,
    ticket_ttl: Option<Duration>,
    fail_delay: Option<Duration>,
    /// `Some(None)`: `mailauth_lockout off`.
    lockout: Option<Option<LockoutPolicy>>,
    max_attempts: Option<u32>,
    pools: Option<[ThreadPool; 3]>,
    runtime: Option<Runtime>,
}

fn inherit<T: Clone>(slot: &mut Option<T>, prev: &Option<T>) {
    if slot.is_none() {
        slot.clone_from(prev);
    }
}

impl LocConf {
    fn merge_from(&mut self, prev: &LocConf) {
        inherit(&mut self.roles_dir, &prev.roles_dir);
        inherit(&mut self.users, &prev.users);
        inherit(&mut self.ldap, &prev.ldap);
        inherit(&mut self.cache, &prev.cache);
        inherit(&mut self.cache_ttl, &prev.cache_ttl);
        inherit(&mut self.cache_secret, &prev.cache_secret);
        inherit(&mut self.ticket_key, &prev.ticket_key);
        inherit(&mut self.ticket_ttl, &prev.ticket_ttl);
        inherit(&mut self.fail_delay, &prev.fail_delay);
        inherit(&mut self.lockout, &prev.lockout);
        inherit(&mut self.max_attempts, &prev.max_attempts);
        inherit(&mut self.pools, &prev.pools);
    }

    /// Checks a `mailauth` location's settings and builds its [`Runtime`].
    fn build(&mut self, cf: *mut ngx_conf_t) -> Result<Runtime, String> {
        let roles_dir = self.roles_dir.clone().ok_or("needs \"mailauth_roles <dir>\" (the roles database)")?;
        let ticket_key =
            self.ticket_key.clone().ok_or("needs \"mailauth_ticket_key <file>\" (the key shared with the backends)")?;
        let mut directories: Vec<Arc<dyn Directory>> = Vec::new();
        if let Some(users) = &self.users {
            directories.push(users.clone());
        }
        if let Some(ldap) = &self.ldap {
            directories.push(ldap.clone());
        }
        if directories.is_empty() {
            return Err("needs a directory: \"mailauth_users <file>\" and/or \"mailauth_ldap ...\"".into());
        }
        let store: Option<Arc<dyn CredStore>> = match &self.cache {
            Some((url, timeout)) => Some(Arc::new(Redis::new(url, *timeout)?)),
            None => None,
        };
        let secret = match (&self.cache_secret, &store) {
            (Some(s), _) => s.clone(),
            (None, Some(_)) => {
                return Err("\"mailauth_cache\" needs \"mailauth_cache_secret <file>\" (the HMAC key of cache \
                            entries, the same on every frontend)"
                    .into())
            }
            (None, None) => random_secret()?,
        };
        let pools = match &self.pools {
            Some(p) => p.clone(),
            None => {
                let p = ThreadPool::add(cf, DEFAULT_POOL).ok_or("cannot register the default thread pool")?;
                [p.clone(), p.clone(), p]
            }
        };
        let defaults = Policy::default();
        let settings = Settings {
            policy: Policy {
                fail_delay: self.fail_delay.unwrap_or(defaults.fail_delay),
                max_attempts: self.max_attempts.unwrap_or(defaults.max_attempts),
            },
            lockout: self.lockout.flatten(),
            cache_ttl: self.cache_ttl.unwrap_or(DEFAULT_CACHE_TTL),
            secret,
            store,
            directories,
        };
        Ok(Runtime {
            settings: Arc::new(settings),
            roles_dir,
            ticket_key,
            ticket_ttl: self.ticket_ttl.unwrap_or(DEFAULT_TICKET_TTL).as_secs(),
            pools,
        })
    }
}

/// A per-process key for the worker cache tier when no `mailauth_cache_secret` is set (the
/// master makes it; forked workers share it; it never leaves memory).
fn random_secret() -> Result<CacheSecret, String> {
    let mut key = vec![0u8; 32];
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut key))
        .map_err(|e| format!("cannot read /dev/urandom: {e}"))?;
    CacheSecret::new(key).map_err(|e| e.to_string())
}

struct Module;

impl HttpModule for Module {
    fn module() -> &'static ngx_module_t {
        // SAFETY: the module static is written only by nginx while it loads the configuration
        // (ctx_index, index), single-threaded, before any request handler runs.
        unsafe { &*addr_of!(ngx_http_mailauth_module) }
    }
}

// SAFETY: create_loc_conf (HttpModule's default) allocates exactly a `LocConf` for this module.
unsafe impl HttpModuleLocationConf for Module {
    type LocationConf = LocConf;
}

/// Merges a location's configuration with its parent's and, in a `mailauth` location, checks
/// it and builds the [`Runtime`]; errors fail `nginx -t`.
unsafe extern "C" fn merge_loc_conf(cf: *mut ngx_conf_t, prev: *mut c_void, conf: *mut c_void) -> *mut c_char {
    // SAFETY: nginx passes two distinct LocConf allocated by create_loc_conf.
    let (prev, conf) = unsafe { (&*prev.cast::<LocConf>(), &mut *conf.cast::<LocConf>()) };
    conf.merge_from(prev);
    if !conf.enabled {
        return NGX_CONF_OK;
    }
    match conf.build(cf) {
        Ok(runtime) => {
            conf.runtime = Some(runtime);
            NGX_CONF_OK
        }
        Err(message) => {
            ngx_conf_log_error!(NGX_LOG_EMERG, cf, "\"mailauth\" {message}");
            NGX_CONF_ERROR
        }
    }
}

static NGX_HTTP_MAILAUTH_MODULE_CTX: ngx_http_module_t = ngx_http_module_t {
    preconfiguration: None,
    postconfiguration: None,
    create_main_conf: None,
    init_main_conf: None,
    create_srv_conf: None,
    merge_srv_conf: None,
    create_loc_conf: Some(Module::create_loc_conf),
    merge_loc_conf: Some(merge_loc_conf),
};

/// The module, under the name nginx looks up in the `.so` (`ngx_modules` below lists it).
#[no_mangle]
#[used]
#[allow(non_upper_case_globals)]
pub static mut ngx_http_mailauth_module: ngx_module_t = ngx_module_t {
    ctx: addr_of!(NGX_HTTP_MAILAUTH_MODULE_CTX) as *mut c_void,
    // SAFETY: only the address of the static is taken; nginx reads the array while parsing the
    // configuration.
    commands: unsafe { addr_of_mut!(directives::COMMANDS[0]) },
    type_: NGX_HTTP_MODULE as ngx_uint_t,
    ..ngx_module_t::default()
};

ngx_modules!(ngx_http_mailauth_module);
