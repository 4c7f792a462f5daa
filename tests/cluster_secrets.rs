//! The cluster secrets, checked by the real validator (openssl): the CA hash
//! that `bootherd cluster info` prints, every cert against its CA and its
//! SANs, file modes, idempotence, refusal to regenerate over damage; and the
//! bootstrap-token minting request against a local HTTPS server that checks
//! the path, the body and the client certificate.

mod common;

use bootherd::cluster::{pki, token, Secrets};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The example cluster with a worker.
fn cluster_config(data_dir: &Path) -> String {
    let worker = common::machine("52:54:00:aa:00:31", "w1", "worker", "10.0.0.31");
    format!("{}\n{worker}", common::EXAMPLE_CLUSTER)
        .replace("/var/lib/bootherd", data_dir.to_str().unwrap())
}

const CONTROL_PLANES: [(&str, &str); 3] = [
    ("cp1", "10.0.0.11"),
    ("cp2", "10.0.0.12"),
    ("cp3", "10.0.0.13"),
];

struct Lab {
    _tmp: tempfile::TempDir,
    config: PathBuf,
    data: PathBuf,
}

impl Lab {
    fn new() -> Lab {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let config = tmp.path().join("bootherd.toml");
        std::fs::write(&config, cluster_config(&data)).unwrap();
        Lab {
            _tmp: tmp,
            config,
            data,
        }
    }
    fn cluster(&self) -> PathBuf {
        self.data.join("cluster")
    }
    /// Runs `bootherd cluster info`: (success, stdout, stderr).
    fn info(&self) -> (bool, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_bootherd"))
            .arg("--config")
            .arg(&self.config)
            .args(["cluster", "info"])
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
    fn info_ok(&self) -> String {
        let (ok, out, err) = self.info();
        assert!(ok, "bootherd cluster info failed:\n{err}");
        out
    }
    fn config(&self) -> bootherd::config::Config {
        let (mut c, _) = bootherd::config::Config::load(&self.config).unwrap();
        c.server.data_dir = self.data.clone();
        c
    }
}

/// Every file under `dir`, relative path → (bytes, mtime).
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, std::time::SystemTime)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let meta = std::fs::metadata(&p).unwrap();
                out.insert(
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    (std::fs::read(&p).unwrap(), meta.modified().unwrap()),
                );
            }
        }
    }
    out
}

fn sh(script: &str, cwd: &Path) -> (bool, String) {
    let out = Command::new("sh")
        .args(["-c", script])
        .current_dir(cwd)
        .output()
        .expect("sh runs");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn field<'a>(info: &'a str, name: &str) -> &'a str {
    info.lines()
        .find_map(|l| l.strip_prefix(name))
        .unwrap_or_else(|| panic!("no {name} in:\n{info}"))
        .trim()
}

#[test]
fn printed_ca_hash_equals_openssls() {
    let lab = Lab::new();
    let info = lab.info_ok();
    assert_eq!(field(&info, "endpoint:"), "10.0.0.100:6443");
    let expires = field(&info, "token expires:");
    assert!(
        expires.contains("(in 23h 59m)") || expires.contains("(in 24h 00m)"),
        "{info}"
    );
    let printed = field(&info, "ca cert hash:");
    let (ok, out) = sh(
        "openssl x509 -pubkey -noout -in ca.crt | openssl pkey -pubin -outform der | sha256sum",
        &lab.cluster(),
    );
    assert!(ok, "{out}");
    let hex = out.split_whitespace().next().unwrap();
    assert_eq!(printed, format!("sha256:{hex}"));
}

