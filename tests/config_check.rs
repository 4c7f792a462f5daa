//! `bootherd check` refuses each mistake README lists, naming the line.

use std::process::Command;

mod common;

use common::EXAMPLE_CLUSTER as BASE;

/// Runs `bootherd check` on `text`; returns (exit code, stderr + stdout).
fn check(text: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bootherd.toml");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_bootherd"))
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// Replaces exactly one occurrence of `from` in the base config.
fn edit(from: &str, to: &str) -> String {
    assert_eq!(BASE.matches(from).count(), 1, "ambiguous edit {from:?}");
    BASE.replacen(from, to, 1)
}

fn line_of(text: &str, needle: &str) -> usize {
    nth_line_of(text, needle, 1)
}

/// The line number of the `n`th line (1-based) containing `needle`.
fn nth_line_of(text: &str, needle: &str, n: usize) -> usize {
    let mut hits = text.lines().enumerate().filter(|(_, l)| l.contains(needle));
    hits.nth(n - 1)
        .map(|(i, _)| i + 1)
        .unwrap_or_else(|| panic!("{needle:?} not {n} times in config"))
}

#[track_caller]
fn assert_refused(text: &str, line: usize, message: &str) {
    let (code, out) = check(text);
    assert_eq!(
        code, 1,
        "expected refusal mentioning {message:?}, got exit {code}:\n{out}"
    );
    let wanted = format!(":{line}: error: ");
    let hit = out
        .lines()
        .any(|l| l.contains(&wanted) && l.contains(message) && l.contains("(fix: "));
    assert!(
        hit,
        "expected a line `…{wanted}…{message}… (fix: …)`, got:\n{out}"
    );
}

#[test]
fn the_base_config_is_valid() {
    let (code, out) = check(BASE);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("ok (4 machines)"), "{out}");
}

#[test]
fn duplicate_mac_hostname_and_ip() {
    let t = edit("mac = \"52:54:00:aa:00:02\"", "mac = \"52:54:00:AA:00:01\"");
    assert_refused(
        &t,
        line_of(&t, "52:54:00:AA:00:01"),
        "duplicate MAC 52:54:00:aa:00:01",
    );
    let t = edit("hostname = \"cp2\"", "hostname = \"cp1\"");
    assert_refused(
        &t,
        nth_line_of(&t, "hostname = \"cp1\"", 2),
        "duplicate hostname cp1",
    );
    let t = edit("ip = \"10.0.0.12\"", "ip = \"10.0.0.11\"");
    assert_refused(
        &t,
        nth_line_of(&t, "ip = \"10.0.0.11\"", 2),
        "duplicate IP 10.0.0.11",
    );
}

#[test]
fn machine_ip_outside_the_subnet_or_inside_the_pool() {
    let t = edit("ip = \"10.0.0.12\"", "ip = \"10.0.1.12\"");
    assert_refused(&t, line_of(&t, "10.0.1.12"), "outside subnet 10.0.0.0/24");
    let t = edit("ip = \"10.0.0.12\"", "ip = \"10.0.0.201\"");
    assert_refused(&t, line_of(&t, "10.0.0.201"), "inside the pool");
}

#[test]
fn vip_inside_the_pool_or_on_a_machine() {
    let t = edit("10.0.0.100:6443", "10.0.0.220:6443");
    assert_refused(
        &t,
        line_of(&t, "endpoint"),
        "VIP 10.0.0.220 is inside the DHCP pool",
    );
    let t = edit("10.0.0.100:6443", "10.0.0.13:6443");
    assert_refused(&t, line_of(&t, "endpoint"), "also cp3's IP");
}

#[test]
fn overlapping_networks() {
    let t = edit("pod_cidr = \"10.244.0.0/16\"", "pod_cidr = \"10.0.0.0/16\"");
    assert_refused(&t, line_of(&t, "subnet ="), "overlaps pod_cidr 10.0.0.0/16");
    let t = edit(
        "service_cidr = \"10.96.0.0/12\"",
        "service_cidr = \"10.244.128.0/20\"",
    );
    assert_refused(
        &t,
        line_of(&t, "service_cidr"),
        "service_cidr 10.244.128.0/20 overlaps pod_cidr",
    );
}

#[test]
fn no_control_plane() {
    let t = BASE.replace("role = \"control-plane\"", "role = \"worker\"");
    assert_refused(
        &t,
        line_of(&t, "[cluster]"),
        "no machine has role \"control-plane\"",
    );
}

