//! Test certificates, made fresh for each test: what an operator would
//! mount from a Secret, without files or openssl.

use orderly::tls::TlsConfig;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

/// A new CA, and a server certificate for `localhost` and 127.0.0.1 signed
/// by it, as a [`TlsConfig`] for servers (the certificate) and clients
/// (the CA).
pub fn test_tls() -> TlsConfig {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "orderly test CA");
    let ca = ca_params.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().expect("server key");
    let params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .expect("server params");
    let cert = params.signed_by(&key, &issuer).expect("server certificate");
    TlsConfig {
        identity: Some((cert.pem().into_bytes(), key.serialize_pem().into_bytes())),
        ca: Some(ca.pem().into_bytes()),
        server_name: None,
    }
}
