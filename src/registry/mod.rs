//! The Distribution API client: transport, auth challenge and token cache,
//! tags, manifests, blobs.

pub mod auth;
mod client;

pub use client::{Client, Mount, Settings, backoff, is_valid_tag};
