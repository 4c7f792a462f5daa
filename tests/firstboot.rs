//! The first-boot files of an example cluster, checked by the real tools:
//! `cloud-init schema`, the official autoinstall JSON schemas, `haproxy -c`,
//! `keepalived -t`, `shellcheck`, a TOML parser for containerd, and the
//! kubeadm v1beta4 field names. Also: secrets only where the role needs them,
//! and the role scripts run for real in a debootstrap'd Debian root.

mod common;

use bootherd::config::{parse, Config, Machine, Os, Role};
use bootherd::firstboot::autoinstall::{user_data, InstallerUrls};
use bootherd::firstboot::files::FirstbootUrls;
use bootherd::firstboot::{role_files, scripts, Pki, RoleFile, RoleMaterial};
use bootherd::render::Renderer;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

const SCHEMAS: &str = "/work/shared/schemas";

fn example_toml(stacked: bool) -> String {
    let mut t = String::from(
        r#"
[server]
address = "10.0.0.2"
http_port = 8080

[dhcp]
mode = "authoritative"
subnet = "10.0.0.0/24"
gateway = "10.0.0.1"
dns = ["10.0.0.1", "9.9.9.9"]
ntp = ["10.0.0.1", "10.0.0.3"]
pool = "10.0.0.200-10.0.0.250"

[cluster]
name = "lab"
kubernetes_version = "1.36"
endpoint = "10.0.0.100:6443"
pod_cidr = "10.244.0.0/16"
service_cidr = "10.96.0.0/12"
cni = "calico"
ssh_authorized_keys = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBootherdTestKeyOnly ops@example"]
"#,
    );
    if stacked {
        t.push_str("load_balancer = \"stacked\"\n");
        // The stacked variant is also the air-gapped site: every mirror set.
        t.push_str(MIRRORS);
    }
    // Machines that will boot BIOS and UEFI alike: the seed does not depend
    // on the firmware, only on the machine, so one of each OS and disk choice.
    let mut machines = vec![
        (
            "52:54:00:aa:00:01",
            "cp1",
            "control-plane",
            "10.0.0.11",
            "ubuntu-24.04",
            None,
        ),
        (
            "52:54:00:aa:00:02",
            "cp2",
            "control-plane",
            "10.0.0.12",
            "ubuntu-22.04",
            Some("/dev/vda"),
        ),
        (
            "52:54:00:aa:00:03",
            "cp3",
            "control-plane",
            "10.0.0.13",
            "ubuntu-24.04",
            None,
        ),
        (
            "52:54:00:aa:00:31",
            "w1",
            "worker",
            "10.0.0.31",
            "ubuntu-24.04",
            Some("/dev/nvme0n1"),
        ),
        (
            "52:54:00:aa:00:32",
            "w2",
            "worker",
            "10.0.0.32",
            "ubuntu-22.04",
            None,
        ),
    ];
    if !stacked {
        machines.extend([
            (
                "52:54:00:aa:00:21",
                "lb1",
                "load-balancer",
                "10.0.0.21",
                "ubuntu-24.04",
                None,
            ),
            (
                "52:54:00:aa:00:22",
                "lb2",
                "load-balancer",
                "10.0.0.22",
                "ubuntu-22.04",
                None,
            ),
        ]);
    }
    for (mac, host, role, ip, os, disk) in machines {
        t.push_str(&format!(
            "\n[[machine]]\nmac = \"{mac}\"\nhostname = \"{host}\"\nrole = \"{role}\"\nip = \"{ip}\"\nos = \"{os}\"\n"
        ));
        if let Some(d) = disk {
            t.push_str(&format!("disk = \"{d}\"\n"));
        }
    }
    t
}

const MIRRORS: &str = r#"
[mirrors]
apt = "http://10.0.0.5/ubuntu/"
apt_ports = "http://10.0.0.5/ubuntu-ports"
kubernetes = "http://10.0.0.5/kubernetes"
registry = "http://10.0.0.5:5000"
calico_manifest = "http://10.0.0.5/files/tigera-operator.yaml"
"#;

fn example(stacked: bool) -> Config {
    match parse(&example_toml(stacked)) {
        Ok((c, _warnings)) => c,
        Err(findings) => panic!("example config refused: {findings:?}"),
    }
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn openssl(dir: &Path, args: &[&str]) {
    let (ok, out) = run(Command::new("openssl").current_dir(dir).args(args));
    assert!(ok, "openssl {args:?}: {out}");
}

/// A real PKI (CA, front-proxy CA, etcd CA, service-account pair) made by
/// openssl, standing in for `src/cluster` until that is wired in.
fn fixture_material(dir: &Path) -> RoleMaterial {
    for name in ["ca", "front-proxy-ca", "etcd-ca"] {
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "1",
                "-subj",
                &format!("/CN={name}"),
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.crt"),
            ],
        );
    }
    openssl(
        dir,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "sa.key",
        ],
    );
    openssl(dir, &["pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub"]);
    let read = |n: &str| std::fs::read_to_string(dir.join(n)).unwrap();
    RoleMaterial {
        token: "abcdef.0123456789abcdef".into(),
        ca_cert_hash: format!("sha256:{}", "ab".repeat(32)),
        vrrp_password: "Vr7pPassw0rdLong".into(),
        pki: Some(Pki {
            ca_crt: read("ca.crt"),
            ca_key: read("ca.key"),
            front_proxy_ca_crt: read("front-proxy-ca.crt"),
            front_proxy_ca_key: read("front-proxy-ca.key"),
            etcd_ca_crt: read("etcd-ca.crt"),
            etcd_ca_key: read("etcd-ca.key"),
            sa_key: read("sa.key"),
            sa_pub: read("sa.pub"),
        }),
    }
}

fn urls(m: &Machine) -> (InstallerUrls, FirstbootUrls) {
    let base = format!(
        "http://10.0.0.2:8080/api/v1/machines/{}",
        m.mac.hyphenated()
    );
    let t = "0123456789abcdef0123456789abcdef";
    (
        InstallerUrls {
            events: format!("{base}/events?token={t}"),
            installed: format!("{base}/installed?token={t}"),
        },
        FirstbootUrls {
            joined: format!("{base}/joined?token={t}"),
            failed: format!("{base}/firstboot-failed?token={t}"),
            slot: format!("{base}/control-plane-slot?token={t}"),
            haproxy: format!("{base}/haproxy.cfg?token={t}"),
            bootstrap_token: format!("{base}/bootstrap-token?token={t}"),
            etcd_member: format!("{base}/etcd-member?token={t}"),
        },
    )
}

struct Rendered {
    machine: Machine,
    user_data: String,
    files: Vec<RoleFile>,
}

fn render_all(config: &Config, dir: &Path) -> Vec<Rendered> {
    let renderer = Renderer::new(dir);
    let full = fixture_material(dir);
    config
        .machines
        .iter()
        .map(|m| {
            // Everyone is handed the full material: the renderers, not the
            // caller, decide which secrets a role's files carry.
            let mat = full.clone();
            let (inst, fb) = urls(m);
            let ud = user_data(&renderer, config, m, &inst, &fb, Some(&mat))
                .unwrap_or_else(|e| panic!("{}: {e:#}", m.hostname));
            bootherd::artifacts::validate_user_data(&ud).unwrap();
            let files = role_files(&renderer, config, m, &mat, &fb).unwrap();
            Rendered {
                machine: m.clone(),
                user_data: ud,
                files,
            }
        })
        .collect()
}

