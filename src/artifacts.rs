//! What each machine is served: its iPXE script and its cloud-init seed.
//! The HTTP server and `bootherd render` both call these, so `render` prints
//! exactly what a machine would get now.

use crate::app::App;
use crate::boot::{BootAction, Client, Firmware};
use crate::cluster::{RoleSecrets, Secrets};
use crate::config::{Config, Machine, Platform};
use crate::firstboot::autoinstall::InstallerUrls;
use crate::firstboot::files::FirstbootUrls;
use crate::firstboot::material::Pki;
use crate::firstboot::RoleMaterial;
use crate::mac::MacAddr;
use anyhow::{bail, Context as _, Result};
use tera::Context;

/// Serial and VGA consoles, so the installer shows on either.
const KERNEL_CONSOLE: &str = "console=tty1 console=ttyS0,115200n8";

/// The iPXE script for a request to `/boot.ipxe`. Without a MAC it is the
/// first hop, which asks again with the MAC and firmware filled in by iPXE.
pub fn ipxe_script(
    app: &App,
    config: &Config,
    mac: Option<MacAddr>,
    client: &Client,
) -> Result<(String, BootAction)> {
    let base = config.http_base();
    let mut ctx = Context::new();
    ctx.insert("base", &base);
    let Some(mac) = mac else {
        return Ok((
            app.renderer.render("ipxe/chain.ipxe", &ctx)?,
            BootAction::IpxeScript,
        ));
    };
    ctx.insert("mac", &mac.hyphenated());
    ctx.insert(
        "firmware",
        match client.firmware {
            Firmware::Bios => "bios",
            Firmware::Uefi => "uefi",
        },
    );
    // One store read: the decision and the script both use this state.
    let found = app.lookup(config, mac)?;
    let action = crate::boot::decide(found.as_ref().map(|(m, s)| (m, *s)), client);
    if let Some((m, _)) = &found {
        ctx.insert("hostname", &m.hostname);
        ctx.insert("role", m.role.name());
    }
    let text = match action {
        BootAction::Install { os, arch, .. } => {
            // Mint the install token now, so the seed this install fetches carries it.
            app.store.install_token(mac)?;
            let set = format!("{}-{arch}", os.name());
            ctx.insert("os", os.name());
            ctx.insert("arch", arch);
            ctx.insert("assets", &format!("{base}/assets/{set}"));
            ctx.insert("kernel_console", KERNEL_CONSOLE);
            app.renderer.render("ipxe/install.ipxe", &ctx)?
        }
        BootAction::LocalDisk(_) => {
            // Local boot is only decided for a configured machine.
            let state = found.as_ref().map(|(_, s)| s.name()).unwrap_or_default();
            ctx.insert("state", state);
            app.renderer.render("ipxe/local.ipxe", &ctx)?
        }
        BootAction::NoBoot(reason) => {
            ctx.insert("reason", &reason.to_string());
            app.renderer.render("ipxe/noboot.ipxe", &ctx)?
        }
        BootAction::Chainload(_) | BootAction::IpxeScript | BootAction::PiInstall(_) => {
            ctx.insert(
                "reason",
                "the boot script was asked for by a client that is not iPXE",
            );
            app.renderer.render("ipxe/noboot.ipxe", &ctx)?
        }
    };
    Ok((text, action))
}

/// The URLs a machine calls back on, bound to its install token: the
/// installer's (events, installed) and the first boot's (joined, failed).
pub struct Callbacks {
    pub events: String,
    pub installed: String,
    pub joined: String,
    /// The role script appends `&step=<name>`.
    pub firstboot_failed: String,
}

pub fn callbacks(app: &App, config: &Config, machine: &Machine) -> Result<Callbacks> {
    let token = app.store.install_token(machine.mac)?;
    let base = format!(
        "{}/api/v1/machines/{}",
        config.http_base(),
        machine.mac.hyphenated()
    );
    Ok(Callbacks {
        events: format!("{base}/events?token={token}"),
        installed: format!("{base}/installed?token={token}"),
        joined: format!("{base}/joined?token={token}"),
        firstboot_failed: format!("{base}/firstboot-failed?token={token}"),
    })
}

/// The autoinstall user-data, validated before it is returned: cloud-init
/// treats broken YAML as "nothing to do", so nothing unvalidated may leave.
/// It carries the role's first boot with the cluster secrets that role may
/// have (generated into `<data_dir>/cluster/` on first use).
pub fn user_data(app: &App, config: &Config, machine: &Machine) -> Result<String> {
    let secrets = Secrets::load_or_create(config)?;
    let material = role_material(&secrets, config, machine);
    user_data_with(app, config, machine, Some(&material))
}

