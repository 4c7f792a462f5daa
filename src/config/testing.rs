//! Example configs for unit tests: the lab on 10.55.0.0/24 with bootherd on
//! 10.55.0.1 and control plane cp1, as TOML pieces that a test puts together,
//! so that each test spells out only what it changes.

use super::Config;

/// `[server]`: bootherd on 10.55.0.1, HTTP on 8080, a data_dir no test uses.
pub const SERVER: &str = r#"[server]
address = "10.55.0.1"
http_port = 8080
data_dir = "/tmp/unused"
"#;

/// `[cluster]` "lab" with its endpoint on 10.55.0.100, and no `load_balancer`
/// key: the default, load-balancer machines hold the VIP.
pub const CLUSTER: &str = r#"[cluster]
name = "lab"
kubernetes_version = "1.36"
endpoint = "10.55.0.100:6443"
"#;

/// The `[cluster]` key that runs the VIP on the control planes; follows CLUSTER.
pub const STACKED: &str = "load_balancer = \"stacked\"\n";

/// `[dhcp]`: authoritative on 10.55.0.0/24, gateway and DNS 10.55.0.1,
/// leases of an hour from `pool`.
pub fn dhcp(pool: &str) -> String {
    format!(
        r#"[dhcp]
mode = "authoritative"
subnet = "10.55.0.0/24"
gateway = "10.55.0.1"
dns = ["10.55.0.1"]
pool = "{pool}"
lease_time = "1h"
"#
    )
}

/// A `[[machine]]` table; keys appended after it (`platform = …`) belong to it.
pub fn machine_toml(mac: &str, hostname: &str, role: &str, ip: &str) -> String {
    format!("[[machine]]\nmac = \"{mac}\"\nhostname = \"{hostname}\"\nrole = \"{role}\"\nip = \"{ip}\"\n")
}

/// Control plane cp1: 52:54:00:aa:00:01 on 10.55.0.11.
pub fn cp1() -> String {
    machine_toml("52:54:00:aa:00:01", "cp1", "control-plane", "10.55.0.11")
}

/// A stacked lab config: SERVER, `dhcp`, CLUSTER with STACKED, then `machines`.
pub fn lab_text(dhcp: &str, machines: &str) -> String {
    format!("{SERVER}{dhcp}{CLUSTER}{STACKED}{machines}")
}

/// The lab's text: DHCP pool 10.55.0.200-10.55.0.202 (three addresses),
/// cp1, then `extra_machines`.
pub fn lab_text_with(extra_machines: &str) -> String {
    lab_text(&dhcp("10.55.0.200-10.55.0.202"), &(cp1() + extra_machines))
}

/// The lab ([`lab_text_with`]) with `extra_machines` after cp1, parsed.
pub fn lab_with(extra_machines: &str) -> Config {
    parse(&lab_text_with(extra_machines))
}

/// Parses a config that must be valid (warnings are allowed).
pub fn parse(text: &str) -> Config {
    match super::parse(text) {
        Ok((config, _)) => config,
        Err(findings) => panic!("test config is not valid: {findings:?}\n{text}"),
    }
}

/// The cluster tests' network, 10.0.0.0/24 with bootherd on 10.0.0.2, the
/// endpoint on 10.0.0.100 and explicit pod and service CIDRs; ends inside
/// `[cluster]` (STACKED may follow) and has no machines.
pub const NET10: &str = r#"[server]
address = "10.0.0.2"
data_dir = "/nonexistent"
[dhcp]
subnet = "10.0.0.0/24"
pool = "10.0.0.200-10.0.0.250"
[cluster]
name = "lab"
kubernetes_version = "1.36"
endpoint = "10.0.0.100:6443"
pod_cidr = "10.244.0.0/16"
service_cidr = "10.96.0.0/12"
"#;
