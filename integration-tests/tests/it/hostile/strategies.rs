//! Values a hostile client sends: empty, huge, unicode, control-character
//! and whitespace strings; extreme and negative numbers; repeated, missing
//! and oversized lists.

use proptest::{collection::vec, prelude::*};

/// A huge string, kept under the message size limit even 100 times over
/// (oversized messages have tests of their own).
const HUGE: usize = 4_096;

/// Strings no field accepts, or accepts only by accident.
pub fn hostile_string() -> BoxedStrategy<String> {
    prop_oneof![
        Just(String::new()),
        Just(" ".to_owned()),
        Just("\t\r\n ".to_owned()),
        Just("\0".to_owned()),
        Just("a\0b".to_owned()),
        Just("\u{7f}\u{1b}[31m".to_owned()),
        Just("é".to_owned()),
        Just("😀".repeat(64)),
        Just("\u{202e}gnp.exe".to_owned()),
        Just("a\u{200b}b".to_owned()),
        Just("e\u{301}".to_owned()),
        Just("Ａ１".to_owned()),
        Just("%s%n%x".to_owned()),
        Just("'; DROP TABLE orders.orders; --".to_owned()),
        Just("{hash}tag".to_owned()),
        Just("a,b=c".to_owned()),
        Just("../../etc/passwd".to_owned()),
        Just("x".repeat(65)),
        Just("x".repeat(129)),
        Just("x".repeat(257)),
        Just("x".repeat(HUGE)),
        Just("é".repeat(HUGE / 2)),
        "[\\PC]{0,80}",
        "[\\x00-\\x1f ]{1,8}",
        any::<String>(),
    ]
    .boxed()
}

/// Sometimes a valid value, sometimes a hostile one.
pub fn or_hostile(valid: impl Strategy<Value = String> + 'static) -> BoxedStrategy<String> {
    prop_oneof![valid, hostile_string()].boxed()
}

/// An id field (a customer id, say): valid in about one case of four,
/// hostile otherwise, so most cases try the field's checks rather than
/// walking past them to the next field.
pub fn id_or_hostile(valid: impl Strategy<Value = String> + 'static) -> BoxedStrategy<String> {
    prop_oneof![1 => valid, 3 => hostile_string()].boxed()
}

/// A customer id, hostile in about three cases of four.
pub fn customer_id() -> BoxedStrategy<String> {
    id_or_hostile("[A-Za-z0-9._:-]{1,64}")
}

/// A well-formed SKU.
pub fn valid_sku() -> BoxedStrategy<String> {
    "[A-Za-z0-9._-]{1,64}".boxed()
}

/// A SKU as a hostile client sends it.
pub fn sku() -> BoxedStrategy<String> {
    prop_oneof![
        valid_sku(),
        Just("SKU-1".to_owned()),
        Just("a".repeat(64)),
        hostile_string(),
    ]
    .boxed()
}

/// Order ids, malformed in about three cases of four: hostile strings,
/// near-UUIDs (padded, cut short, one character wrong, UUID-like noise);
/// otherwise well-formed UUIDs of every accepted spelling, the nil UUID
/// and the platform's `known` order.
pub fn order_id(known: String) -> BoxedStrategy<String> {
    let well_formed = prop_oneof![
        Just(known),
        Just(uuid::Uuid::nil().to_string()),
        Just(uuid::Uuid::max().to_string()),
        any::<u128>().prop_map(|n| uuid::Uuid::from_u128(n).to_string()),
        any::<u128>().prop_map(|n| uuid::Uuid::from_u128(n).simple().to_string()),
        any::<u128>().prop_map(|n| uuid::Uuid::from_u128(n).braced().to_string()),
        any::<u128>().prop_map(|n| uuid::Uuid::from_u128(n).urn().to_string()),
        any::<u128>().prop_map(|n| uuid::Uuid::from_u128(n).to_string().to_uppercase()),
    ];
    let near = prop_oneof![
        // Whitespace around a UUID: a parser that trims lets it through.
        any::<u128>().prop_map(|n| format!(" {} ", uuid::Uuid::from_u128(n))),
        any::<u128>().prop_map(|n| format!("{}\n", uuid::Uuid::from_u128(n))),
        any::<u128>().prop_map(|n| format!("\t{}", uuid::Uuid::from_u128(n).simple())),
        any::<u128>().prop_map(|n| format!("{}\0", uuid::Uuid::from_u128(n))),
        any::<u128>().prop_map(|n| uuid::Uuid::from_u128(n).to_string()[1..].to_owned()),
        any::<u128>().prop_map(|n| format!("{}0", uuid::Uuid::from_u128(n))),
        any::<u128>().prop_map(|n| uuid::Uuid::from_u128(n).to_string().replacen('-', "_", 1)),
        any::<u128>().prop_map(|n| uuid::Uuid::from_u128(n)
            .to_string()
            .replacen('a', "g", 1)
            .replacen('0', "\u{660}", 1)),
        "[0-9a-f-]{30,40}",
    ];
    prop_oneof![1 => well_formed, 1 => near, 2 => hostile_string()].boxed()
}

/// A currency code, valid or not.
pub fn currency() -> BoxedStrategy<String> {
    prop_oneof![
        Just("EUR".to_owned()),
        Just("JPY".to_owned()),
        Just("eur".to_owned()),
        Just("ABC".to_owned()),
        "[A-Z]{3}",
        hostile_string(),
    ]
    .boxed()
}

/// Signed numbers at and around every bound.
pub fn i64_extreme() -> BoxedStrategy<i64> {
    prop_oneof![
        Just(i64::MIN),
        Just(i64::MIN + 1),
        Just(i64::MAX),
        Just(-1),
        Just(0),
        Just(1),
        Just(1_000_000_000),
        Just(1_000_000_001),
        Just(-1_000_000_000),
        Just(-1_000_000_001),
        0..1_000i64,
        any::<i64>(),
    ]
    .boxed()
}

/// Unsigned 32-bit numbers at and around every bound.
pub fn u32_extreme() -> BoxedStrategy<u32> {
    prop_oneof![
        Just(0),
        Just(1),
        Just(100),
        Just(101),
        Just(1_000),
        Just(1_001),
        Just(u32::MAX),
        0..2_000u32,
        any::<u32>(),
    ]
    .boxed()
}

/// Unsigned 64-bit numbers at and around every bound.
pub fn u64_extreme() -> BoxedStrategy<u64> {
    prop_oneof![
        Just(0),
        Just(1),
        Just(u64::MAX),
        Just(i64::MAX as u64),
        Just(i64::MAX as u64 + 1),
        any::<u64>(),
    ]
    .boxed()
}

/// Lists of `element`: empty, a few, the bound (100) and one past it, and
/// one value repeated up to past the bound.
pub fn list<T: Clone + std::fmt::Debug + 'static>(
    element: BoxedStrategy<T>,
) -> BoxedStrategy<Vec<T>> {
    prop_oneof![
        Just(Vec::new()),
        vec(element.clone(), 1..5),
        vec(element.clone(), 99..=101),
        (element, 1..=101usize).prop_map(|(one, n)| vec![one; n]),
    ]
    .boxed()
}