/// The first-boot input for `machine`. The PKI comes from the role-filtered
/// secrets, so only control planes can receive a CA key however the
/// renderers treat it; the renderers then drop, per role, what else it may
/// not have (a load balancer's files carry no token).
pub(crate) fn role_material(secrets: &Secrets, config: &Config, machine: &Machine) -> RoleMaterial {
    let pki = match secrets.for_machine(config, machine) {
        RoleSecrets::ControlPlane(cp) => Some(Pki {
            ca_crt: cp.ca.cert_pem,
            ca_key: cp.ca.key_pem,
            front_proxy_ca_crt: cp.front_proxy_ca.cert_pem,
            front_proxy_ca_key: cp.front_proxy_ca.key_pem,
            etcd_ca_crt: cp.etcd_ca.cert_pem,
            etcd_ca_key: cp.etcd_ca.key_pem,
            sa_key: cp.service_account.private_pem,
            sa_pub: cp.service_account.public_pem,
        }),
        RoleSecrets::Worker(_) | RoleSecrets::LoadBalancer(_) => None,
    };
    RoleMaterial {
        token: secrets.token().token(),
        ca_cert_hash: secrets.ca_cert_hash().to_string(),
        vrrp_password: secrets.vrrp_password().to_string(),
        pki,
    }
}

/// The autoinstall user-data with the role's first boot rendered from `material`.
pub fn user_data_with(
    app: &App,
    config: &Config,
    machine: &Machine,
    material: Option<&RoleMaterial>,
) -> Result<String> {
    let cb = callbacks(app, config, machine)?;
    let installer = InstallerUrls {
        events: cb.events,
        installed: cb.installed,
    };
    let firstboot = FirstbootUrls {
        joined: cb.joined,
        failed: cb.firstboot_failed,
    };
    let text = crate::firstboot::autoinstall::user_data(
        &app.renderer,
        config,
        machine,
        &installer,
        &firstboot,
        material,
    )?;
    validate_user_data(&text).with_context(|| {
        format!(
            "user-data rendered for {} is not valid; fix the template",
            machine.hostname
        )
    })?;
    Ok(text)
}

/// One file of the NoCloud seed of `machine` by name; `None` for a name it
/// does not have. A Pi's seed goes onto its disk image: plain cloud-config
/// user-data plus `network-config`, where x86 gets autoinstall user-data.
/// The HTTP seed route and `bootherd render` both ask this.
pub fn seed_file(
    app: &App,
    config: &Config,
    machine: &Machine,
    name: &str,
) -> Result<Option<String>> {
    let pi = matches!(machine.platform, Platform::Rpi4 | Platform::Rpi5);
    Ok(Some(match name {
        "user-data" if pi => crate::pi::installer::seed::user_data(app, config, machine)?,
        "user-data" => user_data(app, config, machine)?,
        "network-config" if pi => crate::pi::installer::seed::network_config(app, config, machine)?,
        "meta-data" => meta_data(app, machine)?,
        "vendor-data" => vendor_data(app)?,
        _ => return Ok(None),
    }))
}

pub fn meta_data(app: &App, machine: &Machine) -> Result<String> {
    // The instance id changes with every install (new token), so cloud-init
    // runs again on a reimaged machine.
    let token = app.store.install_token(machine.mac)?;
    let mut ctx = Context::new();
    ctx.insert("hostname", &machine.hostname);
    ctx.insert(
        "instance_id",
        &format!("bootherd-{}-{}", machine.hostname, &token[..12]),
    );
    app.renderer.render("cloud-init/meta-data", &ctx)
}

pub fn vendor_data(app: &App) -> Result<String> {
    app.renderer
        .render("cloud-init/vendor-data", &Context::new())
}

/// Checks that user-data is `#cloud-config` YAML with an `autoinstall` section of version 1.
pub fn validate_user_data(text: &str) -> Result<()> {
    if !text.starts_with("#cloud-config\n") {
        bail!("user-data must start with the line `#cloud-config`");
    }
    let doc: serde_yaml::Value =
        serde_yaml::from_str(text).context("user-data is not valid YAML")?;
    let version = doc
        .get("autoinstall")
        .and_then(|a| a.get("version"))
        .and_then(|v| v.as_u64());
    if version != Some(1) {
        bail!("user-data has no `autoinstall:` section with `version: 1`");
    }
    Ok(())
}