#[test]
fn every_cert_verifies_against_its_ca_and_has_kubeadms_sans() {
    let lab = Lab::new();
    lab.info_ok();
    let dir = lab.cluster();
    for ca in ["ca", "front-proxy-ca", "etcd-ca"] {
        let (ok, out) = sh(
            &format!("openssl verify -CAfile {ca}.crt {ca}.crt && openssl x509 -in {ca}.crt -noout -ext basicConstraints"),
            &dir,
        );
        assert!(ok && out.contains("CA:TRUE"), "{ca}: {out}");
        // The key belongs to the cert.
        let (ok, out) = sh(
            &format!("[ \"$(openssl x509 -in {ca}.crt -noout -pubkey)\" = \"$(openssl pkey -in {ca}.key -pubout)\" ]"),
            &dir,
        );
        assert!(ok, "{ca}.key does not match {ca}.crt: {out}");
    }
    let (ok, out) = sh(
        "[ \"$(openssl pkey -in sa.key -pubout)\" = \"$(cat sa.pub)\" ]",
        &dir,
    );
    assert!(ok, "sa.pub is not sa.key's public key: {out}");

    for (host, ip) in CONTROL_PLANES {
        let crt = format!("apiserver/{host}/apiserver.crt");
        let (ok, out) = sh(&format!("openssl verify -CAfile ca.crt {crt}"), &dir);
        assert!(ok, "{crt}: {out}");
        let (ok, out) = sh(
            &format!("openssl verify -CAfile front-proxy-ca.crt {crt}"),
            &dir,
        );
        assert!(!ok, "{crt} must not verify against another CA: {out}");
        let (ok, sans) = sh(
            &format!("openssl x509 -in {crt} -noout -ext subjectAltName,extendedKeyUsage"),
            &dir,
        );
        assert!(ok, "{sans}");
        let mut want: Vec<String> = [
            host,
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ]
        .iter()
        .map(|n| format!("DNS:{n}"))
        .collect();
        want.extend(
            [
                "10.0.0.100",
                "10.96.0.1",
                ip,
                "10.0.0.11",
                "10.0.0.12",
                "10.0.0.13",
            ]
            .iter()
            .map(|a| format!("IP Address:{a}")),
        );
        let listed: Vec<&str> = sans
            .lines()
            .filter(|l| l.contains("DNS:"))
            .flat_map(|l| l.split(", "))
            .map(str::trim)
            .collect();
        for w in &want {
            assert!(listed.contains(&w.as_str()), "{crt} lacks {w}: {sans}");
        }
        assert!(sans.contains("TLS Web Server Authentication"), "{sans}");
        let (ok, out) = sh(
            &format!("[ \"$(openssl x509 -in {crt} -noout -pubkey)\" = \"$(openssl pkey -in apiserver/{host}/apiserver.key -pubout)\" ]"),
            &dir,
        );
        assert!(ok, "{host}.key does not match: {out}");
    }
}

#[test]
fn files_are_0600_in_0700_directories() {
    let lab = Lab::new();
    lab.info_ok();
    let files = snapshot(&lab.cluster());
    assert!(files.len() >= 16, "{:?}", files.keys());
    for rel in files.keys() {
        let mode = std::fs::metadata(lab.cluster().join(rel))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{}", rel.display());
    }
    for d in [
        lab.cluster(),
        lab.cluster().join("apiserver"),
        lab.cluster().join("apiserver/cp1"),
    ] {
        let mode = std::fs::metadata(&d).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "{}", d.display());
    }
}

#[test]
fn a_second_run_changes_nothing() {
    let lab = Lab::new();
    let first_info = lab.info_ok();
    let before = snapshot(&lab.cluster());
    // mtimes have a coarse grain on some filesystems: let a rewrite show.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let second_info = lab.info_ok();
    assert_eq!(
        field(&first_info, "ca cert hash:"),
        field(&second_info, "ca cert hash:")
    );
    assert_eq!(
        field(&first_info, "token id:"),
        field(&second_info, "token id:")
    );
    let after = snapshot(&lab.cluster());
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>()
    );
    for (rel, (bytes, mtime)) in &before {
        assert!(&after[rel].0 == bytes, "{} changed", rel.display());
        assert_eq!(&after[rel].1, mtime, "{} was rewritten", rel.display());
    }
}

