//! Optional bearer-token authentication of every gRPC request.
//!
//! Two roles: a *client* token may call the ordinary RPCs; an *admin* token
//! may call everything, including the admin RPCs (stock changes, refunds,
//! dead-letter requeues, relay admin, rebuilds, verification). Who may call
//! an RPC is declared on it in the contract
//! (`option (orderly.v1.access) = ACCESS_ADMIN;`, see
//! `proto/orderly/v1/access.proto`), and the table of [`access`] is
//! generated from those declarations at build time: an RPC without one
//! fails the build, and a path the table does not know is refused — access
//! is closed by default. Tokens come from `ORDERLY_AUTH_CLIENT_TOKEN` and
//! `ORDERLY_AUTH_ADMIN_TOKEN`, or from the files named by their `_FILE`
//! variants (mounted secrets); each may hold several tokens, separated by
//! commas or newlines, so a new token can be rolled out before the old one
//! is withdrawn. With no token configured at all, authentication is off.
//!
//! Health checks stay open for probes, and so does server reflection: it
//! only describes the schema, which ships with the project, and keeps
//! `grpcurl list` working without a token.

use std::fmt;

use crate::env::{ConfigError, ENV_PREFIX};

pub mod contract;
mod layer;

pub use layer::{Auth, AuthLayer};

/// Services anyone may call without a token, by path prefix. They are not
/// the platform's own, so the contract cannot declare them.
pub const OPEN_SERVICES: &[&str] = &[
    // Probes (Kubernetes, load balancers) carry no credentials.
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1.ServerReflection/",
    "/grpc.reflection.v1alpha.ServerReflection/",
];

/// What a request to `path` needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No token (health, reflection).
    Open,
    /// A client or an admin token.
    Client,
    /// An admin token.
    Admin,
}

mod generated {
    use super::Access;
    include!(concat!(env!("OUT_DIR"), "/access_table.rs"));
}

pub use generated::DECLARED;

/// The access rule for the RPC at `path` (`/package.Service/Method`):
/// open for health and reflection, else as the contract declares it;
/// `None` for a path the contract does not declare, which nobody may call.
pub fn access(path: &str) -> Option<Access> {
    if OPEN_SERVICES.iter().any(|prefix| path.starts_with(prefix)) {
        return Some(Access::Open);
    }
    DECLARED
        .binary_search_by(|(declared, _)| (*declared).cmp(path))
        .ok()
        .map(|i| DECLARED[i].1)
}

/// The role a presented token grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Ordinary RPCs.
    Client,
    /// Every RPC.
    Admin,
}

/// A secret token. Its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// The token itself, to send as `authorization: Bearer <token>`.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(***)")
    }
}

/// The accepted tokens of each role. `Debug` counts them, never shows them.
#[derive(Clone, Default)]
pub struct AuthConfig {
    client: Vec<Token>,
    admin: Vec<Token>,
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthConfig")
            .field("client_tokens", &self.client.len())
            .field("admin_tokens", &self.admin.len())
            .finish()
    }
}

impl AuthConfig {
    /// Authentication with these tokens (each entry may itself list several,
    /// separated by commas or newlines). Empty lists turn it off.
    pub fn new(client: &[&str], admin: &[&str]) -> Self {
        let parse = |list: &[&str]| list.iter().flat_map(|l| split_tokens(l)).collect();
        Self {
            client: parse(client),
            admin: parse(admin),
        }
    }

    /// Reads `ORDERLY_AUTH_CLIENT_TOKEN`, `ORDERLY_AUTH_ADMIN_TOKEN` and
    /// their `_FILE` variants.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`Self::from_env`], reading variables through `lookup` (full
    /// names, `ORDERLY_` included).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let config = Self {
            client: read_tokens("AUTH_CLIENT_TOKEN", &lookup)?,
            admin: read_tokens("AUTH_ADMIN_TOKEN", &lookup)?,
        };
        if !config.client.is_empty() && config.admin.is_empty() {
            // Admin RPCs, the saga's calls among them, would be refused.
            return Err(ConfigError::invalid(
                "AUTH_ADMIN_TOKEN",
                "must be set when ORDERLY_AUTH_CLIENT_TOKEN is (admin RPCs and calls between components need it)",
            ));
        }
        Ok(config)
    }

    /// Whether requests need a token: any token at all is configured.
    pub fn enabled(&self) -> bool {
        !self.client.is_empty() || !self.admin.is_empty()
    }

    /// How many client and admin tokens are accepted (for startup logs).
    pub fn counts(&self) -> (usize, usize) {
        (self.client.len(), self.admin.len())
    }

    /// The token a component sends when it calls another one: the first
    /// admin token.
    pub fn component_token(&self) -> Option<&Token> {
        self.admin.first()
    }

    /// The role `presented` grants, if any. Every configured token is
    /// compared, in constant time, so timing reveals neither a token nor
    /// which one matched.
    pub fn role_of(&self, presented: &[u8]) -> Option<Role> {
        use subtle::ConstantTimeEq;
        let any = |tokens: &[Token]| {
            tokens.iter().fold(subtle::Choice::from(0), |found, token| {
                found | token.0.as_bytes().ct_eq(presented)
            })
        };
        let admin = any(&self.admin);
        let client = any(&self.client);
        if bool::from(admin) {
            Some(Role::Admin)
        } else if bool::from(client) {
            Some(Role::Client)
        } else {
            None
        }
    }
}

/// Tokens from `ORDERLY_<name>` and from the file `ORDERLY_<name>_FILE`
/// names (both, when both are set).
fn read_tokens(
    name: &str,
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<Vec<Token>, ConfigError> {
    let mut tokens = Vec::new();
    if let Some(value) = lookup(&format!("{ENV_PREFIX}{name}")) {
        tokens.extend(split_tokens(&value));
    }
    let file_var = format!("{name}_FILE");
    if let Some(path) = lookup(&format!("{ENV_PREFIX}{file_var}")).filter(|p| !p.trim().is_empty())
    {
        let path = path.trim();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::invalid(&file_var, format!("cannot read {path}: {e}")))?;
        let from_file = split_tokens(&text);
        if from_file.is_empty() {
            return Err(ConfigError::invalid(
                &file_var,
                format!("{path} holds no token"),
            ));
        }
        tokens.extend(from_file);
    }
    for token in &tokens {
        // Never quote the token: the message may end up in a log.
        if !token.0.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ConfigError::invalid(
                name,
                "a token may hold only visible ASCII characters (no spaces)",
            ));
        }
    }
    Ok(tokens)
}

/// Splits a list of tokens on commas and newlines, dropping blanks.
fn split_tokens(list: &str) -> Vec<Token> {
    list.split([',', '\n', '\r'])
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| Token(t.to_owned()))
        .collect()
}

#[cfg(test)]
mod tests;
