//! What each machine is served: its boot script (iPXE script or GRUB config)
//! and its cloud-init seed.
//! The HTTP server and `bootherd render` both call these, so `render` prints
//! exactly what a machine would get now.

use crate::app::App;
use crate::boot::{BootAction, Client, Firmware};
use crate::bootfiles::BootFileError;
use crate::bootsource::{Claim, Source};
use crate::cluster::{RoleSecrets, Secrets};
use crate::config::{Config, Machine, Platform};
use crate::firstboot::autoinstall::InstallerUrls;
use crate::firstboot::files::FirstbootUrls;
use crate::firstboot::material::Pki;
use crate::firstboot::RoleMaterial;
use crate::mac::MacAddr;
use anyhow::{bail, Context as _, Result};
use std::net::Ipv4Addr;
use tera::Context;

/// The kernel console arguments for the installer of `arch`. x86 servers:
/// the VGA console and the first serial port. arm64 servers name no console:
/// their serial port differs by board (ttyAMA0, ttyS0, …) and the kernel
/// takes it from the firmware (ACPI SPCR, or the device tree's stdout-path),
/// which a `console=` argument would override.
fn kernel_console(arch: &str) -> &'static str {
    match arch {
        "amd64" => "console=tty1 console=ttyS0,115200n8",
        _ => "",
    }
}

/// The two boot-script languages. Both run the same decision with the same
/// context; only their templates differ (`ipxe/<page>.ipxe`, `grub/<page>.cfg`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptFormat {
    Ipxe,
    Grub,
}

impl ScriptFormat {
    fn template(self, page: &str) -> String {
        match self {
            ScriptFormat::Ipxe => format!("ipxe/{page}.ipxe"),
            ScriptFormat::Grub => format!("grub/{page}.cfg"),
        }
    }
}

/// The iPXE script for a request to `/boot.ipxe`. Without a MAC it is the
/// first hop, which asks again with the MAC and firmware filled in by iPXE.
pub fn ipxe_script(
    app: &App,
    config: &Config,
    mac: Option<MacAddr>,
    client: &Client,
) -> Result<(String, BootAction)> {
    let Some(mac) = mac else {
        let mut ctx = Context::new();
        ctx.insert("base", &config.http_base());
        return Ok((
            app.renderer.render("ipxe/chain.ipxe", &ctx)?,
            BootAction::IpxeScript,
        ));
    };
    boot_script(app, config, ScriptFormat::Ipxe, mac, client)
}

/// The GRUB client: only the arm64 UEFI network image is handed out, so a
/// GRUB asking for its config is that program.
pub const GRUB_CLIENT: Client = Client {
    firmware: Firmware::Uefi,
    cpu: crate::boot::Cpu::Arm64,
    asker: crate::boot::Asker::GrubConfig,
    pi: None,
};

/// The `grub.cfg` for the machine with `mac`: install, boot the local disk,
/// or nothing, as the boot decision says for GRUB.
pub fn grub_cfg(app: &App, config: &Config, mac: MacAddr) -> Result<(String, BootAction)> {
    boot_script(app, config, ScriptFormat::Grub, mac, &GRUB_CLIENT)
}

/// A GRUB config file bootherd generates, by the name GRUB asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrubFile {
    /// `grub/grub.cfg`: the same for every machine; it loads the machine's own.
    Bootstrap,
    /// `grub/grub.cfg-<mac>`: the machine's config, the name GRUB's network
    /// boot tries first (Debian and Ubuntu GRUB: `52-54-00-…`; Red Hat's
    /// GRUB: `01-52-54-00-…`, as pxelinux names it).
    Machine(MacAddr),
}

/// Where GRUB looks for its configs: the `/grub` prefix that Ubuntu's
/// signed `grubnetaa64.efi` has built in, relative to the TFTP root.
pub const GRUB_PREFIX: &str = "grub";

impl GrubFile {
    /// Recognises a name relative to the TFTP root, with or without a
    /// leading `/`, or an HTTP path. GRUB also asks for IP-based names
    /// (`grub.cfg-0A37000C`, …) between the two; those are not generated.
    pub fn from_name(name: &str) -> Option<GrubFile> {
        // GRUB's TFTP asks for `/grub/…`: absolute, meaning the TFTP root.
        let name = name.strip_prefix('/').unwrap_or(name);
        let file = name.strip_prefix(GRUB_PREFIX)?.strip_prefix('/')?;
        if file == "grub.cfg" {
            return Some(GrubFile::Bootstrap);
        }
        // GRUB names it with `-`; the bootstrap config asks with GRUB's
        // `$net_default_mac`, which has `:`. MacAddr parses both.
        let id = file.strip_prefix("grub.cfg-")?;
        let mac = id
            .parse()
            .ok()
            .or_else(|| id.strip_prefix("01-")?.parse().ok())?;
        Some(GrubFile::Machine(mac))
    }

