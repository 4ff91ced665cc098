//! A scratch directory of one instance: data files and logs, removed when
//! the instance is dropped.

use std::path::{Path, PathBuf};

use crate::unique_id;

/// A fresh directory under the system's temp dir, removed on drop.
#[derive(Debug)]
pub struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    /// Creates `<tmp>/orderly-<what>-<id>`.
    pub fn new(what: &str) -> Self {
        let path = std::env::temp_dir().join(format!("orderly-{what}-{}", unique_id()));
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        Self { path }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        // Keep the logs of a failed run (or when asked) for whoever looks
        // into it.
        if std::thread::panicking() || std::env::var_os("ORDERLY_KEEP_SCRATCH").is_some() {
            eprintln!("kept {} (logs and data)", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// The last `lines` lines of the file at `path` (for failure messages).
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
