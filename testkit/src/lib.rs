//! Test support for replicant: real `docker-registry` processes on free
//! 127.0.0.1 ports (plain, htpasswd Basic, token auth with our own issuer),
//! generated test images, and a small independent client that pushes and
//! verifies through the registry API.
//!
//! Independent on purpose: the checks must not share code with what they
//! check.

pub mod accept;
pub mod client;
pub mod cloud;
pub mod container;
pub mod http;
pub mod image;
pub mod latency;
pub mod layout;
pub mod measure;
pub mod proxy;
pub mod quickstart;
pub mod referrers;
pub mod registry;
pub mod tls;
pub mod token;
pub mod tools;

pub use client::TestClient;
pub use image::{Format, Image, ImageGen};
pub use registry::{Auth, Implementation, Registry};
pub use token::TokenIssuer;

/// Makes ring the process's TLS crypto provider (as replicant does), once;
/// every HTTP client of the tests needs one before it is built.
pub fn crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
