//! Reaching components and turning gRPC failures into readable errors.

use std::time::Duration;

use anyhow::{Context, anyhow};
use orderly::{
    client::{ChannelBuilder, GrpcChannel},
    proto::v1::order_service_client::OrderServiceClient,
    status::code_name,
    tls::TlsConfig,
};
use tonic::Status;
use tonic_types::StatusExt;

use super::Common;

/// How long to wait for a TCP connection: a component that is down refuses
/// at once; one that is unreachable should not hang a command.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Connects to the component `name` at `addr` (`host:port` or a URL) with
/// `common`'s token, over TLS when `ORDERLY_TLS_CA_FILE` is set; each call
/// on the channel is bounded by `common`'s timeout.
pub async fn connect(common: &Common, name: &str, addr: &str) -> anyhow::Result<GrpcChannel> {
    let tls = TlsConfig::from_env()?;
    let channels = ChannelBuilder::new(&tls, common.token.as_deref())
        .context("invalid --token / ORDERLY_TOKEN")?
        .connect_timeout(CONNECT_TIMEOUT);
    let endpoint = channels
        .endpoint(addr)
        .with_context(|| format!("invalid {name} address {addr:?}"))?
        .timeout(common.timeout());
    let channel = endpoint.connect().await.map_err(|error| {
        let error = std::error::Error::source(&error)
            .map_or_else(|| error.to_string(), |source| format!("{error}: {source}"));
        anyhow!("UNAVAILABLE: the {name} service at {addr} does not answer ({error})")
    })?;
    Ok(channels.wrap(channel))
}

/// A client of the order service (the `orders` commands and `watch`, which
/// polls it when the query service cannot answer).
pub async fn order_client(common: &Common) -> anyhow::Result<OrderServiceClient<GrpcChannel>> {
    let channel = connect(common, "order", &common.order_addr).await?;
    Ok(OrderServiceClient::new(channel))
}

/// `CODE: message`, then one line per invalid field when the status
/// carries `google.rpc.BadRequest` details.
pub fn describe(status: &Status) -> String {
    let violations = status
        .get_details_bad_request()
        .map(|bad| bad.field_violations)
        .unwrap_or_default();
    let message = status.message();
    // orderly's servers also spell every violation out in the message
    // ("invalid request: a: ...; b: ..."); the lines below say it once.
    let repeated = !violations.is_empty()
        && violations
            .iter()
            .all(|v| message.contains(&format!("{}: {}", v.field, v.description)));
    let headline = match message.split_once(": ") {
        Some((head, _)) if repeated => head,
        _ => message,
    };
    let mut text = format!("{}: {headline}", code_name(status.code()));
    for violation in violations {
        text.push_str(&format!(
            "\n  {}: {}",
            violation.field, violation.description
        ));
    }
    text
}

/// Unwraps a gRPC answer, or fails with [`describe`]'s text.
pub trait Answer<T> {
    /// The response message, or a readable error.
    fn answer(self) -> anyhow::Result<T>;
}

impl<T> Answer<T> for Result<tonic::Response<T>, Status> {
    fn answer(self) -> anyhow::Result<T> {
        self.map(tonic::Response::into_inner)
            .map_err(|status| anyhow!(describe(&status)))
    }
}

#[cfg(test)]
mod tests {
    use tonic::Code;

    use super::*;

    #[test]
    fn field_violations_are_listed_under_the_code() {
        let mut violations = orderly::status::Violations::default();
        violations.add("items[0].quantity", "must be between 1 and 1000");
        let text = describe(&Status::from(violations));
        assert!(
            text.starts_with("INVALID_ARGUMENT: invalid request\n"),
            "{text}"
        );
        assert!(
            text.contains("\n  items[0].quantity: must be between 1 and 1000"),
            "{text}"
        );
    }

    #[test]
    fn codes_are_named_as_grpc_names_them() {
        assert_eq!(code_name(Code::NotFound), "NOT_FOUND");
        assert_eq!(code_name(Code::FailedPrecondition), "FAILED_PRECONDITION");
    }
}
