//! Which files a machine's first boot gets, by role. This is where README's
//! "Security" is enforced: the PKI only for control planes, the token and CA
//! hash for nodes that join, the VRRP password only for the VIP holders.

use super::kubeadm::{init_config, join_config};
use super::lb::{haproxy_cfg, holds_vip, keepalived_conf};
use super::{scripts, RoleMaterial, CALICO_REGISTRY, CALICO_VERSION, ETC_DIR, LIB_DIR, POD_MTU};
use crate::config::{Config, Machine, Role};
use crate::render::Renderer;
use anyhow::{bail, Context as _, Result};
use tera::Context;

/// One file written on the installed system before its role script runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleFile {
    pub path: String,
    pub content: String,
    /// Octal, as cloud-init's `write_files.permissions` wants it.
    pub mode: &'static str,
}

/// Where the role script reports its result; the failure URL gets
/// `&step=<name>` appended by the script. A control plane asks `slot`
/// whether it inits or joins.
#[derive(Debug, Clone)]
pub struct FirstbootUrls {
    pub joined: String,
    pub failed: String,
    pub slot: String,
    /// The VIP holders' haproxy.cfg, as bootherd renders it today.
    pub haproxy: String,
    /// The bootstrap token bootherd holds now (the seed's may have expired).
    pub bootstrap_token: String,
    /// A control plane's stale etcd member, removed after a failed join.
    pub etcd_member: String,
}

/// The unit that runs the role script until it has reported success: at
/// the first boot, and again after a failure or a reboot.
pub const FIRSTBOOT_UNIT: &str = "bootherd-firstboot.service";
/// The registries a node pulls from (Kubernetes' own images, Calico's,
/// and Docker Hub for workloads), with their upstream addresses.
const REGISTRIES: [(&str, &str); 3] = [
    ("registry.k8s.io", "https://registry.k8s.io"),
    ("quay.io", "https://quay.io"),
    ("docker.io", "https://registry-1.docker.io"),
];

/// systemd-timesyncd's drop-in with the network's NTP servers.
pub const TIMESYNCD_DROP_IN: &str = "/etc/systemd/timesyncd.conf.d/bootherd.conf";
/// The timer (and its service) that keeps haproxy's backends current.
pub const HAPROXY_SYNC_UNIT: &str = "bootherd-haproxy-sync";
/// The image's default user (x86 autoinstall identity, and the Pi image's).
pub const ADMIN_USER: &str = "ubuntu";

const SECRET: &str = "0600";
const PUBLIC: &str = "0644";
const SCRIPT: &str = "0755";

fn file(path: String, content: String, mode: &'static str) -> RoleFile {
    RoleFile {
        path,
        content,
        mode,
    }
}