#[test]
fn vip_without_load_balancer_unless_stacked() {
    let t = edit("role = \"load-balancer\"", "role = \"worker\"");
    assert_refused(
        &t,
        line_of(&t, "endpoint"),
        "no machine has role \"load-balancer\"",
    );
    let stacked = t.replace("[cluster]\n", "[cluster]\nload_balancer = \"stacked\"\n");
    let (code, out) = check(&stacked);
    assert_eq!(
        code, 0,
        "stacked mode needs no load-balancer machines:\n{out}"
    );
}

#[test]
fn even_control_planes_warn_but_pass() {
    let t = edit("role = \"load-balancer\"", "role = \"control-plane\"")
        .replace("[cluster]\n", "[cluster]\nload_balancer = \"stacked\"\n");
    let (code, out) = check(&t);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!(
            ":{}: warning: 4 control planes",
            line_of(&t, "[cluster]")
        )),
        "{out}"
    );
}

#[test]
fn syntax_errors_unknown_keys_and_bad_values_name_the_line() {
    let t = edit("hostname = \"cp2\"", "hostname = \"cp2");
    let (code, out) = check(&t);
    assert_eq!(code, 1);
    assert!(
        out.contains(&format!(":{}: error:", line_of(&t, "hostname = \"cp2"))),
        "{out}"
    );

    let t = edit("hostname = \"cp2\"", "hostnme = \"cp2\"");
    let (code, out) = check(&t);
    assert_eq!(code, 1);
    assert!(out.contains("hostnme"), "{out}");

    let t = edit("mac = \"52:54:00:aa:00:02\"", "mac = \"52:54:00:aa:00\"");
    assert_refused(
        &t,
        line_of(&t, "52:54:00:aa:00\""),
        "MAC `52:54:00:aa:00` is not valid",
    );
    let t = edit("role = \"load-balancer\"", "role = \"loadbalancer\"");
    assert_refused(
        &t,
        line_of(&t, "loadbalancer"),
        "unknown role `loadbalancer`",
    );
    let t = edit("hostname = \"cp2\"", "hostname = \"CP_2\"");
    assert_refused(&t, line_of(&t, "CP_2"), "not a DNS label");
    let t = edit(
        "pool = \"10.0.0.200-10.0.0.250\"",
        "pool = \"10.0.0.250-10.0.0.200\"",
    );
    assert_refused(&t, line_of(&t, "pool ="), "after its end");
}

#[test]
fn every_error_is_listed_not_just_the_first() {
    let t = edit("ip = \"10.0.0.12\"", "ip = \"10.0.0.11\"")
        .replace("10.0.0.100:6443", "10.0.0.220:6443");
    let (code, out) = check(&t);
    assert_eq!(code, 1);
    assert!(
        out.contains("duplicate IP") && out.contains("inside the DHCP pool"),
        "{out}"
    );
}

/// Two Pis appended to the base config, with the given serials.
fn with_pis(serial_a: &str, serial_b: &str) -> String {
    format!(
        "{BASE}
[[machine]]
mac = \"dc:a6:32:01:02:03\"
hostname = \"pi1\"
role = \"worker\"
ip = \"10.0.0.31\"
platform = \"rpi4\"
serial = \"{serial_a}\"

[[machine]]
mac = \"2c:cf:67:01:02:04\"
hostname = \"pi2\"
role = \"worker\"
ip = \"10.0.0.32\"
platform = \"rpi5\"
serial = \"{serial_b}\"
"
    )
}

#[test]
fn pi_serials_are_8_hex_digits_unique_and_only_on_pis() {
    let (code, out) = check(&with_pis("9ffefdef", "1A2B3C4D"));
    assert_eq!(code, 0, "{out}");
    let t = with_pis("9ffefdef", "9ffefdeg");
    assert_refused(&t, line_of(&t, "9ffefdeg"), "is not a Pi serial number");
    let t = with_pis("9ffefdef", "1234567");
    assert_refused(&t, line_of(&t, "\"1234567\""), "expected 8 hex digits");
    // The same board twice, whatever the case.
    let t = with_pis("9ffefdef", "9FFEFDEF");
    assert_refused(&t, line_of(&t, "9FFEFDEF"), "duplicate Pi serial 9ffefdef");
    let t = edit(
        "ip = \"10.0.0.13\"",
        "ip = \"10.0.0.13\"\nserial = \"9ffefdef\"",
    );
    assert_refused(
        &t,
        line_of(&t, "serial ="),
        "`serial` is only for Raspberry Pi machines",
    );
}

/// Two networks behind relays: the rack subnets each have their own pool,
/// gateway and DNS; machines belong to the subnet their `ip` lies in.
const RELAYED: &str = r#"[server]
address = "10.0.0.2"
data_dir = "/var/lib/bootherd"

