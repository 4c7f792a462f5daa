//! Shared support for the integration tests: network namespaces with a veth
//! pair between them, and a `bootherd serve` running inside one.
//!
//! Tests need root (namespaces, port 67/69). All traffic stays inside the
//! namespaces a test makes; they are removed when the handles drop.
#![allow(dead_code)]

pub mod lab;
pub mod tftp_client;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The bootherd binary cargo built for these tests.
pub fn bootherd_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_bootherd"))
}

/// Fails the test with a clear message when a tool it needs is missing.
pub fn require(tools: &[&str]) {
    for t in tools {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {t}")])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        assert!(
            found,
            "`{t}` is not installed: run `sudo tests/install-deps.sh` (or `bash .ci/run`)"
        );
    }
    assert!(
        unsafe { libc::geteuid() } == 0,
        "integration tests need root (network namespaces); run them with sudo"
    );
}

/// Runs a command and returns its output; panics with stderr when it fails.
pub fn sh(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A network namespace, deleted (with every process left in it) on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Netns {
        let name = format!(
            "bh{}-{}-{}",
            tag,
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        sh(Command::new("ip").args(["netns", "add", &name]));
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// A command that runs inside this namespace.
    pub fn cmd(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }

    pub fn ip(&self, args: &[&str]) -> Output {
        sh(Command::new("ip").args(["-n", &self.name]).args(args))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Two namespaces joined by a veth pair: `server` has `bh0` with
/// `server_ip/24`; `client` has `cl0` up without an address (a DHCP client sets it).
pub struct Lan {
    pub server: Netns,
    pub client: Netns,
}

impl Lan {
    pub fn new(tag: &str, server_cidr: &str) -> Lan {
        let server = Netns::new(&format!("{tag}s"));
        let client = Netns::new(&format!("{tag}c"));
        link(&server, "bh0", &client, "cl0");
        server.ip(&["addr", "add", server_cidr, "dev", "bh0"]);
        Lan { server, client }
    }
}

/// A veth pair between two namespaces, named `a_if` in `a` and `b_if` in
/// `b`, both up and without addresses.
pub fn link(a: &Netns, a_if: &str, b: &Netns, b_if: &str) {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let (ta, tb) = (
        format!("bhv{}a{n}", std::process::id()),
        format!("bhv{}b{n}", std::process::id()),
    );
    sh(Command::new("ip").args(["link", "add", &ta, "type", "veth", "peer", "name", &tb]));
    sh(Command::new("ip").args(["link", "set", &ta, "netns", &a.name]));
    sh(Command::new("ip").args(["link", "set", &tb, "netns", &b.name]));
    a.ip(&["link", "set", &ta, "name", a_if]);
    b.ip(&["link", "set", &tb, "name", b_if]);
    a.ip(&["link", "set", a_if, "up"]);
    b.ip(&["link", "set", b_if, "up"]);
}

/// A `bootherd serve` running in a namespace, with its own data_dir.
pub struct Server {
    /// The namespace it runs in; `None` runs on the host (loopback-only configs).
    pub ns_name: Option<String>,
    pub data_dir: PathBuf,
    pub config_path: PathBuf,
    pub http: String,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Writes `config` (its `data_dir` must be `@DATA@`, replaced here) and starts serving.
    pub fn start(ns: &Netns, config: &str) -> Server {
        Server::start_in(Some(ns.name.clone()), config)
    }

    /// Starts on the host, for configs that only use loopback (no DHCP).
    pub fn start_local(config: &str) -> Server {
        Server::start_in(None, config)
    }

    fn start_in(ns_name: Option<String>, config: &str) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        std::fs::create_dir_all(&data_dir).unwrap();
        let config_path = dir.path().join("bootherd.toml");
        std::fs::write(
            &config_path,
            config.replace("@DATA@", data_dir.to_str().unwrap()),
        )
        .unwrap();
        let (cfg, _) = bootherd::config::Config::load(&config_path).expect("test config is valid");
        let http = cfg.http_base();
        let mut s = Server {
            ns_name,
            data_dir,
            config_path,
            http,
            child: None,
            _dir: dir,
        };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let child = self
            .in_ns(bootherd_bin())
            .args(["serve", "--config"])
            .arg(&self.config_path)
            .env("RUST_LOG", "bootherd=debug,info")
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start bootherd");
        self.child = Some(child);
        self.wait_ready();
    }

    pub fn log_path(&self) -> PathBuf {
        self.data_dir.parent().unwrap().join("bootherd.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Waits until the HTTP API answers inside the namespace.
    pub fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("bootherd exited early ({status}):\n{}", self.log());
            }
            let ok = self
                .cli_cmd(&["machines"])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false);
            if ok {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("bootherd did not become ready in 20 s:\n{}", self.log());
    }

    /// A `bootherd <args> --config …` command inside the namespace.
    pub fn cli_cmd(&self, args: &[&str]) -> Command {
        let mut c = self.in_ns(bootherd_bin());
        c.args(args).arg("--config").arg(&self.config_path);
        c
    }

    /// A command that runs where the server runs (its namespace, or the host).
    pub fn in_ns(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        match &self.ns_name {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(program);
                c
            }
            None => Command::new(program),
        }
    }

    /// `curl -sS <args>` where the server runs; returns (HTTP status, body).
    pub fn curl(&self, args: &[&str]) -> (u16, String) {
        let out = self
            .in_ns("curl")
            .args(["-sS", "-o", "-", "-w", "\n%{http_code}"])
            .args(args)
            .output()
            .expect("run curl");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse().unwrap_or(0), body.to_string())
    }

    /// Runs the CLI and returns stdout; panics when it fails.
    pub fn cli(&self, args: &[&str]) -> String {
        String::from_utf8(sh(&mut self.cli_cmd(args)).stdout).unwrap()
    }

    /// `kill -9`, as a crash or power cut would.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!("--- bootherd log ---\n{}", self.log());
        }
    }
}

