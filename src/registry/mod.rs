//! The Distribution API client: transport, auth challenge and token cache,
//! tags, manifests, blobs.

pub mod auth;
mod client;
pub mod error;

pub use client::{Client, FetchedManifest, ManifestHead, Mount, is_valid_tag};
pub use error::{ErrorKind, RegistryError};