/// Runs `damage` on a fresh set; `cluster info` must fail naming `file`
/// with `expect`, and leave every file as the damage left it.
fn refuses(file: &str, expect: &str, damage: impl FnOnce(&Path)) {
    let lab = Lab::new();
    lab.info_ok();
    damage(&lab.cluster());
    let before = snapshot(&lab.cluster());
    let (ok, out, err) = lab.info();
    assert!(!ok, "damaged {file} was accepted:\n{out}");
    assert!(err.contains(file) && err.contains(expect), "{err}");
    assert!(
        err.contains("restore"),
        "the error must say what to do: {err}"
    );
    assert_eq!(before, snapshot(&lab.cluster()), "files changed");
}

#[test]
fn a_missing_file_is_an_error_not_a_regeneration() {
    for f in ["sa.pub", "ca.key", "bootstrap-token.json", "vrrp-password"] {
        refuses(f, "is missing", |d| {
            std::fs::remove_file(d.join(f)).unwrap()
        });
    }
    refuses("cp2/apiserver.crt", "is missing", |d| {
        std::fs::remove_file(d.join("apiserver/cp2/apiserver.crt")).unwrap()
    });
}

#[test]
fn a_corrupt_file_is_an_error_not_a_regeneration() {
    refuses("ca.crt", "not a valid", |d| {
        std::fs::write(d.join("ca.crt"), "garbage\n").unwrap()
    });
    refuses("etcd-ca.key", "not a valid", |d| {
        let t = std::fs::read_to_string(d.join("etcd-ca.key")).unwrap();
        std::fs::write(d.join("etcd-ca.key"), &t[..t.len() / 2]).unwrap()
    });
    // A key that parses but belongs to another cert.
    refuses("ca.key", "private key for ca.crt", |d| {
        std::fs::copy(d.join("etcd-ca.key"), d.join("ca.key")).unwrap();
    });
    refuses("bootstrap-token.json", "not a valid", |d| {
        std::fs::write(
            d.join("bootstrap-token.json"),
            r#"{"token": "short.token", "expires": "2030-01-01T00:00:00Z"}"#,
        )
        .unwrap()
    });
    refuses("vrrp-password", "not a valid", |d| {
        std::fs::write(d.join("vrrp-password"), "far-too-long-password\n").unwrap()
    });
}

#[test]
fn a_control_plane_added_later_gets_its_cert_and_nothing_else_changes() {
    let lab = Lab::new();
    lab.info_ok();
    std::fs::remove_dir_all(lab.cluster().join("apiserver")).unwrap();
    let before = snapshot(&lab.cluster());
    lab.info_ok();
    let after = snapshot(&lab.cluster());
    for (rel, v) in &before {
        assert_eq!(&after[rel], v, "{}", rel.display());
    }
    for (host, _) in CONTROL_PLANES {
        assert!(after.contains_key(Path::new(&format!("apiserver/{host}/apiserver.crt"))));
    }
}

mod apiserver {
    //! A stand-in kube-apiserver: HTTPS on loopback with a serving cert from
    //! the cluster CA, requiring a client cert from that CA, recording what
    //! it was sent.
    use super::*;
    use http_body_util::{BodyExt, Full};
    use hyper::body::Bytes;
    use std::sync::{Arc, Mutex};
    use tokio::net::TcpListener;

    #[derive(Debug, Clone)]
    pub struct Seen {
        pub method: String,
        pub path: String,
        pub body: serde_json::Value,
        /// The client cert's subject organizations and common name.
        pub client_o: Vec<String>,
        pub client_cn: Vec<String>,
    }

