//! TLS, SASL and any other librdkafka property for every Kafka client
//! (producers, consumers, admin clients), from `ORDERLY_KAFKA_*`.
//!
//! Named settings cover what managed clusters ask for; any other librdkafka
//! property passes through as `ORDERLY_KAFKA_PROPERTY_<NAME>`, where
//! `<NAME>` is the property upper-cased with `.` written `_` (and a `_` of
//! the property itself written `__`): `ORDERLY_KAFKA_PROPERTY_SOCKET_KEEPALIVE_ENABLE`
//! sets `socket.keepalive.enable`. Pass-through properties are applied
//! last, so they win over the named settings.

use std::{collections::BTreeMap, fmt};

use rdkafka::{ClientConfig, error::KafkaError};

use crate::config::{ConfigError, ENV_PREFIX};

/// Prefix of the pass-through variables (after `ORDERLY_`).
pub const PROPERTY_PREFIX: &str = "KAFKA_PROPERTY_";

/// librdkafka's switch for its unsecured-JWT OAUTHBEARER token.
const UNSECURE_JWT: &str = "enable.sasl.oauthbearer.unsecure.jwt";

/// `ORDERLY_KAFKA_SECURITY_PROTOCOL` values librdkafka accepts.
const PROTOCOLS: [&str; 4] = ["plaintext", "ssl", "sasl_plaintext", "sasl_ssl"];
/// `ORDERLY_KAFKA_SASL_MECHANISM` values this build supports (GSSAPI
/// would need Cyrus SASL; OAUTHBEARER only as an unsecured JWT).
const MECHANISMS: [&str; 4] = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"];

/// Security settings of every Kafka client. `Debug` hides the password and
/// secret-looking properties.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct KafkaSecurity {
    /// `ORDERLY_KAFKA_SECURITY_PROTOCOL`: `plaintext` (default), `ssl`,
    /// `sasl_plaintext` or `sasl_ssl`.
    pub security_protocol: Option<String>,
    /// `ORDERLY_KAFKA_SASL_MECHANISM`: `PLAIN`, `SCRAM-SHA-256`,
    /// `SCRAM-SHA-512` or `OAUTHBEARER`.
    pub sasl_mechanism: Option<String>,
    /// `ORDERLY_KAFKA_SASL_USERNAME` (or the file `…_FILE` names).
    pub sasl_username: Option<String>,
    /// `ORDERLY_KAFKA_SASL_PASSWORD` (or the file `…_FILE` names).
    pub sasl_password: Option<String>,
    /// `ORDERLY_KAFKA_CA_FILE`: PEM bundle of the brokers' CA
    /// (`ssl.ca.location`); unset, the system's roots.
    pub ca_file: Option<String>,
    /// `ORDERLY_KAFKA_CERT_FILE`: client certificate, PEM
    /// (`ssl.certificate.location`), for mutual TLS.
    pub cert_file: Option<String>,
    /// `ORDERLY_KAFKA_KEY_FILE`: the client certificate's key, PEM
    /// (`ssl.key.location`).
    pub key_file: Option<String>,
    /// `ORDERLY_KAFKA_PROPERTY_*`: other librdkafka properties, by name.
    pub properties: BTreeMap<String, String>,
}

impl fmt::Debug for KafkaSecurity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaSecurity")
            .field("settings", &self.describe())
            .finish()
    }
}