/// Every file `machine` gets, in the order cloud-init writes them.
pub fn role_files(
    renderer: &Renderer,
    config: &Config,
    machine: &Machine,
    material: &RoleMaterial,
    urls: &FirstbootUrls,
) -> Result<Vec<RoleFile>> {
    material.check()?;
    let mut out = Vec::new();
    let lb = holds_vip(config, machine);
    let control_plane = machine.role == Role::ControlPlane;

    out.push(file(
        format!("{LIB_DIR}/common.sh"),
        scripts::COMMON.into(),
        SCRIPT,
    ));
    if lb && machine.role != Role::LoadBalancer {
        // Stacked control planes run the load-balancer steps too.
        out.push(file(
            format!("{LIB_DIR}/load-balancer.sh"),
            scripts::LOAD_BALANCER.into(),
            SCRIPT,
        ));
    }
    let (name, text) = scripts::for_role(machine.role);
    out.push(file(format!("{LIB_DIR}/{name}"), text.into(), SCRIPT));
    // The env file carries the callback URLs with the install token.
    out.push(file(
        format!("{ETC_DIR}/firstboot.env"),
        env_file(config, machine, lb, urls),
        SECRET,
    ));
    out.push(file(
        format!("/etc/systemd/system/{FIRSTBOOT_UNIT}"),
        firstboot_unit(machine),
        PUBLIC,
    ));
    // The admin user's password is locked (SSH keys only): sudo must not ask for it.
    out.push(file(
        format!("/etc/sudoers.d/90-bootherd-{ADMIN_USER}"),
        format!("# bootherd: {ADMIN_USER} logs in with SSH keys only; its password is locked.\n{ADMIN_USER} ALL=(ALL) NOPASSWD:ALL\n"),
        "0440",
    ));

    if let Some(net) = config
        .dhcp
        .subnet_containing(machine.ip)
        .filter(|n| !n.ntp.is_empty())
    {
        let servers: Vec<String> = net.ntp.iter().map(|a| a.to_string()).collect();
        out.push(file(
            TIMESYNCD_DROP_IN.into(),
            format!(
                "# bootherd: the provisioning network's time servers ([dhcp] ntp).\n[Time]\nNTP={}\n",
                servers.join(" ")
            ),
            PUBLIC,
        ));
    }
    if machine.role != Role::LoadBalancer {
        for v in ["v2", "v3"] {
            let name = format!("containerd/config-{v}.toml");
            out.push(file(
                format!("{ETC_DIR}/{name}"),
                renderer.render(&name, &Context::new())?,
                PUBLIC,
            ));
        }
        if let Some(mirror) = &config.mirrors.registry {
            for (registry, upstream) in REGISTRIES {
                out.push(file(
                    format!("/etc/containerd/certs.d/{registry}/hosts.toml"),
                    format!(
                        "# bootherd: pull {registry} images through the site's mirror first ([mirrors] registry).\nserver = \"{upstream}\"\n\n[host.\"{mirror}\"]\n  capabilities = [\"pull\", \"resolve\"]\n"
                    ),
                    PUBLIC,
                ));
            }
        }
        // Every control plane can init: bootherd's slot decides which does.
        if control_plane {
            out.push(file(
                format!("{ETC_DIR}/kubeadm-init.yaml"),
                init_config(renderer, config, machine, material)?,
                SECRET,
            ));
        }
        out.push(file(
            format!("{ETC_DIR}/kubeadm-join.yaml"),
            join_config(renderer, config, machine, material)?,
            SECRET,
        ));
    }
    if machine.role == Role::ControlPlane {
        let Some(pki) = &material.pki else {
            bail!(
                "control plane {} needs the cluster PKI, and none was given",
                machine.hostname
            );
        };
        for (name, pem, private) in pki.files() {
            let mode = if private { SECRET } else { PUBLIC };
            out.push(file(format!("{ETC_DIR}/pki/{name}"), pem.into(), mode));
        }
    }
    if control_plane {
        let mut ctx = Context::new();
        ctx.insert("mtu", &POD_MTU);
        ctx.insert("pod_cidr", &config.cluster.pod_cidr.to_string());
        ctx.insert("registry", CALICO_REGISTRY);
        out.push(file(
            format!("{ETC_DIR}/calico-installation.yaml"),
            renderer.render("calico/installation.yaml", &ctx)?,
            PUBLIC,
        ));
    }
    if lb {
        out.push(file(
            format!("{LIB_DIR}/haproxy-sync.sh"),
            scripts::HAPROXY_SYNC.into(),
            SCRIPT,
        ));
        out.push(file(
            format!("/etc/systemd/system/{HAPROXY_SYNC_UNIT}.service"),
            format!(
                "# bootherd: haproxy's backends follow bootherd's config.\n[Unit]\nDescription=bootherd: refresh haproxy's control-plane backends\nWants=network-online.target\nAfter=network-online.target haproxy.service\n\n[Service]\nType=oneshot\nExecStart={LIB_DIR}/haproxy-sync.sh\n"
            ),
            PUBLIC,
        ));
        out.push(file(
            format!("/etc/systemd/system/{HAPROXY_SYNC_UNIT}.timer"),
            "# bootherd: a control plane added to the config becomes a backend within minutes.\n[Unit]\nDescription=bootherd: refresh haproxy's control-plane backends every 2 minutes\n\n[Timer]\nOnBootSec=2min\nOnUnitActiveSec=2min\nRandomizedDelaySec=20s\n\n[Install]\nWantedBy=timers.target\n".into(),
            PUBLIC,
        ));
        out.push(file(
            format!("{ETC_DIR}/haproxy.cfg"),
            haproxy_cfg(renderer, config, machine)?,
            PUBLIC,
        ));
        out.push(file(
            format!("{ETC_DIR}/keepalived.conf"),
            keepalived_conf(renderer, config, machine, material)?,
            SECRET,
        ));
    }
    Ok(out)
}

