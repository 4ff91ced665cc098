//! `orderly config`: the effective settings as env lines, with passwords,
//! tokens and store credentials hidden, and a malformed or missing setting
//! named.

use super::orderly_with_env;

#[tokio::test]
async fn config_prints_env_lines_with_passwords_hidden() {
    let run = orderly_with_env(
        vec!["config".to_owned()],
        vec![
            (
                "ORDERLY_DATABASE_URL",
                "postgres://app:s3cret@db:5432/orderly".to_owned(),
            ),
            ("ORDERLY_QUERY_PAGE_TOKEN_SECRET", "hunter2".to_owned()),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "authorization=Bearer t0ken".to_owned(),
            ),
            ("ORDERLY_CONSUMER_LEASE_TTL_MS", "9000".to_owned()),
            ("ORDERLY_CONSUMER_ON_LOG_RESET", "hold".to_owned()),
            ("ORDERLY_CONSUMER_DEAD_LETTER_ATTEMPTS", "7".to_owned()),
        ],
    )
    .await;
    assert!(run.success, "{run:?}");
    assert!(
        run.stdout
            .lines()
            .any(|l| l == "ORDERLY_DATABASE_URL=postgres://app:***@db:5432/orderly"),
        "{run:?}"
    );
    assert!(!run.stdout.contains("s3cret"), "{run:?}");
    assert!(!run.stdout.contains("hunter2"), "{run:?}");
    assert!(!run.stdout.contains("t0ken"), "{run:?}");
    for line in run
        .stdout
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let name = line.split('=').next().unwrap_or_default();
        assert!(
            line.contains('=') && (name.starts_with("ORDERLY_") || name.starts_with("OTEL_")),
            "{line}: {run:?}"
        );
    }
    assert!(
        run.stdout
            .lines()
            .any(|l| l.starts_with("ORDERLY_RELAY_MAX_ATTEMPTS=")),
        "{run:?}"
    );
    // The consumer runtime's settings are listed (not taken for misspelt
    // names), with their effective values.
    for line in [
        "ORDERLY_CONSUMER_LEASE_TTL_MS=9000",
        "ORDERLY_CONSUMER_ON_LOG_RESET=hold",
        "ORDERLY_CONSUMER_DEAD_LETTER_ATTEMPTS=7",
    ] {
        assert!(run.stdout.lines().any(|l| l == line), "{line}: {run:?}");
    }
    assert!(!run.stdout.contains("# ORDERLY_CONSUMER_"), "{run:?}");
}

#[tokio::test]
async fn config_shows_the_pending_deadline_and_names_it_when_invalid() {
    let name = "ORDERLY_SAGA_PENDING_DEADLINE_MS";
    let run = orderly_with_env(vec!["config".to_owned()], vec![(name, "120000".to_owned())]).await;
    assert!(run.success, "{run:?}");
    assert!(
        run.stdout.lines().any(|l| l == format!("{name}=120000")),
        "{run:?}"
    );
    for bad in ["0", "soon"] {
        let run = orderly_with_env(vec!["config".to_owned()], vec![(name, bad.to_owned())]).await;
        assert!(!run.success, "{bad}: {run:?}");
        assert!(run.stderr.contains(name), "{bad}: {run:?}");
    }
}

#[tokio::test]
async fn config_never_prints_tokens() {
    let dir = std::env::temp_dir().join(format!(
        "orderly-cli-{}",
        orderly_integration_tests::unique_id()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("admin-tokens");
    std::fs::write(&file, "file-s3cret-admin\n").expect("write");
    let run = orderly_with_env(
        vec!["config".to_owned()],
        vec![
            ("ORDERLY_AUTH_CLIENT_TOKEN", "s3cret-client".to_owned()),
            ("ORDERLY_AUTH_ADMIN_TOKEN_FILE", file.display().to_string()),
            ("ORDERLY_TOKEN", "s3cret-cli".to_owned()),
        ],
    )
    .await;
    std::fs::remove_dir_all(&dir).ok();
    assert!(run.success, "{run:?}");
    assert!(!run.stdout.contains("s3cret"), "{run:?}");
    for line in ["ORDERLY_AUTH_CLIENT_TOKEN=***", "ORDERLY_TOKEN=***"] {
        assert!(run.stdout.lines().any(|l| l == line), "{line}: {run:?}");
    }
    assert!(
        run.stdout
            .contains("authentication on (1 client, 1 admin tokens)"),
        "{run:?}"
    );
}

#[tokio::test]
async fn config_hides_store_credentials_and_names_a_missing_ca() {
    let run = orderly_with_env(
        vec!["config".to_owned()],
        vec![
            (
                "ORDERLY_REDIS_URL",
                "rediss://orderly:r3dis-pw@cache:6380".to_owned(),
            ),
            ("ORDERLY_KAFKA_SECURITY_PROTOCOL", "sasl_ssl".to_owned()),
            ("ORDERLY_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512".to_owned()),
            ("ORDERLY_KAFKA_SASL_USERNAME", "orderly".to_owned()),
            ("ORDERLY_KAFKA_SASL_PASSWORD", "k4fka-pw".to_owned()),
            (
                "ORDERLY_KAFKA_PROPERTY_SSL_KEY_PASSWORD",
                "k3y-pw".to_owned(),
            ),
            (
                "ORDERLY_KAFKA_PROPERTY_SOCKET_KEEPALIVE_ENABLE",
                "true".to_owned(),
            ),
        ],
    )
    .await;
    assert!(run.success, "{run:?}");
    for secret in ["r3dis-pw", "k4fka-pw", "k3y-pw"] {
        assert!(!run.stdout.contains(secret), "{secret}: {run:?}");
    }
    for line in [
        "ORDERLY_REDIS_URL=rediss://orderly:***@cache:6380",
        "ORDERLY_KAFKA_SECURITY_PROTOCOL=sasl_ssl",
        "ORDERLY_KAFKA_SASL_USERNAME=orderly",
        "ORDERLY_KAFKA_SASL_PASSWORD=***",
        "ORDERLY_KAFKA_PROPERTY_SSL_KEY_PASSWORD=***",
        "ORDERLY_KAFKA_PROPERTY_SOCKET_KEEPALIVE_ENABLE=true",
    ] {
        assert!(run.stdout.lines().any(|l| l == line), "{line}: {run:?}");
    }
    for name in [
        "ORDERLY_DATABASE_CA_FILE",
        "ORDERLY_REDIS_CA_FILE",
        "ORDERLY_KAFKA_CA_FILE",
        "ORDERLY_KAFKA_SASL_PASSWORD_FILE",
    ] {
        let value = if name.contains("REDIS") {
            // Only with a rediss:// URL.
            vec![
                (name, "/nonexistent/orderly/ca.pem".to_owned()),
                ("ORDERLY_REDIS_URL", "rediss://cache:6380".to_owned()),
            ]
        } else {
            vec![(name, "/nonexistent/orderly/ca.pem".to_owned())]
        };
        let run = orderly_with_env(vec!["config".to_owned()], value).await;
        assert!(!run.success, "{name}: {run:?}");
        assert!(run.stderr.contains(name), "{name}: {run:?}");
    }
}