fn file<'a>(r: &'a Rendered, path: &str) -> Option<&'a str> {
    r.files
        .iter()
        .find(|f| f.path == path)
        .map(|f| f.content.as_str())
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn both_variants() -> Vec<(tempfile::TempDir, Config, Vec<Rendered>)> {
    [false, true]
        .into_iter()
        .map(|stacked| {
            let dir = tempfile::tempdir().unwrap();
            let config = example(stacked);
            let r = render_all(&config, dir.path());
            (dir, config, r)
        })
        .collect()
}

#[test]
fn user_data_passes_cloud_init_schema_and_the_autoinstall_schema() {
    common::require(&["cloud-init", "/usr/bin/python3"]);
    for (dir, _config, rendered) in both_variants() {
        for r in &rendered {
            let host = &r.machine.hostname;
            let outer = write(dir.path(), &format!("{host}.user-data"), &r.user_data);
            let (ok, out) = run(Command::new("cloud-init")
                .args(["schema", "-c"])
                .arg(&outer));
            assert!(
                ok,
                "{host}: cloud-init schema refused the user-data:\n{out}"
            );

            // The installed system's own cloud-config, as its cloud-init sees it.
            let doc: serde_yaml::Value = serde_yaml::from_str(&r.user_data).unwrap();
            let inner = doc["autoinstall"]["user-data"].clone();
            assert!(inner.is_mapping(), "{host}: no autoinstall.user-data");
            let inner_text = format!("#cloud-config\n{}", serde_yaml::to_string(&inner).unwrap());
            let inner_path = write(dir.path(), &format!("{host}.installed"), &inner_text);
            let (ok, out) = run(Command::new("cloud-init")
                .args(["schema", "-c"])
                .arg(&inner_path));
            assert!(
                ok,
                "{host}: cloud-init schema refused autoinstall.user-data:\n{out}"
            );

            let schema = match r.machine.os {
                Os::Ubuntu2404 => "autoinstall-schema-24.04.4.1.json",
                Os::Ubuntu2204 => "autoinstall-schema-22.04.2.json",
            };
            let json: serde_json::Value =
                serde_yaml::from_value(doc["autoinstall"].clone()).unwrap();
            let section = write(
                dir.path(),
                &format!("{host}.autoinstall.json"),
                &serde_json::to_string(&json).unwrap(),
            );
            let (ok, out) = run(Command::new("/usr/bin/python3")
                .args([
                    "-c",
                    "import json, sys, jsonschema\n\
                     schema = json.load(open(sys.argv[1]))\n\
                     doc = json.load(open(sys.argv[2]))\n\
                     jsonschema.validate(doc, schema)\n",
                ])
                .arg(Path::new(SCHEMAS).join(schema))
                .arg(&section));
            assert!(ok, "{host}: autoinstall section fails {schema}:\n{out}");
        }
    }
}

#[test]
fn installer_facts_the_e2e_tests_and_kubelet_rely_on() {
    for (_dir, _config, rendered) in both_variants() {
        for r in &rendered {
            let m = &r.machine;
            let doc: serde_yaml::Value = serde_yaml::from_str(&r.user_data).unwrap();
            let ai = &doc["autoinstall"];
            assert_eq!(
                ai["identity"]["hostname"].as_str(),
                Some(m.hostname.as_str())
            );
            assert!(r.user_data.contains("installed?token="));
            assert_eq!(ai["storage"]["swap"]["size"].as_u64(), Some(0));
            assert_eq!(ai["storage"]["layout"]["name"].as_str(), Some("direct"));
            match &m.disk {
                Some(d) => assert_eq!(
                    ai["storage"]["layout"]["match"]["path"].as_str(),
                    Some(d.as_str())
                ),
                None => assert_eq!(
                    ai["storage"]["layout"]["match"]["size"].as_str(),
                    Some("largest")
                ),
            }
            let nic = &ai["network"]["ethernets"]["provisioning"];
            assert_eq!(
                nic["match"]["macaddress"].as_str(),
                Some(m.mac.to_string().as_str())
            );
            assert_eq!(
                nic["addresses"][0].as_str(),
                Some(format!("{}/24", m.ip).as_str())
            );
            assert_eq!(ai["ssh"]["install-server"].as_bool(), Some(true));
            assert_eq!(
                ai["reporting"]["bootherd"]["type"].as_str(),
                Some("webhook")
            );
            // The role script runs as a unit that retries until it reported.
            let runcmd: Vec<Vec<String>> =
                serde_yaml::from_value(ai["user-data"]["runcmd"].clone()).unwrap();
            assert_eq!(
                runcmd.last().unwrap(),
                &[
                    "systemctl",
                    "enable",
                    "--now",
                    "--no-block",
                    "bootherd-firstboot.service"
                ]
            );
            let unit = file(r, "/etc/systemd/system/bootherd-firstboot.service").unwrap();
            let script = scripts::for_role(m.role).0;
            assert!(
                unit.contains(&format!("ExecStart=/usr/local/lib/bootherd/{script}\n")),
                "{unit}"
            );
            for line in [
                "Restart=on-failure",
                "StartLimitIntervalSec=0",
                "ConditionPathExists=!/var/lib/bootherd/firstboot-reported",
                "TimeoutStartSec=infinity",
                "WantedBy=multi-user.target",
            ] {
                assert!(unit.lines().any(|l| l == line), "{line}:\n{unit}");
            }
            // Time from the provisioning network's servers (no battery clock on a Pi).
            assert_eq!(
                file(r, "/etc/systemd/timesyncd.conf.d/bootherd.conf"),
                Some(
                    "# bootherd: the provisioning network's time servers ([dhcp] ntp).\n[Time]\nNTP=10.0.0.1 10.0.0.3\n"
                )
            );
            let sudoers = file(r, "/etc/sudoers.d/90-bootherd-ubuntu").unwrap();
            assert!(
                sudoers.contains("ubuntu ALL=(ALL) NOPASSWD:ALL"),
                "{sudoers}"
            );
        }
    }
}

#[test]
fn haproxy_and_keepalived_configs_pass_their_own_checks() {
    common::require(&["haproxy", "keepalived"]);
    for (dir, config, rendered) in both_variants() {
        let holders: Vec<&Rendered> = rendered
            .iter()
            .filter(|r| file(r, "/etc/bootherd/haproxy.cfg").is_some())
            .collect();
        let expect = if config.cluster.load_balancer == bootherd::config::LoadBalancerMode::Stacked
        {
            Role::ControlPlane
        } else {
            Role::LoadBalancer
        };
        assert_eq!(
            holders.len(),
            if expect == Role::ControlPlane { 3 } else { 2 }
        );
        for (i, r) in holders.iter().enumerate() {
            let host = &r.machine.hostname;
            assert_eq!(r.machine.role, expect);
            let cfg = file(r, "/etc/bootherd/haproxy.cfg").unwrap();
            let p = write(dir.path(), &format!("{host}.haproxy.cfg"), cfg);
            let (ok, out) = run(Command::new("haproxy").args(["-c", "-f"]).arg(&p));
            assert!(ok, "{host}: haproxy -c:\n{out}\n{cfg}");
            let port = if expect == Role::ControlPlane {
                6444
            } else {
                6443
            };
            for cp in config.control_planes() {
                assert!(
                    cfg.contains(&format!("{}:{port} check", cp.ip)),
                    "{host}: {cfg}"
                );
            }

            let conf = file(r, "/etc/bootherd/keepalived.conf").unwrap();
            // On the node the script puts the NIC's name here; keepalived
            // checks that it exists and refuses loopback.
            let conf = conf.replace("@NODE_INTERFACE@", &some_nic());
            let p = write(dir.path(), &format!("{host}.keepalived.conf"), &conf);
            let (ok, out) = run(Command::new("keepalived")
                .arg("--config-test")
                .arg("-f")
                .arg(&p));
            assert!(ok, "{host}: keepalived -t:\n{out}\n{conf}");
            assert!(
                conf.contains(&format!("priority {}", 150 - 10 * i)),
                "{conf}"
            );
            assert!(conf.contains("auth_pass Vr7pPass\n"), "{conf}");
            assert!(conf.contains("10.0.0.100/24"), "{conf}");
            for other in &holders {
                let peer = format!("        {}\n", other.machine.ip);
                assert_eq!(
                    conf.contains(&peer),
                    other.machine.mac != r.machine.mac,
                    "{conf}"
                );
            }
            assert!(conf.contains("track_script"));
        }
    }
}

