//! The operator's `bootherd.toml`: validated types that the rest of bootherd
//! trusts. `wire` holds what serde reads; `validate` turns one into the other
//! and refuses mistakes with the line and the fix.

pub mod kubernetes;
#[cfg(test)]
pub mod testing;
mod validate;
mod wire;

use crate::mac::MacAddr;
use crate::pi::Serial;
use ipnet::Ipv4Net;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use validate::{parse, Finding, Severity};

pub const DEFAULT_CONFIG_PATH: &str = "/etc/bootherd/bootherd.toml";

/// The API server's default port.
pub const API_PORT: u16 = 6443;
/// Port the API server binds to in stacked mode, where haproxy owns the
/// endpoint's port on the control planes.
pub const STACKED_API_PORT: u16 = 6444;

#[derive(Debug, Clone)]
pub struct Config {
    pub server: Server,
    pub dhcp: Dhcp,
    pub tftp: Tftp,
    pub cluster: Cluster,
    pub mirrors: Mirrors,
    /// In file order (which control plane runs `kubeadm init` is decided
    /// at first boot, by `crate::bringup`).
    pub machines: Vec<Machine>,
}

#[derive(Debug, Clone)]
pub struct Server {
    /// NIC on the provisioning VLAN; DHCP binds to it when set.
    pub interface: Option<String>,
    /// bootherd's address on that VLAN: boot URLs and DHCP server id use it.
    pub address: Ipv4Addr,
    pub http_port: u16,
    /// Where the HTTP server listens; defaults to every address on `http_port`.
    pub http_bind: std::net::SocketAddr,
    pub data_dir: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DhcpMode {
    /// bootherd hands out addresses and boot information.
    Authoritative,
    /// Another server owns addresses; bootherd adds boot information only.
    Proxy,
    Off,
}

#[derive(Debug, Clone)]
pub struct Dhcp {
    pub mode: DhcpMode,
    /// The networks served: the local one and those behind relays. No two
    /// overlap; empty only when DHCP is off and no subnet is configured.
    pub subnets: Vec<Subnet>,
    pub domain: Option<String>,
    pub lease_time: Duration,
}

/// One network bootherd serves (`[dhcp]` itself, or a `[[dhcp.subnet]]` block).
/// Its reservations are the machines whose `ip` lies inside `net`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subnet {
    pub net: Ipv4Net,
    pub gateway: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    /// Time servers: Raspberry Pis have no battery clock, and TLS, apt and
    /// the cluster's certificates need the right time.
    pub ntp: Vec<Ipv4Addr>,
    /// Addresses for machines that are not in the inventory (inclusive).
    pub pool: Option<Pool>,
}

impl Dhcp {
    /// The subnet an address belongs to: a relay's `giaddr`, bootherd's own
    /// address (the local network), or a machine's `ip`.
    pub fn subnet_containing(&self, ip: Ipv4Addr) -> Option<&Subnet> {
        self.subnets.iter().find(|s| s.net.contains(&ip))
    }

