//! Helpers of the end-to-end saga tests: the harness's order flows.

pub use orderly_integration_tests::orders::*;