    /// Renders it; for a machine's config also the decision it encodes.
    pub fn render(self, app: &App, config: &Config) -> Result<(String, Option<BootAction>)> {
        match self {
            GrubFile::Bootstrap => {
                let mut ctx = Context::new();
                ctx.insert("base", &config.http_base());
                Ok((app.renderer.render("grub/grub.cfg", &ctx)?, None))
            }
            GrubFile::Machine(mac) => {
                let (text, action) = grub_cfg(app, config, mac)?;
                Ok((text, Some(action)))
            }
        }
    }
}

/// The TFTP generator for GRUB's configs (`grub/grub.cfg*`): rendered now,
/// per machine, from the boot decision.
pub fn claim_grub_cfg(app: &App, config: &Config, client: Ipv4Addr, name: &str) -> Claim {
    let Some(grub) = GrubFile::from_name(name) else {
        return Claim::NotMine;
    };
    match grub.render(app, config) {
        Ok((text, action)) => {
            if let (GrubFile::Machine(mac), Some(action)) = (grub, action) {
                tracing::info!(%client, %mac, ?action, "GRUB config");
            }
            Claim::Served(Source::bytes(text.into_bytes()))
        }
        Err(e) => {
            tracing::error!(%client, "cannot render the GRUB config {grub:?}: {e:#}");
            Claim::Refused(BootFileError::NotFound(name.to_string()))
        }
    }
}

/// The boot script of `mac` in `format`: one store read serves the decision
/// and the script; an install mints the token its seed will carry.
fn boot_script(
    app: &App,
    config: &Config,
    format: ScriptFormat,
    mac: MacAddr,
    client: &Client,
) -> Result<(String, BootAction)> {
    let base = config.http_base();
    let mut ctx = Context::new();
    ctx.insert("base", &base);
    // GRUB names an HTTP server as a device: `(http,<host>:<port>)/path`.
    ctx.insert(
        "http_host",
        &format!("{}:{}", config.server.address, config.server.http_port),
    );
    ctx.insert("mac", &mac.hyphenated());
    ctx.insert(
        "firmware",
        match client.firmware {
            Firmware::Bios => "bios",
            Firmware::Uefi => "uefi",
        },
    );
    let found = app.lookup(config, mac)?;
    let action = crate::boot::decide(found.as_ref().map(|(m, s)| (m, *s)), client);
    if let Some((m, _)) = &found {
        ctx.insert("hostname", &m.hostname);
        ctx.insert("role", m.role.name());
    }
    let page = match action {
        BootAction::Install { os, arch, .. } => {
            // Mint the install token now, so the seed this install fetches carries it.
            app.store.install_token(mac)?;
            let set = format!("{}-{arch}", os.name());
            ctx.insert("os", os.name());
            ctx.insert("arch", arch);
            ctx.insert("set", &set);
            ctx.insert("assets", &format!("{base}/assets/{set}"));
            ctx.insert("kernel_console", kernel_console(arch));
            "install"
        }
        BootAction::LocalDisk(_) => {
            // Local boot is only decided for a configured machine.
            let state = found.as_ref().map(|(_, s)| s.name()).unwrap_or_default();
            ctx.insert("state", state);
            "local"
        }
        BootAction::NoBoot(reason) => {
            ctx.insert("reason", &reason.to_string());
            "noboot"
        }
        BootAction::Chainload(_) | BootAction::IpxeScript | BootAction::PiInstall(_) => {
            ctx.insert(
                "reason",
                "a boot script was asked for by a client that does not run one",
            );
            "noboot"
        }
    };
    Ok((app.renderer.render(&format.template(page), &ctx)?, action))
}

/// The URLs a machine calls back on, bound to its install token: the
/// installer's (events, installed) and the first boot's (joined, failed).
pub struct Callbacks {
    pub events: String,
    pub installed: String,
    pub joined: String,
    /// The role script appends `&step=<name>`.
    pub firstboot_failed: String,
    pub control_plane_slot: String,
    pub haproxy: String,
    pub bootstrap_token: String,
    pub etcd_member: String,
}

