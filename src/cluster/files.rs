//! Secret files on disk: written atomically (temp + fsync + rename) with mode
//! 0600 in 0700 directories, read back with errors that say what to do.
//! A half-written secret must never be mistaken for a real one, hence the
//! rename; and the errors never suggest regenerating one file alone, because a
//! cluster whose CA changes under it cannot be joined any more.

use anyhow::{Context, Result};
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Creates `dir` (and parents) with mode 0700 when missing, and tightens it to
/// 0700 when it exists: secrets must not be listable by other users.
pub fn private_dir(dir: &Path) -> Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot set mode 0700 on {}", dir.display()))
}

/// Writes `path` atomically with mode 0600: a crash leaves either the old file
/// or the new one, never a truncated secret.
pub fn write_private(path: &Path, contents: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .with_context(|| format!("{} has no parent directory", path.display()))?;
    let name = path
        .file_name()
        .with_context(|| format!("{} has no file name", path.display()))?;
    let tmp = dir.join(format!(".{}.tmp", name.to_string_lossy()));
    let write = || -> std::io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        // `mode` applies only on creation; a leftover temp file keeps its old mode.
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        f.write_all(contents)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        sync_dir(dir)
    };
    write().with_context(|| format!("cannot write {}", path.display()))
}

/// Makes a rename or a new entry in `dir` durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Reads a secret file that must exist. `dir` is the secrets directory, named
/// in the error so that the operator knows what to restore.
pub fn read_required(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => missing(path),
        _ => anyhow::anyhow!(
            "cannot read {}: {e} (bootherd must run as the user that owns it)",
            path.display()
        ),
    })
}

/// The error for a secret file that is not there.
pub fn missing(path: &Path) -> anyhow::Error {
    anyhow::anyhow!(
        "{} is missing: bootherd never regenerates one cluster secret alone (the cluster's \
         nodes trust the existing ones); restore the file from a backup of {}, or, to start \
         a new cluster from scratch, move the whole directory away and reinstall every node",
        path.display(),
        path.parent()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    )
}

/// The error for a file that exists but does not parse.
pub fn corrupt(path: &Path, what: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "{} is not a valid {what}: restore it from a backup of {} (bootherd does not regenerate \
         it, since the cluster's nodes trust the existing one)",
        path.display(),
        path.parent()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    )
}
