//! Structured logging through `tracing`.
//!
//! `ORDERLY_LOG` (or `RUST_LOG`) sets the filter, default `info`;
//! `ORDERLY_LOG_FORMAT=json` switches to one JSON object per line.

use std::io::IsTerminal;

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// Installs the global subscriber. Safe to call more than once (tests do):
/// later calls keep the first subscriber.
pub fn init() {
    let filter = std::env::var("ORDERLY_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".to_owned());
    let filter = EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("ORDERLY_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let registry = tracing_subscriber::registry().with(filter);
    let _ = if json {
        registry.with(fmt::layer().json()).try_init()
    } else {
        // Colour only on a terminal, so log files and collectors get plain text.
        let ansi = std::io::stdout().is_terminal();
        registry.with(fmt::layer().with_ansi(ansi)).try_init()
    };
}
