//! The vocabulary every other layer speaks: digests, registry and repository
//! names, the tag grammar, manifests and descriptors. Pure data and parsing:
//! nothing here does I/O, and nothing here imports another module of the
//! crate, so `store`, `registry` and `copy` can all depend on it.

pub mod cloud;
pub mod digest;
pub mod manifest;
pub mod reference;

pub use digest::Digest;
pub use manifest::{FetchedManifest, ManifestHead};
pub use reference::{Endpoint, Registry, Repository, is_valid_tag};
