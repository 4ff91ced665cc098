use super::*;

/// A directory of this test's own, removed on drop.
struct Dir(std::path::PathBuf);

impl Dir {
    fn new(test: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("orderly-redis-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        Self(dir)
    }

    fn file(&self, name: &str, text: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, text).expect("write");
        path.display().to_string()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// The redis crate decodes the PEM blocks but leaves the DER to rustls's
// handshake, so any base64 body does here.
const CERT: &str = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
const KEY: &str = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";

fn config(url: &str, cert: Option<(&str, &str)>) -> RedisConfig {
    RedisConfig {
        redis_url: url.to_owned(),
        redis_client_cert: cert.map(|(c, k)| (c.to_owned(), k.to_owned())),
        ..RedisConfig::default()
    }
}

fn refusal(config: &RedisConfig) -> String {
    config.connection_info().expect_err("refused").to_string()
}

#[test]
fn certificate_and_key_go_together() {
    let pair = client_cert(Some("c.pem".into()), Some("k.pem".into())).expect("both");
    assert_eq!(pair, Some(("c.pem".to_owned(), "k.pem".to_owned())));
    assert_eq!(client_cert(None, None).expect("neither"), None);
    // The error names the variable that is missing.
    let error = client_cert(Some("c.pem".into()), None).expect_err("no key");
    assert!(
        error.to_string().contains("ORDERLY_REDIS_KEY_FILE:"),
        "{error}"
    );
    let error = client_cert(None, Some("k.pem".into())).expect_err("no certificate");
    assert!(
        error.to_string().contains("ORDERLY_REDIS_CERT_FILE:"),
        "{error}"
    );
}

#[test]
fn a_client_certificate_reaches_the_tls_connection() {
    let dir = Dir::new("client-cert");
    let (cert, key) = (dir.file("client.pem", CERT), dir.file("client.key", KEY));
    let info = config("rediss://u:p@cache:6380", Some((&cert, &key)))
        .connection_info()
        .expect("valid");
    let addr = format!("{:?}", info.addr());
    assert!(addr.starts_with("TcpTls"), "{addr}");
    assert!(addr.contains("client_tls_params: Some("), "{addr}");
    // Without one, none.
    let info = config("rediss://u:p@cache:6380", None)
        .connection_info()
        .expect("valid");
    assert!(!format!("{:?}", info.addr()).contains("client_tls_params: Some("));
}

#[test]
fn client_certificate_refusals_name_their_variable() {
    let dir = Dir::new("refusals");
    let (cert, key) = (dir.file("client.pem", CERT), dir.file("client.key", KEY));
    let not_a_key = dir.file("not-a-key.pem", CERT);
    let not_a_cert = dir.file("not-a-cert.pem", "no certificate here");
    let missing = dir.0.join("missing.pem").display().to_string();
    let cases = [
        // TLS settings on a plain URL.
        (
            config("redis://cache:6379", Some((&cert, &key))),
            "ORDERLY_REDIS_CERT_FILE",
        ),
        (
            config("rediss://cache", Some((&missing, &key))),
            "ORDERLY_REDIS_CERT_FILE",
        ),
        (
            config("rediss://cache", Some((&cert, &missing))),
            "ORDERLY_REDIS_KEY_FILE",
        ),
        (
            RedisConfig {
                redis_ca_file: Some(cert.clone()),
                ..config("rediss://cache", Some((&cert, &not_a_key)))
            },
            "ORDERLY_REDIS_KEY_FILE",
        ),
        // A bad certificate or CA with the other files set: the message
        // must still name the right one.
        (
            RedisConfig {
                redis_ca_file: Some(cert.clone()),
                ..config("rediss://cache", Some((&not_a_cert, &key)))
            },
            "ORDERLY_REDIS_CERT_FILE",
        ),
        (
            RedisConfig {
                redis_ca_file: Some(not_a_cert.clone()),
                ..config("rediss://cache", Some((&cert, &key)))
            },
            "ORDERLY_REDIS_CA_FILE",
        ),
    ];
    for (config, variable) in cases {
        let error = refusal(&config);
        assert!(
            error.contains(&format!("{variable}:")),
            "{variable}: {error}"
        );
    }
}

#[test]
fn debug_hides_the_password() {
    let shown = format!("{:?}", config("rediss://u:s3cret@cache", None));
    assert!(
        !shown.contains("s3cret") && shown.contains("u:***@"),
        "{shown}"
    );
}