    /// Starts the server; returns its `host:port` and the requests it saw.
    pub async fn start(ca: &pki::CertKey, status: u16) -> (String, Arc<Mutex<Vec<Seen>>>) {
        let acceptor = crate::common::mtls_acceptor(ca, "127.0.0.1".parse().unwrap());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                let record = record.clone();
                tokio::spawn(async move {
                    // A handshake without a valid client cert fails here.
                    let Ok(stream) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let peer = stream.get_ref().1.peer_certificates().unwrap()[0].clone();
                    let (_, cert) = x509_parser::parse_x509_certificate(&peer).unwrap();
                    let client_o: Vec<String> = cert
                        .subject()
                        .iter_organization()
                        .map(|a| a.as_str().unwrap().to_string())
                        .collect();
                    let client_cn: Vec<String> = cert
                        .subject()
                        .iter_common_name()
                        .map(|a| a.as_str().unwrap().to_string())
                        .collect();
                    let service = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| {
                            let record = record.clone();
                            let (client_o, client_cn) = (client_o.clone(), client_cn.clone());
                            async move {
                                let method = req.method().to_string();
                                let path = req.uri().path().to_string();
                                let bytes = req.into_body().collect().await?.to_bytes();
                                let body: serde_json::Value =
                                    serde_json::from_slice(&bytes).unwrap_or_default();
                                record.lock().unwrap().push(Seen {
                                    method,
                                    path,
                                    body: body.clone(),
                                    client_o,
                                    client_cn,
                                });
                                let resp = hyper::Response::builder()
                                    .status(status)
                                    .header("content-type", "application/json")
                                    .body(Full::new(Bytes::from(body.to_string())))
                                    .unwrap();
                                Ok::<_, hyper::Error>(resp)
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        (addr, seen)
    }
}

fn check_secret_request(seen: &apiserver::Seen, t: &token::BootstrapToken) {
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.path, "/api/v1/namespaces/kube-system/secrets");
    assert_eq!(seen.client_o, ["system:masters"]);
    assert_eq!(seen.client_cn, ["bootherd"]);
    let b = &seen.body;
    assert_eq!(b["apiVersion"], "v1");
    assert_eq!(b["kind"], "Secret");
    assert_eq!(b["metadata"]["name"], format!("bootstrap-token-{}", t.id()));
    assert_eq!(b["metadata"]["namespace"], "kube-system");
    assert_eq!(b["type"], "bootstrap.kubernetes.io/token");
    let d = &b["stringData"];
    assert_eq!(d["token-id"], t.id());
    assert_eq!(d["token-secret"], t.secret());
    assert_eq!(d["expiration"], t.expires_rfc3339());
    assert_eq!(d["usage-bootstrap-authentication"], "true");
    assert_eq!(d["usage-bootstrap-signing"], "true");
    assert_eq!(
        d["auth-extra-groups"],
        "system:bootstrappers:kubeadm:default-node-token"
    );
}

#[tokio::test]
async fn minting_posts_the_bootstrap_token_secret_with_an_admin_client_cert() {
    let lab = Lab::new();
    let secrets = Secrets::load_or_create(&lab.config()).unwrap();
    let (endpoint, seen) = apiserver::start(secrets.ca(), 201).await;
    let t = token::BootstrapToken::generate(time::OffsetDateTime::now_utc(), token::TOKEN_TTL);
    token::create_on_apiserver(&endpoint, secrets.ca(), &t)
        .await
        .unwrap();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    check_secret_request(&seen[0], &t);
}

#[tokio::test]
async fn a_token_near_expiry_is_renewed_on_the_cluster_then_saved() {
    let lab = Lab::new();
    let mut secrets = Secrets::load_or_create(&lab.config()).unwrap();
    let old = secrets.token().clone();
    let (endpoint, seen) = apiserver::start(secrets.ca(), 201).await;

    // Fresh: nothing to do, nothing sent.
    let now = time::OffsetDateTime::now_utc();
    assert!(!secrets.renew_token_if_due(&endpoint, now).await.unwrap());
    assert!(seen.lock().unwrap().is_empty());

    // 20 h later, 4 h are left: renewed.
    let later = now + time::Duration::hours(20);
    assert!(secrets.renew_token_if_due(&endpoint, later).await.unwrap());
    let fresh = secrets.token().clone();
    assert_ne!(fresh.token(), old.token());
    let left = fresh.remaining(later);
    assert!(
        left > time::Duration::hours(24) - time::Duration::seconds(2)
            && left <= time::Duration::hours(24),
        "{left}"
    );
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    check_secret_request(&seen[0], &fresh);
    // Saved: a restart finds the new token.
    let reloaded = Secrets::load_or_create(&lab.config()).unwrap();
    assert_eq!(reloaded.token(), &fresh);
}

#[tokio::test]
async fn a_refused_mint_keeps_the_old_token() {
    let lab = Lab::new();
    let mut secrets = Secrets::load_or_create(&lab.config()).unwrap();
    let old = secrets.token().clone();
    let (endpoint, _seen) = apiserver::start(secrets.ca(), 403).await;
    let later = time::OffsetDateTime::now_utc() + time::Duration::hours(23);
    let err = secrets
        .renew_token_if_due(&endpoint, later)
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("403"), "{err:#}");
    assert_eq!(secrets.token(), &old);
    let reloaded = Secrets::load_or_create(&lab.config()).unwrap();
    assert_eq!(reloaded.token(), &old);
}

#[tokio::test]
async fn a_server_with_a_cert_from_another_ca_is_not_trusted() {
    let lab = Lab::new();
    let secrets = Secrets::load_or_create(&lab.config()).unwrap();
    // The stand-in serves with a cert from the etcd CA, not the cluster CA.
    let (endpoint, seen) = apiserver::start(secrets.etcd_ca(), 201).await;
    let t = token::BootstrapToken::generate(time::OffsetDateTime::now_utc(), token::TOKEN_TTL);
    assert!(token::create_on_apiserver(&endpoint, secrets.ca(), &t)
        .await
        .is_err());
    assert!(seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn renew_token_command_mints_through_the_given_endpoint() {
    let lab = Lab::new();
    let before = field(&lab.info_ok(), "token id:").to_string();
    let secrets = Secrets::load_or_create(&lab.config()).unwrap();
    let (endpoint, seen) = apiserver::start(secrets.ca(), 201).await;
    let run = |force: bool| {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_bootherd"));
        cmd.arg("--config")
            .arg(&lab.config)
            .args(["cluster", "renew-token", "--endpoint", &endpoint])
            .env("RUST_LOG", "warn");
        if force {
            cmd.arg("--force");
        }
        cmd.output()
    };
    // Still fresh: nothing sent, nothing changed.
    let out = run(false).await.unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing to do"));
    assert!(seen.lock().unwrap().is_empty());
    assert_eq!(field(&lab.info_ok(), "token id:"), before);

    let out = run(true).await.unwrap();
    assert!(out.status.success(), "{out:?}");
    let after = field(&lab.info_ok(), "token id:").to_string();
    assert_ne!(after, before);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    let saved = Secrets::load_or_create(&lab.config()).unwrap();
    assert_eq!(saved.token().id(), after);
    check_secret_request(&seen[0], saved.token());
}

#[test]
fn concurrent_first_runs_agree_on_one_set() {
    let lab = Lab::new();
    let runs: Vec<_> = (0..4)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_bootherd"))
                .arg("--config")
                .arg(&lab.config)
                .args(["cluster", "info"])
                .env("RUST_LOG", "warn")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let hashes: Vec<String> = runs
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            field(&String::from_utf8_lossy(&out.stdout), "ca cert hash:").to_string()
        })
        .collect();
    let now = field(&lab.info_ok(), "ca cert hash:").to_string();
    assert!(hashes.iter().all(|h| *h == now), "{hashes:?} vs {now}");
}

#[test]
fn an_empty_cluster_directory_is_filled() {
    let lab = Lab::new();
    std::fs::create_dir_all(lab.cluster()).unwrap();
    lab.info_ok();
    assert!(lab.cluster().join("ca.crt").exists());
    let leftovers: Vec<_> = std::fs::read_dir(&lab.data)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().starts_with(".cluster.new"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