/// A non-loopback interface of this machine.
fn some_nic() -> String {
    std::fs::read_dir("/sys/class/net")
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "lo")
        .min()
        .expect("a network interface besides lo")
}

#[test]
fn role_scripts_pass_shellcheck() {
    common::require(&["shellcheck"]);
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in scripts::ALL {
        write(dir.path(), name, text);
    }
    let names: Vec<&str> = scripts::ALL.iter().map(|(n, _)| *n).collect();
    let (ok, out) = run(Command::new("shellcheck")
        .current_dir(dir.path())
        .args(["-x", "-S", "style"])
        .args(&names));
    assert!(ok, "shellcheck:\n{out}");
}

#[test]
fn containerd_configs_set_systemd_cgroup_at_their_versions_path() {
    for (_dir, _config, rendered) in both_variants() {
        for r in rendered
            .iter()
            .filter(|r| r.machine.role != Role::LoadBalancer)
        {
            for (name, version, plugin) in [
                ("config-v2.toml", 2, "io.containerd.grpc.v1.cri"),
                ("config-v3.toml", 3, "io.containerd.cri.v1.runtime"),
            ] {
                let text = file(r, &format!("/etc/bootherd/containerd/{name}")).unwrap();
                let v: toml::Value = toml::from_str(text).unwrap();
                assert_eq!(v["version"].as_integer(), Some(version));
                let runc = &v["plugins"][plugin]["containerd"]["runtimes"]["runc"];
                assert_eq!(
                    runc["options"]["SystemdCgroup"].as_bool(),
                    Some(true),
                    "{name}"
                );
                assert_eq!(runc["runtime_type"].as_str(), Some("io.containerd.runc.v2"));
            }
        }
    }
}

/// Field paths of the kubeadm.k8s.io/v1beta4 kinds bootherd may write, from
/// the v1beta4 API reference, https://kubernetes.io/docs/reference/config-api/kubeadm-config.v1beta4/
/// (lists of objects, such as `bootstrapTokens`, share their parent's path).
const V1BETA4_FIELDS: &[&str] = &[
    "InitConfiguration.apiVersion",
    "InitConfiguration.kind",
    "InitConfiguration.bootstrapTokens",
    "InitConfiguration.bootstrapTokens.token",
    "InitConfiguration.bootstrapTokens.description",
    "InitConfiguration.bootstrapTokens.ttl",
    "InitConfiguration.bootstrapTokens.expires",
    "InitConfiguration.bootstrapTokens.usages",
    "InitConfiguration.bootstrapTokens.groups",
    "InitConfiguration.nodeRegistration",
    "InitConfiguration.nodeRegistration.name",
    "InitConfiguration.nodeRegistration.criSocket",
    "InitConfiguration.nodeRegistration.taints",
    "InitConfiguration.nodeRegistration.kubeletExtraArgs",
    "InitConfiguration.nodeRegistration.kubeletExtraArgs.name",
    "InitConfiguration.nodeRegistration.kubeletExtraArgs.value",
    "InitConfiguration.nodeRegistration.ignorePreflightErrors",
    "InitConfiguration.nodeRegistration.imagePullPolicy",
    "InitConfiguration.nodeRegistration.imagePullSerial",
    "InitConfiguration.localAPIEndpoint",
    "InitConfiguration.localAPIEndpoint.advertiseAddress",
    "InitConfiguration.localAPIEndpoint.bindPort",
    "InitConfiguration.certificateKey",
    "InitConfiguration.dryRun",
    "InitConfiguration.skipPhases",
    "InitConfiguration.patches",
    "InitConfiguration.timeouts",
    "ClusterConfiguration.apiVersion",
    "ClusterConfiguration.kind",
    "ClusterConfiguration.etcd",
    "ClusterConfiguration.networking",
    "ClusterConfiguration.networking.serviceSubnet",
    "ClusterConfiguration.networking.podSubnet",
    "ClusterConfiguration.networking.dnsDomain",
    "ClusterConfiguration.kubernetesVersion",
    "ClusterConfiguration.controlPlaneEndpoint",
    "ClusterConfiguration.apiServer",
    "ClusterConfiguration.apiServer.certSANs",
    "ClusterConfiguration.apiServer.extraArgs",
    "ClusterConfiguration.controllerManager",
    "ClusterConfiguration.scheduler",
    "ClusterConfiguration.dns",
    "ClusterConfiguration.proxy",
    "ClusterConfiguration.certificatesDir",
    "ClusterConfiguration.imageRepository",
    "ClusterConfiguration.featureGates",
    "ClusterConfiguration.clusterName",
    "ClusterConfiguration.encryptionAlgorithm",
    "ClusterConfiguration.certificateValidityPeriod",
    "ClusterConfiguration.caCertificateValidityPeriod",
    "JoinConfiguration.apiVersion",
    "JoinConfiguration.kind",
    "JoinConfiguration.dryRun",
    "JoinConfiguration.nodeRegistration",
    "JoinConfiguration.nodeRegistration.name",
    "JoinConfiguration.nodeRegistration.criSocket",
    "JoinConfiguration.nodeRegistration.taints",
    "JoinConfiguration.nodeRegistration.kubeletExtraArgs",
    "JoinConfiguration.nodeRegistration.kubeletExtraArgs.name",
    "JoinConfiguration.nodeRegistration.kubeletExtraArgs.value",
    "JoinConfiguration.nodeRegistration.ignorePreflightErrors",
    "JoinConfiguration.nodeRegistration.imagePullPolicy",
    "JoinConfiguration.nodeRegistration.imagePullSerial",
    "JoinConfiguration.caCertPath",
    "JoinConfiguration.discovery",
    "JoinConfiguration.discovery.bootstrapToken",
    "JoinConfiguration.discovery.bootstrapToken.token",
    "JoinConfiguration.discovery.bootstrapToken.apiServerEndpoint",
    "JoinConfiguration.discovery.bootstrapToken.caCertHashes",
    "JoinConfiguration.discovery.bootstrapToken.unsafeSkipCAVerification",
    "JoinConfiguration.discovery.file",
    "JoinConfiguration.discovery.tlsBootstrapToken",
    "JoinConfiguration.controlPlane",
    "JoinConfiguration.controlPlane.localAPIEndpoint",
    "JoinConfiguration.controlPlane.localAPIEndpoint.advertiseAddress",
    "JoinConfiguration.controlPlane.localAPIEndpoint.bindPort",
    "JoinConfiguration.controlPlane.certificateKey",
    "JoinConfiguration.skipPhases",
    "JoinConfiguration.patches",
    "JoinConfiguration.timeouts",
];

