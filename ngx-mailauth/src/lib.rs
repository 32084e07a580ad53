//! ngx-mailauth: an nginx HTTP module that answers nginx mail's `auth_http` requests.
//!
//! Two parts with a hard boundary:
//! - [`decision`]: plain Rust, no nginx, no `unsafe`: auth_http request headers in, answer
//!   headers out. Unit-tested with `cargo test -p ngx-mailauth`.
//! - `module` (feature `nginx`): the FFI glue that nginx loads with `load_module`: the module and
//!   directive statics, directive setters and the content handler. The only place with
//!   `unsafe`, each block with a `// SAFETY:` line. It is compiled out of `cargo test`, whose
//!   harness is an executable and could not resolve nginx's symbols (the cdylib resolves them
//!   from the nginx binary at `load_module` time).
//!
//! Build the module with `vendor-nginx/prepare.sh`, then
//! `. target/nginx-env.sh && cargo build --release -p ngx-mailauth --features nginx`
//! (see README.md).
#![deny(unsafe_code)]

pub mod decision;

#[cfg(all(feature = "nginx", not(test)))]
mod module;