impl KafkaSecurity {
    /// Reads the settings from the environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        // vars() would panic on a variable that is not UTF-8 (of anyone's).
        Self::from_vars(std::env::vars_os().filter_map(|(name, value)| {
            Some((name.into_string().ok()?, value.into_string().ok()?))
        }))
    }

    /// Like [`Self::from_env`], from `(name, value)` pairs (full names,
    /// `ORDERLY_` included). Files are read and checked now, so a missing
    /// one fails startup naming its variable.
    pub fn from_vars(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let vars: BTreeMap<String, String> = vars
            .into_iter()
            .filter_map(|(name, value)| {
                let name = name.strip_prefix(ENV_PREFIX)?.to_owned();
                let value = value.trim().to_owned();
                (!value.is_empty()).then_some((name, value))
            })
            .collect();
        let get = |name: &str| vars.get(name).cloned();
        let file = |name: &str| -> Result<Option<String>, ConfigError> {
            let Some(path) = get(name) else {
                return Ok(None);
            };
            std::fs::File::open(&path)
                .map_err(|e| ConfigError::invalid(name, format!("cannot read {path}: {e}")))?;
            Ok(Some(path))
        };
        let security_protocol = get("KAFKA_SECURITY_PROTOCOL").map(|v| v.to_lowercase());
        if let Some(protocol) = &security_protocol
            && !PROTOCOLS.contains(&protocol.as_str())
        {
            return Err(ConfigError::invalid(
                "KAFKA_SECURITY_PROTOCOL",
                format!("must be one of {} (got {protocol:?})", PROTOCOLS.join(", ")),
            ));
        }
        let sasl_mechanism = get("KAFKA_SASL_MECHANISM").map(|v| v.to_uppercase());
        if let Some(mechanism) = &sasl_mechanism
            && !MECHANISMS.contains(&mechanism.as_str())
        {
            return Err(ConfigError::invalid(
                "KAFKA_SASL_MECHANISM",
                format!(
                    "must be one of {} (got {mechanism:?})",
                    MECHANISMS.join(", ")
                ),
            ));
        }
        let mut properties = BTreeMap::new();
        for (name, value) in &vars {
            if let Some(property) = name.strip_prefix(PROPERTY_PREFIX) {
                properties.insert(property_name(property), value.clone());
            }
        }
        let security = Self {
            security_protocol,
            sasl_mechanism,
            sasl_username: secret("KAFKA_SASL_USERNAME", &vars)?,
            sasl_password: secret("KAFKA_SASL_PASSWORD", &vars)?,
            ca_file: file("KAFKA_CA_FILE")?,
            cert_file: file("KAFKA_CERT_FILE")?,
            key_file: file("KAFKA_KEY_FILE")?,
            properties,
        };
        crate::env::cert_and_key(
            "KAFKA_CERT_FILE",
            security.cert_file.as_ref(),
            "KAFKA_KEY_FILE",
            security.key_file.as_ref(),
        )?;
        security.check()?;
        Ok(security)
    }

    /// The librdkafka properties, in the order they are applied.
    pub fn properties(&self) -> Vec<(&str, &str)> {
        let named = [
            ("security.protocol", &self.security_protocol),
            ("sasl.mechanism", &self.sasl_mechanism),
            ("sasl.username", &self.sasl_username),
            ("sasl.password", &self.sasl_password),
            ("ssl.ca.location", &self.ca_file),
            ("ssl.certificate.location", &self.cert_file),
            ("ssl.key.location", &self.key_file),
        ];
        named
            .into_iter()
            .filter_map(|(name, value)| Some((name, value.as_deref()?)))
            .chain(
                self.properties
                    .iter()
                    .map(|(name, value)| (name.as_str(), value.as_str())),
            )
            .collect()
    }

    /// Sets the properties on a client's configuration.
    pub fn apply(&self, config: &mut ClientConfig) {
        for (name, value) in self.properties() {
            config.set(name, value);
        }
    }

    /// The settings as `(variable without ORDERLY_, value)`, secrets as
    /// `***`, for `orderly config`.
    pub fn describe(&self) -> Vec<(String, String)> {
        let shown = |value: &Option<String>| value.clone().unwrap_or_default();
        let mut out = vec![
            (
                "KAFKA_SECURITY_PROTOCOL".into(),
                shown(&self.security_protocol),
            ),
            ("KAFKA_SASL_MECHANISM".into(), shown(&self.sasl_mechanism)),
            ("KAFKA_SASL_USERNAME".into(), shown(&self.sasl_username)),
            (
                "KAFKA_SASL_PASSWORD".into(),
                if self.sasl_password.is_some() {
                    "***"
                } else {
                    ""
                }
                .into(),
            ),
            ("KAFKA_CA_FILE".into(), shown(&self.ca_file)),
            ("KAFKA_CERT_FILE".into(), shown(&self.cert_file)),
            ("KAFKA_KEY_FILE".into(), shown(&self.key_file)),
        ];
        for (name, value) in &self.properties {
            let value = if is_secret(name) {
                "***".into()
            } else {
                value.clone()
            };
            out.push((format!("{PROPERTY_PREFIX}{}", variable_suffix(name)), value));
        }
        out
    }

    /// Lets librdkafka check every property name and value now, naming the
    /// variable of one it refuses (never its value: it may be a secret).
    fn check(&self) -> Result<(), ConfigError> {
        let mut config = ClientConfig::new();
        self.apply(&mut config);
        let native = match config.create_native_config() {
            Ok(native) => native,
            Err(KafkaError::ClientConfig(_, description, property, _)) => {
                return Err(ConfigError::invalid(
                    &self.variable_of(&property),
                    format!("librdkafka refuses {property}: {description}"),
                ));
            }
            Err(other) => return Err(ConfigError::invalid("KAFKA_PROPERTY_*", other)),
        };
        // This build has no libcurl (so no OIDC) and orderly sets no token
        // callback: librdkafka's unsecured JWT is the only token source, and
        // without it every client would wait for a token for ever. Judged on
        // the values librdkafka will use (a pass-through property wins over a
        // named setting, and librdkafka reads `1` as true).
        let effective = |property: &str| native.get(property).unwrap_or_default();
        if effective("sasl.mechanisms").eq_ignore_ascii_case("OAUTHBEARER")
            && effective(UNSECURE_JWT) != "true"
        {
            let set_by = if self.properties.contains_key("sasl.mechanism") {
                "sasl.mechanism"
            } else {
                "sasl.mechanisms"
            };
            return Err(ConfigError::invalid(
                &self.variable_of(set_by),
                format!(
                    "OAUTHBEARER works in this build only with librdkafka's unsecured JWT \
                     (for testing): set {ENV_PREFIX}{PROPERTY_PREFIX}{}=true and the \
                     token's claims in {ENV_PREFIX}{PROPERTY_PREFIX}SASL_OAUTHBEARER_CONFIG",
                    variable_suffix(UNSECURE_JWT)
                ),
            ));
        }
        Ok(())
    }

    /// The variable (without `ORDERLY_`) that set `property`.
    fn variable_of(&self, property: &str) -> String {
        let named = match property {
            "security.protocol" => "KAFKA_SECURITY_PROTOCOL",
            "sasl.mechanism" | "sasl.mechanisms" => "KAFKA_SASL_MECHANISM",
            "sasl.username" => "KAFKA_SASL_USERNAME",
            "sasl.password" => "KAFKA_SASL_PASSWORD",
            "ssl.ca.location" => "KAFKA_CA_FILE",
            "ssl.certificate.location" => "KAFKA_CERT_FILE",
            "ssl.key.location" => "KAFKA_KEY_FILE",
            _ => "",
        };
        if self.properties.contains_key(property) || named.is_empty() {
            format!("{PROPERTY_PREFIX}{}", variable_suffix(property))
        } else {
            named.to_owned()
        }
    }
}