[dhcp]
mode = "authoritative"
lease_time = "1h"

[[dhcp.subnet]]
subnet = "10.0.0.0/24"
gateway = "10.0.0.1"
dns = ["10.0.0.1"]
pool = "10.0.0.200-10.0.0.250"

[[dhcp.subnet]]
subnet = "10.1.0.0/24"
gateway = "10.1.0.1"
dns = ["10.1.0.1"]
pool = "10.1.0.100-10.1.0.150"

[cluster]
name = "lab"
kubernetes_version = "1.31"
endpoint = "10.0.0.100:6443"
load_balancer = "stacked"

[[machine]]
mac = "52:54:00:aa:00:01"
hostname = "cp1"
role = "control-plane"
ip = "10.0.0.11"

[[machine]]
mac = "52:54:00:aa:00:02"
hostname = "w1"
role = "worker"
ip = "10.1.0.21"
"#;

fn edit_relayed(from: &str, to: &str) -> String {
    assert_eq!(RELAYED.matches(from).count(), 1, "ambiguous edit {from:?}");
    RELAYED.replacen(from, to, 1)
}

#[test]
fn several_subnets_are_valid_and_each_machine_lives_in_one() {
    let (code, out) = check(RELAYED);
    assert_eq!(code, 0, "{out}");
    // The machine's own subnet gives its installed network settings.
    let (cfg, _) = bootherd::config::parse(RELAYED).unwrap();
    let w1 = cfg.machine_by_name("w1").unwrap();
    let net = cfg.dhcp.subnet_containing(w1.ip).unwrap();
    assert_eq!(net.gateway, Some("10.1.0.1".parse().unwrap()));
    assert_eq!(cfg.dhcp.pools().count(), 2);
}

#[test]
fn subnet_block_mistakes_name_their_line() {
    let t = edit_relayed("subnet = \"10.1.0.0/24\"", "subnet = \"10.0.0.128/25\"");
    assert_refused(
        &t,
        line_of(&t, "10.0.0.128/25"),
        "overlaps subnet 10.0.0.0/24",
    );
    let t = edit_relayed(
        "pool = \"10.1.0.100-10.1.0.150\"",
        "pool = \"10.0.0.100-10.0.0.150\"",
    );
    assert_refused(
        &t,
        line_of(&t, "10.0.0.100-10.0.0.150"),
        "not inside the usable addresses of subnet 10.1.0.0/24",
    );
    let t = edit_relayed("ip = \"10.1.0.21\"", "ip = \"10.2.0.21\"");
    assert_refused(
        &t,
        line_of(&t, "10.2.0.21"),
        "in none of the DHCP subnets (10.0.0.0/24, 10.1.0.0/24)",
    );
    let t = edit_relayed("ip = \"10.1.0.21\"", "ip = \"10.1.0.120\"");
    assert_refused(&t, line_of(&t, "10.1.0.120"), "inside the pool");
    let t = edit_relayed("gateway = \"10.1.0.1\"", "gateway = \"10.0.0.1\"");
    assert_refused(
        &t,
        nth_line_of(&t, "gateway = \"10.0.0.1\"", 2),
        "outside subnet 10.1.0.0/24",
    );
    let t = edit_relayed(
        "lease_time = \"1h\"",
        "lease_time = \"1h\"\ngateway = \"10.0.0.1\"",
    );
    assert_refused(
        &t,
        line_of(&t, "lease_time") + 1,
        "`gateway` in [dhcp] while the networks are [[dhcp.subnet]] blocks",
    );
    let t = edit_relayed("pool = \"10.1.0.100-10.1.0.150\"\n", "");
    assert_refused(
        &t,
        line_of(&t, "10.1.0.0/24"),
        "subnet 10.1.0.0/24 has no pool",
    );
}

#[test]
fn the_proxy_and_relay_examples_are_valid() {
    for name in ["proxy.toml", "relays.toml"] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples")
            .join(name);
        let (code, out) = check(&std::fs::read_to_string(&path).unwrap());
        assert_eq!(code, 0, "examples/{name}:\n{out}");
    }
}

#[test]
fn a_pool_in_proxy_mode_is_flagged_as_unused() {
    let t = edit(
        "subnet = \"10.0.0.0/24\"",
        "mode = \"proxy\"\nsubnet = \"10.0.0.0/24\"",
    );
    let (code, out) = check(&t);
    assert_eq!(code, 0, "{out}");
    let line = line_of(&t, "pool =");
    assert!(
        out.contains(&format!(
            ":{line}: warning: a pool is not used in proxy mode"
        )),
        "{out}"
    );
}

