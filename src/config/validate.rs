//! Wire types → validated types. Every rule README's `bootherd check` lists lives here; each
//! finding names the line it is about and how to fix it.

use super::kubernetes::{self, Support};
use super::wire::{ConfigWire, MachineWire, MirrorsWire, SubnetField, S};
use super::*;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

#[derive(Debug, Clone, PartialEq, Eq, Copy)]
pub enum Severity {
    Error,
    Warning,
}

/// One problem in the config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub line: usize,
    pub severity: Severity,
    pub message: String,
    pub fix: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{}: {sev}: {} (fix: {})",
            self.line, self.message, self.fix
        )
    }
}

/// Parses and validates config text. `Ok` carries the warnings; `Err` carries
/// every error (and the warnings) found, sorted by line.
pub fn parse(text: &str) -> Result<(Config, Vec<Finding>), Vec<Finding>> {
    let mut v = Validator {
        text,
        findings: Vec::new(),
    };
    let wire: ConfigWire = match toml::from_str(text) {
        Ok(w) => w,
        Err(e) => {
            let line = e.span().map(|s| v.line(s.start)).unwrap_or(1);
            let fix = "correct the TOML syntax or the key name (see README.md for every key)";
            v.error(line, e.message().trim().to_string(), fix);
            return Err(v.findings);
        }
    };
    let config = v.config(wire);
    v.findings.sort_by_key(|f| f.line);
    match config {
        Some(c) if !v.findings.iter().any(|f| f.severity == Severity::Error) => Ok((c, v.findings)),
        _ => Err(v.findings),
    }
}

/// The keys that describe one network: in `[dhcp]`, or in a `[[dhcp.subnet]]` block.
struct NetworkKeys<'w> {
    net: &'w S<String>,
    gateway: &'w Option<S<String>>,
    dns: &'w [S<String>],
    ntp: &'w [S<String>],
    pool: &'w Option<S<String>>,
}

struct Validator<'t> {
    text: &'t str,
    findings: Vec<Finding>,
}

