//! Redis over TLS (`rediss://`) with an ACL user, as managed Redis
//! services require.

use orderly::redis::RedisConfig;

use super::support::{Pki, REDIS_PASSWORD, REDIS_USER, TlsRedis};

/// PING through the kit's pool, or why it failed.
async fn ping(config: &RedisConfig) -> Result<String, String> {
    let pool = orderly::redis::pool(config).map_err(|e| e.to_string())?;
    let mut conn = pool.get().await.map_err(|e| e.to_string())?;
    redis::cmd("PING")
        .query_async(&mut conn)
        .await
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn rediss_with_the_ca_and_an_acl_user_works() {
    let pki = Pki::new();
    let redis = TlsRedis::start(&pki).await;
    let config = redis.config(&pki);
    assert_eq!(ping(&config).await, Ok("PONG".to_owned()));
    // The inventory's own store works on it (its Lua scripts included).
    let pool = orderly::redis::pool(&config).expect("pool");
    let mut conn = pool.get().await.expect("connection");
    let set: String = redis::cmd("SET")
        .arg("orderly-tls-check")
        .arg("1")
        .query_async(&mut conn)
        .await
        .expect("SET as the ACL user");
    assert_eq!(set, "OK");
    let _: i64 = redis::cmd("DEL")
        .arg("orderly-tls-check")
        .query_async(&mut conn)
        .await
        .expect("DEL");
}

#[tokio::test]
async fn plain_a_wrong_ca_and_a_wrong_password_all_fail() {
    let (pki, other) = (Pki::new(), Pki::new());
    let redis = TlsRedis::start(&pki).await;
    let port = redis.server.port();
    let plain = RedisConfig {
        redis_url: format!("redis://{REDIS_USER}:{REDIS_PASSWORD}@127.0.0.1:{port}"),
        redis_ca_file: None,
        redis_response_timeout_ms: 2_000,
        ..redis.config(&pki)
    };
    ping(&plain)
        .await
        .expect_err("plain against a TLS-only Redis");
    let wrong_ca = redis.config(&other);
    let error = ping(&wrong_ca).await.expect_err("an unknown issuer");
    assert!(error.contains("invalid peer certificate"), "{error}");
    let wrong_password = RedisConfig {
        redis_url: format!("rediss://{REDIS_USER}:wrong@127.0.0.1:{port}"),
        ..redis.config(&pki)
    };
    let error = ping(&wrong_password).await.expect_err("a wrong password");
    assert!(error.contains("AuthenticationFailed"), "{error}");
}

#[test]
fn a_ca_file_needs_a_rediss_url_and_must_be_readable() {
    let config = RedisConfig {
        redis_ca_file: Some("/etc/hostname".into()),
        ..RedisConfig::default()
    };
    let error = config.connection_info().expect_err("redis://").to_string();
    assert!(error.contains("ORDERLY_REDIS_CA_FILE"), "{error}");
    let config = RedisConfig {
        redis_url: "rediss://127.0.0.1:6380".into(),
        redis_ca_file: Some("/nonexistent/orderly/ca.pem".into()),
        ..RedisConfig::default()
    };
    let error = config.connection_info().expect_err("no file").to_string();
    assert!(error.contains("ORDERLY_REDIS_CA_FILE"), "{error}");
}
