//! Which files a machine's first boot gets, by role. This is where DESIGN.md
//! "Security" is enforced: the PKI only for control planes, the token and CA
//! hash for nodes that join, the VRRP password only for the VIP holders.

use super::kubeadm::{init_config, is_first_control_plane, join_config};
use super::lb::{haproxy_cfg, holds_vip, keepalived_conf};
use super::{scripts, RoleMaterial, CALICO_VERSION, ETC_DIR, LIB_DIR, POD_MTU};
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
/// `&step=<name>` appended by the script.
#[derive(Debug, Clone)]
pub struct FirstbootUrls {
    pub joined: String,
    pub failed: String,
}

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
    let first = machine.role == Role::ControlPlane && is_first_control_plane(config, machine);

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
        env_file(config, machine, lb, first, urls),
        SECRET,
    ));

    if machine.role != Role::LoadBalancer {
        for v in ["v2", "v3"] {
            let name = format!("containerd/config-{v}.toml");
            out.push(file(
                format!("{ETC_DIR}/{name}"),
                renderer.render(&name, &Context::new())?,
                PUBLIC,
            ));
        }
        let kubeadm = if first {
            init_config(renderer, config, machine, material)?
        } else {
            join_config(renderer, config, machine, material)?
        };
        out.push(file(format!("{ETC_DIR}/kubeadm.yaml"), kubeadm, SECRET));
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
    if first {
        let mut ctx = Context::new();
        ctx.insert("mtu", &POD_MTU);
        ctx.insert("pod_cidr", &config.cluster.pod_cidr.to_string());
        out.push(file(
            format!("{ETC_DIR}/calico-installation.yaml"),
            renderer.render("calico/installation.yaml", &ctx)?,
            PUBLIC,
        ));
    }
    if lb {
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

fn env_file(
    config: &Config,
    machine: &Machine,
    lb: bool,
    first: bool,
    urls: &FirstbootUrls,
) -> String {
    let flag = |b: bool| if b { "1" } else { "0" }.to_string();
    let vars = [
        ("BOOTHERD_ROLE", machine.role.name().to_string()),
        ("BOOTHERD_HOSTNAME", machine.hostname.clone()),
        ("BOOTHERD_NODE_IP", machine.ip.to_string()),
        ("BOOTHERD_ENDPOINT", config.cluster.endpoint.to_string()),
        (
            "BOOTHERD_K8S_MINOR",
            config.cluster.kubernetes_version.clone(),
        ),
        ("BOOTHERD_FIRST_CONTROL_PLANE", flag(first)),
        ("BOOTHERD_HOLDS_VIP", flag(lb)),
        ("BOOTHERD_CALICO_VERSION", CALICO_VERSION.to_string()),
        ("BOOTHERD_JOINED_URL", urls.joined.clone()),
        ("BOOTHERD_FAILED_URL", urls.failed.clone()),
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

/// The cloud-config the installed system runs on first boot: the files,
/// then the role script.
pub fn installed_cloud_config(machine: &Machine, files: &[RoleFile]) -> Result<serde_yaml::Value> {
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
    let (script, _) = scripts::for_role(machine.role);
    let doc = serde_json::json!({
        "write_files": write_files,
        "runcmd": [[format!("{LIB_DIR}/{script}")]],
    });
    serde_yaml::to_value(doc).context("converting the first-boot cloud-config")
}
