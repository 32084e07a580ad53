//! ngx-mailauth: an nginx HTTP module that answers nginx mail's `auth_http` requests.
//!
//! Two parts with a hard boundary:
//! - plain Rust, no nginx, no `unsafe`, unit-tested with `cargo test -p ngx-mailauth`:
//!   [`decision`] (request parsing, answers, routing), [`flow`] (the order of the checks as a
//!   state machine), [`cache`] (keyed hashes, per-worker tier, lockout arithmetic), [`escape`]
//!   (user-name alphabet, LDAP escaping), [`directory`] (users file, LDAP) and [`store`]
//!   (Redis). The last two block and run only in nginx thread-pool tasks.
//! - `module` (feature `nginx`): the FFI glue that nginx loads with `load_module`: statics,
//!   directive setters, the content handler and the thread-pool bridge. The only place with
//!   `unsafe`, each block with a `// SAFETY:` line. It is compiled out of `cargo test`, whose
//!   harness is an executable and could not resolve nginx's symbols (the cdylib resolves them
//!   from the nginx binary at `load_module` time).
//!
//! Build the module with `vendor-nginx/prepare.sh`, then
//! `. target/nginx-env.sh && cargo build --release -p ngx-mailauth --features nginx`
//! (see README.md).
#![deny(unsafe_code)]

pub mod cache;
pub mod conf;
pub mod decision;
pub mod directory;
pub mod escape;
pub mod flow;
pub mod routing;
pub mod store;

#[cfg(all(feature = "nginx", not(test)))]
mod module;