/// `SOCKET_KEEPALIVE_ENABLE` → `socket.keepalive.enable`; `__` → `_`.
pub fn property_name(suffix: &str) -> String {
    suffix
        .to_lowercase()
        .split("__")
        .map(|part| part.replace('_', "."))
        .collect::<Vec<_>>()
        .join("_")
}

/// The inverse of [`property_name`].
pub fn variable_suffix(property: &str) -> String {
    property.replace('_', "__").replace('.', "_").to_uppercase()
}

/// Whether a property's value must not be shown: passwords, secrets,
/// tokens, private keys given inline, and `sasl.oauthbearer.config` (the
/// unsecured JWT's claims, or whatever an OAUTHBEARER setup puts there).
fn is_secret(property: &str) -> bool {
    [
        "password",
        "passphrase",
        "secret",
        "jaas",
        "token",
        "key.pem",
        "private.key",
        "credentials",
        "oauthbearer.config",
    ]
    .iter()
    .any(|word| property.contains(word))
}

/// `ORDERLY_<name>`, or the contents of the file `ORDERLY_<name>_FILE`
/// names (a mounted Secret; one trailing newline dropped); not both.
fn secret(name: &str, vars: &BTreeMap<String, String>) -> Result<Option<String>, ConfigError> {
    let file_var = format!("{name}_FILE");
    match (vars.get(name), vars.get(&file_var)) {
        (Some(_), Some(_)) => Err(ConfigError::invalid(
            &file_var,
            format!("set either {ENV_PREFIX}{name} or {ENV_PREFIX}{file_var}, not both"),
        )),
        (Some(value), None) => Ok(Some(value.clone())),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| ConfigError::invalid(&file_var, format!("cannot read {path}: {e}")))?;
            Ok(Some(text.trim_end_matches(['\r', '\n']).to_owned()))
        }
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests;