fn field_paths(prefix: &str, v: &serde_yaml::Value, out: &mut BTreeSet<String>) {
    match v {
        serde_yaml::Value::Mapping(m) => {
            for (k, v) in m {
                let p = format!("{prefix}.{}", k.as_str().unwrap());
                out.insert(p.clone());
                field_paths(&p, v, out);
            }
        }
        // Lists of objects (bootstrapTokens, kubeletExtraArgs) share one path.
        serde_yaml::Value::Sequence(s) => s.iter().for_each(|v| field_paths(prefix, v, out)),
        _ => {}
    }
}

fn kubeadm_docs(text: &str) -> Vec<(String, BTreeSet<String>)> {
    use serde::Deserialize;
    serde_yaml::Deserializer::from_str(text)
        .map(|d| {
            let v = serde_yaml::Value::deserialize(d).unwrap();
            assert_eq!(v["apiVersion"].as_str(), Some("kubeadm.k8s.io/v1beta4"));
            let kind = v["kind"].as_str().unwrap().to_string();
            let mut paths = BTreeSet::new();
            field_paths(&kind, &v, &mut paths);
            (kind, paths)
        })
        .collect()
}

#[test]
fn kubeadm_configs_use_only_v1beta4_fields_and_carry_the_join_facts() {
    let allowed: BTreeSet<&str> = V1BETA4_FIELDS.iter().copied().collect();
    for (_dir, config, rendered) in both_variants() {
        let stacked = config.cluster.load_balancer == bootherd::config::LoadBalancerMode::Stacked;
        let bind = if stacked { 6444 } else { 6443 };
        for r in &rendered {
            let m = &r.machine;
            let Some(join) = file(r, "/etc/bootherd/kubeadm-join.yaml") else {
                assert_eq!(
                    m.role,
                    Role::LoadBalancer,
                    "{} has no kubeadm config",
                    m.hostname
                );
                continue;
            };
            let init = file(r, "/etc/bootherd/kubeadm-init.yaml");
            assert_eq!(
                init.is_some(),
                m.role == Role::ControlPlane,
                "{}: every control plane, and only they, can init",
                m.hostname
            );
            for text in init.into_iter().chain([join]) {
                let docs = kubeadm_docs(text);
                for (_kind, paths) in &docs {
                    for p in paths {
                        assert!(
                            allowed.contains(p.as_str()),
                            "{}: {p} is not a v1beta4 field",
                            m.hostname
                        );
                    }
                }
                let doc: Vec<serde_yaml::Value> = {
                    use serde::Deserialize;
                    serde_yaml::Deserializer::from_str(text)
                        .map(|d| serde_yaml::Value::deserialize(d).unwrap())
                        .collect()
                };
                let kinds: Vec<&str> = doc.iter().map(|d| d["kind"].as_str().unwrap()).collect();
                if kinds[0] == "InitConfiguration" {
                    assert_eq!(kinds, ["InitConfiguration", "ClusterConfiguration"]);
                    let (init, cluster) = (&doc[0], &doc[1]);
                    assert_eq!(
                        init["localAPIEndpoint"]["advertiseAddress"].as_str(),
                        Some(m.ip.to_string().as_str())
                    );
                    assert_eq!(init["localAPIEndpoint"]["bindPort"].as_u64(), Some(bind));
                    assert_eq!(
                        init["bootstrapTokens"][0]["token"].as_str(),
                        Some("abcdef.0123456789abcdef")
                    );
                    assert_eq!(
                        cluster["controlPlaneEndpoint"].as_str(),
                        Some("10.0.0.100:6443")
                    );
                    assert_eq!(
                        cluster["networking"]["podSubnet"].as_str(),
                        Some("10.244.0.0/16")
                    );
                    assert_eq!(
                        cluster["networking"]["serviceSubnet"].as_str(),
                        Some("10.96.0.0/12")
                    );
                    assert_eq!(
                        cluster["kubernetesVersion"].as_str(),
                        Some("@KUBERNETES_VERSION@")
                    );
                    assert!(file(r, "/etc/bootherd/calico-installation.yaml").is_some());
                } else {
                    assert_eq!(kinds, ["JoinConfiguration"]);
                    let bt = &doc[0]["discovery"]["bootstrapToken"];
                    assert_eq!(bt["token"].as_str(), Some("abcdef.0123456789abcdef"));
                    assert_eq!(bt["apiServerEndpoint"].as_str(), Some("10.0.0.100:6443"));
                    assert_eq!(
                        bt["caCertHashes"][0].as_str(),
                        Some(format!("sha256:{}", "ab".repeat(32)).as_str())
                    );
                    let cp = &doc[0]["controlPlane"];
                    if m.role == Role::ControlPlane {
                        assert_eq!(
                            cp["localAPIEndpoint"]["advertiseAddress"].as_str(),
                            Some(m.ip.to_string().as_str())
                        );
                        assert_eq!(cp["localAPIEndpoint"]["bindPort"].as_u64(), Some(bind));
                    } else {
                        assert!(cp.is_null(), "a worker joins as a worker");
                        assert!(file(r, "/etc/bootherd/calico-installation.yaml").is_none());
                    }
                }
            }
        }
    }
}

#[test]
fn calico_installation_is_vxlan_cross_subnet_mtu_1400_on_the_pod_cidr() {
    let (_dir, _config, rendered) = both_variants().remove(0);
    let cp1 = rendered
        .iter()
        .find(|r| r.machine.hostname == "cp1")
        .unwrap();
    let text = file(cp1, "/etc/bootherd/calico-installation.yaml").unwrap();
    let v: serde_yaml::Value = {
        use serde::Deserialize;
        serde_yaml::Value::deserialize(serde_yaml::Deserializer::from_str(text).next().unwrap())
            .unwrap()
    };
    let net = &v["spec"]["calicoNetwork"];
    assert_eq!(net["mtu"].as_u64(), Some(1400));
    assert_eq!(net["ipPools"][0]["cidr"].as_str(), Some("10.244.0.0/16"));
    assert_eq!(
        net["ipPools"][0]["encapsulation"].as_str(),
        Some("VXLANCrossSubnet")
    );
    // Images from quay.io, not Docker Hub's rate-limited anonymous pulls;
    // the node address kubelet registered, not the first NIC.
    assert_eq!(v["spec"]["registry"].as_str(), Some("quay.io/"));
    assert_eq!(
        net["nodeAddressAutodetectionV4"]["kubernetes"].as_str(),
        Some("NodeInternalIP")
    );
}

#[test]
fn secrets_go_only_where_the_role_needs_them() {
    for (_dir, _config, rendered) in both_variants() {
        for r in &rendered {
            let host = &r.machine.hostname;
            let ud = &r.user_data;
            match r.machine.role {
                Role::Worker => {
                    assert!(!ud.contains("PRIVATE KEY"), "{host} got a private key");
                    assert!(!ud.contains("CERTIFICATE"), "{host} got a certificate");
                    assert!(!ud.contains("Vr7pPass"), "{host} got the VRRP password");
                    assert!(
                        ud.contains("abcdef.0123456789abcdef"),
                        "{host} needs the token"
                    );
                }
                Role::LoadBalancer => {
                    assert!(!ud.contains("BEGIN"), "{host} got PKI material");
                    assert!(
                        !ud.contains("abcdef.0123456789abcdef"),
                        "{host} got the token"
                    );
                    assert!(ud.contains("Vr7pPass"), "{host} needs the VRRP password");
                }
                Role::ControlPlane => {
                    assert!(ud.contains("BEGIN PRIVATE KEY"), "{host} needs the CA keys");
                    assert!(file(r, "/etc/bootherd/pki/etcd/ca.key").is_some());
                }
            }
            for f in &r.files {
                if f.content.contains("PRIVATE KEY") || f.path.ends_with("firstboot.env") {
                    assert_eq!(f.mode, "0600", "{host}: {} must be private", f.path);
                }
            }
        }
    }
}