/// The example cluster: a load balancer and three control
/// planes on 10.0.0.0/24 (addresses never contacted). `bootherd check`'s
/// tests edit it; the cluster-secret tests add a worker.
pub const EXAMPLE_CLUSTER: &str = r#"[server]
address = "10.0.0.2"
data_dir = "/var/lib/bootherd"

[dhcp]
subnet = "10.0.0.0/24"
gateway = "10.0.0.1"
pool = "10.0.0.200-10.0.0.250"

[cluster]
name = "lab"
kubernetes_version = "1.36"
endpoint = "10.0.0.100:6443"
pod_cidr = "10.244.0.0/16"
service_cidr = "10.96.0.0/12"

[[machine]]
mac = "52:54:00:aa:00:21"
hostname = "lb1"
role = "load-balancer"
ip = "10.0.0.21"

[[machine]]
mac = "52:54:00:aa:00:01"
hostname = "cp1"
role = "control-plane"
ip = "10.0.0.11"

[[machine]]
mac = "52:54:00:aa:00:02"
hostname = "cp2"
role = "control-plane"
ip = "10.0.0.12"

[[machine]]
mac = "52:54:00:aa:00:03"
hostname = "cp3"
role = "control-plane"
ip = "10.0.0.13"
"#;

/// A config for a test LAN 10.55.0.0/24 with bootherd on 10.55.0.1.
pub fn lan_config(machines: &str) -> String {
    format!(
        r#"[server]
interface = "bh0"
address = "10.55.0.1"
http_port = 8080
data_dir = "@DATA@"

[dhcp]
mode = "authoritative"
subnet = "10.55.0.0/24"
gateway = "10.55.0.1"
dns = ["10.55.0.1"]
pool = "10.55.0.200-10.55.0.250"
lease_time = "1h"

[cluster]
name = "lab"
kubernetes_version = "1.36"
endpoint = "10.55.0.100:6443"
load_balancer = "stacked"

{machines}"#
    )
}

/// A free TCP port on loopback (for servers on the host).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A config that serves HTTP only, on 127.0.0.1:`port` (no DHCP, no TFTP).
pub fn http_only_config(port: u16, machines: &str) -> String {
    format!(
        r#"[server]
address = "127.0.0.1"
http_port = {port}
data_dir = "@DATA@"

[dhcp]
mode = "off"

[tftp]
enabled = false
root = "@DATA@/tftp"

[cluster]
name = "lab"
kubernetes_version = "1.36"
endpoint = "10.55.0.100:6443"
load_balancer = "stacked"

{machines}"#
    )
}

