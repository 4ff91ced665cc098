use std::collections::HashMap;

use super::*;

fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |name| vars.get(name).cloned()
}

#[test]
fn no_token_means_auth_is_off() {
    let config = AuthConfig::from_lookup(lookup(&[])).expect("valid");
    assert!(!config.enabled());
    assert_eq!(config.role_of(b""), None);
}

#[test]
fn several_tokens_split_on_commas_and_newlines() {
    let config = AuthConfig::from_lookup(lookup(&[
        ("ORDERLY_AUTH_CLIENT_TOKEN", " old , new\nnewer\r\n"),
        ("ORDERLY_AUTH_ADMIN_TOKEN", "root"),
    ]))
    .expect("valid");
    assert!(config.enabled());
    assert_eq!(config.counts(), (3, 1));
    for token in ["old", "new", "newer"] {
        assert_eq!(
            config.role_of(token.as_bytes()),
            Some(Role::Client),
            "{token}"
        );
    }
    assert_eq!(config.role_of(b"root"), Some(Role::Admin));
    assert_eq!(config.role_of(b"ol"), None);
    assert_eq!(config.role_of(b"old "), None);
    assert_eq!(config.component_token().map(Token::expose), Some("root"));
}

#[test]
fn file_variants_add_to_the_plain_ones() {
    let dir = std::env::temp_dir().join(format!("orderly-auth-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("admin");
    std::fs::write(&file, "from-file-1\nfrom-file-2\n").expect("write");
    let config = AuthConfig::from_lookup(lookup(&[
        ("ORDERLY_AUTH_ADMIN_TOKEN", "plain"),
        (
            "ORDERLY_AUTH_ADMIN_TOKEN_FILE",
            file.to_str().expect("utf-8"),
        ),
    ]))
    .expect("valid");
    assert_eq!(config.counts(), (0, 3));
    assert_eq!(config.role_of(b"from-file-2"), Some(Role::Admin));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn an_unreadable_file_names_its_variable() {
    let error = AuthConfig::from_lookup(lookup(&[(
        "ORDERLY_AUTH_CLIENT_TOKEN_FILE",
        "/nonexistent/orderly/token",
    )]))
    .expect_err("no such file");
    assert!(
        error.to_string().contains("ORDERLY_AUTH_CLIENT_TOKEN_FILE"),
        "{error}"
    );
}

#[test]
fn client_tokens_need_an_admin_token() {
    let error = AuthConfig::from_lookup(lookup(&[("ORDERLY_AUTH_CLIENT_TOKEN", "c")]))
        .expect_err("no admin token");
    assert!(
        error.to_string().contains("ORDERLY_AUTH_ADMIN_TOKEN"),
        "{error}"
    );
}

#[test]
fn errors_and_debug_never_show_tokens() {
    let error = AuthConfig::from_lookup(lookup(&[("ORDERLY_AUTH_ADMIN_TOKEN", "se cret")]))
        .expect_err("a space");
    assert!(!error.to_string().contains("se cret"), "{error}");
    let config = AuthConfig::new(&["client-secret"], &["admin-secret"]);
    let debug = format!("{config:?} {:?}", config.component_token());
    assert!(!debug.contains("secret"), "{debug}");
}

#[test]
fn the_method_table_sorts_every_rpc() {
    for admin in [
        "/orderly.v1.InventoryService/SetStock",
        "/orderly.v1.InventoryService/AdjustStock",
        "/orderly.v1.InventoryService/Reserve",
        "/orderly.v1.InventoryService/Commit",
        "/orderly.v1.InventoryService/Release",
        "/orderly.v1.PaymentService/Refund",
        "/orderly.v1.QueryService/Rebuild",
        "/orderly.v1.DeadLetterService/ListDeadLetters",
        "/orderly.v1.DeadLetterService/RequeueDeadLetters",
        "/orderly.v1.DeadLetterService/GetConsumerStatus",
        "/orderly.v1.RelayAdmin/GetBacklog",
        "/orderly.v1.RelayAdmin/ListSetAside",
        "/orderly.v1.RelayAdmin/RetrySetAside",
        "/orderly.v1.VerifyService/Verify",
    ] {
        assert_eq!(access(admin), Some(Access::Admin), "{admin}");
    }
    for client in [
        "/orderly.v1.OrderService/CreateOrder",
        "/orderly.v1.OrderService/CancelOrder",
        "/orderly.v1.InventoryService/GetStock",
        "/orderly.v1.InventoryService/GetReservation",
        "/orderly.v1.PaymentService/GetPayment",
        "/orderly.v1.QueryService/GetOrder",
        "/orderly.v1.QueryService/WatchOrder",
    ] {
        assert_eq!(access(client), Some(Access::Client), "{client}");
    }
    for open in [
        "/grpc.health.v1.Health/Check",
        "/grpc.health.v1.Health/Watch",
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
    ] {
        assert_eq!(access(open), Some(Access::Open), "{open}");
    }
    // Closed by default: what the contract does not declare, nobody calls,
    // a prefix of a declared method included.
    for undeclared in [
        "/orderly.v1.InventoryService/SetStockLevels",
        "/orderly.v1.InventoryService/",
        "/orderly.v1.NewService/Anything",
        "",
        "/",
    ] {
        assert_eq!(access(undeclared), None, "{undeclared}");
    }
}

#[test]
fn the_table_holds_every_method_of_the_contract() {
    let methods = contract::methods(crate::proto::FILE_DESCRIPTOR_SET).expect("decodes");
    assert_eq!(DECLARED.len(), methods.len());
    assert!(DECLARED.windows(2).all(|w| w[0].0 < w[1].0), "sorted");
    for method in &methods {
        let expected = match method.access {
            Some(contract::Declared::Admin) => Access::Admin,
            Some(contract::Declared::Client) => Access::Client,
            None => panic!("{} declares no access", method.path),
        };
        assert_eq!(access(&method.path), Some(expected), "{}", method.path);
    }
}
