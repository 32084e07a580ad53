//! The directive table and setters. Each setter parses its arguments with [`crate::conf`] (or
//! the directory/ticket crates) and, on error, fails `nginx -t` with a message that starts with
//! the directive's name.

use std::ffi::{c_char, c_void};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mailscale_ticket::TicketKey;
use ngx::core::{NGX_CONF_ERROR, NGX_CONF_OK};
use ngx::ffi::{
    ngx_command_t, ngx_conf_t, ngx_str_t, ngx_uint_t, NGX_CONF_1MORE, NGX_CONF_NOARGS, NGX_CONF_TAKE1, NGX_CONF_TAKE12,
    NGX_CONF_TAKE123, NGX_HTTP_LOC_CONF, NGX_HTTP_LOC_CONF_OFFSET, NGX_HTTP_MAIN_CONF, NGX_HTTP_SRV_CONF,
    NGX_LOG_EMERG,
};
use ngx::http::{HttpModuleLocationConf, NgxHttpCoreModule};
use ngx::{ngx_conf_log_error, ngx_string};

use super::{bridge, LocConf, ThreadPool};
use crate::cache::CacheSecret;
use crate::conf;
use crate::directory::{Ldap, UsersFile};

/// Upper bound of `mailauth_fail_delay`: nginx keeps the client connection open that long.
const MAX_FAIL_DELAY: Duration = Duration::from_secs(60);

const ANY: u32 = NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF;

type Setter = unsafe extern "C" fn(*mut ngx_conf_t, *mut ngx_command_t, *mut c_void) -> *mut c_char;

const fn command(name: ngx_str_t, type_: u32, set: Setter) -> ngx_command_t {
    ngx_command_t {
        name,
        type_: type_ as ngx_uint_t,
        set: Some(set),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: 0,
        post: std::ptr::null_mut(),
    }
}

// A `static mut` because nginx's `ngx_command_t` holds raw pointers (not `Sync`); nginx only
// reads it.
pub(super) static mut COMMANDS: [ngx_command_t; 14] = [
    command(ngx_string!("mailauth"), NGX_HTTP_LOC_CONF | NGX_CONF_NOARGS, set_mailauth),
    command(ngx_string!("mailauth_roles"), ANY | NGX_CONF_TAKE1, set_roles),
    command(ngx_string!("mailauth_users"), ANY | NGX_CONF_TAKE1, set_users),
    command(ngx_string!("mailauth_ldap"), ANY | NGX_CONF_1MORE, set_ldap),
    command(ngx_string!("mailauth_cache"), ANY | NGX_CONF_1MORE, set_cache),
    command(ngx_string!("mailauth_cache_ttl"), ANY | NGX_CONF_TAKE1, set_cache_ttl),
    command(ngx_string!("mailauth_cache_secret"), ANY | NGX_CONF_TAKE1, set_cache_secret),
    command(ngx_string!("mailauth_ticket_key"), ANY | NGX_CONF_TAKE1, set_ticket_key),
    command(ngx_string!("mailauth_ticket_ttl"), ANY | NGX_CONF_TAKE1, set_ticket_ttl),
    command(ngx_string!("mailauth_fail_delay"), ANY | NGX_CONF_TAKE1, set_fail_delay),
    command(ngx_string!("mailauth_lockout"), ANY | NGX_CONF_TAKE12, set_lockout),
    command(ngx_string!("mailauth_max_attempts"), ANY | NGX_CONF_TAKE1, set_max_attempts),
    command(ngx_string!("mailauth_thread_pool"), ANY | NGX_CONF_TAKE123, set_thread_pool),
    ngx_command_t::empty(),
];

/// Runs a setter body: hands it the directive's arguments (without the name) and this module's
/// location configuration; an `Err` is logged as `"<directive>" <message>` and fails the
/// configuration.
fn setter(
    cf: *mut ngx_conf_t,
    conf: *mut c_void,
    body: impl FnOnce(&mut LocConf, &[&str], *mut ngx_conf_t) -> Result<(), String>,
) -> *mut c_char {
    // SAFETY: nginx calls a setter with the valid ngx_conf_t being parsed; `cf->args` is an array
    // of ngx_str_t whose first element is the directive name (arity already checked by nginx).
    let raw: Vec<String> = unsafe { (*cf).args.as_ref() }
        .map(|a| {
            // SAFETY: the array's elements are ngx_str_t.
            unsafe { a.as_slice::<ngx_str_t>() }
                .iter()
                .map(|s| String::from_utf8_lossy(s.as_bytes()).into_owned())
                .collect()
        })
        .unwrap_or_default();
    let Some((name, args)) = raw.split_first() else { return NGX_CONF_ERROR };
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // SAFETY: with `conf: NGX_HTTP_LOC_CONF_OFFSET`, nginx passes this module's location
    // configuration, allocated by create_loc_conf as a `LocConf`, not otherwise borrowed now.
    let conf = unsafe { &mut *conf.cast::<LocConf>() };
    match body(conf, &args, cf) {
        Ok(()) => NGX_CONF_OK,
        Err(message) => {
            ngx_conf_log_error!(NGX_LOG_EMERG, cf, "\"{name}\" {message}");
            NGX_CONF_ERROR
        }
    }
}

fn once<T>(slot: &mut Option<T>, value: T) -> Result<(), String> {
    if slot.is_some() {
        return Err("is duplicate".into());
    }
    *slot = Some(value);
    Ok(())
}

