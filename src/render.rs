//! Template rendering (tera). Templates are compiled into the binary from
//! `templates/`; a file with the same relative name under
//! `<data_dir>/templates/` overrides one. Overrides are read at start and on reload.

use anyhow::{Context as _, Result};
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use tera::{Context, Tera};

/// Every template bootherd renders, with its compiled-in text.
const EMBEDDED: &[(&str, &str)] = &[
    (
        "ipxe/chain.ipxe",
        include_str!("../templates/ipxe/chain.ipxe"),
    ),
    (
        "ipxe/install.ipxe",
        include_str!("../templates/ipxe/install.ipxe"),
    ),
    (
        "ipxe/local.ipxe",
        include_str!("../templates/ipxe/local.ipxe"),
    ),
    (
        "ipxe/noboot.ipxe",
        include_str!("../templates/ipxe/noboot.ipxe"),
    ),
    ("grub/grub.cfg", include_str!("../templates/grub/grub.cfg")),
    (
        "grub/install.cfg",
        include_str!("../templates/grub/install.cfg"),
    ),
    (
        "grub/local.cfg",
        include_str!("../templates/grub/local.cfg"),
    ),
    (
        "grub/noboot.cfg",
        include_str!("../templates/grub/noboot.cfg"),
    ),
    (
        "cloud-init/user-data",
        include_str!("../templates/cloud-init/user-data"),
    ),
    (
        "cloud-init/meta-data",
        include_str!("../templates/cloud-init/meta-data"),
    ),
    (
        "cloud-init/vendor-data",
        include_str!("../templates/cloud-init/vendor-data"),
    ),
    (
        "cloud-init/network-config",
        include_str!("../templates/cloud-init/network-config"),
    ),
    (
        "kubeadm/init.yaml",
        include_str!("../templates/kubeadm/init.yaml"),
    ),
    (
        "kubeadm/join.yaml",
        include_str!("../templates/kubeadm/join.yaml"),
    ),
    (
        "haproxy/haproxy.cfg",
        include_str!("../templates/haproxy/haproxy.cfg"),
    ),
    (
        "keepalived/keepalived.conf",
        include_str!("../templates/keepalived/keepalived.conf"),
    ),
    (
        "containerd/config-v2.toml",
        include_str!("../templates/containerd/config-v2.toml"),
    ),
    (
        "containerd/config-v3.toml",
        include_str!("../templates/containerd/config-v3.toml"),
    ),
    (
        "calico/installation.yaml",
        include_str!("../templates/calico/installation.yaml"),
    ),
    ("pi/config.txt", include_str!("../templates/pi/config.txt")),
];

pub struct Renderer {
    override_dir: PathBuf,
    tera: RwLock<Tera>,
}

impl Renderer {
    /// Loads the embedded templates and any overrides. A broken override is
    /// logged and the embedded template is used instead.
    pub fn new(data_dir: &Path) -> Renderer {
        let override_dir = data_dir.join("templates");
        let tera = build(&override_dir).unwrap_or_else(|e| {
            tracing::error!(
                "template overrides in {} ignored: {e:#}",
                override_dir.display()
            );
            build_embedded()
        });
        Renderer {
            override_dir,
            tera: RwLock::new(tera),
        }
    }

    /// Re-reads the overrides; on error the templates in use stay.
    pub fn reload(&self) -> Result<()> {
        let tera = build(&self.override_dir)?;
        *self.tera.write().unwrap_or_else(|p| p.into_inner()) = tera;
        Ok(())
    }

    pub fn render(&self, name: &str, context: &Context) -> Result<String> {
        let tera = self.tera.read().unwrap_or_else(|p| p.into_inner());
        tera.render(name, context)
            .with_context(|| format!("rendering template {name}"))
    }
}

fn build_embedded() -> Tera {
    let mut tera = Tera::default();
    tera.add_raw_templates(EMBEDDED.iter().copied())
        .expect("embedded templates are valid");
    tera.autoescape_on(vec![]);
    tera
}

fn build(override_dir: &Path) -> Result<Tera> {
    let mut tera = build_embedded();
    let mut overrides = Vec::new();
    for (name, _) in EMBEDDED {
        let path = override_dir.join(name);
        if path.is_file() {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            tracing::info!("template {name} overridden by {}", path.display());
            overrides.push((name.to_string(), text));
        }
    }
    tera.add_raw_templates(overrides)
        .context("an override template does not parse")?;
    Ok(tera)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_win_and_broken_ones_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let r = Renderer::new(dir.path());
        let mut ctx = Context::new();
        ctx.insert("mac", "m");
        ctx.insert("reason", "r");
        assert!(r
            .render("ipxe/noboot.ipxe", &ctx)
            .unwrap()
            .contains("no network boot for m"));
        std::fs::create_dir_all(dir.path().join("templates/ipxe")).unwrap();
        std::fs::write(
            dir.path().join("templates/ipxe/noboot.ipxe"),
            "#!ipxe\nexit # {{ mac }}\n",
        )
        .unwrap();
        r.reload().unwrap();
        assert_eq!(
            r.render("ipxe/noboot.ipxe", &ctx).unwrap(),
            "#!ipxe\nexit # m\n"
        );
        std::fs::write(dir.path().join("templates/ipxe/noboot.ipxe"), "{% if %}").unwrap();
        assert!(r.reload().is_err());
        assert_eq!(
            r.render("ipxe/noboot.ipxe", &ctx).unwrap(),
            "#!ipxe\nexit # m\n",
            "the working set stays"
        );
    }
}
