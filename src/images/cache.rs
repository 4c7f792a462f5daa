//! The operations behind `bootherd images`: what each catalog entry's state
//! is in the cache, fetching one entry end to end (resolve, download, verify,
//! extract), and re-verifying the cache.

use super::catalog::{Entry, Kind, Source};
use super::extract;
use super::fetch::{self, FetchOptions};
use super::verify::{self, Check};
use anyhow::{Context, Result};
use std::path::Path;

/// Where an entry stands in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Downloaded or imported, with a recorded digest.
    Cached,
    /// Present but placed by hand (no digest record).
    Unrecorded,
    /// Installed by its Debian package.
    FromPackage,
    Missing,
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            State::Cached => "cached",
            State::Unrecorded => "present (unverified)",
            State::FromPackage => "from package",
            State::Missing => "missing",
        })
    }
}

/// The state of one entry, without hashing.
pub fn state(entry: &Entry, images_dir: &Path) -> State {
    let path = entry.path(images_dir);
    if let Source::Package { path: pkg, .. } = &entry.source {
        if pkg.is_file() {
            return State::FromPackage;
        }
    }
    if !path.is_file() {
        State::Missing
    } else if verify::read_record(&path).is_some() {
        State::Cached
    } else {
        State::Unrecorded
    }
}

/// Fetches one entry: resolves its URL and digest, downloads unless the cache
/// already holds that digest, then extracts what the boot flows read.
pub async fn fetch_entry(
    client: &reqwest::Client,
    entry: &Entry,
    images_dir: &Path,
    opts: &FetchOptions,
) -> Result<()> {
    if let Source::Package { package, path } = &entry.source {
        anyhow::ensure!(
            path.is_file(),
            "{}: {} comes with Debian's `{package}` package: run `apt-get install {package}`",
            entry.name,
            path.display()
        );
        tracing::info!(
            "{}: provided by the {package} package ({})",
            entry.name,
            path.display()
        );
        return Ok(());
    }
    let Some((url, sha256)) = fetch::resolve(client, entry).await? else {
        return Ok(());
    };
    let dest = entry.path(images_dir);
    if dest.is_file() && verify::read_record(&dest).as_deref() == Some(sha256.as_str()) {
        tracing::info!("{}: already cached ({})", entry.name, dest.display());
        if extracted(entry, &dest) {
            // Re-extracting a Pi image means decompressing gigabytes; `images verify` re-checks.
            return Ok(());
        }
    } else {
        tracing::info!("{}: downloading {url}", entry.name);
        let bytes = fetch::download(client, &url, &sha256, &dest, opts).await?;
        tracing::info!("{}: {bytes} bytes, sha256 {sha256} verified", entry.name);
    }
    after_verified(entry, &dest)
}

/// Whether what the boot flows read was already extracted from `dest` (by
/// presence and records; `images verify` compares digests).
fn extracted(entry: &Entry, dest: &Path) -> bool {
    match entry.kind {
        Kind::LiveServerIso => extract::CASPER_FILES.iter().all(|(_, n)| {
            let f = dest.with_file_name(n);
            f.is_file() && verify::read_record(&f).is_some()
        }),
        Kind::RaspiImage => {
            extract::boot_manifest(dest).is_file() && extract::raspi_boot_dir(dest).is_dir()
        }
        Kind::BusyboxDeb => {
            let f = extract::busybox_path(dest);
            f.is_file() && verify::read_record(&f).is_some()
        }
        Kind::File => true,
    }
}

/// Extracts what the boot flows read from a verified file.
pub fn after_verified(entry: &Entry, dest: &Path) -> Result<()> {
    match entry.kind {
        Kind::LiveServerIso => {
            let dir = dest.parent().context("an image path has a directory")?;
            extract::live_server(dest, dir)?;
            tracing::info!(
                "{}: extracted vmlinuz and initrd into {}",
                entry.name,
                dir.display()
            );
        }
        Kind::RaspiImage => {
            let boot = extract::raspi(dest)?;
            tracing::info!(
                "{}: extracted the boot partition into {}",
                entry.name,
                boot.display()
            );
        }
        Kind::BusyboxDeb => {
            let arch = entry
                .arch
                .as_deref()
                .context("the catalog checks a busybox-deb's arch")?;
            let busybox = extract::busybox(dest, arch)?;
            tracing::info!("{}: extracted {}", entry.name, busybox.display());
        }
        Kind::File => {}
    }
    Ok(())
}

/// Re-hashes every cached entry against its record; returns one line per
/// entry and whether all present files matched.
pub fn verify_all(catalog: &[Entry], images_dir: &Path) -> Result<(Vec<String>, bool)> {
    let mut lines = Vec::new();
    let mut ok = true;
    for e in catalog {
        if matches!(e.source, Source::Package { .. }) {
            continue;
        }
        let path = e.path(images_dir);
        if !path.is_file() {
            continue;
        }
        // The image itself, then what was extracted from it.
        let mut files = vec![path.clone()];
        let mut manifest = Vec::new();
        match e.kind {
            Kind::LiveServerIso => {
                let dir = path.parent().unwrap_or(images_dir);
                files.extend(extract::CASPER_FILES.iter().map(|(_, n)| dir.join(n)));
            }
            Kind::RaspiImage => {
                let boot = extract::raspi_boot_dir(&path);
                let text =
                    std::fs::read_to_string(extract::boot_manifest(&path)).unwrap_or_default();
                manifest = verify::parse_sums(&text)
                    .into_iter()
                    .map(|(d, n)| (boot.join(n), d))
                    .collect();
                if manifest.is_empty() {
                    ok = false;
                    lines.push(format!(
                        "{}: the boot partition was never extracted; run `bootherd images fetch {}`",
                        e.name, e.name
                    ));
                }
            }
            Kind::BusyboxDeb => files.push(extract::busybox_path(&path)),
            Kind::File => {}
        }
        let before = lines.len();
        for f in &files {
            lines.extend(line_for(e, f, verify::check(f), &mut ok)?);
        }
        for (f, expected) in manifest {
            let check = if !f.is_file() {
                Ok(Check::Missing)
            } else {
                verify::sha256_file(&f).map(|actual| {
                    if actual == expected {
                        Check::Ok
                    } else {
                        Check::Mismatch { expected, actual }
                    }
                })
            };
            lines.extend(line_for(e, &f, check, &mut ok)?);
        }
        if lines.len() == before {
            lines.push(format!("{}: ok", e.name));
        }
    }
    Ok((lines, ok))
}

/// The `images verify` line for one file, if it has a problem.
fn line_for(
    e: &Entry,
    path: &Path,
    check: std::io::Result<Check>,
    ok: &mut bool,
) -> Result<Option<String>> {
    let check = check.with_context(|| format!("cannot read {}", path.display()))?;
    let fix = format!("run `bootherd images fetch {}`", e.name);
    Ok(match check {
        Check::Ok => None,
        Check::Missing => {
            *ok = false;
            Some(format!("{}: {} is missing; {fix}", e.name, path.display()))
        }
        Check::Unrecorded => Some(format!(
            "{}: {} has no digest record (placed by hand?); {fix} or `bootherd images import DIR`",
            e.name,
            path.display()
        )),
        Check::Mismatch { expected, actual } => {
            *ok = false;
            Some(format!(
                "{}: CORRUPT: {} has sha256 {actual}, expected {expected}; delete it and {fix}",
                e.name,
                path.display()
            ))
        }
    })
}
