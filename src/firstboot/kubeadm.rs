//! kubeadm configs (v1beta4): InitConfiguration + ClusterConfiguration,
//! which every control plane gets (bootherd's slot decides at first boot
//! which one runs `kubeadm init`), and JoinConfiguration for every node
//! that joins.

use super::{RoleMaterial, API_PORT, STACKED_API_PORT, VERSION_PLACEHOLDER};
use crate::config::{Config, LoadBalancerMode, Machine, Role};
use crate::render::Renderer;
use anyhow::Result;
use tera::Context;

/// The port the API server itself listens on (haproxy takes 6443 in stacked mode).
pub fn api_bind_port(config: &Config) -> u16 {
    match config.cluster.load_balancer {
        LoadBalancerMode::External => API_PORT,
        LoadBalancerMode::Stacked => STACKED_API_PORT,
    }
}

fn base_context(config: &Config, machine: &Machine, material: &RoleMaterial) -> Context {
    let mut ctx = Context::new();
    ctx.insert("hostname", &machine.hostname);
    ctx.insert("role", machine.role.name());
    ctx.insert("node_ip", &machine.ip.to_string());
    ctx.insert("endpoint", &config.cluster.endpoint.to_string());
    ctx.insert("token", &material.token);
    ctx.insert("ca_cert_hash", &material.ca_cert_hash);
    ctx.insert("bind_port", &api_bind_port(config));
    ctx
}

/// `kubeadm init --config` input for a control plane.
pub fn init_config(
    renderer: &Renderer,
    config: &Config,
    machine: &Machine,
    material: &RoleMaterial,
) -> Result<String> {
    let mut ctx = base_context(config, machine, material);
    ctx.insert("cluster_name", &config.cluster.name);
    ctx.insert("version_placeholder", VERSION_PLACEHOLDER);
    ctx.insert("vip", &config.cluster.endpoint.ip().to_string());
    let ips: Vec<String> = config.control_planes().map(|m| m.ip.to_string()).collect();
    ctx.insert("control_plane_ips", &ips);
    ctx.insert("pod_cidr", &config.cluster.pod_cidr.to_string());
    ctx.insert("service_cidr", &config.cluster.service_cidr.to_string());
    renderer.render("kubeadm/init.yaml", &ctx)
}

/// `kubeadm join --config` input: as a control plane or as a worker.
pub fn join_config(
    renderer: &Renderer,
    config: &Config,
    machine: &Machine,
    material: &RoleMaterial,
) -> Result<String> {
    let mut ctx = base_context(config, machine, material);
    ctx.insert("control_plane", &(machine.role == Role::ControlPlane));
    renderer.render("kubeadm/join.yaml", &ctx)
}
