//! Shared by the storage and durable-channel tests: a fresh directory per test for database files.
#![allow(dead_code)]

use std::path::PathBuf;

/// A fresh directory for one test, named after the test binary's `prefix`, the process and the
/// test (parallel tests and parallel binaries never share one); removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(prefix: &str, name: &str) -> TempDir {
        let d = std::env::temp_dir().join(format!("rc-{prefix}-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }

    /// A file in the directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// A file in the directory, as the string a JSON configuration names it by.
    pub fn db(&self, name: &str) -> String {
        self.file(name).display().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
