//! The content handler and the bridge to nginx's thread pools.
//!
//! A login whose answer needs I/O (Redis, the directory) is a [`Login`] moved into the context
//! of an nginx thread task (`ngx_thread_task_alloc` on the request pool): plain Rust data, no
//! pointer into the request. The handler bumps `r->main->count`, posts the task and returns
//! `NGX_DONE`. A pool thread runs [`Login::run`]; nginx then calls [`job_done`] on the worker's
//! event loop (through its notify event), which resumes the login and either posts the same
//! task again (next phase, possibly on the other pool) or answers and finalizes the request,
//! which drops the extra count. Only the event loop thread ever touches `r`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::c_void;
use std::mem::offset_of;
use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use mailscale_roles::Roles;
use ngx::core::Status;
use ngx::ffi::{
    ngx_event_t, ngx_http_finalize_request, ngx_http_request_t, ngx_http_run_posted_requests, ngx_int_t, ngx_log_t,
    ngx_thread_task_alloc, ngx_thread_task_post, ngx_thread_task_t, NGX_DONE, NGX_LOG_ERR, NGX_LOG_INFO, NGX_LOG_WARN,
    NGX_OK,
};
use ngx::http::{HTTPStatus, HttpModuleLocationConf, Method, Request};
use ngx::ngx_log_error;

use super::{Module, Runtime};
use crate::decision::{self, Answer, Routing, TEMP_FAILURE};
use crate::flow::{Login, Pool, Step, Worker};
use crate::routing::{routing, RoutingCache};

thread_local! {
    /// This worker's cache tier and Redis state (event loop thread only).
    static WORKER: RefCell<Worker> = RefCell::new(Worker::default());
    /// Roles databases opened by this worker, by directory (opened after fork, on first use),
    /// each with the routings of recent lookups.
    static ROLES: RefCell<HashMap<PathBuf, (Roles, RoutingCache)>> = RefCell::new(HashMap::new());
}

/// The context of a thread task.
struct Job {
    login: Login,
    /// [`Login::run`] panicked on the pool thread.
    panicked: bool,
}

/// The `mailauth` content handler.
pub(super) unsafe extern "C" fn mailauth_handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: nginx calls a content handler with a valid request that is not touched by
    // anything else until the handler returns.
    let request = unsafe { Request::from_ngx_http_request(r) };
    if !matches!(request.method(), Method::GET | Method::HEAD) {
        return Status::from(HTTPStatus::NOT_ALLOWED).0;
    }
    let rc = request.discard_request_body();
    if rc != Status::NGX_OK {
        return rc.0;
    }
    let Some(rt) = Module::location_conf(request).and_then(|c| c.runtime.as_ref()) else {
        return Status::from(HTTPStatus::INTERNAL_SERVER_ERROR).0;
    };
    // Walked in place (twice only for a request that does not parse), not collected.
    let headers = || request.headers_in_iterator().map(|(k, v)| (k.as_bytes(), v.as_bytes()));
    let auth = match decision::parse_request(headers()) {
        Ok(auth) => auth,
        Err(error) => {
            let level = if error.is_client_input() { NGX_LOG_INFO } else { NGX_LOG_ERR };
            ngx_log_error!(level, request.log(), "mailauth: bad auth_http request: {error}");
            let attempt = decision::attempt_of(headers());
            return send(request, &decision::decide_unparsable(&error, attempt, &rt.settings.policy));
        }
    };
    let mut login = Login::new(auth, rt.settings.clone());
    let step = WORKER.with_borrow_mut(|w| login.start(w, Instant::now()));
    log_notes(request, &mut login);
    match step {
        Step::Run(pool) => {
            let job = Job { login, panicked: false };
            // SAFETY: r is the valid request of this handler call, on the event loop.
            match unsafe { post_new(r, rt, job, pool) } {
                Ok(()) => NGX_DONE as ngx_int_t,
                Err(job) => {
                    ngx_log_error!(NGX_LOG_ERR, request.log(), "mailauth: cannot post a thread task");
                    let a = decision::refuse(TEMP_FAILURE, job.login.request.attempt, &rt.settings.policy);
                    send(request, &a)
                }
            }
        }
        other => {
            let answer = conclude(request, rt, &mut login, other);
            send(request, &answer)
        }
    }
}

