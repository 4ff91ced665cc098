//! Redis connection pool, plain (`redis://`) or TLS (`rediss://`, rustls).
//! An ACL user and password go in the URL: `rediss://user:password@host`.

use crate::config::{ConfigError, optional, var};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use std::time::Duration;

use deadpool_redis::{
    Manager, Pool, Runtime,
    redis::{
        AsyncConnectionConfig, Client, ClientTlsConfig, ConnectionInfo, IntoConnectionInfo,
        TlsCertificates,
    },
};

/// Redis settings. `Debug` hides the URL's password.
#[derive(Clone)]
pub struct RedisConfig {
    /// `ORDERLY_REDIS_URL`: the Redis server.
    pub redis_url: String,
    /// `ORDERLY_REDIS_POOL_SIZE`: connections per component.
    pub redis_pool_size: usize,
    /// `ORDERLY_REDIS_KEY_PREFIX`: prefix of every key orderly writes, so
    /// several deployments (or tests) can share one Redis.
    pub redis_key_prefix: String,
    /// `ORDERLY_REDIS_RESPONSE_TIMEOUT_MS`: how long one command may wait for
    /// its reply before failing with UNAVAILABLE.
    pub redis_response_timeout_ms: u64,
    /// `ORDERLY_REDIS_CA_FILE`: PEM bundle of the CA a `rediss://` server's
    /// certificate must chain to, instead of the system's roots.
    pub redis_ca_file: Option<String>,
    /// `ORDERLY_REDIS_CERT_FILE` and `ORDERLY_REDIS_KEY_FILE`: a client
    /// certificate chain and key (PEM), for servers that require one.
    pub redis_client_cert: Option<(String, String)>,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            redis_url: "redis://127.0.0.1:6379".to_owned(),
            redis_pool_size: 16,
            redis_key_prefix: "orderly".to_owned(),
            // The client's own default (500 ms) fails healthy requests that
            // merely queue behind a burst on a busy machine.
            redis_response_timeout_ms: 5_000,
            redis_ca_file: None,
            redis_client_cert: None,
        }
    }
}

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            .field("redis_url", &crate::config::redact_secrets(&self.redis_url))
            .field("redis_pool_size", &self.redis_pool_size)
            .field("redis_key_prefix", &self.redis_key_prefix)
            .field("redis_response_timeout_ms", &self.redis_response_timeout_ms)
            .field("redis_ca_file", &self.redis_ca_file)
            .field("redis_client_cert", &self.redis_client_cert)
            .finish()
    }
}

impl RedisConfig {
    /// Reads the settings, defaulting each unset variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        let d = Self::default();
        let redis_client_cert =
            client_cert(optional("REDIS_CERT_FILE")?, optional("REDIS_KEY_FILE")?)?;
        let config = Self {
            redis_url: var("REDIS_URL", d.redis_url)?,
            redis_pool_size: var("REDIS_POOL_SIZE", d.redis_pool_size)?,
            redis_key_prefix: var("REDIS_KEY_PREFIX", d.redis_key_prefix)?,
            redis_response_timeout_ms: var(
                "REDIS_RESPONSE_TIMEOUT_MS",
                d.redis_response_timeout_ms,
            )?,
            redis_ca_file: optional("REDIS_CA_FILE")?,
            redis_client_cert,
        };
        // Unreadable files fail startup, naming the variable.
        config.connection_info()?;
        Ok(config)
    }

    /// Where and how to connect: the URL, with the CA and client
    /// certificate read from their files for a `rediss://` URL.
    pub fn connection_info(&self) -> Result<ConnectionInfo, ConfigError> {
        let url = self.redis_url.as_str();
        let read = |variable: &str, file: &str| {
            std::fs::read(file)
                .map_err(|e| ConfigError::invalid(variable, format!("cannot read {file}: {e}")))
        };
        // Each file is parsed here, so a bad one is named by its own
        // variable (the redis crate's errors do not say which file).
        let certificates = |variable: &str, file: &str| {
            let pem = read(variable, file)?;
            let parsed: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(&pem).collect();
            match parsed {
                Ok(found) if !found.is_empty() => Ok(pem),
                Ok(_) => Err(ConfigError::invalid(
                    variable,
                    format!("{file} holds no PEM certificate"),
                )),
                Err(e) => Err(ConfigError::invalid(variable, format!("{file}: {e}"))),
            }
        };
        let root_cert = match &self.redis_ca_file {
            Some(file) => Some(certificates("REDIS_CA_FILE", file)?),
            None => None,
        };
        let client_tls = match &self.redis_client_cert {
            Some((cert, key)) => Some(ClientTlsConfig {
                client_cert: certificates("REDIS_CERT_FILE", cert)?,
                client_key: {
                    let pem = read("REDIS_KEY_FILE", key)?;
                    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
                        ConfigError::invalid("REDIS_KEY_FILE", format!("{key}: {e}"))
                    })?;
                    pem
                },
            }),
            None => None,
        };
        let info = url.into_connection_info().map_err(|e| {
            ConfigError::invalid("REDIS_URL", crate::config::redact_secrets(&e.to_string()))
        })?;
        if root_cert.is_none() && client_tls.is_none() {
            return Ok(info);
        }
        if !url.starts_with("rediss://") {
            let variable = if root_cert.is_some() {
                "REDIS_CA_FILE"
            } else {
                "REDIS_CERT_FILE"
            };
            return Err(ConfigError::invalid(
                variable,
                "needs a rediss:// ORDERLY_REDIS_URL",
            ));
        }
        // The certificates are parsed here: a bad one names its file.
        let client = Client::build_with_tls(
            info,
            TlsCertificates {
                client_tls,
                root_cert,
            },
        )
        .map_err(|e| {
            // The redis crate says which PEM it could not parse.
            let message = e.to_string();
            let variable = if message.contains("private key") {
                "REDIS_KEY_FILE"
            } else if message.contains("client certificate") || self.redis_ca_file.is_none() {
                "REDIS_CERT_FILE"
            } else {
                "REDIS_CA_FILE"
            };
            ConfigError::invalid(variable, message)
        })?;
        Ok(client.get_connection_info().clone())
    }
}

/// `ORDERLY_REDIS_CERT_FILE` and `ORDERLY_REDIS_KEY_FILE`: both or neither.
fn client_cert(
    cert: Option<String>,
    key: Option<String>,
) -> Result<Option<(String, String)>, ConfigError> {
    crate::env::cert_and_key("REDIS_CERT_FILE", cert, "REDIS_KEY_FILE", key)
}

/// Builds a Redis pool; connections open lazily.
pub fn pool(config: &RedisConfig) -> Result<Pool, ConfigError> {
    let timeout = Duration::from_millis(config.redis_response_timeout_ms.max(1));
    let connection = AsyncConnectionConfig::new()
        .set_response_timeout(Some(timeout))
        .set_connection_timeout(Some(timeout));
    // rustls needs a process-wide provider when it builds a TLS client;
    // ring is the one the whole build uses (another may be installed).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let manager = Manager::new_with_config(config.connection_info()?, connection)
        .map_err(|e| ConfigError::invalid("REDIS_URL", e))?;
    Pool::builder(manager)
        .max_size(config.redis_pool_size.max(1))
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| ConfigError::invalid("REDIS_URL", e))
}

#[cfg(test)]
mod tests;
