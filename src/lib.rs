//! replicant: mirror container images between registries over the OCI
//! Distribution API. The binary (`main.rs`) is a thin layer over this library.
//!
//! Data flows one way: [`config`] + flags -> [`settings`] -> [`run`] plans
//! each image ([`select`] is pure) -> [`copy`] moves it between [`store`]s
//! -> the [`registry`] client or an OCI layout on disk -> [`report`].
//! [`model`] and [`error`] are the vocabulary underneath all of them.
//! ARCHITECTURE.md is the map.

pub mod backoff;
pub mod config;
pub mod copy;
pub mod credentials;
pub mod defaults;
pub mod error;
pub mod http;
pub mod limit;
pub mod metrics;
pub mod model;
pub mod nodes;
pub mod once;
pub mod outputs;
pub mod progress;
pub mod push;
pub mod registry;
pub mod report;
pub mod run;
pub mod select;
pub mod settings;
pub mod shard;
pub mod store;
pub mod version;

#[cfg(test)]
mod layers_tests;

/// A mutex's guard even when another thread panicked holding it: the data
/// (counters, caches, reports in progress) is still the best there is.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
