//! The cluster lab: the whole bring-up as one, from "installed" to a joined
//! highly available cluster, and back through reimages.
//!
//! Every node is a systemd-nspawn container booting real systemd on one
//! bridge inside a network namespace (`tests/cluster-lab/lab.sh`). bootherd
//! serves it as it serves a rack. Each node is "installed" the way the
//! Ubuntu installer would do it: the test fetches the machine's autoinstall
//! user-data from bootherd over HTTP, gives the installed system its
//! `autoinstall.user-data` as the cloud-init NoCloud seed (what subiquity
//! writes into the target), and reports `installed` through the real
//! callback with the install token. Then the node boots, and its first boot
//! runs exactly as on an installed machine.
//!
//! Real, not faked: systemd, cloud-init, apt (from the lab's package
//! mirror, given to bootherd as `[mirrors]`), containerd and runc (Debian's),
//! haproxy and keepalived (the VIP moves between the load balancers over
//! VRRP), etcd (the stacked members, with certificates from bootherd's etcd
//! CA), curl, openssl, bootherd's callbacks and control-plane slot.
//!
//! Stand-ins (`tests/cluster-lab/standins/`, packaged as `.deb`s in the
//! lab's Kubernetes repository, so the role scripts install them as the real
//! ones): `kubeadm`, `kubelet`, `kubectl` and the API server. What they
//! check is in that directory's README; in short, kubeadm's preflight
//! (executables such as conntrack before 1.32, ports, swap, ip_forward, the
//! CRI answering through the real containerd, the cgroup driver against
//! containerd's, cgroup controllers), `init` on bootherd's pre-made PKI with
//! kubeadm's certificate SANs and its later phases through the endpoint the
//! version uses, token discovery with JWS and CA pinning, control-plane
//! joins as etcd learners (one at a time, as etcd allows) promoted to
//! voters, `reset` that leaves a half-joined member behind; the API server
//! keeps its objects in the real etcd, so every control plane serves the
//! same cluster. What they cannot: run Pods (no CNI, no scheduler, no
//! controllers beyond token cleanup), watches, admission.
//!
//! This machine's kernel runs cgroup v1, which kubelet and kubeadm refuse
//! from 1.35 unless `failCgroupV1: false`: the lab adds that to the
//! kubeadm init config through a template override in `<data_dir>/templates`,
//! as an operator with such hosts would. Installed Ubuntu runs cgroup v2.

mod common;

use common::{Netns, Server};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

const LAB: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/cluster-lab/lab.sh");
const BUILD_DEBS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/cluster-lab/standins/build-debs.sh"
);
/// The Kubernetes patch release the stand-ins model: the default minor.
const K8S_VERSION: &str = "1.36.4";
const MIRROR: &str = "10.0.0.5";
const VIP: &str = "10.0.0.100";

/// The nodes share one machine's two cores: one lab at a time.
static ONE_LAB: Mutex<()> = Mutex::new(());

#[derive(Debug, Clone, Copy)]
struct Spec {
    name: &'static str,
    mac: &'static str,
    ip: &'static str,
    role: &'static str,
}

const fn spec(name: &'static str, mac: &'static str, ip: &'static str, role: &'static str) -> Spec {
    Spec {
        name,
        mac,
        ip,
        role,
    }
}

/// The example cluster: 2 load balancers, 3 control planes, 2 workers.
const EXAMPLE: &[Spec] = &[
    spec("lb1", "52:54:00:aa:00:21", "10.0.0.21", "load-balancer"),
    spec("lb2", "52:54:00:aa:00:22", "10.0.0.22", "load-balancer"),
    spec("cp1", "52:54:00:aa:00:01", "10.0.0.11", "control-plane"),
    spec("cp2", "52:54:00:aa:00:02", "10.0.0.12", "control-plane"),
    spec("cp3", "52:54:00:aa:00:03", "10.0.0.13", "control-plane"),
    spec("w1", "52:54:00:aa:00:31", "10.0.0.31", "worker"),
    spec("w2", "52:54:00:aa:00:32", "10.0.0.32", "worker"),
];

