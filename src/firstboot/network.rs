//! The installed system's static network as netplan v2: the machine's
//! address on the NIC with its MAC. The autoinstall user-data nests it under
//! `autoinstall.network`; a Pi's NoCloud seed serves it as `network-config`.

use crate::config::{Config, Machine};
use crate::render::Renderer;
use anyhow::{bail, Context as _, Result};
use tera::Context;

/// The rendered `cloud-init/network-config` template, checked to be netplan v2 YAML.
pub fn network_config(renderer: &Renderer, config: &Config, machine: &Machine) -> Result<String> {
    let mut ctx = Context::new();
    ctx.insert("mac", &machine.mac.to_string());
    // The machine's network is the DHCP subnet its IP lies in (validation
    // guarantees one while DHCP is on); a /32 without gateway otherwise.
    let subnet = config.dhcp.subnet_containing(machine.ip);
    ctx.insert(
        "address",
        &format!(
            "{}/{}",
            machine.ip,
            subnet.map_or(32, |s| s.net.prefix_len())
        ),
    );
    ctx.insert(
        "gateway",
        &subnet.and_then(|s| s.gateway).map(|g| g.to_string()),
    );
    let dns: Vec<String> = subnet
        .map(|s| s.dns.iter().map(|d| d.to_string()).collect())
        .unwrap_or_default();
    ctx.insert("dns", &dns);
    let text = renderer.render("cloud-init/network-config", &ctx)?;
    parse(&text).with_context(|| {
        format!(
            "network-config rendered for {} is not valid; fix the template",
            machine.hostname
        )
    })?;
    Ok(text)
}

/// The same, as a YAML value to nest in another document.
pub fn network_value(
    renderer: &Renderer,
    config: &Config,
    machine: &Machine,
) -> Result<serde_yaml::Value> {
    parse(&network_config(renderer, config, machine)?)
}

fn parse(text: &str) -> Result<serde_yaml::Value> {
    let doc: serde_yaml::Value = serde_yaml::from_str(text).context("not valid YAML")?;
    if doc.get("version").and_then(serde_yaml::Value::as_u64) != Some(2) {
        bail!("no `version: 2`");
    }
    if doc.get("ethernets").is_none() {
        bail!("no `ethernets`");
    }
    Ok(doc)
}
