//! What serde reads from `bootherd.toml`: loose types that keep each value's
//! position in the file, so validation can name the line. Nothing outside
//! `config` uses these; the rest of the code trusts the validated types.

use serde::Deserialize;
use std::path::PathBuf;
use toml::Spanned;

pub type S<T> = Spanned<T>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigWire {
    pub server: S<ServerWire>,
    #[serde(default)]
    pub dhcp: Option<S<DhcpWire>>,
    #[serde(default)]
    pub tftp: Option<TftpWire>,
    pub cluster: S<ClusterWire>,
    #[serde(default)]
    pub mirrors: Option<MirrorsWire>,
    #[serde(default)]
    pub machine: Vec<S<MachineWire>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MirrorsWire {
    pub apt: Option<S<String>>,
    pub apt_ports: Option<S<String>>,
    pub kubernetes: Option<S<String>>,
    pub registry: Option<S<String>>,
    pub calico_manifest: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerWire {
    pub interface: Option<S<String>>,
    pub address: S<String>,
    pub http_port: Option<S<u16>>,
    /// Address the HTTP server binds (default: all addresses, port `http_port`).
    pub http_bind: Option<S<String>>,
    pub data_dir: Option<S<PathBuf>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DhcpWire {
    pub mode: Option<S<String>>,
    /// `subnet = "10.0.0.0/24"` (one network, the rest of its keys in
    /// `[dhcp]`), or `[[dhcp.subnet]]` blocks (several networks behind relays).
    pub subnet: Option<S<SubnetField>>,
    pub gateway: Option<S<String>>,
    #[serde(default)]
    pub dns: Vec<S<String>>,
    /// NTP servers (DHCP option 42, and the installed systems' time sync).
    #[serde(default)]
    pub ntp: Vec<S<String>>,
    pub domain: Option<S<String>>,
    pub pool: Option<S<String>>,
    pub lease_time: Option<S<String>>,
}

/// The two shapes of `[dhcp] subnet`. Deserialized by hand rather than with
/// `#[serde(untagged)]`, which buffers the value and so loses the spans that
/// errors inside a `[[dhcp.subnet]]` block need.
#[derive(Debug)]
pub enum SubnetField {
    Single(String),
    Blocks(Vec<S<SubnetWire>>),
}

impl<'de> Deserialize<'de> for SubnetField {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Shape;
        impl<'de> serde::de::Visitor<'de> for Shape {
            type Value = SubnetField;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a network like \"10.0.0.0/24\", or [[dhcp.subnet]] tables")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<SubnetField, E> {
                Ok(SubnetField::Single(v.to_string()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<SubnetField, A::Error> {
                let mut blocks = Vec::new();
                while let Some(block) = seq.next_element()? {
                    blocks.push(block);
                }
                Ok(SubnetField::Blocks(blocks))
            }
        }
        d.deserialize_any(Shape)
    }
}

/// One `[[dhcp.subnet]]` block: a network reached directly or through a relay.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubnetWire {
    pub subnet: S<String>,
    pub gateway: Option<S<String>>,
    #[serde(default)]
    pub dns: Vec<S<String>>,
    #[serde(default)]
    pub ntp: Vec<S<String>>,
    pub pool: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TftpWire {
    pub enabled: Option<bool>,
    pub port: Option<u16>,
    /// Directory of extra boot files served over TFTP and HTTP.
    pub root: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterWire {
    pub name: S<String>,
    pub kubernetes_version: Option<S<String>>,
    pub endpoint: S<String>,
    pub pod_cidr: Option<S<String>>,
    pub service_cidr: Option<S<String>>,
    pub cni: Option<S<String>>,
    pub load_balancer: Option<S<String>>,
    #[serde(default)]
    pub ssh_authorized_keys: Vec<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineWire {
    pub mac: S<String>,
    pub hostname: S<String>,
    pub role: S<String>,
    pub ip: S<String>,
    pub platform: Option<S<String>>,
    pub os: Option<S<String>>,
    pub disk: Option<S<String>>,
    /// Raspberry Pi serial number (8 hex digits), the prefix of its TFTP requests.
    pub serial: Option<S<String>>,
}
