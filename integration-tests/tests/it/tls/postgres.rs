//! Postgres over TLS: the URL's sslmode and the configured CA decide what
//! is checked, for the pool, migrations and dedicated sessions alike.

use orderly::config::PostgresConfig;

use super::support::{Pki, TlsPostgres};

/// Whether the pool's connection is encrypted (or why it failed).
async fn pooled_ssl(config: &PostgresConfig) -> Result<bool, String> {
    let pool = orderly::postgres::pool(config).map_err(|e| e.to_string())?;
    let client = pool.get().await.map_err(|e| match e {
        deadpool_postgres::PoolError::Backend(e) => orderly::postgres::describe(&e),
        other => other.to_string(),
    })?;
    encrypted(&client).await
}

/// Whether a dedicated session (as the relay and the query service's
/// LISTEN open them) is encrypted.
async fn session_ssl(config: &PostgresConfig) -> Result<bool, String> {
    let pg_config = orderly::postgres::session_config(config).map_err(|e| e.to_string())?;
    let (client, connection) = orderly::postgres::connect(&pg_config, config)
        .await
        .map_err(|e| orderly::postgres::describe(&e))?;
    tokio::spawn(connection);
    encrypted(&client).await
}

/// Whether the session of `client` is encrypted, as the server sees it.
async fn encrypted(client: &tokio_postgres::Client) -> Result<bool, String> {
    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .map_err(|e| orderly::postgres::describe(&e))?;
    Ok(row.get(0))
}

#[tokio::test]
async fn verify_full_with_the_servers_ca_migrates_pools_and_listens_encrypted() {
    let pki = Pki::new();
    let postgres = TlsPostgres::start(&pki).await;
    let config = postgres.config(&pki, "orderly", "verify-full");
    // The database does not exist yet: migrate creates it, over TLS.
    orderly::migrate::run(&config)
        .await
        .expect("migrate over TLS");
    assert_eq!(pooled_ssl(&config).await, Ok(true));
    assert_eq!(session_ssl(&config).await, Ok(true));
    // The CA named in the URL instead of the variable works the same.
    let in_url = PostgresConfig {
        database_url: format!("{}&sslrootcert={}", config.database_url, pki.ca_file),
        database_ca_file: None,
        ..config.clone()
    };
    assert_eq!(pooled_ssl(&in_url).await, Ok(true));
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused_clearly() {
    let (pki, other) = (Pki::new(), Pki::new());
    let postgres = TlsPostgres::start(&pki).await;
    for mode in ["verify-full", "verify-ca"] {
        let config = postgres.config(&other, "postgres", mode);
        let error = pooled_ssl(&config).await.expect_err("an unknown issuer");
        // Unknown issuer, or (the test CAs share a name) a bad signature.
        assert!(
            error.contains("TLS handshake: invalid peer certificate"),
            "{mode}: {error}"
        );
        let error = orderly::migrate::run(&config)
            .await
            .expect_err("an unknown issuer")
            .to_string();
        assert!(
            error.contains("invalid peer certificate"),
            "{mode}: {error}"
        );
    }
}

#[tokio::test]
async fn verify_full_checks_the_host_name_and_verify_ca_does_not() {
    let pki = Pki::new();
    let postgres = TlsPostgres::start(&pki).await;
    // Dial 127.0.0.1 under a name the certificate does not carry.
    let url = |mode: &str| PostgresConfig {
        database_url: format!(
            "postgres://postgres@db.orderly.invalid:{}/postgres?hostaddr=127.0.0.1&sslmode={mode}",
            postgres.server.port()
        ),
        database_ca_file: Some(pki.ca_file.clone()),
        ..PostgresConfig::default()
    };
    let error = pooled_ssl(&url("verify-full"))
        .await
        .expect_err("wrong name");
    assert!(
        error.contains("not valid for name \"db.orderly.invalid\""),
        "{error}"
    );
    assert_eq!(pooled_ssl(&url("verify-ca")).await, Ok(true));
}

#[tokio::test]
async fn require_encrypts_without_a_ca_and_disable_is_refused_by_a_tls_only_server() {
    let pki = Pki::new();
    let postgres = TlsPostgres::start(&pki).await;
    let no_ca = |mode: &str| PostgresConfig {
        database_ca_file: None,
        ..postgres.config(&pki, "postgres", mode)
    };
    // As libpq: require and prefer encrypt, checking no certificate.
    assert_eq!(pooled_ssl(&no_ca("require")).await, Ok(true));
    assert_eq!(pooled_ssl(&no_ca("prefer")).await, Ok(true));
    let error = pooled_ssl(&no_ca("disable"))
        .await
        .expect_err("hostssl only");
    assert!(
        error.contains("no pg_hba.conf entry") && error.contains("no encryption"),
        "{error}"
    );
}