#[track_caller]
fn assert_warned(text: &str, line: usize, message: &str) {
    let (code, out) = check(text);
    assert_eq!(code, 0, "a warning must not refuse the file:\n{out}");
    let wanted = format!(":{line}: warning: ");
    assert!(
        out.lines()
            .any(|l| l.contains(&wanted) && l.contains(message) && l.contains("(fix: ")),
        "expected a line `…{wanted}…{message}… (fix: …)`, got:\n{out}"
    );
}

/// The kubeadm configs are v1beta4 (kubeadm 1.31 and later); older minors
/// cannot be served, and minors upstream dropped still work with a warning.
#[test]
fn kubernetes_versions_the_configs_cannot_serve_are_refused() {
    let base = BASE.replace(
        "kubernetes_version = \"1.36\"",
        "kubernetes_version = \"1.31\"",
    );
    let t = base.replace("\"1.31\"", "\"1.30\"");
    assert_refused(
        &t,
        line_of(&t, "kubernetes_version"),
        "Kubernetes 1.30 is older than bootherd's kubeadm configs (v1beta4) serve",
    );
    assert_warned(
        &base,
        line_of(&base, "kubernetes_version"),
        "Kubernetes 1.31 is out of upstream support since 2025-10-28",
    );
    let t = base.replace("\"1.31\"", "\"1.99\"");
    assert_warned(
        &t,
        line_of(&t, "kubernetes_version"),
        "newer than this bootherd knows",
    );
    let t = base.replace("\"1.31\"", "\"2.0\"");
    assert_refused(&t, line_of(&t, "kubernetes_version"), "is not major.minor");
    // Left out: a current minor, no warning.
    let t = base.replace("kubernetes_version = \"1.31\"\n", "");
    let (code, out) = check(&t);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("warning"), "{out}");
}

#[test]
fn cni_other_than_calico_is_refused() {
    let t = BASE.replace("[cluster]\n", "[cluster]\ncni = \"flannel\"\n");
    assert_refused(
        &t,
        line_of(&t, "cni ="),
        "cni `flannel` is not one bootherd installs",
    );
    let t = BASE.replace("[cluster]\n", "[cluster]\ncni = \"calico\"\n");
    let (code, out) = check(&t);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn a_stacked_endpoint_on_the_api_servers_own_port_is_refused() {
    let t = edit("role = \"load-balancer\"", "role = \"worker\"")
        .replace("[cluster]\n", "[cluster]\nload_balancer = \"stacked\"\n")
        .replace("10.0.0.100:6443", "10.0.0.100:6444");
    assert_refused(
        &t,
        line_of(&t, "endpoint"),
        "endpoint port 6444 is where the API server itself listens",
    );
}

#[test]
fn a_pi_with_ubuntu_22_04_is_refused() {
    let t = with_pis("9ffefdef", "1a2b3c4d").replace(
        "platform = \"rpi4\"\n",
        "platform = \"rpi4\"\nos = \"ubuntu-22.04\"\n",
    );
    assert_refused(
        &t,
        line_of(&t, "ubuntu-22.04"),
        "Ubuntu 24.04's preinstalled raspi image",
    );
}

#[test]
fn ntp_servers_must_be_addresses() {
    let t = edit(
        "gateway = \"10.0.0.1\"\n",
        "gateway = \"10.0.0.1\"\nntp = [\"ntp.example\"]\n",
    );
    assert_refused(
        &t,
        line_of(&t, "ntp ="),
        "NTP server `ntp.example` is not valid",
    );
    let t = edit(
        "gateway = \"10.0.0.1\"\n",
        "gateway = \"10.0.0.1\"\nntp = [\"10.0.0.1\"]\n",
    );
    let (code, out) = check(&t);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn mirrors_must_be_http_urls() {
    let t = format!("{BASE}\n[mirrors]\nkubernetes = \"ftp://10.0.0.5/k8s\"\n");
    assert_refused(
        &t,
        line_of(&t, "kubernetes ="),
        "[mirrors] kubernetes `ftp://10.0.0.5/k8s` is not an http:// or https:// URL",
    );
    let t = format!("{BASE}\n[mirrors]\nregistry = \"http://10.0.0.5:5000\"\napt = \"http://10.0.0.5/ubuntu\"\n");
    let (code, out) = check(&t);
    assert_eq!(code, 0, "{out}");
    let t = format!("{BASE}\n[mirrors]\nrepo = \"http://10.0.0.5\"\n");
    let (code, out) = check(&t);
    assert_eq!(code, 1, "an unknown key is refused:\n{out}");
}
