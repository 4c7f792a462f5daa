//! The cluster strip: the API VIP, control planes joined out of configured
//! and the etcd quorum that gives, workers joined, load balancers up.

use super::MachineRow;
use crate::config::{Config, LoadBalancerMode, Role};
use crate::inventory::State;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Joined {
    pub joined: u32,
    pub configured: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterSummary {
    pub name: String,
    /// The API endpoint the load balancers hold, `ip:port`.
    pub vip: String,
    pub control_planes: Joined,
    /// etcd members needed for quorum among the configured control planes (N/2+1).
    pub quorum: u32,
    /// Whether the joined control planes reach it.
    pub has_quorum: bool,
    /// How many more joined control planes may fail before quorum is lost.
    pub tolerates: u32,
    pub workers: Joined,
    /// `None` when the load balancing is stacked on the control planes.
    pub load_balancers: Option<Joined>,
}

pub fn summary(config: &Config, rows: &[MachineRow]) -> ClusterSummary {
    let count = |role: Role| {
        let mine = rows
            .iter()
            .filter(|r| r.role.as_deref() == Some(&role.to_string()));
        Joined {
            configured: mine.clone().count() as u32,
            joined: mine.filter(|r| r.state == State::Joined).count() as u32,
        }
    };
    let control_planes = count(Role::ControlPlane);
    let quorum = control_planes.configured / 2 + 1;
    ClusterSummary {
        name: config.cluster.name.clone(),
        vip: config.cluster.endpoint.to_string(),
        has_quorum: control_planes.joined >= quorum,
        tolerates: control_planes.joined.saturating_sub(quorum),
        quorum,
        control_planes,
        workers: count(Role::Worker),
        load_balancers: match config.cluster.load_balancer {
            LoadBalancerMode::External => Some(count(Role::LoadBalancer)),
            LoadBalancerMode::Stacked => None,
        },
    }
}

impl ClusterSummary {
    /// One line per fact, for the terminal.
    pub fn lines(&self) -> Vec<String> {
        let quorum = if self.has_quorum {
            format!(
                "quorum held (needs {}), tolerates {} more failure(s)",
                self.quorum, self.tolerates
            )
        } else {
            format!("no quorum yet (needs {})", self.quorum)
        };
        vec![
            format!("cluster {}  VIP {}", self.name, self.vip),
            format!(
                "control planes {}/{} joined: {quorum}",
                self.control_planes.joined, self.control_planes.configured
            ),
            format!(
                "workers {}/{} joined",
                self.workers.joined, self.workers.configured
            ),
            match &self.load_balancers {
                Some(lb) => format!("load balancers {}/{} up", lb.joined, lb.configured),
                None => "load balancers: stacked on the control planes".to_string(),
            },
        ]
    }
}
