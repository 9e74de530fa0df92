//! The Distribution API client: transport, auth challenge and token cache,
//! tags, manifests, blobs.

pub mod auth;
mod client;
mod wire;

pub use client::{Client, Mount, Settings};
pub use wire::{backoff, is_valid_tag};
