//! The operator token: a secret in `<data_dir>/operator-token` (mode 0600)
//! that API writes (reimage, reload) must present. The CLI on the same host
//! reads it from there; machines on the provisioning VLAN never see it.

use anyhow::{Context, Result};
use rand::RngCore;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

pub fn token_path(data_dir: &Path) -> PathBuf {
    data_dir.join("operator-token")
}

/// Creates the token if there is none; returns it.
pub fn ensure(data_dir: &Path) -> Result<String> {
    if let Ok(t) = read(data_dir) {
        return Ok(t);
    }
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    let token = hex::encode(bytes);
    let path = token_path(data_dir);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(token.as_bytes())?;
    f.sync_all()?;
    Ok(token)
}

pub fn read(data_dir: &Path) -> Result<String> {
    let path = token_path(data_dir);
    let t = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read the operator token {} (run as the user that runs bootherd serve, e.g. with sudo)", path.display()))?;
    Ok(t.trim().to_string())
}

/// Compares in constant time, so response timing does not leak the token.
pub fn verify(data_dir: &Path, presented: Option<&str>) -> Result<bool> {
    let Some(presented) = presented else {
        return Ok(false);
    };
    let expected = read(data_dir)?;
    let (a, b) = (expected.as_bytes(), presented.trim().as_bytes());
    if a.len() != b.len() {
        return Ok(false);
    }
    Ok(a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0)
}
