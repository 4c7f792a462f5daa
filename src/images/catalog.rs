//! The image catalog (`images/catalog.toml`, compiled in): wire entries are
//! parsed with serde and checked into [`Entry`] values, so that the rest of
//! `images` never sees a half-described image.

use crate::boot::BootProgram;
use crate::config::{Config, Os, Platform};
use serde::Deserialize;
use std::path::{Component, Path, PathBuf};

/// The catalog as shipped.
pub const CATALOG_TOML: &str = include_str!("../../images/catalog.toml");

/// What is done with a file once it is verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An Ubuntu live-server ISO: `casper/vmlinuz` and `casper/initrd` are extracted beside it.
    LiveServerIso,
    /// An xz-compressed preinstalled Pi image: its FAT boot partition goes to `boot/` beside it.
    RaspiImage,
    /// Debian's `busybox-static` package for `arch`: its `bin/busybox` goes
    /// beside it, and the Pi installer runs its tools from that.
    BusyboxDeb,
    /// Used as downloaded.
    File,
}

/// Where a file comes from and how its digest is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The release directory's `SHA256SUMS`; the file is the line matching `pattern`.
    Sha256Sums { sums_url: String, pattern: String },
    /// A fixed URL with a pinned digest (lowercase hex).
    Pinned { url: String, sha256: String },
    /// A file a Debian package installs.
    Package { package: String, path: PathBuf },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub kind: Kind,
    pub os: Option<Os>,
    pub arch: Option<String>,
    /// Relative to `<data_dir>/images/`, normal components only.
    pub dest: PathBuf,
    pub source: Source,
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("catalog is not valid TOML: {0}")]
    Toml(#[from] toml::de::Error),
    #[error("catalog entry {name:?}: {why}")]
    Entry { name: String, why: String },
}

#[derive(Deserialize)]
struct Wire {
    image: Vec<WireEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireEntry {
    name: String,
    kind: String,
    os: Option<String>,
    arch: Option<String>,
    dest: String,
    sha256sums: Option<String>,
    pattern: Option<String>,
    url: Option<String>,
    sha256: Option<String>,
    package: Option<String>,
    path: Option<String>,
}

/// Parses and checks a catalog.
pub fn parse(text: &str) -> Result<Vec<Entry>, CatalogError> {
    let wire: Wire = toml::from_str(text)?;
    let mut out: Vec<Entry> = Vec::new();
    for w in wire.image {
        let bad = |why: String| CatalogError::Entry {
            name: w.name.clone(),
            why,
        };
        if out.iter().any(|e| e.name == w.name) {
            return Err(bad("the name is used twice".into()));
        }
        let kind = match w.kind.as_str() {
            "live-server-iso" => Kind::LiveServerIso,
            "raspi-image" => Kind::RaspiImage,
            "busybox-deb" => Kind::BusyboxDeb,
            "file" => Kind::File,
            k => return Err(bad(format!("unknown kind {k:?}"))),
        };
        let os = match &w.os {
            None => None,
            Some(s) => Some(
                Os::from_name(s)
                    .ok_or_else(|| bad(format!("unknown os {s:?}; one of {}", Os::choices())))?,
            ),
        };
        if let Some(a) = &w.arch {
            if !["amd64", "arm64"].contains(&a.as_str()) {
                return Err(bad(format!("unknown arch {a:?}")));
            }
        }
        let dest = PathBuf::from(&w.dest);
        if dest.as_os_str().is_empty()
            || !dest.components().all(|c| matches!(c, Component::Normal(_)))
        {
            return Err(bad(format!("dest {:?} must be a relative path", w.dest)));
        }
        let source = match (
            (&w.sha256sums, &w.pattern),
            (&w.url, &w.sha256),
            (&w.package, &w.path),
        ) {
            ((Some(s), Some(p)), (None, None), (None, None)) => {
                check_url(s).map_err(&bad)?;
                if p.contains('/') {
                    return Err(bad("pattern is a file name, without `/`".into()));
                }
                Source::Sha256Sums {
                    sums_url: s.clone(),
                    pattern: p.clone(),
                }
            }
            ((None, None), (Some(u), Some(h)), (None, None)) => {
                check_url(u).map_err(&bad)?;
                if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(bad("sha256 must be 64 hex digits".into()));
                }
                Source::Pinned {
                    url: u.clone(),
                    sha256: h.to_ascii_lowercase(),
                }
            }
            ((None, None), (None, None), (Some(pkg), Some(path))) => Source::Package {
                package: pkg.clone(),
                path: PathBuf::from(path),
            },
            _ => return Err(bad(
                "give exactly one source: sha256sums + pattern, url + sha256, or package + path"
                    .into(),
            )),
        };
        match kind {
            Kind::LiveServerIso | Kind::RaspiImage if os.is_none() || w.arch.is_none() => {
                return Err(bad("an installer image needs os and arch".into()));
            }
            Kind::BusyboxDeb if w.arch.is_none() => {
                return Err(bad("a busybox-deb needs the arch of its package".into()));
            }
            Kind::BusyboxDeb if matches!(source, Source::Package { .. }) => {
                return Err(bad(
                    "a busybox-deb is downloaded: give url + sha256 or sha256sums + pattern".into(),
                ));
            }
            _ => {}
        }
        out.push(Entry {
            name: w.name,
            kind,
            os,
            arch: w.arch,
            dest,
            source,
        });
    }
    Ok(out)
}

