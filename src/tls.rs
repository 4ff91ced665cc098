//! Optional TLS (rustls) for every gRPC server and for the clients that
//! call them: the components' own clients and the command line.
//!
//! A server with `ORDERLY_TLS_CERT_FILE` and `ORDERLY_TLS_KEY_FILE` speaks
//! only TLS. A client with `ORDERLY_TLS_CA_FILE` connects with TLS, trusting
//! that CA alone (no system roots: the components' certificates come from
//! the operator's CA), and checks the server's name against its certificate
//! (`ORDERLY_TLS_SERVER_NAME` overrides the name taken from the address).

use std::{fmt, time::Duration};

use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

use crate::env::{ConfigError, ENV_PREFIX};

/// How long a server waits for a client to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// PEM certificates and key for TLS. `Debug` never shows the key.
#[derive(Clone, Default)]
pub struct TlsConfig {
    /// The server's certificate chain and private key, both PEM.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
    /// The CA (PEM) clients trust; set, clients use TLS.
    pub ca: Option<Vec<u8>>,
    /// The name clients expect in the server's certificate, instead of the
    /// host of the address they dial.
    pub server_name: Option<String>,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("server", &self.identity.is_some())
            .field("client_ca", &self.ca.is_some())
            .field("server_name", &self.server_name)
            .finish()
    }
}

impl TlsConfig {
    /// Reads `ORDERLY_TLS_CERT_FILE` and `ORDERLY_TLS_KEY_FILE` (both or
    /// neither), `ORDERLY_TLS_CA_FILE` and `ORDERLY_TLS_SERVER_NAME`, and
    /// checks the files can be used.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`Self::from_env`], reading variables through `lookup` (full
    /// names, `ORDERLY_` included).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| {
            lookup(&format!("{ENV_PREFIX}{name}"))
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let read = |name: &str| -> Result<Option<Vec<u8>>, ConfigError> {
            get(name)
                .map(|path| {
                    std::fs::read(&path)
                        .map_err(|e| ConfigError::invalid(name, format!("cannot read {path}: {e}")))
                })
                .transpose()
        };
        let identity = crate::env::cert_and_key(
            "TLS_CERT_FILE",
            read("TLS_CERT_FILE")?,
            "TLS_KEY_FILE",
            read("TLS_KEY_FILE")?,
        )?;
        let config = Self {
            identity,
            ca: read("TLS_CA_FILE")?,
            server_name: get("TLS_SERVER_NAME"),
        };
        // Fail at startup, naming the variable, rather than on first use.
        if let Some(server) = config.server() {
            tonic::transport::Server::builder()
                .tls_config(server)
                .map_err(|e| {
                    ConfigError::invalid(
                        "TLS_CERT_FILE",
                        format!("unusable certificate or key: {e}"),
                    )
                })?;
        }
        if let Some(client) = config.client() {
            tonic::transport::Endpoint::from_static("https://orderly.invalid")
                .tls_config(client)
                .map_err(|e| ConfigError::invalid("TLS_CA_FILE", format!("unusable CA: {e}")))?;
        }
        Ok(config)
    }

    /// The server side, when a certificate and key are configured.
    pub fn server(&self) -> Option<ServerTlsConfig> {
        let (cert, key) = self.identity.as_ref()?;
        Some(
            ServerTlsConfig::new()
                .identity(Identity::from_pem(cert, key))
                // tonic waits for a handshake forever by default: a client
                // that connects and says nothing would hold its task.
                .timeout(HANDSHAKE_TIMEOUT),
        )
    }

    /// The client side, when a CA is configured.
    pub fn client(&self) -> Option<ClientTlsConfig> {
        let ca = self.ca.as_ref()?;
        let mut config = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca));
        if let Some(name) = &self.server_name {
            config = config.domain_name(name.clone());
        }
        Some(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<TlsConfig, ConfigError> {
        TlsConfig::from_lookup(|name| {
            vars.iter()
                .find(|(var, _)| *var == name)
                .map(|(_, value)| (*value).to_owned())
        })
    }

    #[test]
    fn nothing_set_means_no_tls() {
        let tls = config(&[]).expect("valid");
        assert!(tls.server().is_none() && tls.client().is_none());
    }

    #[test]
    fn a_certificate_needs_its_key() {
        let error = config(&[("ORDERLY_TLS_CERT_FILE", "/etc/hostname")]).expect_err("no key");
        assert!(
            error.to_string().contains("ORDERLY_TLS_KEY_FILE"),
            "{error}"
        );
    }

    #[test]
    fn an_unreadable_file_names_its_variable() {
        let error =
            config(&[("ORDERLY_TLS_CA_FILE", "/nonexistent/orderly/ca.crt")]).expect_err("no file");
        assert!(error.to_string().contains("ORDERLY_TLS_CA_FILE"), "{error}");
    }

    #[test]
    fn debug_never_shows_the_key() {
        let tls = TlsConfig {
            identity: Some((b"CERT".to_vec(), b"PRIVATE-KEY-BYTES".to_vec())),
            ..TlsConfig::default()
        };
        assert!(!format!("{tls:?}").contains("PRIVATE-KEY-BYTES"));
    }
}