/// A config that serves TFTP only, from `root` on 127.0.0.1:`port` (no DHCP),
/// with its data in `data`.
pub fn tftp_only_config(data: &Path, root: &Path, port: u16, machines: &str) -> String {
    format!(
        r#"[server]
interface = "lo"
address = "127.0.0.1"
data_dir = "{data}"

[dhcp]
mode = "off"

[tftp]
port = {port}
root = "{root}"

[cluster]
name = "lab"
kubernetes_version = "1.36"
endpoint = "10.55.0.100:6443"
load_balancer = "stacked"

{machines}"#,
        data = data.display(),
        root = root.display()
    )
}

/// A `[[machine]]` table.
pub fn machine(mac: &str, hostname: &str, role: &str, ip: &str) -> String {
    format!("[[machine]]\nmac = \"{mac}\"\nhostname = \"{hostname}\"\nrole = \"{role}\"\nip = \"{ip}\"\n\n")
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// TLS for an HTTPS stand-in of a cluster API (kube-apiserver, etcd): a
/// serving cert from `ca` for `ip`, and clients must present a cert signed by
/// `ca`, as the real servers require.
pub fn mtls_acceptor(
    ca: &bootherd::cluster::pki::CertKey,
    ip: std::net::IpAddr,
) -> tokio_rustls::TlsAcceptor {
    use rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
    use std::sync::Arc;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let serving =
        bootherd::cluster::pki::issue_apiserver(ca, vec![rcgen::SanType::IpAddress(ip)]).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.cert_pem.as_bytes()).unwrap())
        .unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![CertificateDer::from_pem_slice(serving.cert_pem.as_bytes()).unwrap()],
            PrivateKeyDer::from_pem_slice(serving.key_pem.as_bytes()).unwrap(),
        )
        .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(tls))
}

/// A raspi-like preinstalled image (as Ubuntu ships them): an MBR with a
/// FAT32 `system-boot` at 1 MiB holding `boot_files` (names may have
/// directories), then partition 2: an ext4 `writable` made from the
/// directory `root`, or 8 MiB of zeros without one. Written xz-compressed
/// to `<dir>/raspi.img.xz`. Needs mkfs.vfat, mtools, sfdisk, xz (and
/// mkfs.ext4 for `root`).
pub struct RaspiImage {
    pub xz: PathBuf,
    /// The uncompressed image.
    pub raw: Vec<u8>,
    /// The byte range of `system-boot` in `raw`.
    pub boot: std::ops::Range<usize>,
}

pub fn raspi_image(
    dir: &Path,
    boot_files: &std::collections::BTreeMap<String, Vec<u8>>,
    root: Option<&Path>,
) -> RaspiImage {
    use std::io::Write as _;
    let run = |cmd: &mut Command| {
        sh(cmd.stdout(Stdio::null()));
    };
    let src = dir.join("raspi-boot-src");
    let fat = dir.join("raspi-boot.fat");
    // 64 MiB FAT32, as Ubuntu's `system-boot`.
    run(Command::new("mkfs.vfat")
        .args(["-F", "32", "-n", "system-boot", "-C"])
        .arg(&fat)
        .arg("65536"));
    let mut made = std::collections::BTreeSet::new();
    for (name, data) in boot_files {
        let path = src.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, data).unwrap();
        let mut parent = String::new();
        for part in name.split('/').collect::<Vec<_>>().split_last().unwrap().1 {
            parent = if parent.is_empty() {
                part.to_string()
            } else {
                format!("{parent}/{part}")
            };
            if made.insert(parent.clone()) {
                run(Command::new("mmd")
                    .arg("-i")
                    .arg(&fat)
                    .arg(format!("::{parent}")));
            }
        }
        run(Command::new("mcopy")
            .arg("-i")
            .arg(&fat)
            .arg(&path)
            .arg(format!("::{name}")));
    }
    let root_bytes = match root {
        Some(root) => {
            let ext4 = dir.join("raspi-root.ext4");
            run(Command::new("mkfs.ext4")
                .args(["-q", "-F", "-L", "writable", "-E", "root_owner=0:0", "-d"])
                .arg(root)
                .arg(&ext4)
                .arg("16M"));
            std::fs::read(&ext4).unwrap()
        }
        None => vec![0u8; 8 * 1024 * 1024],
    };
    let fat_bytes = std::fs::read(&fat).unwrap();
    let mut raw = vec![0u8; 1024 * 1024];
    let boot = raw.len()..raw.len() + fat_bytes.len();
    raw.extend_from_slice(&fat_bytes);
    raw.extend_from_slice(&root_bytes);
    let img = dir.join("raspi.img");
    std::fs::write(&img, &raw).unwrap();
    let mut child = Command::new("sfdisk")
        .args(["--no-reread", "--no-tell-kernel"])
        .arg(&img)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    write!(
        child.stdin.take().unwrap(),
        "label: dos\nstart=2048, size={}, type=c, bootable\nstart={}, size={}, type=83\n",
        fat_bytes.len() / 512,
        2048 + fat_bytes.len() / 512,
        root_bytes.len() / 512
    )
    .unwrap();
    assert!(child.wait().unwrap().success(), "sfdisk failed");
    let raw = std::fs::read(&img).unwrap();
    run(Command::new("xz").args(["-0", "-T1", "-f"]).arg(&img));
    RaspiImage {
        xz: dir.join("raspi.img.xz"),
        raw,
        boot,
    }
}