/// The stacked variant: 3 control planes holding the VIP, 1 worker.
const STACKED: &[Spec] = &[
    spec("cp1", "52:54:00:aa:00:01", "10.0.0.11", "control-plane"),
    spec("cp2", "52:54:00:aa:00:02", "10.0.0.12", "control-plane"),
    spec("cp3", "52:54:00:aa:00:03", "10.0.0.13", "control-plane"),
    spec("w1", "52:54:00:aa:00:31", "10.0.0.31", "worker"),
];

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Prints how the lab goes: it takes minutes, and a failure needs the story.
fn say(started: Instant, what: &str) {
    eprintln!("[cluster lab {:>4}s] {what}", started.elapsed().as_secs());
}

/// The node root and the package mirror, built once per test run (each is
/// cached across runs by lab.sh).
fn prepared() -> &'static (PathBuf, PathBuf) {
    static PREPARED: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    PREPARED.get_or_init(|| {
        common::require(&["systemd-nspawn", "debootstrap", "dpkg-deb", "gpg", "nft"]);
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cluster-lab");
        let debs = dir.join("standin-debs");
        let repo = dir.join("mirror");
        std::fs::create_dir_all(&debs).unwrap();
        let out = run(Command::new(BUILD_DEBS).arg(&debs).arg(K8S_VERSION));
        assert!(
            out.status.success(),
            "building the stand-in debs:\n{}",
            text(&out)
        );
        let out = run(Command::new(LAB).arg("root"));
        assert!(
            out.status.success(),
            "building the node root:\n{}",
            text(&out)
        );
        let root = PathBuf::from(
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .lines()
                .last()
                .unwrap(),
        );
        let minor = K8S_VERSION.rsplit_once('.').unwrap().0;
        let out = run(Command::new(LAB)
            .arg("repo")
            .arg(&repo)
            .arg(&debs)
            .arg(minor));
        assert!(out.status.success(), "building the mirror:\n{}", text(&out));
        (root, repo)
    })
}

/// What an operator whose nodes run cgroup v1 does for Kubernetes 1.35+:
/// kubelet told `failCgroupV1: false`, and kubeadm's SystemVerification
/// preflight (an error from 1.35, whatever the kubelet config says)
/// skipped. Template overrides in `<data_dir>/templates/kubeadm/`.
fn cgroup_v1_overrides(data_dir: &Path) {
    let dir = data_dir.join("templates/kubeadm");
    std::fs::create_dir_all(&dir).unwrap();
    for name in ["init.yaml", "join.yaml"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("templates/kubeadm")
            .join(name);
        let text = std::fs::read_to_string(path).unwrap();
        assert_eq!(text.matches("\nnodeRegistration:\n").count(), 1, "{name}");
        let mut text = text.replace(
            "\nnodeRegistration:\n",
            "\nnodeRegistration:\n  ignorePreflightErrors: [\"SystemVerification\"]\n",
        );
        if name == "init.yaml" {
            text.push_str("---\napiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ncgroupDriver: systemd\nfailCgroupV1: false\n");
        }
        std::fs::write(dir.join(name), text).unwrap();
    }
}

struct Lab {
    ns: Netns,
    server: Server,
    nodes: Vec<Spec>,
    state: tempfile::TempDir,
    seeds: tempfile::TempDir,
    started: Instant,
    /// Installed (seeded and reported) but not started yet.
    tokens: BTreeMap<&'static str, String>,
}

