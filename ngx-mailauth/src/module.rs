//! nginx FFI glue: the `ngx_http_mailauth_module` statics, the `mailauth` and
//! `mailauth_fail_delay` directives and the content handler. Everything it decides is delegated
//! to [`crate::decision`].
//!
//! Directives (see README.md):
//! - `mailauth;` (location): answer auth_http requests in this location.
//! - `mailauth_fail_delay <time>;` (http, server, location; default 3s, at most 60s): the
//!   `Auth-Wait` after a refused login, parsed with nginx's own time parser (`ngx_parse_time`).

// The crate denies unsafe code; this module is the FFI boundary and the one exception.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_void};
use std::ptr::{addr_of, addr_of_mut};
use std::time::Duration;

use ngx::core::{Status, NGX_CONF_ERROR, NGX_CONF_OK};
use ngx::ffi::{
    ngx_command_t, ngx_conf_t, ngx_http_module_t, ngx_http_request_t, ngx_int_t, ngx_module_t, ngx_parse_time,
    ngx_str_t, ngx_uint_t, NGX_CONF_NOARGS, NGX_CONF_TAKE1, NGX_ERROR, NGX_HTTP_LOC_CONF, NGX_HTTP_LOC_CONF_OFFSET,
    NGX_HTTP_MAIN_CONF, NGX_HTTP_MODULE, NGX_HTTP_SRV_CONF, NGX_LOG_EMERG, NGX_LOG_ERR, NGX_LOG_INFO,
};
use ngx::http::{
    HTTPStatus, HttpModule, HttpModuleLocationConf, Merge, MergeConfigError, Method, NgxHttpCoreModule, Request,
};
use ngx::{ngx_conf_log_error, ngx_log_error, ngx_modules, ngx_string};

use crate::decision::{self, Answer, Policy};

/// Upper bound of `mailauth_fail_delay`: nginx keeps the client connection open that long.
const MAX_FAIL_DELAY: Duration = Duration::from_secs(60);

/// Location configuration of the module.
#[derive(Debug, Default)]
struct LocConf {
    /// `mailauth_fail_delay`; `None` when not set at this level.
    fail_delay: Option<Duration>,
}

impl Merge for LocConf {
    fn merge(&mut self, prev: &Self) -> Result<(), MergeConfigError> {
        if self.fail_delay.is_none() {
            self.fail_delay = prev.fail_delay;
        }
        Ok(())
    }
}

