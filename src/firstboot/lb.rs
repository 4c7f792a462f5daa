//! The API load balancer: haproxy in front of every control plane, and
//! keepalived moving the VIP between the machines that run haproxy.

use super::kubeadm::api_bind_port;
use super::{RoleMaterial, INTERFACE_PLACEHOLDER};
use crate::config::{Config, LoadBalancerMode, Machine, Role};
use crate::render::Renderer;
use anyhow::Result;
use tera::Context;

/// The machines that hold the VIP, in config order: the load balancers, or
/// the control planes in stacked mode.
pub fn vip_holders(config: &Config) -> Vec<&Machine> {
    let role = match config.cluster.load_balancer {
        LoadBalancerMode::External => Role::LoadBalancer,
        LoadBalancerMode::Stacked => Role::ControlPlane,
    };
    config.machines.iter().filter(|m| m.role == role).collect()
}

/// Whether `machine` runs haproxy + keepalived.
pub fn holds_vip(config: &Config, machine: &Machine) -> bool {
    vip_holders(config).iter().any(|m| m.mac == machine.mac)
}

#[derive(serde::Serialize)]
struct Backend {
    name: String,
    ip: String,
    port: u16,
}

pub fn haproxy_cfg(renderer: &Renderer, config: &Config, machine: &Machine) -> Result<String> {
    let port = api_bind_port(config);
    let backends: Vec<Backend> = config
        .control_planes()
        .map(|m| Backend {
            name: m.hostname.clone(),
            ip: m.ip.to_string(),
            port,
        })
        .collect();
    let mut ctx = Context::new();
    ctx.insert("hostname", &machine.hostname);
    ctx.insert("vip", &config.cluster.endpoint.ip().to_string());
    ctx.insert("frontend_port", &config.cluster.endpoint.port());
    ctx.insert("backends", &backends);
    renderer.render("haproxy/haproxy.cfg", &ctx)
}

pub fn keepalived_conf(
    renderer: &Renderer,
    config: &Config,
    machine: &Machine,
    material: &RoleMaterial,
) -> Result<String> {
    let holders = vip_holders(config);
    let index = holders
        .iter()
        .position(|m| m.mac == machine.mac)
        .unwrap_or(0);
    // Priority by config order: the first holder is MASTER while healthy.
    let priority = 150u32.saturating_sub(10 * index as u32).max(1);
    let peers: Vec<String> = holders
        .iter()
        .filter(|m| m.mac != machine.mac)
        .map(|m| m.ip.to_string())
        .collect();
    let vip = *config.cluster.endpoint.ip();
    // The VRID only has to differ from other VRRP groups on the VLAN; the
    // VIP's last octet does, for clusters with different VIPs.
    let vrid = vip.octets()[3].max(1);
    let mut ctx = Context::new();
    ctx.insert("hostname", &machine.hostname);
    ctx.insert("node_ip", &machine.ip.to_string());
    ctx.insert("interface_placeholder", INTERFACE_PLACEHOLDER);
    ctx.insert("vrid", &vrid);
    ctx.insert("priority", &priority);
    ctx.insert("peers", &peers);
    ctx.insert("password", material.vrrp_pass());
    ctx.insert("vip", &vip.to_string());
    let subnet = config.dhcp.subnet_containing(machine.ip);
    ctx.insert("prefix", &subnet.map_or(32, |s| s.net.prefix_len()));
    renderer.render("keepalived/keepalived.conf", &ctx)
}