impl Callbacks {
    /// The first boot's share of them.
    pub fn firstboot(&self) -> FirstbootUrls {
        FirstbootUrls {
            joined: self.joined.clone(),
            failed: self.firstboot_failed.clone(),
            slot: self.control_plane_slot.clone(),
            haproxy: self.haproxy.clone(),
            bootstrap_token: self.bootstrap_token.clone(),
            etcd_member: self.etcd_member.clone(),
        }
    }
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
        control_plane_slot: format!("{base}/control-plane-slot?token={token}"),
        haproxy: format!("{base}/haproxy.cfg?token={token}"),
        bootstrap_token: format!("{base}/bootstrap-token?token={token}"),
        etcd_member: format!("{base}/etcd-member?token={token}"),
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
    let firstboot = cb.firstboot();
    let installer = InstallerUrls {
        events: cb.events,
        installed: cb.installed,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::{Asker, Cpu, NoBootReason};
    use crate::config::testing::{lab_with, machine_toml};
    use crate::inventory::{Event, State};
    use crate::store::{SqliteStore, Write};
    use std::sync::Arc;

    const X86: &str = "52:54:00:aa:00:01";
    const ARM: &str = "52:54:00:aa:00:02";

    fn app() -> (App, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let arm1 = machine_toml("52:54:00:aa:00:02", "arm1", "worker", "10.55.0.12")
            + "platform = \"arm64\"\n";
        let config = lab_with(&arm1);
        let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
        let app = App::new(config, None, Some(dir.path().to_path_buf()), store);
        (app, dir)
    }

    fn mac(s: &str) -> MacAddr {
        s.parse().unwrap()
    }

    /// The line of `text` that starts with `word` (after indentation).
    fn line<'a>(text: &'a str, word: &str) -> &'a str {
        text.lines()
            .map(str::trim_start)
            .find(|l| l.starts_with(word))
            .unwrap_or_else(|| panic!("no `{word}` line in:\n{text}"))
    }

    #[test]
    fn grub_config_names() {
        let arm = Some(GrubFile::Machine(mac(ARM)));
        assert_eq!(
            GrubFile::from_name("grub/grub.cfg"),
            Some(GrubFile::Bootstrap)
        );
        // Debian/Ubuntu GRUB, Red Hat GRUB, and the bootstrap's `$net_default_mac`.
        assert_eq!(GrubFile::from_name("grub/grub.cfg-52-54-00-aa-00-02"), arm);
        assert_eq!(
            GrubFile::from_name("grub/grub.cfg-01-52-54-00-aa-00-02"),
            arm
        );
        assert_eq!(GrubFile::from_name("grub/grub.cfg-52:54:00:aa:00:02"), arm);
        // A MAC that itself starts with 01 is still read as six octets.
        assert_eq!(
            GrubFile::from_name("grub/grub.cfg-01-02-03-04-05-06"),
            Some(GrubFile::Machine(mac("01:02:03:04:05:06")))
        );
        // What GRUB asks for between the two, and anything else: not generated.
        for other in [
            "grub/grub.cfg-0A37000C",
            "grub/grub.cfg-0A",
            "grub/grub.cfg-7726a678-7fc0-4853-a4f6-c85ac36a120a",
            "grub/grub.cfg-",
            "grub/arm64-efi/normal.mod",
            "grub.cfg",
            "other/grub.cfg",
            "grubx/grub.cfg",
            "//grub/grub.cfg",
            "/grub/../grub/grub.cfg",
        ] {
            assert_eq!(GrubFile::from_name(other), None, "{other}");
        }
    }

    #[test]
    fn grub_installs_an_arm64_machine_over_http_with_the_semicolon_escaped() {
        let (app, _dir) = app();
        let config = app.config();
        let (text, action) = grub_cfg(&app, &config, mac(ARM)).unwrap();
        assert_eq!(
            action,
            BootAction::Install {
                os: crate::config::Os::Ubuntu2404,
                arch: "arm64",
                firmware: Firmware::Uefi,
            }
        );
        let linux = line(&text, "if linux ");
        assert!(
            linux.contains(" (http,10.55.0.1:8080)/assets/ubuntu-24.04-arm64/vmlinuz "),
            "{linux}"
        );
        assert!(
            linux.contains(
                " ds=nocloud-net\\;s=http://10.55.0.1:8080/cloud-init/52-54-00-aa-00-02/ "
            ),
            "{linux}"
        );
        assert!(linux.contains(" autoinstall "), "{linux}");
        assert!(linux.contains(" BOOTIF=01-"), "{linux}");
        assert!(
            linux.contains(" url=http://10.55.0.1:8080/assets/ubuntu-24.04-arm64/live-server.iso "),
            "{linux}"
        );
        // The only bare `;` on the line is the one that ends GRUB's `if`.
        assert_eq!(linux.matches(';').count(), 2, "{linux}");
        assert!(linux.ends_with("; then"), "{linux}");
        // arm64 takes its console from the firmware (SPCR / stdout-path).
        assert!(!linux.contains("console="), "{linux}");
        assert_eq!(
            line(&text, "if initrd "),
            "if initrd (http,10.55.0.1:8080)/assets/ubuntu-24.04-arm64/initrd; then"
        );
        assert!(text.contains("\n        boot\n"), "{text}");
        // The install token exists now, so the seed this install fetches is bound to it.
        let token = app.store.install_token(mac(ARM)).unwrap();
        assert!(app.store.check_install_token(mac(ARM), &token).unwrap());
    }

    #[test]
    fn grub_boots_the_disk_once_installed_and_installs_again_after_reimage() {
        let (app, _dir) = app();
        let config = app.config();
        let set = |state| {
            app.store
                .write(&[Write::SetState {
                    mac: mac(ARM),
                    state,
                    event: Event::now("test", "state set by the test"),
                }])
                .unwrap()
        };
        set(State::Installed);
        let (text, action) = grub_cfg(&app, &config, mac(ARM)).unwrap();
        assert_eq!(action, BootAction::LocalDisk(Firmware::Uefi));
        assert!(text.contains("bootherd: arm1 is installed; booting the local disk"));
        // It starts the installed boot loader (shim first) rather than exiting
        // to the firmware, which would show its boot manager.
        assert_eq!(
            line(&text, "for loader in "),
            "for loader in /EFI/ubuntu/shimaa64.efi /EFI/ubuntu/grubaa64.efi /EFI/BOOT/BOOTAA64.EFI; do"
        );
        assert_eq!(line(&text, "chainloader "), "chainloader \"$loader\"");
        assert!(!text.contains("linux"), "{text}");
        assert!(!text.contains("cloud-init"), "{text}");
        set(State::ReimagePending);
        let (_, action) = grub_cfg(&app, &config, mac(ARM)).unwrap();
        assert!(matches!(action, BootAction::Install { arch: "arm64", .. }));
    }

    #[test]
    fn grub_gives_an_x86_machine_and_an_unknown_mac_nothing() {
        let (app, _dir) = app();
        let config = app.config();
        let (text, action) = grub_cfg(&app, &config, mac(X86)).unwrap();
        assert!(matches!(
            action,
            BootAction::NoBoot(NoBootReason::PlatformMismatch {
                client: Cpu::Arm64,
                ..
            })
        ));
        assert!(text.contains("no network boot for 52-54-00-aa-00-01"));
        assert!(!text.contains("linux"), "{text}");
        let (text, action) = grub_cfg(&app, &config, mac("52:54:00:bb:00:09")).unwrap();
        assert_eq!(action, BootAction::NoBoot(NoBootReason::UnknownMachine));
        assert!(!text.contains("linux"), "{text}");
        assert!(!text.contains("cloud-init"), "{text}");
    }

    #[test]
    fn the_grub_bootstrap_loads_the_machine_config_by_grubs_mac_variable() {
        let (app, _dir) = app();
        let config = app.config();
        let (text, action) = GrubFile::Bootstrap.render(&app, &config).unwrap();
        assert_eq!(action, None);
        assert_eq!(
            line(&text, "configfile "),
            "configfile \"${prefix}/grub.cfg-${net_default_mac}\""
        );
        // What GRUB substitutes there names the machine's own config.
        assert_eq!(
            GrubFile::from_name("grub/grub.cfg-52:54:00:aa:00:02"),
            Some(GrubFile::Machine(mac(ARM)))
        );
    }

    #[test]
    fn ipxe_keeps_its_bare_semicolon_and_x86_console() {
        let (app, _dir) = app();
        let config = app.config();
        let client = Client {
            firmware: Firmware::Uefi,
            cpu: Cpu::X86_64,
            asker: Asker::IpxeScript,
            pi: None,
        };
        let (text, _) = ipxe_script(&app, &config, Some(mac(X86)), &client).unwrap();
        let kernel = line(&text, "kernel ");
        assert!(
            kernel
                .contains(" ds=nocloud-net;s=http://10.55.0.1:8080/cloud-init/52-54-00-aa-00-01/ "),
            "{kernel}"
        );
        assert!(
            kernel.ends_with("console=tty1 console=ttyS0,115200n8"),
            "{kernel}"
        );
    }
}
