use super::*;

#[test]
fn verify_modes_reach_tokio_postgres_as_require() {
    let tls = split_url(
        "postgres://app:pw@db.example:5432/orderly?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&application_name=x",
    );
    assert_eq!(tls.mode, SslMode::VerifyFull);
    assert_eq!(tls.root_cert.as_deref(), Some("/etc/ca.pem"));
    assert_eq!(
        tls.url,
        "postgres://app:pw@db.example:5432/orderly?sslmode=require&application_name=x"
    );
    let tls = split_url("host=db sslmode=verify-ca sslrootcert=/ca.pem dbname=o");
    assert_eq!(tls.mode, SslMode::VerifyCa);
    assert_eq!(tls.url, "host=db sslmode=require dbname=o");
}

#[test]
fn no_sslmode_means_prefer_and_the_url_is_untouched() {
    let url = "postgres://postgres@127.0.0.1:5432/orderly";
    let tls = split_url(url);
    assert_eq!((tls.mode, tls.url.as_str()), (SslMode::Prefer, url));
    assert_eq!(
        split_url("postgres://h/db?sslmode=disable").mode,
        SslMode::Disable
    );
}

#[test]
fn an_unreadable_ca_names_its_variable() {
    let config = PostgresConfig {
        database_url: "postgres://h/db?sslmode=verify-full".into(),
        database_ca_file: Some("/nonexistent/orderly/ca.pem".into()),
        ..PostgresConfig::default()
    };
    let error = check(&config).expect_err("no file").to_string();
    assert!(error.contains("ORDERLY_DATABASE_CA_FILE"), "{error}");
    let config = PostgresConfig {
        database_url: "postgres://h/db?sslmode=require&sslrootcert=/nonexistent/ca.pem".into(),
        ..PostgresConfig::default()
    };
    let error = check(&config).expect_err("no file").to_string();
    assert!(error.contains("sslrootcert"), "{error}");
}
