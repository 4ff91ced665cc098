//! Every method of every service the contract declares, called on every
//! component with no token, a wrong token, a client token and an admin
//! token: the answer must be what the method's `(orderly.v1.access)` option
//! declares. The methods come from the descriptor set the servers are built
//! from, not from a list kept here, so a new RPC is tried as soon as it
//! exists (and one without a declaration fails the build, or this test).

use std::time::Duration;

use orderly::{
    auth::{
        AuthConfig,
        contract::{self, Declared, Method},
    },
    client::GrpcChannel,
    proto::FILE_DESCRIPTOR_SET,
    tls::TlsConfig,
};
use orderly_integration_tests::{Component, TestPlatform};
use tonic::{Code, client::Grpc, codegen::http::uri::PathAndQuery};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use tonic_prost::ProstCodec;

use super::{ADMIN, CLIENT};

/// Who calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    Nobody,
    Stranger,
    Client,
    Admin,
}

impl Caller {
    const ALL: [Self; 4] = [Self::Nobody, Self::Stranger, Self::Client, Self::Admin];

    fn token(self) -> Option<&'static str> {
        match self {
            Self::Nobody => None,
            Self::Stranger => Some("not-a-token-0123456789"),
            Self::Client => Some(CLIENT),
            Self::Admin => Some(ADMIN),
        }
    }

    /// The refusal `declared` calls for, or `None` where the call must pass
    /// authentication.
    fn refusal(self, declared: Declared) -> Option<Code> {
        match (self, declared) {
            (Self::Nobody | Self::Stranger, _) => Some(Code::Unauthenticated),
            (Self::Client, Declared::Admin) => Some(Code::PermissionDenied),
            (Self::Client, Declared::Client) | (Self::Admin, _) => None,
        }
    }
}

/// Calls `method` with an empty request (`()` encodes as one, and decodes
/// any answer) and returns the status code it ended with: OK when it
/// answered, or for a stream, when it sent its first message or was still
/// open at the deadline.
async fn call(channel: GrpcChannel, method: &Method) -> Code {
    let path: PathAndQuery = method.path.parse().expect("a method path");
    let mut grpc = Grpc::new(channel);
    grpc.ready().await.expect("channel ready");
    let codec = ProstCodec::<(), ()>::default();
    let deadline = Duration::from_secs(3);
    let mut request = tonic::Request::new(());
    request.set_timeout(deadline);
    let answer = match (method.client_streaming, method.server_streaming) {
        (false, false) => grpc.unary(request, path, codec).await.map(drop),
        (false, true) => match grpc.server_streaming(request, path, codec).await {
            Ok(response) => first_message(response.into_inner(), deadline).await,
            Err(status) => Err(status),
        },
        (true, false) => grpc
            .client_streaming(streamed(deadline), path, codec)
            .await
            .map(drop),
        (true, true) => match grpc.streaming(streamed(deadline), path, codec).await {
            Ok(response) => first_message(response.into_inner(), deadline).await,
            Err(status) => Err(status),
        },
    };
    answer.map_or_else(|status| status.code(), |()| Code::Ok)
}

/// One empty message, as a client stream.
fn streamed(
    deadline: Duration,
) -> tonic::Request<futures::stream::Iter<std::array::IntoIter<(), 1>>> {
    let mut request = tonic::Request::new(futures::stream::iter([()]));
    request.set_timeout(deadline);
    request
}

async fn first_message(
    mut stream: tonic::Streaming<()>,
    deadline: Duration,
) -> Result<(), tonic::Status> {
    match tokio::time::timeout(deadline * 2, stream.message()).await {
        Ok(Err(status)) => Err(status),
        Ok(Ok(_)) | Err(_) => Ok(()),
    }
}

/// Whether `component` serves `service`, as its health service reports it
/// (health is open to every caller).
async fn serves(platform: &TestPlatform, component: Component, service: &str) -> bool {
    let channel = platform.channel_with_token(component, None).await;
    HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await
        .is_ok()
}

#[tokio::test]
async fn every_method_answers_every_caller_as_the_contract_declares() {
    let methods = contract::methods(FILE_DESCRIPTOR_SET).expect("the descriptor set decodes");
    let undeclared = contract::undeclared(&methods);
    assert!(
        undeclared.is_empty(),
        "methods without an (orderly.v1.access) option: {undeclared:?}"
    );
    let mut services: Vec<&str> = methods.iter().map(|m| m.service.as_str()).collect();
    services.dedup();
    assert!(
        services.len() >= 7,
        "services in the contract: {services:?}"
    );
    assert!(
        methods.iter().any(|m| m.server_streaming),
        "a streaming method is among those tried"
    );

    let platform = TestPlatform::builder()
        .all()
        .security(AuthConfig::new(&[CLIENT], &[ADMIN]), TlsConfig::default())
        .start()
        .await;
    let components = [
        Component::Order,
        Component::Inventory,
        Component::Payment,
        Component::Query,
        Component::Relay,
    ];
    let mut served_somewhere: Vec<&str> = Vec::new();
    let mut wrong = Vec::new();
    let mut calls = 0;
    for component in components {
        let mut channels = Vec::new();
        for caller in Caller::ALL {
            channels.push((
                caller,
                platform.channel_with_token(component, caller.token()).await,
            ));
        }
        for method in &methods {
            let declared = method.access.expect("checked above");
            let served = serves(&platform, component, &method.service).await;
            if served && !served_somewhere.contains(&method.service.as_str()) {
                served_somewhere.push(&method.service);
            }
            for (caller, channel) in &channels {
                let code = call(channel.clone(), method).await;
                calls += 1;
                let fine = match caller.refusal(declared) {
                    Some(refusal) => code == refusal,
                    // Past authentication: anything but a refusal, and where
                    // the component serves the method, it ran it.
                    None => {
                        let refused =
                            matches!(code, Code::Unauthenticated | Code::PermissionDenied);
                        let missing = served && code == Code::Unimplemented;
                        !refused && !missing
                    }
                };
                if !fine {
                    wrong.push(format!(
                        "{component:?} {} ({declared:?}) by {caller:?}: {code:?}",
                        method.path
                    ));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "answers against the contract:\n{}",
        wrong.join("\n")
    );
    let mut unserved: Vec<&str> = services
        .iter()
        .filter(|s| !served_somewhere.contains(s))
        .copied()
        .collect();
    unserved.sort_unstable();
    assert!(
        unserved.is_empty(),
        "services no component serves, so never tried past authentication: {unserved:?}"
    );
    assert_eq!(calls, components.len() * methods.len() * Caller::ALL.len());
}