impl Lab {
    fn start(tag: &str, nodes: &[Spec], stacked: bool) -> Lab {
        let started = Instant::now();
        let (root, repo) = prepared();
        say(
            started,
            &format!(
                "node root {} and mirror {} ready",
                root.display(),
                repo.display()
            ),
        );
        let ns = Netns::new(tag);
        let state = tempfile::tempdir().unwrap();
        let seeds = tempfile::tempdir().unwrap();
        let mut machines = String::new();
        for n in nodes {
            machines.push_str(&common::machine(n.mac, n.name, n.role, n.ip));
        }
        let config = format!(
            r#"[server]
address = "10.0.0.2"
http_port = 8080
data_dir = "@DATA@"

[dhcp]
mode = "off"

[tftp]
enabled = false
root = "@DATA@/tftp"

[cluster]
name = "lab"
endpoint = "{VIP}:6443"
{lb}

[mirrors]
kubernetes = "http://{MIRROR}/kubernetes"
calico_manifest = "http://{MIRROR}/calico/tigera-operator.yaml"

{machines}"#,
            lb = if stacked {
                "load_balancer = \"stacked\""
            } else {
                ""
            },
        );
        let lab = |args: &[&str]| {
            let out = run(Command::new(LAB)
                .args(args)
                .env("LAB_STATE", state.path().join("run"))
                .env("LAB_DISKS", state.path().join("disks")));
            assert!(out.status.success(), "lab.sh {args:?}:\n{}", text(&out));
        };
        lab(&["net-up", &ns.name, "10.0.0.1/24"]);
        ns.ip(&["addr", "add", "10.0.0.2/24", "dev", "bh0"]);
        lab(&["mirror-start", &ns.name, MIRROR, repo.to_str().unwrap()]);
        let server = Server::start(&ns, &config);
        if !Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
            cgroup_v1_overrides(&server.data_dir);
            server.cli(&["reload"]);
        }
        say(started, "bootherd serves the lab at 10.0.0.2");
        Lab {
            ns,
            server,
            nodes: nodes.to_vec(),
            state,
            seeds,
            started,
            tokens: BTreeMap::new(),
        }
    }

    fn say(&self, what: &str) {
        say(self.started, what);
    }

    fn lab(&self, args: &[&str]) -> Output {
        run(Command::new(LAB)
            .args(args)
            .env("LAB_STATE", self.state.path().join("run"))
            .env("LAB_DISKS", self.state.path().join("disks")))
    }

    #[track_caller]
    fn lab_ok(&self, args: &[&str]) -> String {
        let out = self.lab(args);
        assert!(out.status.success(), "lab.sh {args:?}:\n{}", text(&out));
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    fn spec(&self, name: &str) -> Spec {
        *self.nodes.iter().find(|n| n.name == name).unwrap()
    }

    /// What the installer does for `name`: fetch its seed from bootherd,
    /// lay the installed system's cloud-config down as NoCloud's seed, and
    /// report the install finished with the install token.
    fn install(&mut self, name: &'static str) {
        let n = self.spec(name);
        let mac = n.mac.replace(':', "-");
        let (code, user_data) = self
            .server
            .curl(&[&format!("{}/cloud-init/{mac}/user-data", self.server.http)]);
        assert_eq!(code, 200, "{name}'s seed: {user_data}");
        let doc: serde_yaml::Value = serde_yaml::from_str(&user_data).unwrap();
        let installed = &doc["autoinstall"]["user-data"];
        assert!(
            installed.is_mapping(),
            "{name} got no first boot:\n{user_data}"
        );
        let i = user_data.find("installed?token=").unwrap() + "installed?token=".len();
        let token = user_data[i..i + 32].to_string();
        let seed = self.seeds.path().join(name);
        let _ = std::fs::remove_dir_all(&seed);
        std::fs::create_dir_all(&seed).unwrap();
        std::fs::write(
            seed.join("user-data"),
            format!(
                "#cloud-config\n{}",
                serde_yaml::to_string(installed).unwrap()
            ),
        )
        .unwrap();
        std::fs::write(
            seed.join("meta-data"),
            format!(
                "instance-id: {name}-{}\nlocal-hostname: {name}\n",
                &token[..12]
            ),
        )
        .unwrap();
        let (code, body) = self.server.curl(&[
            "-X",
            "POST",
            &format!(
                "{}/api/v1/machines/{mac}/installed?token={token}",
                self.server.http
            ),
        ]);
        assert_eq!(code, 204, "{name}'s install report: {body}");
        self.tokens.insert(name, token);
    }

    /// The id of the bootstrap token `name`'s seed carries.
    fn seeded_token_id(&self, name: &str) -> String {
        let seed = std::fs::read_to_string(self.seeds.path().join(name).join("user-data")).unwrap();
        let i = seed.find("token: \"").expect("a token in the seed") + "token: \"".len();
        seed[i..i + 6].to_string()
    }

    /// Powers `name` on: its installed disk boots (a fresh one the first time).
    fn power_on(&self, name: &str) {
        let n = self.spec(name);
        let seed = self.seeds.path().join(name);
        self.lab_ok(&[
            "node-start",
            &self.ns.name,
            name,
            n.mac,
            &format!("{}/24", n.ip),
            "10.0.0.1",
            "10.0.0.1",
            seed.to_str().unwrap(),
        ]);
        self.say(&format!("{name} powered on"));
    }

    fn install_and_power_on(&mut self, name: &'static str) {
        self.install(name);
        self.power_on(name);
    }

    /// bootherd's lifecycle state of every machine, by hostname.
    fn states(&self) -> BTreeMap<String, String> {
        let (code, body) = self
            .server
            .curl(&[&format!("{}/api/v1/machines", self.server.http)]);
        assert_eq!(code, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["hostname"].as_str().unwrap_or("").to_string(),
                    m["state"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    }

    /// Waits until `done(states)` holds, printing each change; on timeout,
    /// fails with the states, the failure logs bootherd holds and the
    /// nodes' first-boot logs.
    fn wait_until(&self, what: &str, secs: u64, done: impl Fn(&BTreeMap<String, String>) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut last = BTreeMap::new();
        loop {
            let now = self.states();
            if now != last {
                let line: Vec<String> = now.iter().map(|(h, s)| format!("{h}={s}")).collect();
                self.say(&line.join(" "));
                last = now.clone();
            }
            if done(&now) {
                self.say(&format!("{what}: done"));
                return;
            }
            if Instant::now() > deadline {
                panic!("{what}: not within {secs} s\n{}", self.diagnostics());
            }
            std::thread::sleep(Duration::from_secs(3));
        }
    }

    fn wait_all_joined(&self, secs: u64) {
        let names: Vec<&str> = self.nodes.iter().map(|n| n.name).collect();
        self.wait_until("every machine joined", secs, |s| {
            names
                .iter()
                .all(|n| s.get(*n).map(String::as_str) == Some("joined"))
        });
    }

    fn diagnostics(&self) -> String {
        let mut out = format!("states: {:?}\n", self.states());
        for n in self.nodes.iter().filter(|n| n.role == "control-plane") {
            let log = self.exec(
                n.name,
                &[
                    "sh",
                    "-c",
                    "tail -n 15 /var/log/pods/kube-system_etcd-*/*.log",
                ],
            );
            out.push_str(&format!("--- {} etcd ---\n{}\n", n.name, text(&log)));
        }
        for n in &self.nodes {
            let log = self.lab(&[
                "node-exec",
                n.name,
                "tail",
                "-n",
                "40",
                "/var/log/bootherd-firstboot.log",
            ]);
            out.push_str(&format!("--- {} first boot ---\n{}\n", n.name, text(&log)));
        }
        out
    }

    /// Runs `cmd` inside the running node `name`.
    fn exec(&self, name: &str, cmd: &[&str]) -> Output {
        let mut args = vec!["node-exec", name];
        args.extend_from_slice(cmd);
        self.lab(&args)
    }

    /// Files for an etcd client of the cluster (bootherd's etcd CA) and an
    /// admin of its API server (bootherd's CA), in the lab's state dir.
    fn client_certs(&self) -> PathBuf {
        let (mut cfg, _) = bootherd::config::Config::load(&self.server.config_path).unwrap();
        cfg.server.data_dir = self.server.data_dir.clone();
        let secrets = bootherd::cluster::Secrets::load_or_create(&cfg).unwrap();
        let dir = self.state.path().join("certs");
        std::fs::create_dir_all(&dir).unwrap();
        let write = |name: &str,
                     ca: &bootherd::cluster::pki::CertKey,
                     cert: bootherd::cluster::pki::CertKey| {
            std::fs::write(dir.join(format!("{name}-ca.crt")), &ca.cert_pem).unwrap();
            std::fs::write(dir.join(format!("{name}.crt")), &cert.cert_pem).unwrap();
            std::fs::write(dir.join(format!("{name}.key")), &cert.key_pem).unwrap();
        };
        let etcd = bootherd::cluster::pki::issue_client(
            secrets.etcd_ca(),
            "lab",
            &[],
            time::Duration::hours(2),
        )
        .unwrap();
        write("etcd", secrets.etcd_ca(), etcd);
        write(
            "admin",
            secrets.ca(),
            bootherd::cluster::pki::issue_admin_client(secrets.ca()).unwrap(),
        );
        dir
    }

    /// curl inside the lab network with the client cert `who` ("etcd", "admin").
    fn curl_as(&self, who: &str, args: &[&str]) -> (bool, String) {
        let dir = self.client_certs();
        let out = run(self
            .ns
            .cmd("curl")
            .args(["-sS", "--max-time", "10", "--cacert"])
            .arg(dir.join(format!("{who}-ca.crt")))
            .arg("--cert")
            .arg(dir.join(format!("{who}.crt")))
            .arg("--key")
            .arg(dir.join(format!("{who}.key")))
            .args(args));
        if out.status.success() {
            (true, String::from_utf8_lossy(&out.stdout).to_string())
        } else {
            (false, text(&out))
        }
    }

    /// The etcd cluster as the member at `ip` sees it: (name, is learner)
    /// of each member, and the cluster ID.
    fn etcd_members(&self, ip: &str) -> (Vec<(String, bool)>, String) {
        // A member promoted a moment ago may still be catching up.
        let deadline = Instant::now() + Duration::from_secs(30);
        let (ok, body) = loop {
            let (ok, body) = self.curl_as(
                "etcd",
                &[
                    "-X",
                    "POST",
                    "-d",
                    "{}",
                    &format!("https://{ip}:2379/v3/cluster/member/list"),
                ],
            );
            if ok || Instant::now() > deadline {
                break (ok, body);
            }
            std::thread::sleep(Duration::from_secs(2));
        };
        assert!(ok, "etcd at {ip}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let mut members: Vec<(String, bool)> = v["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["name"].as_str().unwrap_or("").to_string(),
                    m["isLearner"].as_bool().unwrap_or(false),
                )
            })
            .collect();
        members.sort();
        (
            members,
            v["header"]["cluster_id"].as_str().unwrap_or("").to_string(),
        )
    }

    /// The converged cluster, as an operator would check it.
    fn assert_converged(&self, control_planes: &[&str], workers: &[&str]) {
        let mut ids = Vec::new();
        for cp in control_planes {
            let (members, id) = self.etcd_members(self.spec(cp).ip);
            let want: Vec<(String, bool)> = control_planes
                .iter()
                .map(|c| (c.to_string(), false))
                .collect();
            let mut want = want;
            want.sort();
            assert_eq!(
                members, want,
                "etcd as {cp} sees it: started voting members"
            );
            ids.push(id);
        }
        ids.dedup();
        assert_eq!(ids.len(), 1, "one etcd cluster ID: {ids:?}");
        for n in &self.nodes {
            // A node that just rebooted may need a few seconds for its network.
            let deadline = Instant::now() + Duration::from_secs(60);
            let out = loop {
                let out = self.exec(
                    n.name,
                    &[
                        "curl",
                        "-ksf",
                        "--max-time",
                        "10",
                        &format!("https://{VIP}:6443/livez"),
                    ],
                );
                if out.status.success() || Instant::now() > deadline {
                    break out;
                }
                std::thread::sleep(Duration::from_secs(2));
            };
            assert!(
                out.status.success(),
                "{}: /livez through the VIP: {}",
                n.name,
                text(&out)
            );
        }
        let (ok, body) = self.curl_as(
            "admin",
            &[
                "--resolve",
                &format!("kubernetes:6443:{VIP}"),
                "https://kubernetes:6443/api/v1/nodes",
            ],
        );
        assert!(ok, "nodes through the VIP: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let nodes: Vec<&str> = v["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|n| n["metadata"]["name"].as_str())
            .collect();
        for w in workers {
            assert!(nodes.contains(w), "{w} is a Node: {nodes:?}");
        }
        self.say(&format!(
            "converged: etcd {ids:?} with {control_planes:?}; Nodes {nodes:?}"
        ));
    }

    /// Which control plane ran `kubeadm init` (its role script records it).
    fn initialiser(&self, control_planes: &[&str]) -> String {
        let ran_init: Vec<&str> = control_planes
            .iter()
            .copied()
            .filter(|cp| {
                let out = self.exec(cp, &["cat", "/var/lib/bootherd/control-plane-action"]);
                String::from_utf8_lossy(&out.stdout).trim() == "init"
            })
            .collect();
        assert_eq!(
            ran_init.len(),
            1,
            "exactly one control plane ran init: {ran_init:?}"
        );
        ran_init[0].to_string()
    }

    /// `bootherd reimage NAME`, then the machine reinstalls: power cut, a
    /// wiped disk, the installer again, power on.
    fn reimage(&mut self, name: &'static str) {
        let out = run(&mut self.server.cli_cmd(&["reimage", name]));
        assert!(out.status.success(), "reimage {name}: {}", text(&out));
        self.say(&format!("reimage {name}: {}", text(&out).trim()));
        // Its member left first, and the others kept quorum.
        let other = self
            .nodes
            .iter()
            .find(|n| n.role == "control-plane" && n.name != name)
            .unwrap();
        let (members, _) = self.etcd_members(other.ip);
        assert!(
            members.iter().all(|(m, _)| m != name),
            "{name}'s etcd member is removed before it reinstalls: {members:?}"
        );
        // Removing the leader makes etcd elect another: /health is false
        // for that moment. Quorum held means it is true again at once.
        let deadline = Instant::now() + Duration::from_secs(20);
        let health = loop {
            let (ok, health) =
                self.curl_as("etcd", &[&format!("https://{}:2379/health", other.ip)]);
            if (ok && health.contains("\"health\":\"true\"")) || Instant::now() > deadline {
                break health;
            }
            std::thread::sleep(Duration::from_millis(500));
        };
        assert!(
            health.contains("\"health\":\"true\""),
            "quorum held: {health}"
        );
        self.lab_ok(&["node-kill", name]);
        self.lab_ok(&["node-wipe", name]);
        self.install_and_power_on(name);
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.diagnostics());
        }
        let _ = self.lab(&["down"]);
    }
}