/// `mailauth;`: make this location's content handler answer auth_http requests.
unsafe extern "C" fn set_mailauth(cf: *mut ngx_conf_t, _cmd: *mut ngx_command_t, conf: *mut c_void) -> *mut c_char {
    setter(cf, conf, |conf, _, cf| {
        // SAFETY: cf is valid during the call (see `setter`).
        let clcf = NgxHttpCoreModule::location_conf_mut(unsafe { &*cf }).ok_or("outside a location")?;
        if clcf.handler.is_some() || conf.enabled {
            return Err("is duplicate or conflicts with another content handler".into());
        }
        clcf.handler = Some(bridge::mailauth_handler);
        conf.enabled = true;
        Ok(())
    })
}

unsafe extern "C" fn set_roles(cf: *mut ngx_conf_t, _cmd: *mut ngx_command_t, conf: *mut c_void) -> *mut c_char {
    setter(cf, conf, |conf, args, _| {
        let dir = PathBuf::from(args[0]);
        // Opened lazily in each worker (LMDB environments must not cross fork()); check now
        // that it is a roles database at all.
        if !dir.join("data.mdb").is_file() {
            return Err(format!(
                "{:?}: no roles database there (no data.mdb); create it with `mailctl roles --db {} ...`",
                args[0], args[0]
            ));
        }
        once(&mut conf.roles_dir, dir)
    })
}

unsafe extern "C" fn set_users(cf: *mut ngx_conf_t, _cmd: *mut ngx_command_t, conf: *mut c_void) -> *mut c_char {
    setter(cf, conf, |conf, args, _| {
        let users = UsersFile::load(std::path::Path::new(args[0]))?;
        once(&mut conf.users, Arc::new(users))
    })
}

unsafe extern "C" fn set_ldap(cf: *mut ngx_conf_t, _cmd: *mut ngx_command_t, conf: *mut c_void) -> *mut c_char {
    setter(cf, conf, |conf, args, _| {
        let config = conf::parse_ldap(args, conf::read_secret_line)?;
        once(&mut conf.ldap, Arc::new(Ldap::new(config)))
    })
}

unsafe extern "C" fn set_cache(cf: *mut ngx_conf_t, _cmd: *mut ngx_command_t, conf: *mut c_void) -> *mut c_char {
    setter(cf, conf, |conf, args, _| {
        let (url, timeout) = conf::parse_cache(args)?;
        crate::store::Redis::new(&url, timeout)?; // the URL parses
        once(&mut conf.cache, (url, timeout))
    })
}

unsafe extern "C" fn set_cache_ttl(cf: *mut ngx_conf_t, _cmd: *mut ngx_command_t, conf: *mut c_void) -> *mut c_char {
    setter(cf, conf, |conf, args, _| {
        let ttl = conf::parse_secs(args[0], Duration::ZERO, Duration::from_secs(7 * 86_400))?;
        once(&mut conf.cache_ttl, ttl)
    })
}

unsafe extern "C" fn set_cache_secret(cf: *mut ngx_conf_t, _cmd: *mut ngx_command_t, conf: *mut c_void) -> *mut c_char {
    setter(cf, conf, |conf, args, _| {
        let bytes = std::fs::read(args[0]).map_err(|e| format!("cannot read {}: {e}", args[0]))?;
        let secret = CacheSecret::new(bytes).map_err(|e| format!("{}: {e}", args[0]))?;
        once(&mut conf.cache_secret, secret)
    })
}

unsafe extern "C" fn set_ticket_key(cf: *mut ngx_conf_t, _cmd: *mut ngx_command_t, conf: *mut c_void) -> *mut c_char {
    setter(cf, conf, |conf, args, _| {
        let key = TicketKey::from_file(std::path::Path::new(args[0])).map_err(|e| format!("{}: {e}", args[0]))?;
        once(&mut conf.ticket_key, Arc::new(key))
    })
}

unsafe extern "C" fn set_ticket_ttl(cf: *mut ngx_conf_t, _cmd: *mut ngx_command_t, conf: *mut c_void) -> *mut c_char {
    setter(cf, conf, |conf, args, _| {
        let ttl = conf::parse_secs(args[0], Duration::from_secs(1), Duration::from_secs(3600))?;
        once(&mut conf.ticket_ttl, ttl)
    })
}

unsafe extern "C" fn set_fail_delay(cf: *mut ngx_conf_t, _cmd: *mut ngx_command_t, conf: *mut c_void) -> *mut c_char {
    setter(cf, conf, |conf, args, _| {
        let delay = conf::parse_secs(args[0], Duration::ZERO, MAX_FAIL_DELAY)?;
        once(&mut conf.fail_delay, delay)
    })
}

unsafe extern "C" fn set_lockout(cf: *mut ngx_conf_t, _cmd: *mut ngx_command_t, conf: *mut c_void) -> *mut c_char {
    setter(cf, conf, |conf, args, _| {
        let lockout = conf::parse_lockout(args)?;
        once(&mut conf.lockout, lockout)
    })
}

unsafe extern "C" fn set_max_attempts(cf: *mut ngx_conf_t, _cmd: *mut ngx_command_t, conf: *mut c_void) -> *mut c_char {
    setter(cf, conf, |conf, args, _| {
        let n = conf::parse_number(args[0], 1, 20)?;
        once(&mut conf.max_attempts, n)
    })
}

unsafe extern "C" fn set_thread_pool(cf: *mut ngx_conf_t, _cmd: *mut ngx_command_t, conf: *mut c_void) -> *mut c_char {
    setter(cf, conf, |conf, args, cf| {
        let cache = ThreadPool::add(cf, args[0]).ok_or("cannot register the thread pool")?;
        let pool = |n: usize, fallback: &ThreadPool| match args.get(n) {
            Some(name) => ThreadPool::add(cf, name).ok_or("cannot register the thread pool"),
            None => Ok(fallback.clone()),
        };
        let directory = pool(1, &cache)?;
        let users = pool(2, &cache)?;
        once(&mut conf.pools, [cache, directory, users])
    })
}
