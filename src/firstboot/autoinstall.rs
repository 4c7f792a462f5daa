//! The full autoinstall user-data of one machine: identity, SSH, storage,
//! static network (`super::network`), reporting and late-commands for the
//! installer, and the installed system's first boot under `autoinstall.user-data`.

use super::files::{installed_cloud_config, role_files, FirstbootUrls};
use super::network::{network_config, network_value};
use super::RoleMaterial;
use crate::config::{Config, Machine, Platform};
use crate::render::Renderer;
use anyhow::{bail, Context as _, Result};
use tera::Context;

/// The installer's callback URLs (bound to the install token).
#[derive(Debug, Clone)]
pub struct InstallerUrls {
    pub events: String,
    pub installed: String,
}

/// Renders the user-data. Without `material` (cluster secrets not yet
/// available) the installed system gets no first boot; everything else is
/// the same.
pub fn user_data(
    renderer: &Renderer,
    config: &Config,
    machine: &Machine,
    installer: &InstallerUrls,
    firstboot: &FirstbootUrls,
    material: Option<&RoleMaterial>,
) -> Result<String> {
    let mut ctx = Context::new();
    ctx.insert("hostname", &machine.hostname);
    ctx.insert("mac", &machine.mac.to_string());
    ctx.insert("ssh_keys", &config.cluster.ssh_authorized_keys);
    ctx.insert("disk", &machine.disk);
    ctx.insert("apt_mirror", &apt_mirror(config, machine));
    ctx.insert("events_url", &installer.events);
    ctx.insert(
        "installed_command",
        &format!("curl -fsS --retry 5 -X POST '{}'", installer.installed),
    );
    // Spliced as rendered, not re-serialized: the template quotes the MAC,
    // which YAML 1.1 readers (cloud-init, netplan) would otherwise take for
    // a base-60 number when it has no letters (52:54:00:12:34:56).
    let network_text = network_config(renderer, config, machine)?;
    let network = network_value(renderer, config, machine)?;
    ctx.insert("network", &indented(network_text.trim_end(), 4));

    let installed = match material {
        Some(material) => {
            let files = role_files(renderer, config, machine, material, firstboot)?;
            Some(installed_cloud_config(&files)?)
        }
        None => None,
    };
    ctx.insert(
        "installed_user_data",
        &indented_yaml(installed.as_ref(), 4)?,
    );
    let text = renderer.render("cloud-init/user-data", &ctx)?;

    // The nested documents went through text: prove they arrived intact.
    let doc: serde_yaml::Value =
        serde_yaml::from_str(&text).context("rendered user-data is not valid YAML")?;
    if doc.get("autoinstall").and_then(|a| a.get("network")) != Some(&network) {
        bail!("autoinstall.network does not parse back to the network config");
    }
    let got = doc.get("autoinstall").and_then(|a| a.get("user-data"));
    if got != installed.as_ref() {
        bail!("autoinstall.user-data does not parse back to the first-boot cloud-config");
    }
    Ok(text)
}

/// The site's Ubuntu mirror for `machine`'s architecture, if it has one:
/// amd64 uses the archive, everything else Ubuntu's ports.
pub fn apt_mirror<'c>(config: &'c Config, machine: &Machine) -> Option<&'c str> {
    match machine.platform {
        Platform::Amd64 => config.mirrors.apt.as_deref(),
        Platform::Arm64 | Platform::Rpi4 | Platform::Rpi5 => config.mirrors.apt_ports.as_deref(),
    }
}

/// YAML text of `value`, each line indented, for splicing under a key
/// (block style keeps PEMs and scripts readable in the served file).
fn indented_yaml(value: Option<&serde_yaml::Value>, indent: usize) -> Result<String> {
    let Some(value) = value else {
        return Ok(String::new());
    };
    Ok(indented(&serde_yaml::to_string(value)?, indent))
}

/// `text` with each non-empty line indented by `indent` spaces.
fn indented(text: &str, indent: usize) -> String {
    let pad = " ".repeat(indent);
    text.lines()
        .map(|l| {
            if l.is_empty() {
                String::new()
            } else {
                format!("{pad}{l}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}
