//! Known-answer tests: scripts x messages -> actions, parse errors with
//! positions, runtime errors.

mod base;
mod support;