impl Validator<'_> {
    fn line(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())]
            .matches('\n')
            .count()
            + 1
    }

    fn at<T>(&self, s: &S<T>) -> usize {
        self.line(s.span().start)
    }

    fn error(&mut self, line: usize, message: impl Into<String>, fix: impl Into<String>) {
        self.push(Severity::Error, line, message, fix);
    }

    fn warn(&mut self, line: usize, message: impl Into<String>, fix: impl Into<String>) {
        self.push(Severity::Warning, line, message, fix);
    }

    fn push(
        &mut self,
        severity: Severity,
        line: usize,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.findings.push(Finding {
            line,
            severity,
            message: message.into(),
            fix: fix.into(),
        });
    }

    /// Parses a spanned string with `FromStr`, recording an error that names `what`.
    fn value<T: std::str::FromStr>(
        &mut self,
        s: &S<String>,
        what: &str,
        example: &str,
    ) -> Option<T> {
        match s.get_ref().trim().parse() {
            Ok(v) => Some(v),
            Err(_) => {
                let line = self.at(s);
                self.error(
                    line,
                    format!("{what} `{}` is not valid", s.get_ref()),
                    format!("write it like `{example}`"),
                );
                None
            }
        }
    }

    fn choice<T: Copy>(
        &mut self,
        s: &S<String>,
        what: &str,
        from_name: fn(&str) -> Option<T>,
        choices: String,
    ) -> Option<T> {
        let found = from_name(s.get_ref());
        if found.is_none() {
            let line = self.at(s);
            self.error(
                line,
                format!("unknown {what} `{}`", s.get_ref()),
                format!("use one of {choices}"),
            );
        }
        found
    }

    fn config(&mut self, w: ConfigWire) -> Option<Config> {
        let server = self.server(&w);
        let dhcp = self.dhcp(&w, server.as_ref());
        let cluster = self.cluster(&w);
        let machines: Vec<(Machine, usize)> =
            w.machine.iter().filter_map(|m| self.machine(m)).collect();
        let tftp = w.tftp.as_ref();
        let (server, dhcp, cluster) = (server?, dhcp?, cluster?);
        let tftp = Tftp {
            enabled: tftp.and_then(|t| t.enabled).unwrap_or(true),
            port: tftp.and_then(|t| t.port).unwrap_or(69),
            root: tftp
                .and_then(|t| t.root.clone())
                .unwrap_or_else(|| server.data_dir.join("tftp")),
        };
        self.inventory_rules(&w, &server, &dhcp, &cluster, &machines);
        let mirrors = self.mirrors(w.mirrors.as_ref());
        Some(Config {
            server,
            dhcp,
            tftp,
            cluster,
            mirrors,
            machines: machines.into_iter().map(|(m, _)| m).collect(),
        })
    }

    fn server(&mut self, w: &ConfigWire) -> Option<Server> {
        let s = w.server.get_ref();
        let address: Ipv4Addr = self.value(&s.address, "server address", "10.0.0.2")?;
        let http_port = s.http_port.as_ref().map(|p| *p.get_ref()).unwrap_or(8080);
        let http_bind = match &s.http_bind {
            None => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), http_port),
            Some(b) => SocketAddr::new(self.value(b, "http_bind address", "0.0.0.0")?, http_port),
        };
        let data_dir = s
            .data_dir
            .as_ref()
            .map(|d| d.get_ref().clone())
            .unwrap_or_else(|| PathBuf::from("/var/lib/bootherd"));
        if !data_dir.is_absolute() {
            let line = self.at(s.data_dir.as_ref().unwrap());
            self.error(
                line,
                format!("data_dir `{}` is relative", data_dir.display()),
                "give an absolute path, e.g. /var/lib/bootherd",
            );
        }
        Some(Server {
            interface: s.interface.as_ref().map(|i| i.get_ref().clone()),
            address,
            http_port,
            http_bind,
            data_dir,
        })
    }

    fn dhcp(&mut self, w: &ConfigWire, server: Option<&Server>) -> Option<Dhcp> {
        let Some(section) = &w.dhcp else {
            let line = self.at(&w.server);
            self.error(
                line,
                "no [dhcp] section",
                "add [dhcp] with mode, subnet and pool (or mode = \"off\")",
            );
            return None;
        };
        let d = section.get_ref();
        let mode = match &d.mode {
            None => DhcpMode::Authoritative,
            Some(m) => self.choice(m, "DHCP mode", DhcpMode::from_name, DhcpMode::choices())?,
        };
        let subnets = match d.subnet.as_ref().map(|s| (s, s.get_ref())) {
            Some((s, SubnetField::Single(net))) => {
                let net = S::new(s.span(), net.clone());
                vec![self.subnet(
                    mode,
                    server,
                    NetworkKeys {
                        net: &net,
                        gateway: &d.gateway,
                        dns: &d.dns,
                        ntp: &d.ntp,
                        pool: &d.pool,
                    },
                )?]
            }
            Some((s, SubnetField::Blocks(blocks))) => {
                // With blocks, the per-network keys belong in each block: one
                // left in [dhcp] would be ambiguous about which network it is for.
                for (key, line) in [
                    ("gateway", d.gateway.as_ref().map(|v| self.at(v))),
                    ("pool", d.pool.as_ref().map(|v| self.at(v))),
                    ("dns", d.dns.first().map(|v| self.at(v))),
                    ("ntp", d.ntp.first().map(|v| self.at(v))),
                ] {
                    if let Some(line) = line {
                        self.error(
                            line,
                            format!(
                                "`{key}` in [dhcp] while the networks are [[dhcp.subnet]] blocks"
                            ),
                            format!("move `{key}` into the [[dhcp.subnet]] block of its network"),
                        );
                    }
                }
                if blocks.is_empty() {
                    let line = self.at(s);
                    self.error(
                        line,
                        "[dhcp] subnet is an empty list",
                        "add [[dhcp.subnet]] blocks, each with subnet, gateway, dns and pool",
                    );
                    return None;
                }
                let mut subnets: Vec<(Subnet, usize)> = Vec::new();
                let mut all_valid = true;
                for block in blocks {
                    let b = block.get_ref();
                    let Some(subnet) = self.subnet(
                        mode,
                        server,
                        NetworkKeys {
                            net: &b.subnet,
                            gateway: &b.gateway,
                            dns: &b.dns,
                            ntp: &b.ntp,
                            pool: &b.pool,
                        },
                    ) else {
                        all_valid = false;
                        continue;
                    };
                    let line = self.at(&b.subnet);
                    if let Some((other, other_line)) = subnets.iter().find(|(o, _)| {
                        o.net.contains(&subnet.net.network())
                            || subnet.net.contains(&o.net.network())
                    }) {
                        self.error(
                            line,
                            format!(
                                "subnet {} overlaps subnet {} (line {other_line})",
                                subnet.net, other.net
                            ),
                            "give each [[dhcp.subnet]] its own network; a request is served by the one network containing its relay address",
                        );
                    }
                    subnets.push((subnet, line));
                }
                if !all_valid {
                    return None;
                }
                subnets.into_iter().map(|(s, _)| s).collect()
            }
            None if mode == DhcpMode::Off => Vec::new(),
            None => {
                let line = self.at(section);
                self.error(
                    line,
                    "[dhcp] has no subnet",
                    "add `subnet = \"10.0.0.0/24\"` (the provisioning VLAN), or [[dhcp.subnet]] blocks",
                );
                return None;
            }
        };
        let lease_time = match &d.lease_time {
            None => Duration::from_secs(12 * 3600),
            Some(t) => match humantime::parse_duration(t.get_ref()) {
                Ok(lt)
                    if lt >= Duration::from_secs(60)
                        && lt <= Duration::from_secs(u32::MAX as u64) =>
                {
                    lt
                }
                _ => {
                    let line = self.at(t);
                    self.error(
                        line,
                        format!(
                            "lease_time `{}` is not a duration between 1m and 136y",
                            t.get_ref()
                        ),
                        "write it like `12h` or `30m`",
                    );
                    Duration::from_secs(12 * 3600)
                }
            },
        };
        if let (Some(server), [only]) = (server, subnets.as_slice()) {
            if mode == DhcpMode::Authoritative && !only.net.contains(&server.address) {
                let line = self.at(&w.server.get_ref().address);
                self.warn(line, format!("server address {} is outside the DHCP subnet {}", server.address, only.net), "use bootherd's address on the provisioning VLAN, or serve that subnet through a relay");
            }
        }
        Some(Dhcp {
            mode,
            subnets,
            domain: d.domain.as_ref().map(|s| s.get_ref().clone()),
            lease_time,
        })
    }

    /// One network: `[dhcp]` itself or a `[[dhcp.subnet]]` block.
    fn subnet(
        &mut self,
        mode: DhcpMode,
        server: Option<&Server>,
        keys: NetworkKeys<'_>,
    ) -> Option<Subnet> {
        let NetworkKeys {
            net,
            gateway,
            dns,
            ntp,
            pool,
        } = keys;
        let parsed: Ipv4Net = self.value(net, "subnet", "10.0.0.0/24")?;
        if parsed != parsed.trunc() {
            let line = self.at(net);
            self.error(
                line,
                format!("subnet `{parsed}` has host bits set"),
                format!("write the network address: `{}`", parsed.trunc()),
            );
        }
        let subnet = parsed.trunc();
        let gateway = match gateway {
            None => None,
            Some(g) => {
                let gw: Ipv4Addr = self.value(g, "gateway", "10.0.0.1")?;
                if !subnet.contains(&gw) {
                    let line = self.at(g);
                    self.error(
                        line,
                        format!("gateway {gw} is outside subnet {subnet}"),
                        "use a router address inside the subnet",
                    );
                }
                Some(gw)
            }
        };
        let dns = dns
            .iter()
            .filter_map(|s| self.value::<Ipv4Addr>(s, "DNS server", "10.0.0.1"))
            .collect();
        let ntp = ntp
            .iter()
            .filter_map(|s| self.value::<Ipv4Addr>(s, "NTP server", "10.0.0.1"))
            .collect();
        let pool = match pool {
            None if mode == DhcpMode::Authoritative => {
                let line = self.at(net);
                self.error(
                    line,
                    format!("subnet {subnet} has no pool for unknown machines"),
                    "add `pool = \"10.0.0.200-10.0.0.250\"` inside the subnet",
                );
                None
            }
            None => None,
            Some(p) => {
                if mode == DhcpMode::Proxy {
                    let line = self.at(p);
                    self.warn(
                        line,
                        "a pool is not used in proxy mode (the site's DHCP server gives the addresses)",
                        "remove `pool`, or use mode = \"authoritative\"",
                    );
                }
                self.pool(p, subnet, server, gateway)
            }
        };
        Some(Subnet {
            net: subnet,
            gateway,
            dns,
            ntp,
            pool,
        })
    }

    fn pool(
        &mut self,
        p: &S<String>,
        subnet: Ipv4Net,
        server: Option<&Server>,
        gateway: Option<Ipv4Addr>,
    ) -> Option<Pool> {
        let line = self.at(p);
        let Some((a, b)) = p.get_ref().split_once('-') else {
            self.error(
                line,
                format!("pool `{}` is not a range", p.get_ref()),
                "write it like `10.0.0.200-10.0.0.250`",
            );
            return None;
        };
        let (Ok(first), Ok(last)) = (a.trim().parse::<Ipv4Addr>(), b.trim().parse::<Ipv4Addr>())
        else {
            self.error(
                line,
                format!("pool `{}` is not a range of IPv4 addresses", p.get_ref()),
                "write it like `10.0.0.200-10.0.0.250`",
            );
            return None;
        };
        if first > last {
            self.error(
                line,
                format!("pool starts at {first}, after its end {last}"),
                "put the lower address first",
            );
            return None;
        }
        let pool = Pool { first, last };
        let usable = |ip: Ipv4Addr| {
            subnet.contains(&ip) && ip != subnet.network() && ip != subnet.broadcast()
        };
        if !usable(first) || !usable(last) {
            self.error(
                line,
                format!("pool {pool} is not inside the usable addresses of subnet {subnet}"),
                format!(
                    "choose addresses between {} and {}",
                    subnet.network(),
                    subnet.broadcast()
                ),
            );
        }
        for (what, ip) in [
            ("server address", server.map(|s| s.address)),
            ("gateway", gateway),
        ] {
            if let Some(ip) = ip.filter(|ip| pool.contains(*ip)) {
                self.error(
                    line,
                    format!("pool {pool} contains the {what} {ip}"),
                    "shrink the pool so it leaves that address out",
                );
            }
        }
        Some(pool)
    }

    fn cluster(&mut self, w: &ConfigWire) -> Option<Cluster> {
        let c = w.cluster.get_ref();
        let version = self.kubernetes_version(c.kubernetes_version.as_ref());
        let endpoint = {
            let e = c.endpoint.get_ref().trim();
            let with_port = if e.contains(':') {
                e.to_string()
            } else {
                format!("{e}:6443")
            };
            match with_port.parse::<SocketAddrV4>() {
                Ok(ep) => ep,
                Err(_) => {
                    let line = self.at(&c.endpoint);
                    self.error(
                        line,
                        format!("endpoint `{e}` is not an IPv4 address and port"),
                        "write the API VIP like `10.0.0.100:6443`",
                    );
                    return None;
                }
            }
        };
        let cidr =
            |v: &mut Self, s: &Option<S<String>>, default: &str, what: &str| -> Option<Ipv4Net> {
                match s {
                    None => Some(default.parse().unwrap()),
                    Some(s) => v.value::<Ipv4Net>(s, what, default).map(|n| n.trunc()),
                }
            };
        let pod_cidr = cidr(self, &c.pod_cidr, "10.244.0.0/16", "pod_cidr")?;
        let service_cidr = cidr(self, &c.service_cidr, "10.96.0.0/12", "service_cidr")?;
        let load_balancer = match &c.load_balancer {
            None => LoadBalancerMode::External,
            Some(s) => self.choice(
                s,
                "load_balancer mode",
                LoadBalancerMode::from_name,
                LoadBalancerMode::choices(),
            )?,
        };
        if load_balancer == LoadBalancerMode::Stacked && endpoint.port() == STACKED_API_PORT {
            let line = self.at(&c.endpoint);
            self.error(
                line,
                format!("endpoint port {STACKED_API_PORT} is where the API server itself listens on stacked control planes; haproxy cannot hold it too"),
                format!("use another port for the VIP, e.g. `{}:{API_PORT}`", endpoint.ip()),
            );
        }
        for key in &c.ssh_authorized_keys {
            let k = key.get_ref();
            let kind = k.split_whitespace().next().unwrap_or("");
            if !(kind.starts_with("ssh-") || kind.starts_with("ecdsa-") || kind.starts_with("sk-"))
                || k.split_whitespace().count() < 2
            {
                let line = self.at(key);
                self.error(
                    line,
                    format!("`{}` is not an SSH public key", truncate(k, 40)),
                    "paste one line of ~/.ssh/id_ed25519.pub (type, key, comment)",
                );
            }
        }
        let name = c.name.get_ref().clone();
        if !is_dns_label(&name) {
            let line = self.at(&c.name);
            self.error(
                line,
                format!("cluster name `{name}` is not a DNS label"),
                "use lowercase letters, digits and '-', at most 63 characters",
            );
        }
        Some(Cluster {
            name,
            kubernetes_version: version?,
            endpoint,
            pod_cidr,
            service_cidr,
            cni: self.cni(c.cni.as_ref()),
            load_balancer,
            ssh_authorized_keys: c
                .ssh_authorized_keys
                .iter()
                .map(|k| k.get_ref().clone())
                .collect(),
        })
    }

    /// `kubernetes_version`: `major.minor`, one the kubeadm configs serve;
    /// a warning when upstream no longer supports it.
    fn kubernetes_version(&mut self, raw: Option<&S<String>>) -> Option<String> {
        let Some(raw) = raw else {
            return Some(kubernetes::DEFAULT_MINOR.to_string());
        };
        let line = self.at(raw);
        let text = raw.get_ref().trim().trim_start_matches('v');
        let minor = match text.split_once('.') {
            Some(("1", minor))
                if !minor.is_empty() && minor.bytes().all(|b| b.is_ascii_digit()) =>
            {
                minor.parse::<u32>().ok()
            }
            _ => None,
        };
        let Some(minor) = minor else {
            self.error(
                line,
                format!("kubernetes_version `{}` is not major.minor", raw.get_ref()),
                format!(
                    "write it like `{}` (pkgs.k8s.io has one repository per minor)",
                    kubernetes::DEFAULT_MINOR
                ),
            );
            return None;
        };
        let today = time::OffsetDateTime::now_utc().date();
        let supported = kubernetes::supported_on(today).join(", ");
        match kubernetes::support(minor, today) {
            Support::TooOld => {
                self.error(
                    line,
                    format!(
                        "Kubernetes 1.{minor} is older than bootherd's kubeadm configs (v1beta4) serve: kubeadm reads them from 1.{} on",
                        kubernetes::OLDEST_MINOR
                    ),
                    format!("use a supported minor ({supported})"),
                );
                return None;
            }
            Support::EndOfLife(eol) => self.warn(
                line,
                format!("Kubernetes 1.{minor} is out of upstream support since {eol}: no more security fixes"),
                format!("use a supported minor ({supported})"),
            ),
            Support::Unknown => self.warn(
                line,
                format!("Kubernetes 1.{minor} is newer than this bootherd knows; its kubeadm configs (v1beta4) were not checked against it"),
                format!("use a minor bootherd knows ({supported}), or check the first boot on one machine before the rack"),
            ),
            Support::Supported(_) => {}
        }
        Some(format!("1.{minor}"))
    }

    /// `[mirrors]`: each an `http(s)://` URL (written into apt sources,
    /// containerd's hosts.toml and shell settings on the nodes).
    fn mirrors(&mut self, w: Option<&MirrorsWire>) -> Mirrors {
        let Some(w) = w else {
            return Mirrors::default();
        };
        let mut url = |v: &Option<S<String>>, key: &str, example: &str| -> Option<String> {
            let v = v.as_ref()?;
            let text = v.get_ref().trim();
            let ok = reqwest::Url::parse(text).ok().filter(|u| {
                matches!(u.scheme(), "http" | "https")
                    && u.host_str().is_some_and(|h| !h.is_empty())
                    && u.query().is_none()
                    && u.fragment().is_none()
                    && !text.contains(['\'', '"', ' ', '\\'])
            });
            if ok.is_none() {
                let line = self.at(v);
                self.error(
                    line,
                    format!("[mirrors] {key} `{text}` is not an http:// or https:// URL"),
                    format!("write it like `{example}`"),
                );
                return None;
            }
            Some(text.trim_end_matches('/').to_string())
        };
        Mirrors {
            apt: url(&w.apt, "apt", "http://10.0.0.5/ubuntu"),
            apt_ports: url(&w.apt_ports, "apt_ports", "http://10.0.0.5/ubuntu-ports"),
            kubernetes: url(&w.kubernetes, "kubernetes", "http://10.0.0.5/kubernetes"),
            registry: url(&w.registry, "registry", "http://10.0.0.5:5000"),
            calico_manifest: url(
                &w.calico_manifest,
                "calico_manifest",
                "http://10.0.0.5/calico/tigera-operator.yaml",
            ),
        }
    }

    /// `cni`: the first control plane always applies Calico.
    fn cni(&mut self, raw: Option<&S<String>>) -> String {
        if let Some(raw) = raw {
            if raw.get_ref() != "calico" {
                let line = self.at(raw);
                self.error(
                    line,
                    format!("cni `{}` is not one bootherd installs", raw.get_ref()),
                    "use cni = \"calico\" (or leave it out): the first control plane applies Calico",
                );
            }
        }
        "calico".into()
    }

    fn machine(&mut self, s: &S<MachineWire>) -> Option<(Machine, usize)> {
        let m = s.get_ref();
        let mac = self.value(&m.mac, "MAC", "52:54:00:aa:00:01");
        let hostname = m.hostname.get_ref().clone();
        if !is_dns_label(&hostname) {
            let line = self.at(&m.hostname);
            self.error(
                line,
                format!("hostname `{hostname}` is not a DNS label"),
                "use lowercase letters, digits and '-', at most 63 characters, e.g. `cp1`",
            );
        }
        let role = self.choice(&m.role, "role", Role::from_name, Role::choices());
        let ip = self.value(&m.ip, "machine IP", "10.0.0.11");
        let platform = match &m.platform {
            None => Some(Platform::Amd64),
            Some(p) => self.choice(p, "platform", Platform::from_name, Platform::choices()),
        };
        let os = match &m.os {
            None => Some(Os::Ubuntu2404),
            Some(o) => self.choice(o, "os", Os::from_name, Os::choices()),
        };
        if let (Some(p @ (Platform::Rpi4 | Platform::Rpi5)), Some(Os::Ubuntu2204), Some(o)) =
            (platform, os, &m.os)
        {
            let line = self.at(o);
            let why = if p == Platform::Rpi5 {
                "Ubuntu 22.04 does not support the Raspberry Pi 5"
            } else {
                "a Raspberry Pi installs Ubuntu 24.04's preinstalled raspi image, the only one bootherd's catalog carries"
            };
            self.error(line, why, "use os = \"ubuntu-24.04\" (or leave os out)");
        }
        let serial = match &m.serial {
            None => None,
            Some(raw) => {
                let line = self.at(raw);
                match raw.get_ref().parse::<Serial>() {
                    Ok(serial) if platform.is_some_and(Platform::is_pi) => Some(serial),
                    Ok(_) => {
                        self.error(
                            line,
                            "`serial` is only for Raspberry Pi machines",
                            "remove `serial`, or set platform = \"rpi4\" or \"rpi5\"",
                        );
                        None
                    }
                    Err(e) => {
                        self.error(
                            line,
                            e.to_string(),
                            "copy the 8 hex digits the Pi's boot screen shows after \"serial\" (or the last 8 of `Serial` in /proc/cpuinfo)",
                        );
                        None
                    }
                }
            }
        };
        if let (Some(Platform::Rpi4 | Platform::Rpi5), Some(d)) = (platform, &m.disk) {
            if !super::is_plain_device_path(d.get_ref()) {
                let line = self.at(d);
                self.error(
                    line,
                    format!(
                        "disk `{}` is not a plain device path (a Pi's installer reads it from the kernel command line)",
                        d.get_ref()
                    ),
                    "use a /dev/ path such as \"/dev/mmcblk0\", \"/dev/sda\" or \"/dev/nvme0n1\", or leave disk out for the first of NVMe, USB, SD",
                );
            }
        }
        Some((
            Machine {
                mac: mac?,
                hostname,
                role: role?,
                ip: ip?,
                platform: platform?,
                os: os?,
                disk: m.disk.as_ref().map(|d| d.get_ref().clone()),
                serial,
            },
            self.at(s),
        ))
    }

    /// Rules that relate machines to each other and to the networks.
    fn inventory_rules(
        &mut self,
        w: &ConfigWire,
        server: &Server,
        dhcp: &Dhcp,
        cluster: &Cluster,
        machines: &[(Machine, usize)],
    ) {
        let wire_of = |line: usize| {
            w.machine
                .iter()
                .find(|m| self.at(m) == line)
                .map(|m| m.get_ref())
        };
        let mut macs: HashMap<MacAddr, usize> = HashMap::new();
        let mut names: HashMap<&str, usize> = HashMap::new();
        let mut ips: HashMap<Ipv4Addr, usize> = HashMap::new();
        let mut serials: HashMap<Serial, usize> = HashMap::new();
        let mut found = Vec::new();
        for (m, line) in machines {
            let wm = wire_of(*line).expect("machine came from the wire list");
            let (mac_line, name_line, ip_line) =
                (self.at(&wm.mac), self.at(&wm.hostname), self.at(&wm.ip));
            if let Some(first) = macs.insert(m.mac, mac_line) {
                found.push((
                    mac_line,
                    format!("duplicate MAC {} (first on line {first})", m.mac),
                    "give each machine its own MAC; remove the repeated [[machine]]".to_string(),
                ));
            }
            if let Some(first) = names.insert(&m.hostname, name_line) {
                found.push((
                    name_line,
                    format!("duplicate hostname {} (first on line {first})", m.hostname),
                    "give each machine its own hostname".to_string(),
                ));
            }
            if let Some(first) = ips.insert(m.ip, ip_line) {
                found.push((
                    ip_line,
                    format!("duplicate IP {} (first on line {first})", m.ip),
                    "give each machine its own address".to_string(),
                ));
            }
            if let (Some(serial), Some(raw)) = (m.serial, &wm.serial) {
                let line = self.at(raw);
                if let Some(first) = serials.insert(serial, line) {
                    found.push((
                        line,
                        format!("duplicate Pi serial {serial} (first on line {first})"),
                        "each Pi has its own serial number; check which board this is".to_string(),
                    ));
                }
            }
            let subnet = dhcp.subnet_containing(m.ip);
            match subnet {
                None if dhcp.mode != DhcpMode::Off => {
                    let nets: Vec<String> =
                        dhcp.subnets.iter().map(|s| s.net.to_string()).collect();
                    let (message, fix) = match nets.as_slice() {
                        [one] => (
                            format!("{}'s IP {} is outside subnet {one}", m.hostname, m.ip),
                            format!("choose an address in {one}"),
                        ),
                        _ => (
                            format!(
                                "{}'s IP {} is in none of the DHCP subnets ({})",
                                m.hostname,
                                m.ip,
                                nets.join(", ")
                            ),
                            "choose an address in one of them, or add a [[dhcp.subnet]] block for its network".to_string(),
                        ),
                    };
                    found.push((ip_line, message, fix));
                }
                Some(s) if m.ip == s.net.network() || m.ip == s.net.broadcast() => {
                    found.push((
                        ip_line,
                        format!(
                            "{}'s IP {} is the subnet's network or broadcast address",
                            m.hostname, m.ip
                        ),
                        "choose a host address".to_string(),
                    ));
                }
                _ => {}
            }
            if let Some((_, pool)) = dhcp.pools().find(|(_, p)| p.contains(m.ip)) {
                found.push((
                    ip_line,
                    format!("{}'s IP {} is inside the pool {pool}", m.hostname, m.ip),
                    "choose an address outside the pool (the pool is for unknown machines)"
                        .to_string(),
                ));
            }
            if let Some(gw) = subnet.and_then(|s| s.gateway).filter(|gw| *gw == m.ip) {
                found.push((
                    ip_line,
                    format!("{}'s IP {} is the gateway {gw}", m.hostname, m.ip),
                    "choose another address".to_string(),
                ));
            }
            if m.ip == server.address {
                found.push((
                    ip_line,
                    format!("{}'s IP {} is the server address", m.hostname, m.ip),
                    "choose another address".to_string(),
                ));
            }
        }
        for (line, msg, fix) in found {
            self.error(line, msg, fix);
        }

        let cl = w.cluster.get_ref();
        let ep_line = self.at(&cl.endpoint);
        let vip = *cluster.endpoint.ip();
        if let Some((_, pool)) = dhcp.pools().find(|(_, p)| p.contains(vip)) {
            self.error(
                ep_line,
                format!("the API VIP {vip} is inside the DHCP pool {pool}"),
                "choose a VIP outside the pool, so no machine can lease it",
            );
        }
        if let Some((m, _)) = machines.iter().find(|(m, _)| m.ip == vip) {
            self.error(
                ep_line,
                format!("the API VIP {vip} is also {}'s IP", m.hostname),
                "choose a VIP that no machine uses",
            );
        }
        if vip == server.address {
            self.error(
                ep_line,
                format!("the API VIP {vip} is bootherd's own address"),
                "choose a free address for the VIP",
            );
        }
        let line_or_cluster = |s: &Option<S<String>>| {
            s.as_ref()
                .map(|s| self.at(s))
                .unwrap_or(self.at(&w.cluster))
        };
        let cluster_nets = [
            ("pod_cidr", cluster.pod_cidr, line_or_cluster(&cl.pod_cidr)),
            (
                "service_cidr",
                cluster.service_cidr,
                line_or_cluster(&cl.service_cidr),
            ),
        ];
        let overlaps =
            |a: Ipv4Net, b: Ipv4Net| a.contains(&b.network()) || b.contains(&a.network());
        let (pod, service) = (cluster_nets[0], cluster_nets[1]);
        if overlaps(pod.1, service.1) {
            self.error(
                service.2,
                format!("service_cidr {} overlaps pod_cidr {}", service.1, pod.1),
                "give pods, services and nodes separate address ranges",
            );
        }
        if dhcp.mode != DhcpMode::Off {
            let lines: Vec<usize> = match w.dhcp.as_ref().and_then(|d| d.get_ref().subnet.as_ref())
            {
                Some(s) => match s.get_ref() {
                    SubnetField::Single(_) => vec![self.at(s)],
                    SubnetField::Blocks(b) => {
                        b.iter().map(|b| self.at(&b.get_ref().subnet)).collect()
                    }
                },
                None => Vec::new(),
            };
            for (subnet, dhcp_line) in dhcp.subnets.iter().zip(lines) {
                for (name, net, _) in cluster_nets {
                    if overlaps(net, subnet.net) {
                        self.error(
                            dhcp_line,
                            format!("DHCP subnet {} overlaps {name} {net}", subnet.net),
                            "give pods, services and nodes separate address ranges",
                        );
                    }
                }
            }
        }
        let control_planes = machines
            .iter()
            .filter(|(m, _)| m.role == Role::ControlPlane)
            .count();
        let lbs = machines
            .iter()
            .filter(|(m, _)| m.role == Role::LoadBalancer)
            .count();
        let cluster_line = self.at(&w.cluster);
        if control_planes == 0 {
            self.error(
                cluster_line,
                "no machine has role \"control-plane\"",
                "give at least one [[machine]] role = \"control-plane\" (three for HA)",
            );
        } else if control_planes % 2 == 0 {
            self.warn(cluster_line, format!("{control_planes} control planes: etcd quorum is N/2+1, so this tolerates no more failures than {}", control_planes - 1), format!("use {} or {} control planes", control_planes - 1, control_planes + 1));
        }
        if lbs == 0 && cluster.load_balancer == LoadBalancerMode::External {
            self.error(ep_line, format!("the endpoint {} is a VIP but no machine has role \"load-balancer\"", cluster.endpoint), "add load-balancer machines, or set `load_balancer = \"stacked\"` in [cluster] to run the VIP on the control planes");
        }
        if lbs > 0 && cluster.load_balancer == LoadBalancerMode::Stacked {
            self.warn(cluster_line, "load_balancer is \"stacked\" but the inventory has load-balancer machines; they will hold no VIP", "remove them, or drop `load_balancer = \"stacked\"`");
        }
    }
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}