/// The example cluster in the worst order: the package mirror unreachable
/// for the first minutes, workers first, cp3 and cp2 before cp1, the load
/// balancers last; the MASTER load balancer dies half-way; one worker's
/// seed token has expired when it first boots. Then the control plane that
/// ran init is reimaged, and another: each rejoins the same cluster.
#[test]
fn the_example_cluster_converges_and_every_reimage_rejoins() {
    let _one = ONE_LAB.lock().unwrap_or_else(|p| p.into_inner());
    let mut lab = Lab::start("clab", EXAMPLE, false);

    // w2 is installed now, and sits powered off while its token expires.
    lab.install("w2");
    // The mirror is down as the first machines power on: workers first,
    // then cp3 and cp2; cp1 a minute later; the load balancers last, so the
    // control plane that holds the init slot waits for the VIP.
    lab.lab_ok(&["mirror-block", &lab.ns.name.clone(), "reject"]);
    lab.say("mirror blocked");
    for n in ["w1", "cp3", "cp2"] {
        lab.install_and_power_on(n);
    }
    std::thread::sleep(Duration::from_secs(60));
    lab.lab_ok(&["mirror-unblock", &lab.ns.name.clone()]);
    lab.say("mirror back");
    lab.install_and_power_on("cp1");
    lab.wait_until("a control plane waits for the VIP to init", 600, |_| {
        ["cp1", "cp2", "cp3"].iter().any(|cp| {
            let out = lab.exec(
                cp,
                &[
                    "grep",
                    "-c",
                    "nothing listens on the VIP",
                    "/var/log/bootherd-firstboot.log",
                ],
            );
            out.status.success()
        })
    });
    for n in ["lb1", "lb2"] {
        lab.install_and_power_on(n);
    }

    // Half-way: the first control plane joined; the VIP's holder dies.
    lab.wait_until("a control plane joined", 900, |s| {
        ["cp1", "cp2", "cp3"]
            .iter()
            .any(|c| s.get(*c).map(String::as_str) == Some("joined"))
    });
    let master = ["lb1", "lb2"]
        .into_iter()
        .find(|lb| {
            let out = lab.exec(lb, &["ip", "-o", "addr", "show"]);
            String::from_utf8_lossy(&out.stdout).contains(&format!("inet {VIP}/"))
        })
        .expect("a load balancer holds the VIP");
    lab.lab_ok(&["node-kill", master]);
    lab.say(&format!("{master} (MASTER) killed"));

    let others: Vec<&str> = EXAMPLE
        .iter()
        .map(|n| n.name)
        .filter(|n| *n != master && *n != "w2")
        .collect();
    lab.wait_until("the rest joined with the VIP moved", 900, |s| {
        others
            .iter()
            .all(|n| s.get(*n).map(String::as_str) == Some("joined"))
    });

    // bootherd renews the token, and the one w2 was seeded with is gone
    // from the cluster, as when it expired.
    let out = run(&mut lab.server.cli_cmd(&["cluster", "renew-token", "--force"]));
    assert!(
        out.status.success() && text(&out).contains("minted bootstrap token"),
        "renew-token: {}",
        text(&out)
    );
    let seeded = lab.seeded_token_id("w2");
    let (ok, body) = lab.curl_as(
        "admin",
        &[
            "-X",
            "DELETE",
            "--resolve",
            &format!("kubernetes:6443:{VIP}"),
            &format!("https://kubernetes:6443/api/v1/namespaces/kube-system/secrets/bootstrap-token-{seeded}"),
        ],
    );
    assert!(ok, "deleting w2's seeded token: {body}");
    lab.power_on("w2");
    lab.wait_until("w2 joined with the renewed token", 600, |s| {
        s.get("w2").map(String::as_str) == Some("joined")
    });
    // The dead load balancer comes back (its disk kept): a reboot.
    lab.power_on(master);
    lab.assert_converged(&["cp1", "cp2", "cp3"], &["w1", "w2"]);
    let joined_with = lab.exec("w2", &["cat", "/etc/bootherd/kubeadm-join.final.yaml"]);
    let joined_with = String::from_utf8_lossy(&joined_with.stdout).to_string();
    assert!(joined_with.contains("token: \""), "{joined_with}");
    assert!(
        !joined_with.contains(&format!("token: \"{seeded}.")),
        "w2 joined with bootherd's renewed token, not its seed's:\n{joined_with}"
    );
    let (_, cluster_id) = lab.etcd_members("10.0.0.11");

    // Reimage the control plane that ran init, then another.
    let first = lab.initialiser(&["cp1", "cp2", "cp3"]);
    let first: &'static str = ["cp1", "cp2", "cp3"]
        .into_iter()
        .find(|c| *c == first)
        .unwrap();
    let second: &'static str = ["cp1", "cp2", "cp3"]
        .into_iter()
        .find(|c| *c != first)
        .unwrap();
    for cp in [first, second] {
        lab.reimage(cp);
        lab.wait_until(&format!("{cp} rejoined"), 600, |s| {
            s.get(cp).map(String::as_str) == Some("joined")
        });
        let others: Vec<&str> = ["cp1", "cp2", "cp3"]
            .into_iter()
            .filter(|c| *c != cp)
            .collect();
        let (members, id) = lab.etcd_members(lab.spec(others[0]).ip);
        assert_eq!(
            id, cluster_id,
            "{cp} rejoined the same cluster: {members:?}"
        );
        let out = lab.exec(cp, &["cat", "/var/lib/bootherd/control-plane-action"]);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "join",
            "no second init"
        );
    }
    lab.assert_converged(&["cp1", "cp2", "cp3"], &["w1", "w2"]);

    // A reimage that would cost quorum is refused, and changes nothing.
    lab.lab_ok(&["node-kill", "cp3"]);
    let out = run(&mut lab.server.cli_cmd(&["reimage", "cp2"]));
    assert!(
        !out.status.success(),
        "reimaging cp2 with cp3 down must be refused"
    );
    assert!(text(&out).contains("quorum"), "{}", text(&out));
    assert_eq!(lab.states().get("cp2").map(String::as_str), Some("joined"));
    lab.say("done");
}

