//! TLS to Postgres (rustls, no OpenSSL), as libpq's `sslmode` asks for it.
//!
//! tokio-postgres itself knows only `disable`, `prefer` and `require` and
//! rejects `sslrootcert`; [`session_config`] hands it the URL with those
//! translated, and the connector of [`connector`] does the checking libpq
//! would: `verify-full` the chain and the host name, `verify-ca` the chain
//! only, `require`/`prefer` nothing unless a CA is configured (then the
//! chain, as libpq does when it finds a root certificate).

use std::sync::Arc;

use rustls::{
    CertificateError, DigitallySignedStruct, Error as TlsError, RootCertStore, SignatureScheme,
    client::{
        WebPkiServerVerifier,
        danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    },
    crypto::WebPkiSupportedAlgorithms,
    pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject},
};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::PostgresConfig;
use crate::env::ConfigError;

/// The connector for every orderly Postgres connection.
pub type Connector = MakeRustlsConnect;

/// libpq's `sslmode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Never TLS.
    Disable,
    /// TLS when the server offers it (libpq's default).
    Prefer,
    /// TLS or fail; the certificate is checked only against a configured CA.
    Require,
    /// TLS, and the server's chain must lead to the CA.
    VerifyCa,
    /// TLS, the chain must lead to the CA and the certificate name the host.
    VerifyFull,
}

/// The TLS wishes of a database URL and the URL tokio-postgres accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlTls {
    /// The URL without `sslrootcert`, `verify-*` given as `require`.
    pub url: String,
    /// The URL's `sslmode`, [`SslMode::Prefer`] when it names none.
    pub mode: SslMode,
    /// The URL's `sslrootcert`.
    pub root_cert: Option<String>,
}

