//! One `ORDERLY_*` environment variable: the prefix, reading and parsing a
//! value, and the error that names a malformed one. Kept apart from
//! [`config`](crate::config), which composes the settings of auth, TLS and
//! Postgres, so that those modules read their variables without importing
//! the module that imports them.

use std::{fmt::Display, str::FromStr, time::Duration};

/// The prefix of every orderly environment variable.
pub const ENV_PREFIX: &str = "ORDERLY_";

/// A configuration value was malformed.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(String);

impl ConfigError {
    /// A failure of variable `ORDERLY_<name>`.
    pub fn invalid(name: &str, why: impl Display) -> Self {
        Self(format!("{ENV_PREFIX}{name}: {why}"))
    }
}

/// Reads `ORDERLY_<name>`, or returns `default` when it is unset or empty.
/// A client certificate and its key, from the variables `cert_name` and
/// `key_name` (without `ORDERLY_`): both or neither; the error names the
/// one missing.
pub fn cert_and_key<T>(
    cert_name: &str,
    cert: Option<T>,
    key_name: &str,
    key: Option<T>,
) -> Result<Option<(T, T)>, ConfigError> {
    match (cert, key) {
        (Some(cert), Some(key)) => Ok(Some((cert, key))),
        (None, None) => Ok(None),
        (Some(_), None) => Err(ConfigError::invalid(
            key_name,
            format!("must be set with {ENV_PREFIX}{cert_name}"),
        )),
        (None, Some(_)) => Err(ConfigError::invalid(
            cert_name,
            format!("must be set with {ENV_PREFIX}{key_name}"),
        )),
    }
}

pub fn var<T>(name: &str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: Display,
{
    parse(name, raw(name)?.as_deref(), default)
}

/// Reads `ORDERLY_<name>` as a number of milliseconds, at least 1, or
/// returns `default` when it is unset or empty.
pub fn millis(name: &str, default: Duration) -> Result<Duration, ConfigError> {
    parse_millis(name, raw(name)?.as_deref(), default)
}

/// Reads `ORDERLY_<name>`, `None` when it is unset or blank.
pub fn optional(name: &str) -> Result<Option<String>, ConfigError> {
    Ok(raw(name)?
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty()))
}

/// `ORDERLY_<name>`'s value, `None` when it is unset.
fn raw(name: &str) -> Result<Option<String>, ConfigError> {
    match std::env::var(format!("{ENV_PREFIX}{name}")) {
        Ok(raw) => Ok(Some(raw)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => {
            Err(ConfigError::invalid(name, "is not valid UTF-8"))
        }
    }
}

/// Parses `raw`, the value of `ORDERLY_<name>` (`None` or blank: `default`),
/// as [`var`] does; apart from the environment so it can be tested.
pub fn parse<T>(name: &str, raw: Option<&str>, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: Display,
{
    match raw {
        Some(raw) if !raw.trim().is_empty() => raw
            .trim()
            .parse()
            .map_err(|e| ConfigError::invalid(name, format!("{e} (got {raw:?})"))),
        _ => Ok(default),
    }
}

/// Parses `raw` as [`millis`] does.
pub fn parse_millis(
    name: &str,
    raw: Option<&str>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    // A default beyond u64 milliseconds (584 million years) is not a setting.
    let default = u64::try_from(default.as_millis()).unwrap_or(u64::MAX);
    match parse(name, raw, default)? {
        0 => Err(ConfigError::invalid(name, "must be at least 1")),
        value => Ok(Duration::from_millis(value)),
    }
}