/// Shell-quotes a value for the env file the scripts source.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn env_file(config: &Config, machine: &Machine, lb: bool, urls: &FirstbootUrls) -> String {
    let flag = |b: bool| if b { "1" } else { "0" }.to_string();
    let vars = [
        ("BOOTHERD_ROLE", machine.role.name().to_string()),
        ("BOOTHERD_HOSTNAME", machine.hostname.clone()),
        ("BOOTHERD_NODE_IP", machine.ip.to_string()),
        ("BOOTHERD_ENDPOINT", config.cluster.endpoint.to_string()),
        ("BOOTHERD_HOLDS_VIP", flag(lb)),
        ("BOOTHERD_K8S_REPO", kubernetes_repo(config)),
        ("BOOTHERD_CALICO_MANIFEST", calico_manifest_url(config)),
        ("BOOTHERD_NOT_BEFORE", not_before().to_string()),
        ("BOOTHERD_JOINED_URL", urls.joined.clone()),
        ("BOOTHERD_FAILED_URL", urls.failed.clone()),
        ("BOOTHERD_SLOT_URL", urls.slot.clone()),
        ("BOOTHERD_ETCD_MEMBER_URL", urls.etcd_member.clone()),
        ("BOOTHERD_HAPROXY_URL", urls.haproxy.clone()),
        ("BOOTHERD_TOKEN_URL", urls.bootstrap_token.clone()),
    ];
    let mut text = format!(
        "# bootherd first-boot settings for {}; sourced by the role scripts.\n",
        machine.hostname
    );
    for (k, v) in vars {
        text.push_str(&format!("{k}={}\n", sh_quote(&v)));
    }
    text
}

/// The Calico operator manifest the control plane that inits applies.
fn calico_manifest_url(config: &Config) -> String {
    config.mirrors.calico_manifest.clone().unwrap_or_else(|| {
        format!("https://raw.githubusercontent.com/projectcalico/calico/{CALICO_VERSION}/manifests/tigera-operator.yaml")
    })
}

/// The apt repository of the cluster's Kubernetes minor (pkgs.k8s.io has
/// one per minor; a mirror keeps its layout).
fn kubernetes_repo(config: &Config) -> String {
    let base = config
        .mirrors
        .kubernetes
        .as_deref()
        .unwrap_or("https://pkgs.k8s.io");
    format!(
        "{base}/core:/stable:/v{}/deb/",
        config.cluster.kubernetes_version
    )
}

/// The start of today (UTC, unix seconds): a node whose clock is earlier
/// than the day its seed was made has a clock that is behind. A day, not
/// the second: the seed stays the same all day.
fn not_before() -> u64 {
    crate::inventory::unix_now() / 86_400 * 86_400
}

/// The unit that runs the role script: after the network is up, again 30 s
/// after each failure (growing to 10 minutes on systemd 254 and later), and
/// at every boot until the script has reported success. A transient
/// failure — a mirror down, the VIP not there yet — needs nobody.
fn firstboot_unit(machine: &Machine) -> String {
    let (script, _) = scripts::for_role(machine.role);
    format!(
        "# bootherd: the first boot of {host} as {role}.
[Unit]
Description=bootherd first boot: join the cluster as {role}
Wants=network-online.target
After=network-online.target
ConditionPathExists=!/var/lib/bootherd/firstboot-reported
StartLimitIntervalSec=0

[Service]
Type=oneshot
ExecStart={LIB_DIR}/{script}
Restart=on-failure
RestartSec=30s
RestartSteps=5
RestartMaxDelaySec=10min
TimeoutStartSec=infinity

[Install]
WantedBy=multi-user.target
",
        host = machine.hostname,
        role = machine.role.name(),
    )
}

/// The cloud-config the installed system runs on first boot: the files,
/// then the unit that runs the role script.
pub fn installed_cloud_config(files: &[RoleFile]) -> Result<serde_yaml::Value> {
    let write_files: Vec<serde_json::Value> = files
        .iter()
        .map(|f| {
            serde_json::json!({
                "path": f.path,
                "content": f.content,
                "owner": "root:root",
                "permissions": f.mode,
            })
        })
        .collect();
    // --no-block: the unit must not wait inside cloud-init's own run.
    let doc = serde_json::json!({
        "write_files": write_files,
        "runcmd": [["systemctl", "daemon-reload"], ["systemctl", "enable", "--now", "--no-block", FIRSTBOOT_UNIT]],
    });
    serde_yaml::to_value(doc).context("converting the first-boot cloud-config")
}