/// The stacked variant: the control planes hold the VIP themselves; all
/// but cp1 power on together, cp1 last.
#[test]
fn the_stacked_cluster_converges_with_cp1_last() {
    let _one = ONE_LAB.lock().unwrap_or_else(|p| p.into_inner());
    let mut lab = Lab::start("cstk", STACKED, true);
    for n in ["w1", "cp2", "cp3"] {
        lab.install_and_power_on(n);
    }
    std::thread::sleep(Duration::from_secs(30));
    lab.install_and_power_on("cp1");
    lab.wait_all_joined(900);
    lab.assert_converged(&["cp1", "cp2", "cp3"], &["w1"]);
    let first = lab.initialiser(&["cp1", "cp2", "cp3"]);
    assert_ne!(
        first, "cp1",
        "cp1 powered on last: another control plane inits"
    );
}

/// The example cluster with every machine powered on at the same moment,
/// as after a power cut.
#[test]
fn the_example_cluster_converges_when_everything_powers_on_at_once() {
    let _one = ONE_LAB.lock().unwrap_or_else(|p| p.into_inner());
    let mut lab = Lab::start("call", EXAMPLE, false);
    for n in EXAMPLE {
        lab.install(n.name);
    }
    for n in EXAMPLE {
        lab.power_on(n.name);
    }
    lab.wait_all_joined(900);
    lab.assert_converged(&["cp1", "cp2", "cp3"], &["w1", "w2"]);
    lab.initialiser(&["cp1", "cp2", "cp3"]);
}
