//! The bash role scripts from `cloud-init/`, compiled in. `common.sh` holds
//! the shared steps; each role script sources it (and the stacked control
//! plane sources `load-balancer.sh` for the haproxy/keepalived steps).

use crate::config::Role;

pub const COMMON: &str = include_str!("../../cloud-init/common.sh");
pub const LOAD_BALANCER: &str = include_str!("../../cloud-init/load-balancer.sh");
pub const CONTROL_PLANE: &str = include_str!("../../cloud-init/control-plane.sh");
pub const WORKER: &str = include_str!("../../cloud-init/worker.sh");
/// Run by a timer on the VIP holders: haproxy's backends follow the config.
pub const HAPROXY_SYNC: &str = include_str!("../../cloud-init/haproxy-sync.sh");

/// Every script by file name, for tools (and tests) that check them all.
pub const ALL: &[(&str, &str)] = &[
    ("common.sh", COMMON),
    ("load-balancer.sh", LOAD_BALANCER),
    ("control-plane.sh", CONTROL_PLANE),
    ("worker.sh", WORKER),
    ("haproxy-sync.sh", HAPROXY_SYNC),
];

/// The script a role runs on first boot (file name, text).
pub fn for_role(role: Role) -> (&'static str, &'static str) {
    match role {
        Role::LoadBalancer => ("load-balancer.sh", LOAD_BALANCER),
        Role::ControlPlane => ("control-plane.sh", CONTROL_PLANE),
        Role::Worker => ("worker.sh", WORKER),
    }
}