/// Allocates a task on the request pool, moves `job` into it, holds the request and posts it.
///
/// # Safety
///
/// `r` is a valid request, on the event loop thread.
unsafe fn post_new(r: *mut ngx_http_request_t, rt: &Runtime, job: Job, pool: Pool) -> Result<(), Job> {
    // SAFETY: r->pool is the request's pool; the task lives as long as the request, which the
    // count bump below keeps alive until job_done finalizes it.
    let task = unsafe { ngx_thread_task_alloc((*r).pool, size_of::<Job>()) };
    if task.is_null() {
        return Err(job);
    }
    // SAFETY: ngx_thread_task_alloc made room for a Job right after the task (ctx = task + 1,
    // aligned to the task's 8-byte alignment, enough for Job); it is uninitialised memory, so
    // write, not assign.
    unsafe {
        let ctx = (*task).ctx.cast::<Job>();
        debug_assert!(ctx.is_aligned());
        ctx.write(job);
        (*task).handler = Some(run_job);
        (*task).event.handler = Some(job_done);
        (*task).event.data = r.cast::<c_void>();
        (*task).event.log = (*(*r).connection).log;
        let main = (*r).main;
        (*main).set_count((*main).count() + 1);
    }
    // SAFETY: the task is fully initialised and not posted.
    if unsafe { post(rt, task, pool) } {
        return Ok(());
    }
    // SAFETY: undo the count bump; move the Job back out so that its destructor runs once.
    unsafe {
        let main = (*r).main;
        (*main).set_count((*main).count() - 1);
        Err((*task).ctx.cast::<Job>().read())
    }
}

/// Posts `task` on the pool for `pool`. False when nginx refused (queue full).
///
/// # Safety
///
/// `task` is an initialised, idle task.
unsafe fn post(rt: &Runtime, task: *mut ngx_thread_task_t, pool: Pool) -> bool {
    let tp = match pool {
        Pool::Cache => rt.pools[0].pool,
        Pool::Directory => rt.pools[1].pool,
        Pool::Users => rt.pools[2].pool,
    };
    // SAFETY: tp is a thread pool registered at configuration time; task is idle.
    unsafe { ngx_thread_task_post(tp, task) == NGX_OK as ngx_int_t }
}

/// Runs on a pool thread: the blocking step, on plain Rust data only.
unsafe extern "C" fn run_job(data: *mut c_void, _log: *mut ngx_log_t) {
    // SAFETY: data is the task's ctx, a Job written by post_new; while the task is posted only
    // this thread touches it (the event loop waits for the completion event).
    let job = unsafe { &mut *data.cast::<Job>() };
    let login = &mut job.login;
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| login.run())).is_err() {
        job.panicked = true;
    }
}

/// Back on the event loop after a task: resume the login, post the next phase or answer.
unsafe extern "C" fn job_done(ev: *mut ngx_event_t) {
    // SAFETY: ev is the `event` field of the ngx_thread_task_t posted by post_new/post; its data
    // is the request held by our count bump; the task's ctx holds the Job.
    let (task, r) = unsafe {
        let task = ev.cast::<u8>().sub(offset_of!(ngx_thread_task_t, event)).cast::<ngx_thread_task_t>();
        (task, (*ev).data.cast::<ngx_http_request_t>())
    };
    // SAFETY: the request is alive (count bump) and we are on its event loop.
    let request = unsafe { Request::from_ngx_http_request(r) };
    let job_ptr = unsafe { (*task).ctx.cast::<Job>() };
    let rt = Module::location_conf(request).and_then(|c| c.runtime.as_ref());
    // SAFETY: the pool thread is done with the Job; it is ours again.
    let job = unsafe { &mut *job_ptr };
    let step = match rt {
        Some(_) if job.panicked => {
            ngx_log_error!(NGX_LOG_ERR, request.log(), "mailauth: a thread task panicked");
            Step::Answer(decision::refuse(TEMP_FAILURE, job.login.request.attempt, &Default::default()))
        }
        Some(_) => WORKER.with_borrow_mut(|w| job.login.resume(w, Instant::now())),
        None => Step::Answer(decision::refuse(TEMP_FAILURE, 1, &Default::default())),
    };
    log_notes(request, &mut job.login);
    if let (Step::Run(pool), Some(rt)) = (&step, rt) {
        // SAFETY: the task completed (nginx cleared `active`); reposting the same task reuses its
        // Job in place.
        if unsafe { post(rt, task, *pool) } {
            return;
        }
        ngx_log_error!(NGX_LOG_ERR, request.log(), "mailauth: cannot post a thread task");
    }
    // SAFETY: the task is not posted any more: move the Job out so that it is dropped once (the
    // pool memory is freed without destructors).
    let mut job = unsafe { job_ptr.read() };
    let answer = match (rt, step) {
        (Some(rt), Step::Run(_)) => decision::refuse(TEMP_FAILURE, job.login.request.attempt, &rt.settings.policy),
        (Some(rt), step) => conclude(request, rt, &mut job.login, step),
        (None, Step::Answer(a)) => a,
        (None, _) => decision::refuse(TEMP_FAILURE, 1, &Default::default()),
    };
    drop(job);
    let rc = send(request, &answer);
    // SAFETY: finalizing drops the count taken in post_new; then run what the answer posted.
    unsafe {
        let c = (*r).connection;
        ngx_http_finalize_request(r, rc);
        ngx_http_run_posted_requests(c);
    }
}

