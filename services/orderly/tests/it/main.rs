//! The `orderly` binary's integration tests in one test binary: the command
//! line (`cli`) and the runbook in docs/operations.md (`runbook`).

mod cli;
mod runbook;
