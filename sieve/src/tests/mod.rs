//! Known-answer tests: scripts x messages -> actions, parse errors with
//! positions, runtime errors.

mod base;
mod errors;
mod extensions;
mod support;
mod vacation;
