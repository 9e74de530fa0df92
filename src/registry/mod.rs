//! The Distribution API client, in three layers:
//!
//! - [`connect`]: how each registry is reached (scheme, TLS material, one
//!   HTTP client per setup);
//! - `transport`: sending requests — auth challenge and token cache, the one
//!   retry policy, size limits, fail-fast on unreachable registries, pull
//!   budgets, and how many requests go at once (`crate::limit`: adaptive,
//!   per registry);
//! - `client`: the operations (tags, manifests, blobs, uploads).

pub mod auth;
mod catalog;
mod client;
pub mod connect;
mod ranges;
mod traffic;
mod transport;
mod upload;
mod wire;

pub use catalog::Catalog;
pub use client::{Client, Delete, Mount};
pub use connect::{HostSettings, TransportSettings};
pub use traffic::Traffic;