/// The answer for a finished step: `Verified` goes through the roles database and gets a
/// ticket; refusals are logged.
fn conclude(request: &Request, rt: &Runtime, login: &mut Login, step: Step) -> Answer {
    let answer = match step {
        Step::Answer(a) => a,
        Step::Verified => {
            let user = login.request.user.as_str();
            match lookup(rt, user) {
                Ok(routing) => {
                    if let Routing::Unavailable(reason) = &routing {
                        log(request, login, NGX_LOG_INFO, reason);
                    }
                    decision::route(&login.request, &routing, &rt.settings.policy, || {
                        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
                        mailscale_ticket::issue(&rt.ticket_key, user, rt.ticket_ttl, now)
                    })
                }
                Err(e) => {
                    log(request, login, NGX_LOG_ERR, &e);
                    decision::refuse(TEMP_FAILURE, login.request.attempt, &rt.settings.policy)
                }
            }
        }
        Step::Run(_) => decision::refuse(TEMP_FAILURE, login.request.attempt, &rt.settings.policy),
    };
    if let Answer::Refuse { message, .. } = &answer {
        log(request, login, NGX_LOG_INFO, &format!("refused: {message}"));
    }
    answer
}

/// Roles lookup on the event loop (an LMDB read: no I/O wait), or the routing of an earlier
/// one while the database has not changed since.
fn lookup(rt: &Runtime, user: &str) -> Result<Routing, String> {
    ROLES.with_borrow_mut(|open| {
        let (roles, cache) = match open.get_mut(&rt.roles_dir) {
            Some(entry) => entry,
            None => {
                let roles = Roles::open_read_only(&rt.roles_dir).map_err(|e| e.to_string())?;
                open.entry(rt.roles_dir.clone()).or_insert((roles, RoutingCache::default()))
            }
        };
        let generation = roles.generation();
        cache.get_or_lookup(generation, user, || {
            let route = roles.lookup(user).map_err(|e| e.to_string())?;
            Ok(routing(route.as_ref()))
        })
    })
}

fn log(request: &Request, login: &Login, level: u32, text: &str) {
    ngx_log_error!(
        level,
        request.log(),
        "mailauth: {} login of {:?} from {}: {text}",
        login.request.protocol.as_str(),
        login.request.user.as_str(),
        login.client(),
    );
}

fn log_notes(request: &Request, login: &mut Login) {
    for note in login.take_notes() {
        log(request, login, if note.warn { NGX_LOG_WARN } else { NGX_LOG_INFO }, &note.text);
    }
}

/// Sends the answer headers (no body); returns the status for nginx to finalize with.
fn send(request: &mut Request, answer: &Answer) -> ngx_int_t {
    request.set_status(HTTPStatus::OK);
    if !answer.each_header(|name, value| request.add_header_out(name, value).is_some()) {
        return Status::from(HTTPStatus::INTERNAL_SERVER_ERROR).0;
    }
    request.set_content_length_n(0);
    request.as_mut().set_header_only(1);
    request.send_header().0
}
