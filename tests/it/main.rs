//! The integration tests, one binary (linked once): each module is one
//! concern, run against the built `replicant` binary and real registries
//! (testkit). `support` holds what they share. Run one concern alone with
//! `cargo test --test it <module>::`, e.g. `cargo test --test it interop::`.

mod support;

mod auth;
mod chart;
mod cli;
mod client;
mod cloud;
mod docs;
mod faults;
mod frugal;
mod hardening;
mod hostile;
mod image;
mod integrity;
mod interop;
mod layout;
mod memory;
mod metrics;
mod mirror_plain;
mod nodes;
mod patterns;
mod progress;
mod quickstart;
mod release;
mod report;
mod resume;
mod shard;
mod supply_chain;
mod tls;
mod transport;