impl LocConf {
    fn policy(&self) -> Policy {
        let default = Policy::default();
        Policy { fail_delay: self.fail_delay.unwrap_or(default.fail_delay), ..default }
    }
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

static NGX_HTTP_MAILAUTH_MODULE_CTX: ngx_http_module_t = ngx_http_module_t {
    preconfiguration: None,
    postconfiguration: None,
    create_main_conf: None,
    init_main_conf: None,
    create_srv_conf: None,
    merge_srv_conf: None,
    create_loc_conf: Some(Module::create_loc_conf),
    merge_loc_conf: Some(Module::merge_loc_conf),
};

// A `static mut` because nginx's `ngx_command_t` holds raw pointers (not `Sync`); nginx only
// reads it.
static mut NGX_HTTP_MAILAUTH_COMMANDS: [ngx_command_t; 3] = [
    ngx_command_t {
        name: ngx_string!("mailauth"),
        type_: (NGX_HTTP_LOC_CONF | NGX_CONF_NOARGS) as ngx_uint_t,
        set: Some(set_mailauth),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: 0,
        post: std::ptr::null_mut(),
    },
    ngx_command_t {
        name: ngx_string!("mailauth_fail_delay"),
        type_: (NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1) as ngx_uint_t,
        set: Some(set_fail_delay),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: 0,
        post: std::ptr::null_mut(),
    },
    ngx_command_t::empty(),
];

/// The module, under the name nginx looks up in the `.so` (`ngx_modules` below lists it).
#[no_mangle]
#[used]
#[allow(non_upper_case_globals)]
pub static mut ngx_http_mailauth_module: ngx_module_t = ngx_module_t {
    ctx: addr_of!(NGX_HTTP_MAILAUTH_MODULE_CTX) as *mut c_void,
    // SAFETY: only the address of the static is taken; nginx reads the array while parsing the
    // configuration.
    commands: unsafe { addr_of_mut!(NGX_HTTP_MAILAUTH_COMMANDS[0]) },
    type_: NGX_HTTP_MODULE as ngx_uint_t,
    ..ngx_module_t::default()
};

ngx_modules!(ngx_http_mailauth_module);

/// Error string nginx prints after `"<directive>" directive`.
fn conf_err(msg: &'static std::ffi::CStr) -> *mut c_char {
    msg.as_ptr().cast_mut()
}

/// `mailauth;`: make this location's content handler answer auth_http requests.
extern "C" fn set_mailauth(cf: *mut ngx_conf_t, _cmd: *mut ngx_command_t, _conf: *mut c_void) -> *mut c_char {
    // SAFETY: nginx calls a directive setter with the valid ngx_conf_t being parsed, which is not
    // otherwise borrowed during the call.
    let cf = unsafe { &mut *cf };
    let Some(clcf) = NgxHttpCoreModule::location_conf_mut(cf) else {
        return NGX_CONF_ERROR;
    };
    if clcf.handler.is_some() {
        return conf_err(c"is duplicate or conflicts with another content handler");
    }
    clcf.handler = Some(mailauth_handler);
    NGX_CONF_OK
}

/// `mailauth_fail_delay <time>;`
extern "C" fn set_fail_delay(cf: *mut ngx_conf_t, _cmd: *mut ngx_command_t, conf: *mut c_void) -> *mut c_char {
    // SAFETY: with `conf: NGX_HTTP_LOC_CONF_OFFSET`, nginx passes this module's location
    // configuration, allocated by create_loc_conf as a `LocConf`.
    let conf = unsafe { &mut *conf.cast::<LocConf>() };
    if conf.fail_delay.is_some() {
        return conf_err(c"is duplicate");
    }
    // SAFETY: for a NGX_CONF_TAKE1 directive nginx has checked that `cf->args` is an array of
    // exactly two ngx_str_t: the directive name and its argument.
    let mut value: ngx_str_t = unsafe { (*cf).args.as_ref().map(|a| a.as_slice::<ngx_str_t>()[1]) }.unwrap_or_default();
    // SAFETY: `value` is a valid ngx_str_t pointing into the configuration buffer; with
    // is_sec = 1 ngx_parse_time only reads it and returns seconds or NGX_ERROR.
    let secs = unsafe { ngx_parse_time(&mut value, 1) };
    let delay = u64::try_from(secs).ok().filter(|_| secs != NGX_ERROR as _).map(Duration::from_secs);
    match delay {
        Some(delay) if delay <= MAX_FAIL_DELAY => {
            conf.fail_delay = Some(delay);
            NGX_CONF_OK
        }
        Some(_) => {
            ngx_conf_log_error!(
                NGX_LOG_EMERG,
                cf,
                "\"mailauth_fail_delay\" {value} is too long: at most {}s (nginx holds the \
                 client connection that long)",
                MAX_FAIL_DELAY.as_secs()
            );
            NGX_CONF_ERROR
        }
        None => {
            ngx_conf_log_error!(
                NGX_LOG_EMERG,
                cf,
                "\"mailauth_fail_delay\" has an invalid time \"{value}\": expected seconds, \
                 e.g. 3 or 3s or 1m"
            );
            NGX_CONF_ERROR
        }
    }
}

extern "C" fn mailauth_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: nginx calls a content handler with a valid request that stays alive and is not
    // touched by anything else until the handler returns.
    let request = unsafe { Request::from_ngx_http_request(r) };
    handle(request).0
}

/// Answers one auth_http request on the event loop (nothing here blocks).
fn handle(request: &mut Request) -> Status {
    if !matches!(request.method(), Method::GET | Method::HEAD) {
        return HTTPStatus::NOT_ALLOWED.into();
    }
    let rc = request.discard_request_body();
    if rc != Status::NGX_OK {
        return rc;
    }
    let policy = Module::location_conf(request).map(LocConf::policy).unwrap_or_default();

    let headers: Vec<(&[u8], &[u8])> =
        request.headers_in_iterator().map(|(k, v)| (k.as_bytes(), v.as_bytes())).collect();
    let answer = match decision::parse_request(headers.iter().copied()) {
        Ok(auth) => {
            let answer = decision::decide(&auth, &policy);
            if let Answer::Refuse { message, .. } = &answer {
                ngx_log_error!(
                    NGX_LOG_INFO,
                    request.log(),
                    "mailauth: {} login of {:?} from {} refused: {message}",
                    auth.protocol.as_str(),
                    auth.user.as_str(),
                    auth.client_ip.map_or_else(|| "?".to_owned(), |ip| ip.to_string()),
                );
            }
            answer
        }
        Err(error) => {
            ngx_log_error!(NGX_LOG_ERR, request.log(), "mailauth: bad auth_http request: {error}");
            decision::decide_unparsable(&error, decision::attempt_of(headers.iter().copied()), &policy)
        }
    };
    drop(headers);

    request.set_status(HTTPStatus::OK);
    for (name, value) in answer.headers() {
        if request.add_header_out(name, &value).is_none() {
            return HTTPStatus::INTERNAL_SERVER_ERROR.into();
        }
    }
    request.set_content_length_n(0);
    request.as_mut().set_header_only(1);
    request.send_header()
}
