//! The NoCloud seed a Pi gets on its `system-boot` partition. Unlike x86,
//! where the autoinstall user-data nests the installed system's cloud-config,
//! the Pi's user-data IS that cloud-config: the same role first boot
//! (`firstboot::files::installed_cloud_config`), plus what the installer
//! would otherwise set up (hostname, SSH keys). The static address goes in
//! `network-config` (netplan v2), which NoCloud reads beside it.

use crate::app::App;
use crate::artifacts;
use crate::cluster::Secrets;
use crate::config::{Config, Machine};
use crate::firstboot::files::installed_cloud_config;
use crate::firstboot::role_files;
use anyhow::{bail, Context as _, Result};
use serde_yaml::{Mapping, Value};

/// The Pi's cloud-config user-data, validated before it is returned
/// (cloud-init runs nothing from broken YAML, silently).
pub fn user_data(app: &App, config: &Config, machine: &Machine) -> Result<String> {
    let secrets = Secrets::load_or_create(config)?;
    let material = artifacts::role_material(&secrets, config, machine);
    let cb = artifacts::callbacks(app, config, machine)?;
    let files = role_files(&app.renderer, config, machine, &material, &cb.firstboot())?;
    let Value::Mapping(first_boot) = installed_cloud_config(&files)? else {
        bail!("the first-boot cloud-config is not a mapping");
    };
    let mut doc = Mapping::new();
    doc.insert("hostname".into(), machine.hostname.clone().into());
    doc.insert("manage_etc_hosts".into(), true.into());
    // Keys only: the image's default user `ubuntu` keeps a locked password.
    doc.insert("ssh_pwauth".into(), false.into());
    // cloud-init's schema refuses an empty list here: leave the key out.
    if !config.cluster.ssh_authorized_keys.is_empty() {
        doc.insert(
            "ssh_authorized_keys".into(),
            Value::Sequence(
                config
                    .cluster
                    .ssh_authorized_keys
                    .iter()
                    .map(|k| k.clone().into())
                    .collect(),
            ),
        );
    }
    // The Pi has no installer to point apt at the site's mirror: cloud-init does.
    if let Some(uri) = crate::firstboot::autoinstall::apt_mirror(config, machine) {
        let primary = serde_yaml::to_value(serde_json::json!({
            "primary": [{"arches": ["default"], "uri": uri}],
            "security": [{"arches": ["default"], "uri": uri}],
        }))?;
        doc.insert("apt".into(), primary);
    }
    doc.extend(first_boot);
    let text = format!(
        "#cloud-config\n# Rendered by bootherd for {} ({}); served only after it validated.\n{}",
        machine.hostname,
        machine.mac,
        serde_yaml::to_string(&Value::Mapping(doc.clone()))?
    );
    validate(&text, &doc).with_context(|| {
        format!(
            "the Pi user-data rendered for {} is not valid",
            machine.hostname
        )
    })?;
    Ok(text)
}

/// The netplan v2 `network-config`: the machine's static address on the
/// NIC with its MAC (the Pi's onboard Ethernet). The same document x86
/// machines get under `autoinstall.network`.
pub fn network_config(app: &App, config: &Config, machine: &Machine) -> Result<String> {
    crate::firstboot::network::network_config(&app.renderer, config, machine)
}

/// The served text must be `#cloud-config` and parse back to what was built.
fn validate(text: &str, built: &Mapping) -> Result<()> {
    if !text.starts_with("#cloud-config\n") {
        bail!("user-data must start with the line `#cloud-config`");
    }
    let parsed: Value = serde_yaml::from_str(text).context("user-data is not valid YAML")?;
    if parsed != Value::Mapping(built.clone()) {
        bail!("user-data does not parse back to the cloud-config it was rendered from");
    }
    if parsed.get("runcmd").is_none() {
        bail!("user-data has no runcmd: the role's first boot would not run");
    }
    Ok(())
}
