//! The boot-file namespace that TFTP and HTTP both serve, read-only: the boot
//! programs (iPXE builds, GRUB for arm64) under their well-known names, and
//! everything else from the boot directory (`[tftp] root`). Hostile names are
//! refused here, once, for both. (The GRUB configs are generated: see
//! `artifacts::GrubFile`.)

use crate::boot::BootProgram;
use crate::config::Config;
use std::fs::File;
use std::path::{Component, Path, PathBuf};

/// Where Debian's `ipxe` package puts its builds.
pub const SYSTEM_IPXE_DIR: &str = "/usr/lib/ipxe";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BootFileError {
    #[error("refused path {0:?}: {1}")]
    Refused(String, &'static str),
    #[error("no such boot file {0:?}")]
    NotFound(String),
}

/// Checks a requested name and returns it as a relative path with only
/// normal components. Refuses NUL bytes, absolute paths, `..`, and empty names.
pub fn sanitize(requested: &str) -> Result<PathBuf, BootFileError> {
    let refuse = |why| Err(BootFileError::Refused(requested.to_string(), why));
    if requested.contains('\0') {
        return refuse("contains a NUL byte");
    }
    if requested.starts_with('/') || requested.starts_with('\\') {
        return refuse("absolute paths are not served");
    }
    if requested.contains('\\') {
        return refuse("backslashes are not served");
    }
    let path = Path::new(requested);
    let mut clean = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(part) => clean.push(part),
            Component::CurDir => {}
            Component::ParentDir => return refuse("`..` is not served"),
            Component::RootDir | Component::Prefix(_) => {
                return refuse("absolute paths are not served")
            }
        }
    }
    if clean.as_os_str().is_empty() {
        return refuse("empty name");
    }
    Ok(clean)
}

/// The candidate locations of a boot program, in order of preference: the
/// image cache, then (for the x86 iPXE builds) Debian's `ipxe` package.
pub fn program_candidates(config: &Config, program: BootProgram) -> Vec<PathBuf> {
    let name = program.file_name();
    let mut v = vec![config
        .server
        .data_dir
        .join("images")
        .join(program.cache_dir())
        .join(name)];
    if program.cache_dir() == "ipxe" {
        v.push(Path::new(SYSTEM_IPXE_DIR).join(name));
    }
    v
}

/// Resolves a requested name to a regular file inside the served roots.
pub fn resolve(config: &Config, requested: &str) -> Result<PathBuf, BootFileError> {
    let clean = sanitize(requested)?;
    let not_found = || BootFileError::NotFound(requested.to_string());
    if let Some(program) = BootProgram::ALL
        .into_iter()
        .find(|p| Path::new(p.file_name()) == clean)
    {
        return program_candidates(config, program)
            .into_iter()
            .find(|p| p.is_file())
            .ok_or_else(not_found);
    }
    resolve_under(&config.tftp.root, requested)
}

/// Resolves a requested name to a regular file inside `root` (the boot
/// directory, or another served tree such as the Pi boot files).
pub fn resolve_under(root: &Path, requested: &str) -> Result<PathBuf, BootFileError> {
    let clean = sanitize(requested)?;
    let not_found = || BootFileError::NotFound(requested.to_string());
    let root = root.canonicalize().map_err(|_| not_found())?;
    // Canonicalizing resolves symlinks: a link that leads out of the root is refused.
    let full = root.join(&clean).canonicalize().map_err(|_| not_found())?;
    if !full.starts_with(&root) {
        return Err(BootFileError::Refused(
            requested.to_string(),
            "a link leads outside the boot directory",
        ));
    }
    if !full.is_file() {
        return Err(not_found());
    }
    Ok(full)
}

/// Opens a resolved boot file with its length.
pub fn open(config: &Config, requested: &str) -> Result<(File, u64), BootFileError> {
    let path = resolve(config, requested)?;
    let file = File::open(&path).map_err(|_| BootFileError::NotFound(requested.to_string()))?;
    let len = file
        .metadata()
        .map(|m| m.len())
        .map_err(|_| BootFileError::NotFound(requested.to_string()))?;
    Ok((file, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_are_refused() {
        for bad in [
            "../etc/passwd",
            "a/../../b",
            "/etc/passwd",
            "a\0b",
            "",
            ".",
            "..\\x",
            "\\x",
        ] {
            assert!(
                matches!(sanitize(bad), Err(BootFileError::Refused(..))),
                "{bad:?}"
            );
        }
        assert_eq!(sanitize("./a/b.efi").unwrap(), PathBuf::from("a/b.efi"));
    }
}