#[test]
fn a_control_plane_without_pki_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = example(false);
    let renderer = Renderer::new(dir.path());
    let mut mat = fixture_material(dir.path());
    mat.pki = None;
    let cp = config.machine_by_name("cp2").unwrap();
    let (_inst, fb) = urls(cp);
    let err = role_files(&renderer, &config, cp, &mat, &fb).unwrap_err();
    assert!(
        format!("{err:#}").contains("needs the cluster PKI"),
        "{err:#}"
    );
}

// ---------------------------------------------------------------------------
// The role scripts for real, in a throwaway Debian root (debootstrap, chroot),
// with only the commands that would reach the internet (curl, apt-get, gpg,
// the Kubernetes and CNI tools, containerd) or change the test host's kernel
// and services (systemctl, modprobe, sysctl, swapoff) replaced by fakes that
// record their arguments. `sleep` is faked too, so retries do not wait.

/// Fakes installed as `/opt/fake/bin/<name>`; each records `name args` in
/// `/var/log/fake-calls.log`, then runs its body (empty: success).
const FAKES: &[(&str, &str)] = &[
    (
        "apt-get",
        r#"# Options first (-q, -o NAME=VALUE), then the command.
while [ "${1#-}" != "$1" ]; do
    [ "$1" = -o ] && shift
    shift
done
if [ "$1" = install ]; then
    shift
    for p in "$@"; do
        case "$p" in -*) continue ;; esac
        printf 'Package: %s\nStatus: install ok installed\nPriority: optional\nSection: admin\nMaintainer: fake <fake@example.org>\nArchitecture: amd64\nVersion: 1.0-fake\nDescription: fake\n\n' "$p" >>/var/lib/dpkg/status
    done
fi"#,
    ),
    (
        "curl",
        r#"out=
while [ $# -gt 0 ]; do
    case "$1" in -o) out=$2; shift ;; esac
    last=$1
    shift
done
# count FILE: true (and one less) while FILE holds a number above 0.
count() { n=$(cat "$1" 2>/dev/null || echo 0); [ "$n" -gt 0 ] && echo $((n - 1)) >"$1"; }
case "$last" in
    *Release.key) echo "fake release key" >"$out" ;;
    */livez) [ ! -e /etc/fake/api-down ] ;;
    */control-plane-slot*) echo "$last" >>/var/log/fake-slot.log
        if count /etc/fake/slot-busy; then printf 'wait: cp9 holds it\n409'
        else printf '%s\n200' "$(cat /etc/fake/slot 2>/dev/null || echo init)"; fi ;;
    https://10.0.0.100:6443/) ! count /etc/fake/vip-down || exit 7 ;;
    */haproxy.cfg*) cp /etc/fake/haproxy.cfg "$out" ;;
    */bootstrap-token*) cat /etc/fake/current-token 2>/dev/null || exit 22 ;;
    */etcd-member*) echo "$last" >>/var/log/fake-etcd-member.log ;;
    *) echo "$last" >>/var/log/fake-callbacks.log ;;
esac"#,
    ),
    (
        "gpg",
        r#"while [ $# -gt 0 ]; do
    case "$1" in -o) echo "fake keyring" >"$2"; shift ;; esac
    shift