    /// Every address pool with its subnet (per-pool lease counts read this).
    pub fn pools(&self) -> impl Iterator<Item = (&Subnet, Pool)> {
        self.subnets.iter().filter_map(|s| Some((s, s.pool?)))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool {
    pub first: Ipv4Addr,
    pub last: Ipv4Addr,
}

impl Pool {
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        (self.first..=self.last).contains(&ip)
    }
    pub fn len(&self) -> u32 {
        u32::from(self.last) - u32::from(self.first) + 1
    }
    pub fn is_empty(&self) -> bool {
        false
    }
}

impl fmt::Display for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

/// Where the nodes get packages and images when not from the internet
/// (air-gapped sites, labs). Each is an `http(s)://` URL without a
/// trailing `/`; unset means upstream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mirrors {
    /// Ubuntu's archive for amd64: the installer's and the installed system's apt.
    pub apt: Option<String>,
    /// Ubuntu's ports archive: arm64 servers and Raspberry Pis.
    pub apt_ports: Option<String>,
    /// A copy of pkgs.k8s.io in its layout: `<kubernetes>/core:/stable:/v<minor>/deb/`.
    pub kubernetes: Option<String>,
    /// A registry that serves every upstream the nodes pull from (Docker
    /// Hub, quay.io, registry.k8s.io): containerd asks it first.
    pub registry: Option<String>,
    /// The Calico operator manifest (`tigera-operator.yaml`).
    pub calico_manifest: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Tftp {
    pub enabled: bool,
    pub port: u16,
    /// Extra boot files, served read-only over TFTP and HTTP.
    pub root: PathBuf,
}

#[derive(Debug, Clone)]
pub struct Cluster {
    pub name: String,
    /// `major.minor`, e.g. `1.36`: selects the pkgs.k8s.io repository.
    pub kubernetes_version: String,
    /// The API VIP (held by the load balancers) and port.
    pub endpoint: SocketAddrV4,
    pub pod_cidr: Ipv4Net,
    pub service_cidr: Ipv4Net,
    pub cni: String,
    pub load_balancer: LoadBalancerMode,
    pub ssh_authorized_keys: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadBalancerMode {
    /// Dedicated `load-balancer` machines hold the VIP.
    External,
    /// haproxy + keepalived run on the control planes; the API server moves to 6444.
    Stacked,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    pub mac: MacAddr,
    pub hostname: String,
    pub role: Role,
    pub ip: Ipv4Addr,
    pub platform: Platform,
    pub os: Os,
    /// Target disk for the install; `None` = the largest.
    pub disk: Option<String>,
    /// A Raspberry Pi's serial number: its TFTP requests under `<serial>/`
    /// map to this machine even before its DHCP exchange was seen.
    pub serial: Option<Serial>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    ControlPlane,
    LoadBalancer,
    Worker,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Platform {
    Amd64,
    Arm64,
    Rpi4,
    Rpi5,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Os {
    #[serde(rename = "ubuntu-24.04")]
    Ubuntu2404,
    #[serde(rename = "ubuntu-22.04")]
    Ubuntu2204,
}

macro_rules! names {
    ($ty:ty { $($variant:ident = $name:literal),* $(,)? }) => {
        impl $ty {
            pub const ALL: &'static [$ty] = &[$(<$ty>::$variant),*];
            pub fn name(self) -> &'static str {
                match self { $(<$ty>::$variant => $name),* }
            }
            pub fn from_name(s: &str) -> Option<$ty> {
                Self::ALL.iter().copied().find(|v| v.name() == s)
            }
            /// The accepted spellings, for error messages.
            pub fn choices() -> String {
                Self::ALL.iter().map(|v| format!("\"{}\"", v.name())).collect::<Vec<_>>().join(", ")
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.name()) }
        }
    };
}
names!(Role { ControlPlane = "control-plane", LoadBalancer = "load-balancer", Worker = "worker" });
names!(Platform { Amd64 = "amd64", Arm64 = "arm64", Rpi4 = "rpi4", Rpi5 = "rpi5" });
names!(Os { Ubuntu2404 = "ubuntu-24.04", Ubuntu2204 = "ubuntu-22.04" });
names!(DhcpMode { Authoritative = "authoritative", Proxy = "proxy", Off = "off" });
names!(LoadBalancerMode { External = "external", Stacked = "stacked" });

/// Whether `path` is a device path a Pi's kernel command line can carry as
/// one word: `/dev/` and then letters, digits and `/_-.:` only, no `..`.
pub fn is_plain_device_path(path: &str) -> bool {
    path.strip_prefix("/dev/").is_some_and(|rest| {
        !rest.is_empty()
            && rest
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "/_-.:".contains(c))
    }) && !path.contains("..")
}

impl Platform {
    /// A Raspberry Pi, booted by its EEPROM bootloader rather than by PXE firmware.
    pub fn is_pi(self) -> bool {
        matches!(self, Platform::Rpi4 | Platform::Rpi5)
    }

    /// The Debian/Ubuntu architecture name of the installed system.
    pub fn arch(self) -> &'static str {
        match self {
            Platform::Amd64 => "amd64",
            Platform::Arm64 | Platform::Rpi4 | Platform::Rpi5 => "arm64",
        }
    }
}

impl Config {
    /// Reads and validates a config file. On failure the error lists every
    /// problem found, each with its line and fix.
    pub fn load(path: &Path) -> Result<(Config, Vec<Finding>), LoadError> {
        let text = std::fs::read_to_string(path).map_err(|e| LoadError::Read {
            path: path.to_path_buf(),
            source: e,
        })?;
        parse(&text).map_err(|findings| LoadError::Invalid {
            path: path.to_path_buf(),
            findings,
        })
    }

    pub fn machine_by_mac(&self, mac: MacAddr) -> Option<&Machine> {
        self.machines.iter().find(|m| m.mac == mac)
    }

    /// The Pi configured with this serial number.
    pub fn machine_by_serial(&self, serial: Serial) -> Option<&Machine> {
        self.machines.iter().find(|m| m.serial == Some(serial))
    }

    /// The machine whose reserved address this is.
    pub fn machine_by_ip(&self, ip: Ipv4Addr) -> Option<&Machine> {
        self.machines.iter().find(|m| m.ip == ip)
    }

    /// Finds a machine by hostname or MAC, as operators name them on the command line.
    pub fn machine_by_name(&self, name: &str) -> Option<&Machine> {
        let mac = name.parse::<MacAddr>().ok();
        self.machines
            .iter()
            .find(|m| m.hostname == name || Some(m.mac) == mac)
    }

    pub fn control_planes(&self) -> impl Iterator<Item = &Machine> {
        self.machines
            .iter()
            .filter(|m| m.role == Role::ControlPlane)
    }

    /// Base URL of bootherd's HTTP server as machines on the VLAN reach it.
    pub fn http_base(&self) -> String {
        format!("http://{}:{}", self.server.address, self.server.http_port)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read config {path}: {source} (pass --config PATH, or create the file; see README.md for an example)")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not valid:\n{}", findings.iter().map(|f| format!("  line {f}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        path: PathBuf,
        findings: Vec<Finding>,
    },
}