/// Debian's arm64 `busybox-static` package as tests/install-deps.sh
/// downloads it with `apt-get download` (which names it
/// `busybox-static_1%3a…_arm64.deb`); `BOOTHERD_ARM64_DEBS` overrides the
/// directory as it does for tests/lab/lab.sh.
pub fn arm64_busybox_deb() -> PathBuf {
    let dir = std::env::var_os("BOOTHERD_ARM64_DEBS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/bootherd-tests/arm64"));
    let mut debs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            name.starts_with("busybox-static_") && name.ends_with("_arm64.deb")
        })
        .collect();
    debs.sort();
    debs.pop().unwrap_or_else(|| {
        panic!(
            "no busybox-static_*_arm64.deb in {}: run `sudo tests/install-deps.sh`",
            dir.display()
        )
    })
}

/// A Debian package made by `dpkg-deb --build` in `dir`, named
/// `<package>_1.0_<arch>.deb`, installing `files` (path in the package,
/// bytes; mode 0755).
pub fn build_deb(dir: &Path, package: &str, arch: &str, files: &[(&str, &[u8])]) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let root = dir.join(format!("{package}-{arch}.root"));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("DEBIAN")).unwrap();
    std::fs::write(
        root.join("DEBIAN/control"),
        format!("Package: {package}\nVersion: 1.0\nArchitecture: {arch}\nMaintainer: bootherd tests <tests@example.invalid>\nDescription: a test package\n"),
    )
    .unwrap();
    for (path, data) in files {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, data).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let out = dir.join(format!("{package}_1.0_{arch}.deb"));
    sh(Command::new("dpkg-deb")
        .args(["--build", "--root-owner-group", "-Zxz"])
        .arg(&root)
        .arg(&out)
        .stdout(Stdio::null()));
    out
}

/// The file `inside` (e.g. `bin/busybox`) of a package as `dpkg-deb -x`
/// unpacks it: an extraction independent of bootherd's.
pub fn dpkg_extract(deb: &Path, inside: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    sh(Command::new("dpkg-deb").arg("-x").arg(deb).arg(dir.path()));
    std::fs::read(dir.path().join(inside)).unwrap()
}

/// A stand-in for the Pi installer's busybox under `data_dir`, with its
/// digest recorded, where `bootherd images fetch` extracts the real one: for
/// tests that serve a Pi's initrd but never run the installer. Returns the
/// bytes.
pub fn fake_pi_busybox(data_dir: &Path) -> Vec<u8> {
    let path = data_dir
        .join("images")
        .join(bootherd::images::BUSYBOX_SET)
        .join(bootherd::images::extract::BUSYBOX);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let bytes: Vec<u8> = b"\x7fELF stand-in busybox\n".repeat(1000);
    std::fs::write(&path, &bytes).unwrap();
    let digest = bootherd::images::verify::sha256_bytes(&bytes);
    bootherd::images::verify::write_record(&path, &digest).unwrap();
    bytes
}
