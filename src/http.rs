//! What every HTTP client of the process shares: one crypto provider for
//! TLS, and the client for peers that are not registries (token services,
//! the AWS SDK, the Pushgateway): no redirects, bounded in time. A client
//! that cannot be built is an error for whoever needs it, never a default
//! client without these limits. Imports nothing of ours.

use std::sync::Arc;
use std::time::Duration;

/// An HTTP client that could not be built (its TLS setup failed); shared,
/// so that every lookup needing the client can say why.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot set up an HTTP client: {0}")]
pub struct ClientError(#[source] Arc<reqwest::Error>);

/// Makes ring rustls's crypto provider for the whole process (every HTTP
/// client, the AWS SDK's too), once; later calls change nothing.
pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A client for a peer that is not a registry: never follows a redirect
/// (a credential must not travel on to a place it does not belong), gives
/// up on connecting after `connect` and on the whole exchange after
/// `total`, and on `read` of silence when given.
pub fn peer_client(
    connect: Option<Duration>,
    read: Option<Duration>,
    total: Option<Duration>,
) -> Result<reqwest::Client, ClientError> {
    install_crypto();
    let mut b = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none());
    if let Some(t) = connect {
        b = b.connect_timeout(t);
    }
    if let Some(t) = read {
        b = b.read_timeout(t);
    }
    if let Some(t) = total {
        b = b.timeout(t);
    }
    b.build().map_err(|e| ClientError(Arc::new(e)))
}