/// Splits the TLS parameters out of a libpq URL (`postgres://…?sslmode=…`)
/// or key/value string (`host=… sslmode=…`). An unknown `sslmode` is left
/// for tokio-postgres to refuse.
pub fn split_url(url: &str) -> UrlTls {
    let mut mode = SslMode::Prefer;
    let mut root_cert = None;
    let mut keep = |key: &str, value: &str| -> Option<String> {
        match key {
            "sslrootcert" => {
                root_cert = Some(value.to_owned());
                None
            }
            "sslmode" => {
                let (parsed, passed) = match value {
                    "disable" => (SslMode::Disable, "disable"),
                    "allow" | "prefer" => (SslMode::Prefer, "prefer"),
                    "require" => (SslMode::Require, "require"),
                    "verify-ca" => (SslMode::VerifyCa, "require"),
                    "verify-full" => (SslMode::VerifyFull, "require"),
                    other => return Some(other.to_owned()),
                };
                mode = parsed;
                Some(passed.to_owned())
            }
            _ => Some(value.to_owned()),
        }
    };
    let url = if url.contains("://") {
        match url.split_once('?') {
            Some((base, query)) => {
                let params: Vec<String> = query
                    .split('&')
                    .filter_map(|param| {
                        let (key, value) = param.split_once('=').unwrap_or((param, ""));
                        let decoded = percent_decode(value);
                        keep(key, &decoded).map(|kept| {
                            if kept == decoded {
                                param.to_owned()
                            } else {
                                format!("{key}={kept}")
                            }
                        })
                    })
                    .collect();
                if params.is_empty() {
                    base.to_owned()
                } else {
                    format!("{base}?{}", params.join("&"))
                }
            }
            None => url.to_owned(),
        }
    } else {
        url.split_whitespace()
            .filter_map(|pair| match pair.split_once('=') {
                Some((key, value)) => {
                    keep(key, value.trim_matches('\'')).map(|value| format!("{key}={value}"))
                }
                None => Some(pair.to_owned()),
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    UrlTls {
        url,
        mode,
        root_cert,
    }
}

fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Where the trusted CA comes from: `ORDERLY_DATABASE_CA_FILE`, else the
/// URL's `sslrootcert` (`system`: the system's roots); the variable's name
/// for error messages.
fn ca_source(config: &PostgresConfig, tls: &UrlTls) -> Option<(String, &'static str)> {
    match (&config.database_ca_file, &tls.root_cert) {
        (Some(file), _) => Some((file.clone(), "DATABASE_CA_FILE")),
        (None, Some(file)) => Some((file.clone(), "DATABASE_URL (sslrootcert)")),
        (None, None) => None,
    }
}

/// The roots to verify against, `None` when nothing is to be verified.
fn roots(config: &PostgresConfig, tls: &UrlTls) -> Result<Option<RootCertStore>, ConfigError> {
    let verify = matches!(tls.mode, SslMode::VerifyCa | SslMode::VerifyFull);
    let mut roots = RootCertStore::empty();
    match ca_source(config, tls) {
        Some((file, _)) if file == "system" => system_roots(&mut roots),
        Some((file, variable)) => {
            let pem = std::fs::read(&file)
                .map_err(|e| ConfigError::invalid(variable, format!("cannot read {file}: {e}")))?;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| {
                    ConfigError::invalid(variable, format!("{file} is not PEM: {e}"))
                })?;
                roots
                    .add(cert)
                    .map_err(|e| ConfigError::invalid(variable, format!("{file}: {e}")))?;
            }
            if roots.is_empty() {
                return Err(ConfigError::invalid(
                    variable,
                    format!("{file} holds no certificate"),
                ));
            }
        }
        None if verify => system_roots(&mut roots),
        None => return Ok(None),
    }
    if roots.is_empty() {
        return Err(ConfigError::invalid(
            "DATABASE_CA_FILE",
            "the URL's sslmode verifies the server but no CA is set and the system has none",
        ));
    }
    Ok(Some(roots))
}

fn system_roots(roots: &mut RootCertStore) {
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
}

/// Checks at startup that the URL's TLS settings and CA can be used, naming
/// the variable at fault.
pub fn check(config: &PostgresConfig) -> Result<(), ConfigError> {
    roots(config, &split_url(&config.database_url)).map(|_| ())
}

/// The connector for `config`'s URL and CA. The CA file is read now, so a
/// pool built later (or a session reconnecting) sees a rotated CA. A CA
/// that cannot be read any more fails every handshake with the reason
/// (it was checked at startup by [`check`]).
pub fn connector(config: &PostgresConfig) -> Connector {
    let tls = split_url(&config.database_url);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let check = match roots(config, &tls) {
        Ok(None) => Check::Nothing,
        Ok(Some(roots)) => {
            match WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
            {
                Ok(webpki) if tls.mode == SslMode::VerifyFull => Check::Full(webpki),
                Ok(webpki) => Check::Chain(webpki),
                Err(e) => Check::Broken(e.to_string()),
            }
        }
        Err(e) => Check::Broken(e.to_string()),
    };
    let verifier = Verifier {
        check,
        algorithms: provider.signature_verification_algorithms,
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports TLS 1.2 and 1.3")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    MakeRustlsConnect::new(config)
}

/// What a connection checks of the server's certificate.
#[derive(Debug)]
enum Check {
    /// `prefer`/`require` without a CA: encrypted, not authenticated.
    Nothing,
    /// `verify-ca` (or `require` with a CA): the chain, not the name.
    Chain(Arc<WebPkiServerVerifier>),
    /// `verify-full`: the chain and the name.
    Full(Arc<WebPkiServerVerifier>),
    /// The CA could not be loaded: every handshake fails, saying why.
    Broken(String),
}

#[derive(Debug)]
struct Verifier {
    check: Check,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        match &self.check {
            Check::Nothing => Ok(ServerCertVerified::assertion()),
            Check::Full(webpki) => {
                webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
            }
            // The chain is checked before the name: a name error means the
            // chain was good.
            Check::Chain(webpki) => {
                match webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
                    Err(TlsError::InvalidCertificate(
                        CertificateError::NotValidForName
                        | CertificateError::NotValidForNameContext { .. },
                    )) => Ok(ServerCertVerified::assertion()),
                    other => other,
                }
            }
            Check::Broken(why) => Err(TlsError::General(why.clone())),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests;
