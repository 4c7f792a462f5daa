//! Filling the cache without internet: files are taken from a directory or
//! mounted media and checked exactly as a download is — against the
//! `SHA256SUMS` found beside the file (for release-line entries) or the
//! pinned digest — then copied in under a temporary name and renamed. A
//! Debian package is also found under the name `apt-get download` gives it.

use super::cache;
use super::catalog::{glob_match, Entry, Source};
use super::{fetch, verify};
use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// How deep below the given path files are looked for (media often hold a
/// `releases/24.04/…` tree).
const MAX_DEPTH: usize = 4;

/// Imports every catalog entry found under `from`; returns the names imported.
pub fn import(catalog: &[Entry], from: &Path, images_dir: &Path) -> Result<Vec<String>> {
    anyhow::ensure!(
        from.is_dir(),
        "{} is not a directory: mount the media (mount -o loop,ro IMAGE /mnt) and import the mount point",
        from.display()
    );
    let mut files = Vec::new();
    walk(from, 0, &mut files)?;
    let mut imported = Vec::new();
    for entry in catalog {
        let (found, sha256) = match &entry.source {
            Source::Package { .. } => continue,
            Source::Pinned { url, sha256 } => {
                let base = url.rsplit('/').next().unwrap_or_default();
                match files.iter().find(|p| pool_name(&file_name(p)) == base) {
                    Some(p) => (p.clone(), sha256.clone()),
                    None => continue,
                }
            }
            Source::Sha256Sums { pattern, .. } => {
                let mut candidates: Vec<&PathBuf> = files
                    .iter()
                    .filter(|p| glob_match(pattern, &file_name(p)))
                    .collect();
                candidates.sort_by_key(|p| fetch::natural_key(&file_name(p)));
                let Some(p) = candidates.pop() else { continue };
                let sums = p.with_file_name("SHA256SUMS");
                let text = fs::read_to_string(&sums).with_context(|| {
                    format!(
                        "{}: no SHA256SUMS beside it; copy SHA256SUMS from the release directory next to the file",
                        p.display()
                    )
                })?;
                let name = file_name(p);
                let sha = verify::parse_sums(&text)
                    .into_iter()
                    .find(|(_, n)| *n == name)
                    .map(|(d, _)| d)
                    .with_context(|| format!("{} has no line for {name}", sums.display()))?;
                (p.clone(), sha)
            }
        };
        let dest = entry.path(images_dir);
        copy_verified(&found, &dest, &sha256)?;
        cache::after_verified(entry, &dest)?;
        tracing::info!("{}: imported from {}", entry.name, found.display());
        imported.push(entry.name.clone());
    }
    if imported.is_empty() {
        bail!(
            "nothing under {} matches the catalog (`bootherd images list` shows what is expected)",
            from.display()
        );
    }
    Ok(imported)
}

/// The archive pool's name of a Debian package: `apt-get download` writes
/// the version's epoch into the name (`busybox-static_1%3a1.35.0-4_arm64.deb`),
/// the pool leaves it out (`busybox-static_1.35.0-4_arm64.deb`). Other
/// names are returned as they are.
pub fn pool_name(name: &str) -> String {
    let stripped = name
        .strip_suffix(".deb")
        .and_then(|_| name.split_once('_'))
        .and_then(|(package, rest)| {
            let (epoch, version) = rest.split_once("%3a").or_else(|| rest.split_once("%3A"))?;
            (!epoch.is_empty() && epoch.bytes().all(|b| b.is_ascii_digit()))
                .then(|| format!("{package}_{version}"))
        });
    stripped.unwrap_or_else(|| name.to_string())
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned()
}

fn walk(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?;
    for e in entries {
        let e = e?;
        let ft = e.file_type()?;
        if ft.is_dir() && depth < MAX_DEPTH {
            walk(&e.path(), depth + 1, out)?;
        } else if ft.is_file() {
            out.push(e.path());
        }
    }
    Ok(())
}

/// Copies `from` to `<dest>.part` while hashing; renames only on a match.
fn copy_verified(from: &Path, dest: &Path, sha256: &str) -> Result<()> {
    if let Some(dir) = dest.parent() {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let part = fetch::part_path(dest);
    let mut input = File::open(from).with_context(|| format!("cannot open {}", from.display()))?;
    let mut out =
        File::create(&part).with_context(|| format!("cannot write {}", part.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = input
            .read(&mut buf)
            .with_context(|| format!("cannot read {}", from.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        out.write_all(&buf[..n])
            .with_context(|| format!("cannot write {}", part.display()))?;
    }
    out.sync_all()?;
    let actual = hex::encode(h.finalize());
    if actual != sha256 {
        let _ = fs::remove_file(&part);
        bail!(
            "{}: checksum mismatch: expected sha256 {sha256}, got {actual}; the copy is damaged or a different release: copy it again",
            from.display()
        );
    }
    fs::rename(&part, dest)?;
    verify::write_record(dest, sha256)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::pool_name;

    #[test]
    fn apt_download_names_map_to_pool_names() {
        assert_eq!(
            pool_name("busybox-static_1%3a1.35.0-4+deb12u1+b1_arm64.deb"),
            "busybox-static_1.35.0-4+deb12u1+b1_arm64.deb"
        );
        for same in [
            "busybox-static_1.35.0-4+deb12u1+b1_arm64.deb",
            "ubuntu-24.04.1-live-server-amd64.iso",
            "x_a%3a1_arm64.deb",
            "x_1%3a1_arm64.iso",
        ] {
            assert_eq!(pool_name(same), same);
        }
    }
}
