//! replicant: mirror container images between registries over the OCI
//! Distribution API. The binary (`main.rs`) is a thin layer over this library.
//!
//! Data flows one way: [`config`] -> [`select`] (pure) -> [`mirror`] plans
//! each image -> [`copy`] moves it through the [`registry`] client ->
//! [`report`].

pub mod config;
pub mod copy;
pub mod credentials;
pub mod digest;
pub mod error;
pub mod manifest;
pub mod mirror;
pub mod reference;
pub mod registry;
pub mod report;
pub mod select;
pub mod store;
pub mod version;
