//! replicant: mirror container images between registries over the OCI
//! Distribution API. The binary (`main.rs`) is a thin layer over this library.
//!
//! Data flows one way: [`config`] -> [`select`] (pure) -> [`copy`] via the
//! [`registry`] client -> [`report`].

pub mod config;
pub mod reference;
pub mod select;
pub mod version;
