use super::*;

fn security(vars: &[(&str, &str)]) -> Result<KafkaSecurity, ConfigError> {
    KafkaSecurity::from_vars(
        vars.iter()
            .map(|(name, value)| (format!("ORDERLY_{name}"), (*value).to_owned())),
    )
}

fn property<'a>(security: &'a KafkaSecurity, name: &str) -> Option<&'a str> {
    security
        .properties()
        .into_iter()
        .find_map(|(n, v)| (n == name).then_some(v))
}

#[test]
fn nothing_set_sets_no_property() {
    assert!(security(&[]).expect("valid").properties().is_empty());
}

#[test]
fn sasl_scram_over_tls_maps_onto_librdkafka_properties() {
    let dir = std::env::temp_dir().join(format!("orderly-kafka-sasl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let password = dir.join("password");
    std::fs::write(&password, "s3cret\n").expect("write");
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\n").expect("write");
    let security = security(&[
        ("KAFKA_SECURITY_PROTOCOL", "SASL_SSL"),
        ("KAFKA_SASL_MECHANISM", "scram-sha-512"),
        ("KAFKA_SASL_USERNAME", "orderly"),
        (
            "KAFKA_SASL_PASSWORD_FILE",
            password.to_str().expect("utf-8"),
        ),
        ("KAFKA_CA_FILE", ca.to_str().expect("utf-8")),
        ("KAFKA_PROPERTY_SOCKET_KEEPALIVE_ENABLE", "true"),
        (
            "KAFKA_PROPERTY_SSL_ENDPOINT_IDENTIFICATION_ALGORITHM",
            "none",
        ),
    ])
    .expect("valid");
    std::fs::remove_dir_all(&dir).expect("clean up");
    assert_eq!(property(&security, "security.protocol"), Some("sasl_ssl"));
    assert_eq!(property(&security, "sasl.mechanism"), Some("SCRAM-SHA-512"));
    assert_eq!(property(&security, "sasl.username"), Some("orderly"));
    assert_eq!(property(&security, "sasl.password"), Some("s3cret"));
    assert_eq!(property(&security, "ssl.ca.location"), ca.to_str());
    assert_eq!(property(&security, "socket.keepalive.enable"), Some("true"));
    assert_eq!(
        property(&security, "ssl.endpoint.identification.algorithm"),
        Some("none")
    );
    let mut config = ClientConfig::new();
    security.apply(&mut config);
    assert_eq!(config.get("sasl.password"), Some("s3cret"));
    // Never shown.
    assert!(!format!("{security:?}").contains("s3cret"));
    assert!(
        security
            .describe()
            .contains(&("KAFKA_SASL_PASSWORD".to_owned(), "***".to_owned()))
    );
}

#[test]
fn plain_over_sasl_plaintext_needs_no_file() {
    let security = security(&[
        ("KAFKA_SECURITY_PROTOCOL", "sasl_plaintext"),
        ("KAFKA_SASL_MECHANISM", "PLAIN"),
        ("KAFKA_SASL_USERNAME", "u"),
        ("KAFKA_SASL_PASSWORD", "p"),
    ])
    .expect("valid");
    assert_eq!(property(&security, "sasl.mechanism"), Some("PLAIN"));
    assert_eq!(
        property(&security, "security.protocol"),
        Some("sasl_plaintext")
    );
}

#[test]
fn property_names_map_both_ways() {
    assert_eq!(
        property_name("SOCKET_KEEPALIVE_ENABLE"),
        "socket.keepalive.enable"
    );
    assert_eq!(property_name("SOME__ODD_NAME"), "some_odd.name");
    for name in ["socket.keepalive.enable", "some_odd.name", "client.id"] {
        assert_eq!(property_name(&variable_suffix(name)), name);
    }
}

#[test]
fn refusals_name_their_variable() {
    let cases: [(&[(&str, &str)], &str); 8] = [
        (
            &[("KAFKA_SECURITY_PROTOCOL", "tls")],
            "ORDERLY_KAFKA_SECURITY_PROTOCOL",
        ),
        (
            &[("KAFKA_SASL_MECHANISM", "GSSAPI")],
            "ORDERLY_KAFKA_SASL_MECHANISM",
        ),
        (
            &[("KAFKA_CA_FILE", "/nonexistent/ca.pem")],
            "ORDERLY_KAFKA_CA_FILE",
        ),
        (
            &[("KAFKA_SASL_PASSWORD_FILE", "/nonexistent/pw")],
            "ORDERLY_KAFKA_SASL_PASSWORD_FILE",
        ),
        (
            &[
                ("KAFKA_SASL_PASSWORD", "a"),
                ("KAFKA_SASL_PASSWORD_FILE", "/etc/hostname"),
            ],
            "ORDERLY_KAFKA_SASL_PASSWORD_FILE",
        ),
        (
            &[("KAFKA_PROPERTY_NO_SUCH_THING", "1")],
            "ORDERLY_KAFKA_PROPERTY_NO_SUCH_THING",
        ),
        // OAUTHBEARER's OIDC method needs libcurl, which this build leaves
        // out: refused at startup, not at the first connection.
        (
            &[("KAFKA_PROPERTY_SASL_OAUTHBEARER_METHOD", "oidc")],
            "ORDERLY_KAFKA_PROPERTY_SASL_OAUTHBEARER_METHOD",
        ),
        (
            &[("KAFKA_PROPERTY_SASL_OAUTHBEARER_CLIENT_SECRET", "s")],
            "ORDERLY_KAFKA_PROPERTY_SASL_OAUTHBEARER_CLIENT_SECRET",
        ),
    ];
    for (vars, variable) in cases {
        let error = security(vars).expect_err(variable).to_string();
        assert!(error.contains(variable), "{variable}: {error}");
    }
}

#[test]
fn secret_properties_are_hidden() {
    let secrets = [
        ("KAFKA_SASL_PASSWORD", "sasl.password"),
        ("KAFKA_PROPERTY_SSL_KEY_PASSWORD", "ssl.key.password"),
        (
            "KAFKA_PROPERTY_SSL_KEYSTORE_PASSWORD",
            "ssl.keystore.password",
        ),
        ("KAFKA_PROPERTY_SSL_KEY_PEM", "ssl.key.pem"),
        (
            "KAFKA_PROPERTY_SASL_OAUTHBEARER_CONFIG",
            "sasl.oauthbearer.config",
        ),
    ];
    for (variable, name) in secrets {
        let value = format!("hunter2-{name}");
        let security = security(&[(variable, &value)]).expect(variable);
        assert_eq!(property(&security, name), Some(value.as_str()));
        assert!(!format!("{security:?}").contains("hunter2"), "{variable}");
        let described = security.describe();
        assert!(
            described.contains(&(variable.to_owned(), "***".to_owned())),
            "{variable}: {described:?}"
        );
    }
    // Not secrets: shown.
    let security = security(&[("KAFKA_PROPERTY_CLIENT_ID", "orderly-a")]).expect("valid");
    assert!(format!("{security:?}").contains("orderly-a"));
}

#[test]
fn a_client_certificate_maps_onto_librdkafka_properties() {
    let dir = std::env::temp_dir().join(format!("orderly-kafka-mtls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let cert = dir.join("client.pem");
    let key = dir.join("client.key");
    std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\n").expect("write");
    std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\n").expect("write");
    let (cert, key) = (cert.to_str().expect("utf-8"), key.to_str().expect("utf-8"));
    let both = security(&[
        ("KAFKA_SECURITY_PROTOCOL", "ssl"),
        ("KAFKA_CERT_FILE", cert),
        ("KAFKA_KEY_FILE", key),
    ]);
    let cert_only = security(&[("KAFKA_CERT_FILE", cert)]);
    let key_only = security(&[("KAFKA_KEY_FILE", key)]);
    std::fs::remove_dir_all(&dir).expect("clean up");
    let both = both.expect("valid");
    assert_eq!(property(&both, "ssl.certificate.location"), Some(cert));
    assert_eq!(property(&both, "ssl.key.location"), Some(key));
    let mut config = ClientConfig::new();
    both.apply(&mut config);
    assert_eq!(config.get("ssl.certificate.location"), Some(cert));
    assert_eq!(config.get("ssl.key.location"), Some(key));
    // Paths, not secrets: shown as they are.
    let described = both.describe();
    assert!(described.contains(&("KAFKA_CERT_FILE".to_owned(), cert.to_owned())));
    assert!(described.contains(&("KAFKA_KEY_FILE".to_owned(), key.to_owned())));
    // Both or neither; the error names the one missing.
    let error = cert_only
        .expect_err("a certificate without its key")
        .to_string();
    assert!(error.contains("ORDERLY_KAFKA_KEY_FILE:"), "{error}");
    let error = key_only
        .expect_err("a key without its certificate")
        .to_string();
    assert!(error.contains("ORDERLY_KAFKA_CERT_FILE:"), "{error}");
}

#[test]
fn oauthbearer_needs_the_unsecured_jwt() {
    let error = security(&[
        ("KAFKA_SECURITY_PROTOCOL", "sasl_ssl"),
        ("KAFKA_SASL_MECHANISM", "OAUTHBEARER"),
    ])
    .expect_err("no token source")
    .to_string();
    assert!(error.contains("ORDERLY_KAFKA_SASL_MECHANISM:"), "{error}");
    assert!(
        error.contains("ORDERLY_KAFKA_PROPERTY_ENABLE_SASL_OAUTHBEARER_UNSECURE_JWT"),
        "{error}"
    );
    let accepted = security(&[
        ("KAFKA_SECURITY_PROTOCOL", "sasl_ssl"),
        ("KAFKA_SASL_MECHANISM", "OAUTHBEARER"),
        (
            "KAFKA_PROPERTY_ENABLE_SASL_OAUTHBEARER_UNSECURE_JWT",
            "true",
        ),
        (
            "KAFKA_PROPERTY_SASL_OAUTHBEARER_CONFIG",
            "principal=orderly scope=s",
        ),
    ])
    .expect("the unsecured JWT");
    assert_eq!(
        property(&accepted, "enable.sasl.oauthbearer.unsecure.jwt"),
        Some("true")
    );
    assert!(!format!("{accepted:?}").contains("principal=orderly"));
    // The mechanism set through a pass-through property is judged too.
    let error = security(&[
        ("KAFKA_SECURITY_PROTOCOL", "sasl_ssl"),
        ("KAFKA_PROPERTY_SASL_MECHANISM", "OAUTHBEARER"),
    ])
    .expect_err("no token source")
    .to_string();
    assert!(
        error.contains("ORDERLY_KAFKA_PROPERTY_SASL_MECHANISM:"),
        "{error}"
    );
    // librdkafka reads `1` as true.
    security(&[
        ("KAFKA_SECURITY_PROTOCOL", "sasl_ssl"),
        ("KAFKA_SASL_MECHANISM", "OAUTHBEARER"),
        ("KAFKA_PROPERTY_ENABLE_SASL_OAUTHBEARER_UNSECURE_JWT", "1"),
    ])
    .expect("1 is true");
}