fn check_url(u: &str) -> Result<(), String> {
    if u.starts_with("https://") || u.starts_with("http://") {
        Ok(())
    } else {
        Err(format!("{u:?} is not an http(s) URL"))
    }
}

/// The compiled-in catalog, parsed once: a Pi's TFTP requests look up its
/// boot directory here. It is checked by a unit test, so this cannot fail in
/// a released binary.
pub fn builtin() -> &'static [Entry] {
    static PARSED: std::sync::OnceLock<Vec<Entry>> = std::sync::OnceLock::new();
    PARSED.get_or_init(|| parse(CATALOG_TOML).expect("the compiled-in catalog is checked by tests"))
}

impl Entry {
    /// The final path of the file in the cache.
    pub fn path(&self, images_dir: &Path) -> PathBuf {
        images_dir.join(&self.dest)
    }
}

/// Whether `name` matches `pattern`, where `*` stands for any run of characters.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// The catalog entries the configured machines need, each with the hostnames
/// that need it, in catalog order.
pub fn needed<'a>(catalog: &'a [Entry], config: &Config) -> Vec<(&'a Entry, Vec<String>)> {
    let mut out: Vec<(&Entry, Vec<String>)> = Vec::new();
    for m in &config.machines {
        let programs = BootProgram::for_platform(m.platform);
        let wants = |e: &Entry| -> bool {
            let installer = match m.platform {
                Platform::Rpi4 | Platform::Rpi5 => e.kind == Kind::RaspiImage,
                Platform::Amd64 | Platform::Arm64 => {
                    e.kind == Kind::LiveServerIso && e.arch.as_deref() == Some(m.platform.arch())
                }
            };
            // The Pi installer's tools: the arm64 busybox its archive carries.
            let busybox = m.platform.is_pi()
                && e.kind == Kind::BusyboxDeb
                && e.arch.as_deref() == Some("arm64");
            busybox
                || (installer && e.os == Some(m.os))
                || programs
                    .iter()
                    .any(|p| e.dest == Path::new(p.cache_dir()).join(p.file_name()))
        };
        for e in catalog.iter().filter(|e| wants(e)) {
            match out.iter_mut().find(|(n, _)| n.name == e.name) {
                Some((_, hosts)) => hosts.push(m.hostname.clone()),
                None => out.push((e, vec![m.hostname.clone()])),
            }
        }
    }
    out.sort_by_key(|(e, _)| catalog.iter().position(|c| c.name == e.name));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::{self, dhcp, lab_text, machine_toml};

    #[test]
    fn builtin_catalog_is_valid() {
        let c = parse(CATALOG_TOML).unwrap();
        for os in ["ubuntu-24.04", "ubuntu-22.04"] {
            for arch in ["amd64", "arm64"] {
                assert!(c.iter().any(|e| e.kind == Kind::LiveServerIso
                    && e.os.map(|o| o.name()) == Some(os)
                    && e.arch.as_deref() == Some(arch)));
            }
        }
        assert!(c.iter().any(|e| e.kind == Kind::RaspiImage));
        // The Pi installer's busybox: a pinned Debian pool file, extracted
        // where the installer's archive reads it.
        let bb = c
            .iter()
            .find(|e| e.name == crate::images::BUSYBOX_ENTRY)
            .expect("the catalog lists the Pi installer's busybox");
        assert_eq!(bb.kind, Kind::BusyboxDeb);
        assert_eq!(bb.arch.as_deref(), Some("arm64"));
        assert!(matches!(&bb.source, Source::Pinned { url, .. }
            if url.starts_with("https://deb.debian.org/debian/pool/main/b/busybox/busybox-static_")
                && url.ends_with("_arm64.deb")));
        assert_eq!(
            crate::images::extract::busybox_path(&bb.path(Path::new("/d/images"))),
            Path::new("/d/images")
                .join(crate::images::BUSYBOX_SET)
                .join(crate::images::extract::BUSYBOX)
        );
    }

    #[test]
    fn a_pi_needs_its_image_and_the_arm64_busybox() {
        let m = machine_toml("dc:a6:32:01:02:03", "pi1", "worker", "10.55.0.31");
        let cp = machine_toml("52:54:00:aa:00:01", "cp1", "control-plane", "10.55.0.11");
        let config = testing::parse(&lab_text(
            &dhcp("10.55.0.200-10.55.0.202"),
            &format!("{cp}{m}platform = \"rpi4\"\n"),
        ));
        let names: Vec<(String, Vec<String>)> = needed(builtin(), &config)
            .into_iter()
            .map(|(e, h)| (e.name.clone(), h))
            .collect();
        let pi = vec!["pi1".to_string()];
        assert!(names.contains(&("ubuntu-24.04-preinstalled-raspi".into(), pi.clone())));
        assert!(
            names.contains(&(crate::images::BUSYBOX_ENTRY.into(), pi)),
            "{names:?}"
        );
    }

    #[test]
    fn bad_entries_are_refused() {
        let two_sources = r#"[[image]]
name = "x"
kind = "file"
dest = "x"
url = "https://e/x"
sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
package = "p"
path = "/x"
"#;
        assert!(matches!(
            parse(two_sources),
            Err(CatalogError::Entry { .. })
        ));
        let escaping = r#"[[image]]
name = "x"
kind = "file"
dest = "../x"
url = "https://e/x"
sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
"#;
        assert!(matches!(parse(escaping), Err(CatalogError::Entry { .. })));
    }

    #[test]
    fn an_arm64_machine_needs_grub_and_the_arm64_installer_an_x86_one_ipxe() {
        let catalog = builtin();
        let machines = |platform: &str| {
            let m1 = machine_toml("52:54:00:aa:00:02", "m1", "control-plane", "10.55.0.12");
            lab_text(
                &dhcp("10.55.0.200-10.55.0.202"),
                &format!("{m1}platform = \"{platform}\"\n"),
            )
        };
        let names = |platform: &str| -> Vec<String> {
            let config = testing::parse(&machines(platform));
            needed(catalog, &config)
                .into_iter()
                .map(|(e, hosts)| {
                    assert_eq!(hosts, ["m1"]);
                    e.name.clone()
                })
                .collect()
        };
        assert_eq!(
            names("arm64"),
            ["ubuntu-24.04-live-server-arm64", "grub-grubnetaa64.efi"]
        );
        assert_eq!(
            names("amd64"),
            [
                "ubuntu-24.04-live-server-amd64",
                "ipxe-undionly.kpxe",
                "ipxe-ipxe.efi"
            ]
        );
        // GRUB's entry lands where TFTP serves the program DHCP names.
        let grub = catalog
            .iter()
            .find(|e| e.name == "grub-grubnetaa64.efi")
            .unwrap();
        let program = BootProgram::GrubNetAa64;
        assert_eq!(
            grub.dest,
            Path::new(program.cache_dir()).join(program.file_name())
        );
        assert!(matches!(&grub.source, Source::Sha256Sums { pattern, .. }
            if glob_match(pattern, "grubnetaa64.efi.signed")
                && !glob_match(pattern, "grubaa64.efi.signed")));
    }

    #[test]
    fn release_line_patterns() {
        let p = "ubuntu-24.04*-live-server-amd64.iso";
        assert!(glob_match(p, "ubuntu-24.04.3-live-server-amd64.iso"));
        assert!(glob_match(p, "ubuntu-24.04-live-server-amd64.iso"));
        assert!(!glob_match(p, "ubuntu-24.04.3-live-server-arm64.iso"));
        assert!(!glob_match(p, "ubuntu-24.10-live-server-amd64.iso"));
    }
}
