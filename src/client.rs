//! The one way orderly's own clients reach a component: the saga's calls,
//! the command line and the tests all build their channels here, so TLS
//! and the bearer token are applied the same way everywhere.

use std::time::Duration;

use tonic::{
    metadata::{AsciiMetadataValue, MetadataMap},
    service::{Interceptor, interceptor::InterceptedService},
    transport::{Channel, ClientTlsConfig, Endpoint},
};

use crate::{
    auth::{AuthConfig, Token},
    tls::TlsConfig,
};

/// A channel whose every request carries the builder's bearer token.
pub type GrpcChannel = InterceptedService<Channel, Bearer>;

/// An address could not be used, or a component could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Not a valid URI (the message names it).
    #[error("invalid address {address:?}: {reason}")]
    Address {
        /// The address as given.
        address: String,
        /// Why.
        reason: String,
    },
    /// The token cannot be sent as a header value.
    #[error("the bearer token holds characters a header cannot carry")]
    Token,
    /// Connecting failed.
    #[error("cannot connect to {address}: {source}")]
    Connect {
        /// The address.
        address: String,
        /// Why.
        source: tonic::transport::Error,
    },
}

/// Adds `authorization: Bearer <token>` to every request, when there is a
/// token.
#[derive(Clone)]
pub struct Bearer(Option<AsciiMetadataValue>);

impl std::fmt::Debug for Bearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Bearer(***)"
        } else {
            "Bearer(none)"
        })
    }
}

impl Bearer {
    /// Sets the header on `metadata` (for calls made without a
    /// [`GrpcChannel`]).
    pub fn apply(&self, metadata: &mut MetadataMap) {
        if let Some(value) = &self.0 {
            metadata.insert("authorization", value.clone());
        }
    }
}

impl Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        self.apply(request.metadata_mut());
        Ok(request)
    }
}

/// `Bearer <token>` as a header value HPACK never indexes.
fn bearer_value(token: &str) -> Option<AsciiMetadataValue> {
    let mut value: AsciiMetadataValue = format!("Bearer {token}").parse().ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// Builds channels with TLS (when a CA is configured) and a bearer token
/// (when one is given).
#[derive(Debug, Clone)]
pub struct ChannelBuilder {
    tls: Option<ClientTlsConfig>,
    bearer: Bearer,
    connect_timeout: Duration,
}

impl ChannelBuilder {
    /// Channels trusting `tls`'s CA and sending `token`.
    pub fn new(tls: &TlsConfig, token: Option<&str>) -> Result<Self, ClientError> {
        let bearer = token
            .map(|t| bearer_value(t).ok_or(ClientError::Token))
            .transpose()?;
        Ok(Self {
            tls: tls.client(),
            bearer: Bearer(bearer),
            connect_timeout: Duration::from_secs(5),
        })
    }

    /// Channels for one component calling another: the component's TLS CA
    /// and its first admin token.
    pub fn component(auth: &AuthConfig, tls: &TlsConfig) -> Self {
        let bearer = auth
            .component_token()
            .map(Token::expose)
            // Tokens are checked to be visible ASCII when they are read.
            .and_then(bearer_value);
        Self {
            tls: tls.client(),
            bearer: Bearer(bearer),
            connect_timeout: Duration::from_secs(5),
        }
    }

    /// Bounds how long connecting may take (default 5 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Whether channels use TLS.
    pub fn tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The token interceptor, for callers that build requests themselves.
    pub fn bearer(&self) -> &Bearer {
        &self.bearer
    }

    /// An endpoint for `address` (`host:port` or a URL). With TLS the
    /// scheme becomes `https`; without, `http`.
    pub fn endpoint(&self, address: &str) -> Result<Endpoint, ClientError> {
        let rest = address.split_once("://").map_or(address, |(_, rest)| rest);
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let invalid = |reason: String| ClientError::Address {
            address: address.to_owned(),
            reason,
        };
        let endpoint = Endpoint::from_shared(format!("{scheme}://{rest}"))
            .map_err(|e| invalid(e.to_string()))?
            .connect_timeout(self.connect_timeout);
        match &self.tls {
            Some(tls) => endpoint
                .tls_config(tls.clone())
                .map_err(|e| invalid(e.to_string())),
            None => Ok(endpoint),
        }
    }

    /// Adds the token to `channel` (one built from [`Self::endpoint`]).
    pub fn wrap(&self, channel: Channel) -> GrpcChannel {
        InterceptedService::new(channel, self.bearer.clone())
    }

    /// A channel to `address` that connects on first use (a component that
    /// is down fails calls with UNAVAILABLE rather than startup).
    pub fn connect_lazy(&self, address: &str) -> Result<GrpcChannel, ClientError> {
        Ok(self.wrap(self.endpoint(address)?.connect_lazy()))
    }

    /// A channel to `address`, connected now.
    pub async fn connect(&self, address: &str) -> Result<GrpcChannel, ClientError> {
        let channel =
            self.endpoint(address)?
                .connect()
                .await
                .map_err(|source| ClientError::Connect {
                    address: address.to_owned(),
                    source,
                })?;
        Ok(self.wrap(channel))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_get_the_scheme_tls_asks_for() {
        let plain = ChannelBuilder::new(&TlsConfig::default(), None).expect("builder");
        for address in [
            "127.0.0.1:50051",
            "http://127.0.0.1:50051",
            "https://127.0.0.1:50051",
        ] {
            let endpoint = plain.endpoint(address).expect("valid");
            assert_eq!(endpoint.uri().scheme_str(), Some("http"), "{address}");
        }
    }

    #[test]
    fn the_token_travels_as_a_bearer_header() {
        let builder = ChannelBuilder::new(&TlsConfig::default(), Some("t0k")).expect("builder");
        let mut metadata = MetadataMap::new();
        builder.bearer().apply(&mut metadata);
        assert_eq!(
            metadata.get("authorization").and_then(|v| v.to_str().ok()),
            Some("Bearer t0k")
        );
        assert!(!format!("{builder:?}").contains("t0k"));
        assert!(ChannelBuilder::new(&TlsConfig::default(), Some("a\nb")).is_err());
    }
}