done"#,
    ),
    (
        "kubeadm",
        r#"case "$1" in
    version) echo v1.36.4 ;;
    init) [ ! -e /etc/fake/fail-kubeadm ] || exit 1
        n=$(cat /etc/fake/init-fails 2>/dev/null || echo 0)
        if [ "$n" -gt 0 ]; then echo $((n - 1)) >/etc/fake/init-fails; exit 1; fi
        mkdir -p /etc/kubernetes && touch /etc/kubernetes/admin.conf /etc/kubernetes/kubelet.conf ;;
    join) [ ! -e /etc/fake/fail-kubeadm ] || exit 1
        mkdir -p /etc/kubernetes && touch /etc/kubernetes/kubelet.conf ;;
    reset) rm -rf /etc/kubernetes/pki /etc/kubernetes/*.conf ;;
esac"#,
    ),
    (
        "containerd",
        r#"v=1.7.24
[ ! -e /etc/fake/containerd-version ] || v=$(cat /etc/fake/containerd-version)
echo "containerd github.com/containerd/containerd $v 0123abcd""#,
    ),
    (
        "ip",
        r#". /etc/bootherd/firstboot.env
echo "2: eth7    inet $BOOTHERD_NODE_IP/24 brd 10.0.0.255 scope global eth7\       valid_lft forever preferred_lft forever""#,
    ),
    ("kubectl", ""),
    ("kubelet", ""),
    ("haproxy", ""),
    ("keepalived", ""),
    ("systemctl", ""),
    ("modprobe", ""),
    ("sysctl", ""),
    ("swapoff", ""),
    // The slot renewer's 50 s is real (it is killed at the end); every
    // other wait passes at once.
    ("sleep", r#"[ "$1" != 50 ] || exec /bin/sleep 50"#),
    (
        "date",
        r#"if [ "$1" = +%s ] && [ -e /etc/fake/clock-behind ]; then
    n=$(cat /etc/fake/clock-behind)
    if [ "$n" -gt 0 ]; then echo $((n - 1)) >/etc/fake/clock-behind; echo 86400; exit 0; fi
fi
exec /bin/date "$@""#,
    ),
];

/// A Debian minbase root, made once per target directory.
fn debian_root() -> PathBuf {
    // Tests run in parallel threads: one bootstraps, the others wait for it
    // (they would otherwise delete each other's half-made root).
    static BOOTSTRAP: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = BOOTSTRAP.lock().unwrap_or_else(|p| p.into_inner());
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("firstboot-debian-root");
    if root.join("usr/bin/apt-mark").exists() {
        return root;
    }
    common::require(&["debootstrap", "unshare", "chroot"]);
    let partial = root.with_extension("partial");
    let _ = std::fs::remove_dir_all(&partial);
    let (ok, out) = run(Command::new("debootstrap")
        .args(["--variant=minbase", "bookworm"])
        .arg(&partial)
        .arg("http://deb.debian.org/debian"));
    assert!(ok, "debootstrap failed:\n{out}");
    std::fs::rename(&partial, &root).unwrap();
    root
}

struct Node {
    _dir: tempfile::TempDir,
    root: PathBuf,
    script: String,
}

/// A fresh copy of the Debian root with the machine's role files and the fakes.
fn node(r: &Rendered, setup: &[(&str, &str)]) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let (ok, out) = run(Command::new("cp").arg("-a").arg(debian_root()).arg(&root));
    assert!(ok, "{out}");
    let bin = root.join("opt/fake/bin");
    std::fs::create_dir_all(&bin).unwrap();
    for (name, body) in FAKES {
        // Each body ends in the status the fake exits with (empty: success).
        let text = format!("#!/bin/sh\necho \"{name} $*\" >>/var/log/fake-calls.log\n{body}\n");
        let p = bin.join(name);
        std::fs::write(&p, text).unwrap();
        chmod(&p, "0755");
    }
    std::fs::write(
        root.join("etc/fstab"),
        "UUID=1234 / ext4 defaults 0 1\n/swap.img none swap sw 0 0\n",
    )
    .unwrap();
    std::fs::create_dir_all(root.join("sys/fs/cgroup")).unwrap();
    let controllers = if setup.iter().any(|(n, _)| *n == "no-memory-cgroup") {
        "cpuset cpu io pids\n"
    } else {
        "cpuset cpu io memory hugetlb pids\n"
    };
    // cgroup v1 has no cgroup.controllers: the script reads /proc/cgroups.
    if !setup.iter().any(|(n, _)| *n == "cgroup-v1") {
        std::fs::write(root.join("sys/fs/cgroup/cgroup.controllers"), controllers).unwrap();
    }
    std::fs::create_dir_all(root.join("etc/fake")).unwrap();
    for (name, text) in setup {
        std::fs::write(root.join("etc/fake").join(name), text).unwrap();
    }
    for f in &r.files {
        let p = root.join(f.path.trim_start_matches('/'));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, &f.content).unwrap();
        chmod(&p, f.mode);
    }
    Node {
        _dir: dir,
        root,
        script: format!(
            "/usr/local/lib/bootherd/{}",
            scripts::for_role(r.machine.role).0
        ),
    }
}

fn chmod(p: &Path, mode: &str) {
    use std::os::unix::fs::PermissionsExt;
    let m = u32::from_str_radix(mode, 8).unwrap();
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
}

impl Node {
    /// Runs the role script as its unit would; true when it succeeded.
    fn run(&self) -> bool {
        self.run_script(&self.script)
    }

    /// Runs `script` (a path on the node) as root in the node; true when it succeeded.
    fn run_script(&self, script: &str) -> bool {
        // A private mount namespace: /proc (bash's process substitution
        // needs /dev/fd) goes away with the process.
        let (ok, _out) = run(Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(
                "mount -t proc proc \"$1/proc\" && exec chroot \"$1\" /usr/bin/env -i \
                 PATH=/opt/fake/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
                 HOME=/root /bin/bash \"$2\"",
            )
            .arg("sh")
            .arg(&self.root)
            .arg(script));
        ok
    }

    fn read(&self, path: &str) -> String {
        std::fs::read_to_string(self.root.join(path.trim_start_matches('/'))).unwrap_or_default()
    }

    fn calls(&self, tool: &str) -> Vec<String> {
        self.read("/var/log/fake-calls.log")
            .lines()
            .filter_map(|l| l.strip_prefix(&format!("{tool} ")).map(str::to_string))
            .collect()
    }

    fn mode(&self, path: &str) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(self.root.join(path.trim_start_matches('/')))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    }

    /// Content, mode and mtime of everything under /etc and /usr/local.
    fn snapshot(&self) -> Vec<String> {
        let (ok, out) = run(Command::new("find")
            .arg(self.root.join("etc"))
            .arg(self.root.join("usr/local"))
            .args(["-type", "f", "-printf", "%p %m %T@ %s\n"]));
        assert!(ok, "{out}");
        let mut lines: Vec<String> = out.lines().map(str::to_string).collect();
        lines.sort();
        lines
    }
}

fn rendered_by_name(stacked: bool, host: &str) -> (tempfile::TempDir, Rendered) {
    let dir = tempfile::tempdir().unwrap();
    let config = example(stacked);
    let r = render_all(&config, dir.path())
        .into_iter()
        .find(|r| r.machine.hostname == host)
        .unwrap();
    (dir, r)
}

/// `--config` of the kubeadm `action` (init or join) the script ran.
fn final_config(action: &str) -> String {
    format!("--config /etc/bootherd/kubeadm-{action}.final.yaml")
}

/// `containerd_version` is containerd's major: 1.x uses config version 2, 2.x version 3.
fn assert_node_prepared(n: &Node, containerd_version: u32) {
    let containerd = n.read("/etc/containerd/config.toml");
    assert_eq!(
        containerd,
        n.read(&format!(
            "/etc/bootherd/containerd/config-v{}.toml",
            containerd_version + 1
        ))
    );
    assert!(n
        .read("/etc/modules-load.d/bootherd-kubernetes.conf")
        .contains("br_netfilter"));
    let sysctl = n.read("/etc/sysctl.d/99-bootherd-kubernetes.conf");
    assert!(sysctl.contains("net.ipv4.ip_forward = 1"));
    assert!(sysctl.contains("net.bridge.bridge-nf-call-iptables = 1"));
    // pkgs.k8s.io's repository of the minor, or the mirror's copy of it.
    let env = n.read("/etc/bootherd/firstboot.env");
    let repo = env
        .lines()
        .find_map(|l| l.strip_prefix("BOOTHERD_K8S_REPO='"))
        .and_then(|v| v.strip_suffix('\''))
        .unwrap();
    assert!(repo.ends_with("/core:/stable:/v1.36/deb/"), "{repo}");
    assert!(n
        .read("/etc/apt/sources.list.d/kubernetes.list")
        .contains(&format!("{repo} /")));
    assert!(n
        .read("/etc/fstab")
        .contains("# bootherd: kubelet needs swap off: /swap.img"));
    let held = n.read("/var/lib/dpkg/status");
    assert!(
        held.contains("Package: kubeadm\nStatus: hold ok installed"),
        "{held}"
    );
    let final_yaml = n.calls("kubeadm").iter().find_map(|c| {
        c.split_whitespace()
            .skip_while(|w| *w != "--config")
            .nth(1)
            .map(str::to_string)
    });
    if let Some(path) = final_yaml {
        assert!(n.read(&path).contains("v1beta4"));
        assert_eq!(n.mode(&path), 0o600);
    }
    // kubeadm's preflight needs these, and kubelet does not pull them in.
    let installed = n.read("/var/lib/dpkg/status");
    for p in ["conntrack", "socat", "ebtables", "ethtool", "iptables"] {
        assert!(
            installed.contains(&format!("Package: {p}\n")),
            "{p} is not installed"
        );
    }
    // Every apt call waits for a dpkg lock held by unattended-upgrades,
    // and an update that could not reach the mirror is a failure (retried).
    for call in n.calls("apt-get") {
        assert!(call.contains("-o DPkg::Lock::Timeout=600"), "{call}");
        if call.contains(" update") {
            assert!(call.ends_with("update --error-on=any"), "{call}");
        }
    }
}

#[test]
fn role_scripts_run_in_a_debian_root_and_a_second_run_changes_nothing() {
    common::require(&["debootstrap", "unshare", "chroot"]);
    // (stacked, host, kubeadm calls of the first run, containerd major)
    let cases: &[(bool, &str, &[&str], u32)] = &[
        (false, "w1", &["join"], 1),
        (false, "cp1", &["init"], 1),
        (false, "cp2", &["join"], 2),
        (false, "lb1", &[], 0),
        (true, "cp1", &["init"], 1),
    ];
    for &(stacked, host, kubeadm, containerd) in cases {
        let ctx = format!("{host} (stacked: {stacked})");
        let (_dir, r) = rendered_by_name(stacked, host);
        let mut setup: Vec<(&str, &str)> = Vec::new();
        if containerd == 2 {
            setup.push(("containerd-version", "2.0.2"));
        }
        if kubeadm == ["join"] && r.machine.role == Role::ControlPlane {
            setup.push(("slot", "join"));
        }
        let setup = &setup[..];
        let n = node(&r, setup);
        assert!(
            n.run(),
            "{ctx}: first run failed:\n{}",
            n.read("/var/log/bootherd-firstboot.log")
        );
        let log = n.read("/var/log/bootherd-firstboot.log");
        assert!(log.contains("first boot finished"), "{ctx}:\n{log}");
        let want: Vec<String> = kubeadm
            .iter()
            .map(|c| format!("{c} {}", final_config(c)))
            .collect();
        let got: Vec<String> = n
            .calls("kubeadm")
            .into_iter()
            .filter(|c| !c.starts_with("version"))
            .collect();
        assert_eq!(got, want, "{ctx}: kubeadm invocations");
        assert_eq!(
            n.read("/var/log/fake-callbacks.log"),
            format!("{}\n", urls(&r.machine).1.joined),
            "{ctx}: one success callback"
        );
        if r.machine.role != Role::LoadBalancer {
            assert_node_prepared(&n, containerd);
        } else {
            assert!(
                n.read("/etc/containerd/config.toml").is_empty(),
                "{ctx}: no containerd on a load balancer"
            );
        }
        if r.machine.role == Role::ControlPlane {
            assert_eq!(
                n.read("/etc/kubernetes/pki/ca.crt"),
                n.read("/etc/bootherd/pki/ca.crt")
            );
            assert!(n
                .read("/etc/kubernetes/pki/etcd/ca.key")
                .contains("PRIVATE KEY"));
            assert_eq!(n.mode("/etc/kubernetes/pki/ca.key"), 0o600);
        }
        if kubeadm == ["init"] {
            assert!(n
                .read("/etc/bootherd/kubeadm-init.final.yaml")
                .contains("kubernetesVersion: \"v1.36.4\""));
            let kubectl = n.calls("kubectl").join("\n");
            let manifest = if stacked {
                "http://10.0.0.5/files/tigera-operator.yaml"
            } else {
                "calico/v3.29.2/manifests/tigera-operator.yaml"
            };
            assert!(kubectl.contains(manifest), "{kubectl}");
            assert!(
                kubectl.contains("apply -f /etc/bootherd/calico-installation.yaml"),
                "{kubectl}"
            );
        }
        let holds_vip = r.machine.role == Role::LoadBalancer || stacked;
        if holds_vip {
            assert_eq!(
                n.read("/etc/haproxy/haproxy.cfg"),
                n.read("/etc/bootherd/haproxy.cfg")
            );
            let ka = n.read("/etc/keepalived/keepalived.conf");
            assert!(ka.contains("interface eth7\n"), "{ctx}: {ka}");
            assert!(n.calls("haproxy").iter().any(|c| c.starts_with("-c")));
            assert!(n.calls("keepalived").iter().any(|c| c.starts_with("-t")));
        } else {
            assert!(n.read("/etc/haproxy/haproxy.cfg").is_empty());
        }

        // Second run: nothing written, no kubeadm init/join, no second report,
        // and a joined node does not wait for the API (here: down).
        std::fs::write(n.root.join("etc/fake/api-down"), "").unwrap();
        let before = n.snapshot();
        let calls_before = n.calls("kubeadm").len();
        assert!(
            n.run(),
            "{ctx}: second run failed:\n{}",
            n.read("/var/log/bootherd-firstboot.log")
        );
        assert_eq!(n.snapshot(), before, "{ctx}: the second run changed files");
        let again: Vec<String> = n.calls("kubeadm")[calls_before..]
            .iter()
            .filter(|c| !c.starts_with("version"))
            .cloned()
            .collect();
        assert!(again.is_empty(), "{ctx}: second run ran kubeadm {again:?}");
        assert_eq!(
            n.read("/var/log/fake-callbacks.log").lines().count(),
            1,
            "{ctx}"
        );
    }
}

#[test]
fn a_failing_step_ends_in_a_failure_callback_naming_it() {
    common::require(&["debootstrap", "unshare", "chroot"]);
    let (_dir, r) = rendered_by_name(false, "w2");
    let n = node(&r, &[("fail-kubeadm", "")]);
    assert!(!n.run(), "the run must fail");
    let cb = n.read("/var/log/fake-callbacks.log");
    assert_eq!(
        cb,
        format!("{}&step=kubeadm-join\n", urls(&r.machine).1.failed),
        "{}",
        n.read("/var/log/bootherd-firstboot.log")
    );
    // Every failed attempt was reset before the next one.
    let resets = n
        .calls("kubeadm")
        .iter()
        .filter(|c| c.starts_with("reset"))
        .count();
    assert_eq!(resets, 9);

    let (_dir, r) = rendered_by_name(false, "w1");
    let n = node(&r, &[("containerd-version", "9.1.0")]);
    assert!(!n.run());
    assert_eq!(
        n.read("/var/log/fake-callbacks.log"),
        format!("{}&step=containerd\n", urls(&r.machine).1.failed)
    );
    assert!(n
        .read("/var/log/bootherd-firstboot.log")
        .contains("unknown containerd version"));
}

/// Lines of the fakes' call log, in order, that start with `prefix`.
fn call_positions(n: &Node, prefix: &str) -> Vec<usize> {
    n.read("/var/log/fake-calls.log")
        .lines()
        .enumerate()
        .filter(|(_, l)| l.starts_with(prefix))
        .map(|(i, _)| i)
        .collect()
}

#[test]
fn the_control_plane_that_inits_waits_for_the_vip_and_outlasts_failed_inits() {
    common::require(&["debootstrap", "unshare", "chroot"]);
    let (_dir, r) = rendered_by_name(false, "cp1");
    // The load balancers come up late, and the first four inits fail (the
    // old script gave up after three).
    let n = node(&r, &[("vip-down", "3"), ("init-fails", "4")]);
    assert!(n.run(), "{}", n.read("/var/log/bootherd-firstboot.log"));
    let inits = call_positions(&n, "kubeadm init");
    assert_eq!(inits.len(), 5, "{:?}", n.calls("kubeadm"));
    let probes = call_positions(
        &n,
        "curl -ks -o /dev/null --max-time 5 https://10.0.0.100:6443/",
    );
    assert_eq!(
        probes.len(),
        4,
        "three refused probes, then one that connects"
    );
    assert!(
        probes.iter().all(|p| *p < inits[0]),
        "init ran before the VIP listened"
    );
    assert_eq!(
        n.read("/var/log/fake-callbacks.log"),
        format!("{}\n", urls(&r.machine).1.joined)
    );
}

#[test]
fn a_control_plane_waits_for_the_slot_and_runs_what_it_says() {
    common::require(&["debootstrap", "unshare", "chroot"]);
    // cp1, first in the config, joins when bootherd says so.
    let (_dir, r) = rendered_by_name(false, "cp1");
    let n = node(&r, &[("slot-busy", "2"), ("slot", "join")]);
    assert!(n.run(), "{}", n.read("/var/log/bootherd-firstboot.log"));
    let slot_url = urls(&r.machine).1.slot;
    let asked = n.read("/var/log/fake-slot.log");
    assert!(
        asked.lines().filter(|l| *l == slot_url).count() >= 3,
        "{asked}"
    );
    let got: Vec<String> = n
        .calls("kubeadm")
        .into_iter()
        .filter(|c| !c.starts_with("version"))
        .collect();
    assert_eq!(got, [format!("join {}", final_config("join"))]);
    assert!(
        n.calls("kubectl").is_empty(),
        "only the node that inits applies Calico"
    );
    assert!(n
        .read("/var/log/bootherd-firstboot.log")
        .contains("no control-plane slot yet (HTTP 409): wait: cp9 holds it"));
}

#[test]
fn no_memory_cgroup_fails_with_the_fix_and_a_clock_behind_is_waited_for() {
    common::require(&["debootstrap", "unshare", "chroot"]);
    let (_dir, r) = rendered_by_name(false, "w1");
    let n = node(&r, &[("no-memory-cgroup", "")]);
    assert!(!n.run());
    assert_eq!(
        n.read("/var/log/fake-callbacks.log"),
        format!("{}&step=memory-cgroup\n", urls(&r.machine).1.failed)
    );
    assert!(n
        .read("/var/log/bootherd-firstboot.log")
        .contains("add 'cgroup_enable=memory cgroup_memory=1' to the kernel command line"));

    // cgroup v1 (no cgroup.controllers): /proc/cgroups says memory is on.
    let n = node(&r, &[("cgroup-v1", "")]);
    assert!(n.run(), "{}", n.read("/var/log/bootherd-firstboot.log"));

    let n = node(&r, &[("clock-behind", "2")]);
    assert!(n.run(), "{}", n.read("/var/log/bootherd-firstboot.log"));
    let log = n.read("/var/log/bootherd-firstboot.log");
    assert_eq!(
        log.matches("before this node's seed was made").count(),
        2,
        "{log}"
    );
}

/// `[mirrors]`: an air-gapped site's apt archive (installer), Kubernetes
/// packages, registry (containerd's hosts.toml) and Calico manifest.
#[test]
fn mirrors_reach_the_installer_apt_containerd_and_calico() {
    for (_dir, config, rendered) in both_variants() {
        let mirrored = config.mirrors.registry.is_some();
        for r in &rendered {
            let m = &r.machine;
            let doc: serde_yaml::Value = serde_yaml::from_str(&r.user_data).unwrap();
            let apt = &doc["autoinstall"]["apt"];
            let env = file(r, "/etc/bootherd/firstboot.env").unwrap();
            if mirrored {
                assert_eq!(apt["geoip"].as_bool(), Some(false));
                assert_eq!(
                    apt["primary"][0]["uri"].as_str(),
                    Some("http://10.0.0.5/ubuntu"),
                    "{}: the trailing / is dropped",
                    m.hostname
                );
                assert!(env.contains(
                    "BOOTHERD_K8S_REPO='http://10.0.0.5/kubernetes/core:/stable:/v1.36/deb/'"
                ));
                assert!(env.contains(
                    "BOOTHERD_CALICO_MANIFEST='http://10.0.0.5/files/tigera-operator.yaml'"
                ));
            } else {
                assert!(apt.is_null(), "no mirror, no apt section");
                assert!(env
                    .contains("BOOTHERD_K8S_REPO='https://pkgs.k8s.io/core:/stable:/v1.36/deb/'"));
            }
            for registry in ["registry.k8s.io", "quay.io", "docker.io"] {
                let path = format!("/etc/containerd/certs.d/{registry}/hosts.toml");
                let hosts = file(r, &path);
                if !mirrored || m.role == Role::LoadBalancer {
                    assert!(hosts.is_none(), "{}: {path}", m.hostname);
                    continue;
                }
                let v: toml::Value = toml::from_str(hosts.unwrap()).unwrap();
                assert!(v["server"].as_str().unwrap().starts_with("https://"));
                assert_eq!(
                    v["host"]["http://10.0.0.5:5000"]["capabilities"],
                    toml::Value::Array(vec!["pull".into(), "resolve".into()])
                );
            }
        }
    }
}

#[test]
fn the_load_balancers_take_up_a_control_plane_added_later() {
    common::require(&["debootstrap", "unshare", "chroot"]);
    let (_dir, r) = rendered_by_name(false, "lb1");
    let n = node(&r, &[]);
    assert!(n.run(), "{}", n.read("/var/log/bootherd-firstboot.log"));
    assert!(
        n.calls("systemctl")
            .contains(&"enable --now bootherd-haproxy-sync.timer".to_string()),
        "{:?}",
        n.calls("systemctl")
    );
    let timer = file(&r, "/etc/systemd/system/bootherd-haproxy-sync.timer").unwrap();
    assert!(timer.contains("OnUnitActiveSec=2min"), "{timer}");

    // bootherd now renders a fourth backend: the timer's run installs it.
    let newer = format!(
        "{}    server cp4 10.0.0.14:6443 check\n",
        n.read("/etc/haproxy/haproxy.cfg")
    );
    std::fs::write(n.root.join("etc/fake/haproxy.cfg"), &newer).unwrap();
    let sync = "/usr/local/lib/bootherd/haproxy-sync.sh";
    assert!(n.run_script(sync));
    assert_eq!(n.read("/etc/haproxy/haproxy.cfg"), newer);
    assert_eq!(
        n.read("/etc/bootherd/haproxy.cfg"),
        newer,
        "a re-run keeps it"
    );
    assert!(n
        .calls("haproxy")
        .iter()
        .any(|c| c.starts_with("-c -q -f /tmp/")));
    let reloads = |n: &Node| {
        n.calls("systemctl")
            .iter()
            .filter(|c| *c == "reload-or-restart haproxy")
            .count()
    };
    assert_eq!(reloads(&n), 1);
    assert!(n.run_script(sync));
    assert_eq!(reloads(&n), 1, "nothing changed: no reload");
}

#[test]
fn a_node_joins_with_the_token_bootherd_holds_now() {
    common::require(&["debootstrap", "unshare", "chroot"]);
    // The seed's token expired while w1 sat powered off; bootherd renewed it.
    let (_dir, r) = rendered_by_name(false, "w1");
    let n = node(&r, &[("current-token", "zyxwvu.9876543210zyxwvu")]);
    assert!(n.run(), "{}", n.read("/var/log/bootherd-firstboot.log"));
    let join = n.read("/etc/bootherd/kubeadm-join.final.yaml");
    assert!(
        join.contains("token: \"zyxwvu.9876543210zyxwvu\""),
        "{join}"
    );
    assert!(!join.contains("abcdef.0123456789abcdef"), "{join}");

    // bootherd cannot be asked: the seed's token is tried.
    let n = node(&r, &[]);
    assert!(n.run(), "{}", n.read("/var/log/bootherd-firstboot.log"));
    assert!(n
        .read("/etc/bootherd/kubeadm-join.final.yaml")
        .contains("token: \"abcdef.0123456789abcdef\""));
    assert!(n
        .read("/var/log/bootherd-firstboot.log")
        .contains("cannot ask bootherd for the current bootstrap token"));
}

#[test]
fn after_a_failed_control_plane_join_its_stale_etcd_member_is_removed() {
    common::require(&["debootstrap", "unshare", "chroot"]);
    let (_dir, r) = rendered_by_name(false, "cp2");
    let n = node(&r, &[("slot", "join"), ("fail-kubeadm", "")]);
    assert!(!n.run());
    let resets = n
        .calls("kubeadm")
        .iter()
        .filter(|c| c.starts_with("reset"))
        .count();
    let removals = n.read("/var/log/fake-etcd-member.log");
    assert_eq!(resets, 9);
    assert_eq!(
        removals
            .lines()
            .filter(|l| *l == urls(&r.machine).1.etcd_member)
            .count(),
        resets,
        "every reset is followed by bootherd removing the member: {removals}"
    );
}
