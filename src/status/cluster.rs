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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::{dhcp, machine_toml, parse, CLUSTER, SERVER};
    use crate::mac::MacAddr;

    fn row(n: u8, role: Role, state: State) -> MachineRow {
        MachineRow {
            hostname: Some(format!("m{n}")),
            mac: MacAddr([0x52, 0x54, 0, 0, 0, n]),
            role: Some(role.to_string()),
            platform: None,
            ip: None,
            state,
            last_seen: None,
            last_event: None,
            progress: None,
            failure: None,
        }
    }

    fn config() -> Config {
        // No STACKED: the load balancer m21 holds the VIP.
        let mut text = format!("{SERVER}{}{CLUSTER}", dhcp("10.55.0.200-10.55.0.202"));
        for (n, role) in [
            (11, "control-plane"),
            (12, "control-plane"),
            (13, "control-plane"),
            (21, "load-balancer"),
        ] {
            text.push_str(&machine_toml(
                &format!("52:54:00:00:00:{n}"),
                &format!("m{n}"),
                role,
                &format!("10.55.0.{n}"),
            ));
        }
        parse(&text)
    }

    #[test]
    fn quorum_follows_the_joined_control_planes() {
        let config = config();
        let mut rows = vec![
            row(11, Role::ControlPlane, State::Joined),
            row(12, Role::ControlPlane, State::Installing),
            row(13, Role::ControlPlane, State::Configured),
            row(21, Role::LoadBalancer, State::Joined),
            row(31, Role::Worker, State::Installed),
        ];
        let s = summary(&config, &rows);
        assert_eq!(
            (s.control_planes.joined, s.control_planes.configured),
            (1, 3)
        );
        assert_eq!(s.quorum, 2, "3 members need 2");
        assert!(!s.has_quorum);
        assert_eq!(
            s.load_balancers,
            Some(Joined {
                joined: 1,
                configured: 1
            })
        );
        assert_eq!(
            s.workers,
            Joined {
                joined: 0,
                configured: 1
            }
        );
        assert_eq!(s.vip, "10.55.0.100:6443");

        rows[1].state = State::Joined;
        let s = summary(&config, &rows);
        assert!(s.has_quorum);
        assert_eq!(
            s.tolerates, 0,
            "2 of 3 joined: one more failure loses quorum"
        );
        rows[2].state = State::Joined;
        assert_eq!(summary(&config, &rows).tolerates, 1);
        assert!(summary(&config, &rows).lines()[1].contains("3/3 joined: quorum held"));
    }
}
