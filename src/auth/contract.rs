//! The access rules the contract declares: each RPC's
//! `option (orderly.v1.access)` (see `proto/orderly/v1/access.proto`), read
//! from an encoded `FileDescriptorSet`.
//!
//! The build reads them to generate the servers' access table (this file
//! is compiled into `build.rs` as well, so it uses nothing but `prost`),
//! and tests read them to call every method. `prost-types` drops the
//! options it does not know, so the few descriptor fields needed here are
//! declared again, with the option's field number.

use std::fmt;

use prost::Message;

/// The field number of `orderly.v1.access` on `google.protobuf.MethodOptions`.
pub const ACCESS_FIELD: u32 = 50001;

/// Who may call an RPC, as declared in the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Declared {
    /// `ACCESS_CLIENT`: a client or an admin token.
    Client,
    /// `ACCESS_ADMIN`: an admin token only.
    Admin,
}

/// One RPC of the contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Method {
    /// Its path on the wire, `/package.Service/Method`.
    pub path: String,
    /// The service's full name, `package.Service`.
    pub service: String,
    /// Whether the client sends a stream.
    pub client_streaming: bool,
    /// Whether the server answers with a stream.
    pub server_streaming: bool,
    /// Who may call it; `None`: not declared (or an unknown value).
    pub access: Option<Declared>,
}

/// The descriptor set could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(String);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot decode the file descriptor set: {}", self.0)
    }
}

impl std::error::Error for DecodeError {}

/// Every RPC of every service in the encoded `FileDescriptorSet`, in the
/// order of the files and of their declarations.
pub fn methods(descriptor_set: &[u8]) -> Result<Vec<Method>, DecodeError> {
    let set = FileDescriptorSet::decode(descriptor_set).map_err(|e| DecodeError(e.to_string()))?;
    let mut methods = Vec::new();
    for file in &set.file {
        for service in &file.service {
            let full = if file.package.is_empty() {
                service.name.clone()
            } else {
                format!("{}.{}", file.package, service.name)
            };
            for method in &service.method {
                let access = method.options.as_ref().and_then(|o| o.access);
                methods.push(Method {
                    path: format!("/{full}/{}", method.name),
                    service: full.clone(),
                    client_streaming: method.client_streaming,
                    server_streaming: method.server_streaming,
                    access: match access {
                        Some(1) => Some(Declared::Client),
                        Some(2) => Some(Declared::Admin),
                        _ => None,
                    },
                });
            }
        }
    }
    Ok(methods)
}

/// The paths of the methods that declare no access (or an unknown value).
pub fn undeclared(methods: &[Method]) -> Vec<&str> {
    methods
        .iter()
        .filter(|m| m.access.is_none())
        .map(|m| m.path.as_str())
        .collect()
}

/// `google.protobuf.FileDescriptorSet`, only what is read here.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FileDescriptorSet {
    /// The files.
    #[prost(message, repeated, tag = "1")]
    pub file: Vec<FileDescriptorProto>,
}

/// `google.protobuf.FileDescriptorProto`, only what is read here.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FileDescriptorProto {
    /// The file's path.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Its package.
    #[prost(string, tag = "2")]
    pub package: String,
    /// Its services.
    #[prost(message, repeated, tag = "6")]
    pub service: Vec<ServiceDescriptorProto>,
}

/// `google.protobuf.ServiceDescriptorProto`, only what is read here.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ServiceDescriptorProto {
    /// The service's short name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Its RPCs.
    #[prost(message, repeated, tag = "2")]
    pub method: Vec<MethodDescriptorProto>,
}

/// `google.protobuf.MethodDescriptorProto`, only what is read here.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MethodDescriptorProto {
    /// The RPC's name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Its options.
    #[prost(message, optional, tag = "4")]
    pub options: Option<MethodOptions>,
    /// Whether the client streams.
    #[prost(bool, tag = "5")]
    pub client_streaming: bool,
    /// Whether the server streams.
    #[prost(bool, tag = "6")]
    pub server_streaming: bool,
}

/// `google.protobuf.MethodOptions` with the `orderly.v1.access` extension.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MethodOptions {
    /// `(orderly.v1.access)`, as its enum number.
    #[prost(int32, optional, tag = "50001")]
    pub access: Option<i32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn method(name: &str, access: Option<i32>) -> MethodDescriptorProto {
        MethodDescriptorProto {
            name: name.to_owned(),
            options: Some(MethodOptions { access }),
            client_streaming: false,
            server_streaming: name.starts_with("Watch"),
        }
    }

    /// A contract as the build sees it, with `SetStock`'s declaration as
    /// given.
    fn fixture(set_stock: Option<i32>) -> Vec<u8> {
        FileDescriptorSet {
            file: vec![FileDescriptorProto {
                name: "orderly/v1/inventory.proto".into(),
                package: "orderly.v1".into(),
                service: vec![ServiceDescriptorProto {
                    name: "InventoryService".into(),
                    method: vec![
                        method("GetStock", Some(1)),
                        method("SetStock", set_stock),
                        method("WatchStock", Some(1)),
                    ],
                }],
            }],
        }
        .encode_to_vec()
    }

    #[test]
    fn declarations_are_read_from_the_descriptors() {
        let methods = methods(&fixture(Some(2))).expect("decodes");
        let found: Vec<_> = methods
            .iter()
            .map(|m| (m.path.as_str(), m.access, m.server_streaming))
            .collect();
        assert_eq!(
            found,
            [
                (
                    "/orderly.v1.InventoryService/GetStock",
                    Some(Declared::Client),
                    false
                ),
                (
                    "/orderly.v1.InventoryService/SetStock",
                    Some(Declared::Admin),
                    false
                ),
                (
                    "/orderly.v1.InventoryService/WatchStock",
                    Some(Declared::Client),
                    true
                ),
            ]
        );
        assert!(undeclared(&methods).is_empty());
    }

    #[test]
    fn an_admin_method_without_its_option_is_undeclared() {
        for options in [None, Some(0), Some(7)] {
            let methods = methods(&fixture(options)).expect("decodes");
            assert_eq!(
                undeclared(&methods),
                ["/orderly.v1.InventoryService/SetStock"],
                "{options:?}"
            );
        }
        let mut no_options =
            FileDescriptorSet::decode(fixture(Some(2)).as_slice()).expect("fixture");
        no_options.file[0].service[0].method[1].options = None;
        let methods = methods(&no_options.encode_to_vec()).expect("decodes");
        assert_eq!(
            undeclared(&methods),
            ["/orderly.v1.InventoryService/SetStock"]
        );
    }

    #[test]
    fn the_platforms_contract_declares_every_method() {
        let methods = methods(crate::proto::FILE_DESCRIPTOR_SET).expect("decodes");
        assert!(methods.len() >= 20, "{} methods", methods.len());
        assert_eq!(undeclared(&methods), Vec::<&str>::new());
    }
}
