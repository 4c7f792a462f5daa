//! Reimage of a control plane against a real etcd (Debian's etcd-server,
//! `/usr/bin/etcd`): three members on loopback ports with TLS on the client
//! and peer URLs from bootherd's etcd CA and client-cert checking, as
//! kubeadm's stacked etcd runs. bootherd removes the reimaged node's member
//! by name and refuses when the removal would cost quorum. The Node deletion
//! goes to a local HTTPS stand-in of the API server that checks the client
//! certificate.

mod common;

use common::free_port;

use bootherd::cluster::etcd::{self, EtcdEndpoints, MemberRemoval, RemovalError};
use bootherd::cluster::nodes::{self, NodeDeletion};
use bootherd::cluster::{pki, Secrets};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ETCD: &str = "/usr/bin/etcd";

const CONFIG: &str = r#"[server]
address = "10.0.0.2"
data_dir = "DATA_DIR"

[dhcp]
subnet = "10.0.0.0/24"
pool = "10.0.0.200-10.0.0.250"

[cluster]
name = "lab"
kubernetes_version = "1.36"
endpoint = "10.0.0.100:6443"
pod_cidr = "10.244.0.0/16"
service_cidr = "10.96.0.0/12"
load_balancer = "stacked"

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

/// bootherd's secrets in a tempdir (the config's addresses are never
/// contacted: the tests pass loopback endpoints).
fn secrets(tmp: &Path) -> Secrets {
    let data = tmp.join("data");
    let text = CONFIG.replace("DATA_DIR", data.to_str().unwrap());
    let (mut config, _) = bootherd::config::parse(&text).unwrap();
    config.server.data_dir = data;
    Secrets::load_or_create(&config).unwrap()
}

/// A member's cert, signed by bootherd's etcd CA. It carries both server
/// and client auth, as kubeadm's `etcd/server.crt` and `etcd/peer.crt` do:
/// etcd presents its peer cert as a client to the other members, and its
/// gRPC gateway dials the member's own gRPC server with the serving cert.
/// pki's helpers issue one usage each, so the test signs with rcgen directly.
fn member_cert(ca: &pki::CertKey, name: &str, ip: &str) -> pki::CertKey {
    use rcgen::{
        CertificateParams, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair, KeyUsagePurpose,
        SanType,
    };
    let issuer =
        Issuer::from_ca_cert_pem(&ca.cert_pem, KeyPair::from_pem(&ca.key_pem).unwrap()).unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, name);
    params.subject_alt_names = vec![
        SanType::IpAddress(ip.parse().unwrap()),
        SanType::DnsName("localhost".try_into().unwrap()),
    ];
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    pki::CertKey {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

struct Member {
    name: String,
    client: String,
    child: Option<Child>,
}

/// Three etcd members cp1..cp3 on loopback, killed on drop.
struct EtcdCluster {
    dir: PathBuf,
    members: Vec<Member>,
}

impl EtcdCluster {
    /// cp1..cp3 all on 127.0.0.1, on free ports.
    fn start(dir: &Path, ca: &pki::CertKey) -> EtcdCluster {
        let ports: Vec<(String, u16, u16)> = (0..3)
            .map(|_| ("127.0.0.1".to_string(), free_port(), free_port()))
            .collect();
        EtcdCluster::start_at(dir, ca, &ports)
    }

    /// cp1, cp2, … at the given (ip, client port, peer port).
    fn start_at(dir: &Path, ca: &pki::CertKey, ports: &[(String, u16, u16)]) -> EtcdCluster {
        let ca_file = dir.join("etcd-ca.crt");
        std::fs::write(&ca_file, &ca.cert_pem).unwrap();
        let initial: Vec<String> = ports
            .iter()
            .enumerate()
            .map(|(i, (ip, _, peer))| format!("cp{}=https://{ip}:{peer}", i + 1))
            .collect();
        let mut members = Vec::new();
        for (i, (ip, client, peer)) in ports.iter().enumerate() {
            let name = format!("cp{}", i + 1);
            let cert = member_cert(ca, &name, ip);
            let (crt, key) = (
                dir.join(format!("{name}.crt")),
                dir.join(format!("{name}.key")),
            );
            std::fs::write(&crt, &cert.cert_pem).unwrap();
            std::fs::write(&key, &cert.key_pem).unwrap();
            let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
            let client_url = format!("https://{ip}:{client}");
            let peer_url = format!("https://{ip}:{peer}");
            let child = Command::new(ETCD)
                .arg(format!("--name={name}"))
                .arg(format!("--data-dir={}", dir.join(&name).display()))
                .arg(format!("--listen-client-urls={client_url}"))
                .arg(format!("--advertise-client-urls={client_url}"))
                .arg(format!("--listen-peer-urls={peer_url}"))
                .arg(format!("--initial-advertise-peer-urls={peer_url}"))
                .arg(format!("--initial-cluster={}", initial.join(",")))
                .arg("--initial-cluster-state=new")
                // One token per cluster: members derive the cluster ID from it.
                .arg(format!(
                    "--initial-cluster-token=bootherd-test-{}",
                    ports[0].1
                ))
                .arg(format!("--cert-file={}", crt.display()))
                .arg(format!("--key-file={}", key.display()))
                .arg("--client-cert-auth")
                .arg(format!("--trusted-ca-file={}", ca_file.display()))
                .arg(format!("--peer-cert-file={}", crt.display()))
                .arg(format!("--peer-key-file={}", key.display()))
                .arg("--peer-client-cert-auth")
                .arg(format!("--peer-trusted-ca-file={}", ca_file.display()))
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("cannot start {ETCD}: {e} (tests/install-deps.sh installs etcd-server)")
                });
            members.push(Member {
                name,
                client: client_url,
                child: Some(child),
            });
        }
        EtcdCluster {
            dir: dir.to_path_buf(),
            members,
        }
    }

    fn endpoints(&self) -> EtcdEndpoints {
        EtcdEndpoints::new(
            self.members
                .iter()
                .map(|m| (m.name.clone(), m.client.clone()))
                .collect(),
        )
    }

    fn client_url(&self, name: &str) -> &str {
        &self.members.iter().find(|m| m.name == name).unwrap().client
    }

    fn kill(&mut self, name: &str) {
        let m = self.members.iter_mut().find(|m| m.name == name).unwrap();
        if let Some(mut c) = m.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn logs(&self) -> String {
        self.members
            .iter()
            .map(|m| {
                let log = std::fs::read_to_string(self.dir.join(format!("{}.log", m.name)))
                    .unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(15).collect();
                format!(
                    "--- {} ---\n{}",
                    m.name,
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for m in &mut self.members {
            if let Some(mut c) = m.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// The test's own view of etcd: a client cert from the same CA.
fn test_client(ca: &pki::CertKey) -> reqwest::Client {
    let cert = pki::issue_client(ca, "test", &[], time::Duration::hours(1)).unwrap();
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca.cert_pem.as_bytes()).unwrap())
        .identity(
            reqwest::Identity::from_pem(format!("{}{}", cert.cert_pem, cert.key_pem).as_bytes())
                .unwrap(),
        )
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

async fn member_names(client: &reqwest::Client, base: &str) -> Vec<String> {
    let v: serde_json::Value = client
        .post(format!("{base}/v3/cluster/member/list"))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut names: Vec<String> = v["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap_or("").to_string())
        .collect();
    names.sort();
    names
}

async fn healthy(client: &reqwest::Client, base: &str) -> bool {
    let Ok(resp) = client.get(format!("{base}/health")).send().await else {
        return false;
    };
    let v: serde_json::Value = resp.json().await.unwrap_or_default();
    v["health"] == "true"
}

/// Waits until every running member reports healthy (after a kill, a new
/// leader may have to be elected first).
async fn wait_healthy(cluster: &EtcdCluster, client: &reqwest::Client) {
    let deadline = Instant::now() + Duration::from_secs(60);
    for m in cluster.members.iter().filter(|m| m.child.is_some()) {
        while !healthy(client, &m.client).await {
            assert!(
                Instant::now() < deadline,
                "etcd did not become healthy:\n{}",
                cluster.logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// etcd refuses membership changes ("unhealthy cluster", its strict
/// reconfiguration check) until the members have been connected for its
/// health interval of five seconds: a fresh cluster has to settle first.
async fn settle() {
    tokio::time::sleep(Duration::from_secs(6)).await;
}

fn setup() -> (tempfile::TempDir, Secrets) {
    assert!(
        Path::new(ETCD).exists(),
        "{ETCD} is missing: run tests/install-deps.sh (it installs etcd-server)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let s = secrets(tmp.path());
    (tmp, s)
}

#[tokio::test(flavor = "multi_thread")]
async fn removes_the_member_by_name_then_refuses_once_quorum_is_at_stake() {
    let (tmp, secrets) = setup();
    let ca = secrets.etcd_ca();
    let mut cluster = EtcdCluster::start(tmp.path(), ca);
    let client = test_client(ca);
    wait_healthy(&cluster, &client).await;
    settle().await;
    let endpoints = cluster.endpoints();
    let cp1 = cluster.client_url("cp1").to_string();
    assert_eq!(member_names(&client, &cp1).await, ["cp1", "cp2", "cp3"]);

    let removed = etcd::remove_member(ca, &endpoints, "cp3").await.unwrap();
    assert!(
        matches!(&removed, MemberRemoval::Removed { via, .. } if via == "cp1" || via == "cp2"),
        "{removed:?}\n{}",
        cluster.logs()
    );
    assert_eq!(member_names(&client, &cp1).await, ["cp1", "cp2"]);
    // The removed member stops; asking again finds nothing to remove.
    cluster.kill("cp3");
    assert_eq!(
        etcd::remove_member(ca, &endpoints, "cp3").await.unwrap(),
        MemberRemoval::NotAMember
    );

    // With cp2 down, cp1 alone is not a quorum of two: removing cp1 (or
    // anything) must be refused, and the member list stays as it is.
    cluster.kill("cp2");
    let refused = etcd::remove_member(ca, &endpoints, "cp1").await;
    let Err(RemovalError::Refused(reason)) = refused else {
        panic!("expected a refusal, got {refused:?}");
    };
    assert_eq!(
        reason,
        "removing cp1 would leave 0 of 1 etcd members healthy: quorum needs 1; bring cp2 back first"
    );
    assert_eq!(member_names(&client, &cp1).await, ["cp1", "cp2"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn refuses_to_remove_a_healthy_member_while_another_is_down() {
    let (tmp, secrets) = setup();
    let ca = secrets.etcd_ca();
    let mut cluster = EtcdCluster::start(tmp.path(), ca);
    let client = test_client(ca);
    wait_healthy(&cluster, &client).await;
    settle().await;
    cluster.kill("cp1");
    wait_healthy(&cluster, &client).await;
    let refused = etcd::remove_member(ca, &cluster.endpoints(), "cp2").await;
    let Err(RemovalError::Refused(reason)) = refused else {
        panic!("expected a refusal, got {refused:?}\n{}", cluster.logs());
    };
    assert_eq!(
        reason,
        "removing cp2 would leave 1 of 2 etcd members healthy: quorum needs 2; bring cp1 back first"
    );
    let cp2 = cluster.client_url("cp2").to_string();
    assert_eq!(member_names(&client, &cp2).await, ["cp1", "cp2", "cp3"]);
}

#[tokio::test]
async fn no_etcd_answering_means_no_cluster_yet() {
    let (_tmp, secrets) = setup();
    // Ports nothing listens on: a cluster that was never installed.
    let endpoints = EtcdEndpoints::new(
        ["cp1", "cp2", "cp3"]
            .iter()
            .map(|n| (n.to_string(), format!("https://127.0.0.1:{}", free_port())))
            .collect(),
    );
    let r = etcd::remove_member(secrets.etcd_ca(), &endpoints, "cp2")
        .await
        .unwrap();
    assert!(
        matches!(&r, MemberRemoval::NoCluster { tried } if tried.len() == 3),
        "{r:?}"
    );
}

#[tokio::test]
async fn an_endpoint_that_answers_but_cannot_be_asked_stops_the_reimage() {
    let (_tmp, secrets) = setup();
    // An HTTPS server with a cert from another CA (the cluster CA, not the
    // etcd CA): something is there, so this is not "no cluster yet".
    let (addr, seen) = apiserver::start(secrets.ca(), 200).await;
    let endpoints = EtcdEndpoints::new(vec![
        ("cp1".to_string(), format!("https://{addr}")),
        (
            "cp2".to_string(),
            format!("https://127.0.0.1:{}", free_port()),
        ),
    ]);
    let r = etcd::remove_member(secrets.etcd_ca(), &endpoints, "cp2").await;
    let Err(RemovalError::Failed(e)) = r else {
        panic!("expected a failure, got {r:?}");
    };
    let e = format!("{e:#}");
    assert!(
        e.contains("cannot list the etcd members") && e.contains("etcd-ca.crt"),
        "{e}"
    );
    assert!(
        seen.lock().unwrap().is_empty(),
        "the TLS handshake fails first"
    );
}

mod apiserver {
    //! A stand-in kube-apiserver: HTTPS on loopback with a serving cert from
    //! the cluster CA, requiring a client cert from that CA, recording what
    //! it was asked and answering with a fixed status.
    use super::pki;
    use http_body_util::Full;
    use hyper::body::Bytes;
    use std::sync::{Arc, Mutex};
    use tokio::net::TcpListener;

    #[derive(Debug, Clone)]
    pub struct Seen {
        pub method: String,
        pub path: String,
        pub client_o: Vec<String>,
        pub client_cn: Vec<String>,
    }

    pub async fn start(ca: &pki::CertKey, status: u16) -> (String, Arc<Mutex<Vec<Seen>>>) {
        start_on(ca, status, "127.0.0.1:0").await
    }

    pub async fn start_on(
        ca: &pki::CertKey,
        status: u16,
        bind: &str,
    ) -> (String, Arc<Mutex<Vec<Seen>>>) {
        let acceptor =
            crate::common::mtls_acceptor(ca, bind.parse::<std::net::SocketAddr>().unwrap().ip());
        let listener = TcpListener::bind(bind).await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, record) = (acceptor.clone(), record.clone());
                tokio::spawn(async move {
                    // A handshake without a client cert from the CA fails here.
                    let Ok(stream) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let peer = stream.get_ref().1.peer_certificates().unwrap()[0].clone();
                    let (_, cert) = x509_parser::parse_x509_certificate(&peer).unwrap();
                    let names = |it: &mut dyn Iterator<
                        Item = &x509_parser::x509::AttributeTypeAndValue,
                    >| {
                        it.map(|a| a.as_str().unwrap().to_string())
                            .collect::<Vec<_>>()
                    };
                    let client_o = names(&mut cert.subject().iter_organization());
                    let client_cn = names(&mut cert.subject().iter_common_name());
                    let service = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| {
                            record.lock().unwrap().push(Seen {
                                method: req.method().to_string(),
                                path: req.uri().path().to_string(),
                                client_o: client_o.clone(),
                                client_cn: client_cn.clone(),
                            });
                            let resp = hyper::Response::builder()
                                .status(status)
                                .header("content-type", "application/json")
                                .body(Full::new(Bytes::from_static(b"{}")))
                                .unwrap();
                            async move { Ok::<_, hyper::Error>(resp) }
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

#[tokio::test]
async fn node_deletion_is_a_delete_with_an_admin_client_cert() {
    let (_tmp, secrets) = setup();
    for (status, expect) in [(200, NodeDeletion::Deleted), (404, NodeDeletion::NotFound)] {
        let (endpoint, seen) = apiserver::start(secrets.ca(), status).await;
        let got = nodes::delete_node(&endpoint, secrets.ca(), "cp2")
            .await
            .unwrap();
        assert_eq!(got, expect);
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert_eq!(seen[0].method, "DELETE");
        assert_eq!(seen[0].path, "/api/v1/nodes/cp2");
        assert_eq!(seen[0].client_o, ["system:masters"]);
        assert_eq!(seen[0].client_cn, ["bootherd"]);
    }
    // Any other answer is an error that names the request.
    let (endpoint, _) = apiserver::start(secrets.ca(), 403).await;
    let e = nodes::delete_node(&endpoint, secrets.ca(), "cp2")
        .await
        .unwrap_err();
    assert!(format!("{e:#}").contains("403"), "{e:#}");
}

/// The whole path through `bootherd serve`: the operator's reimage of a
/// control plane. The control planes are 127.0.0.11-13 (all loopback), so
/// bootherd's production endpoints (`https://<ip>:2379`) reach the test's
/// etcd members, and the cluster endpoint is the API-server stand-in.
#[tokio::test(flavor = "multi_thread")]
async fn reimage_through_the_api_removes_the_member_or_answers_409() {
    let tmp = tempfile::tempdir().unwrap();
    let http_port = free_port();
    let api_port = free_port();
    let machines: String = (1..=3)
        .map(|i| {
            common::machine(
                &format!("52:54:00:aa:00:0{i}"),
                &format!("cp{i}"),
                "control-plane",
                &format!("127.0.0.1{i}"),
            )
        })
        .collect();
    let config = common::http_only_config(http_port, &machines).replace(
        "endpoint = \"10.55.0.100:6443\"",
        &format!("endpoint = \"127.0.0.100:{api_port}\""),
    );
    let server = common::Server::start_local(&config);
    // The same secrets the server will load for the reimage.
    let (mut cfg, _) = bootherd::config::Config::load(&server.config_path).unwrap();
    cfg.server.data_dir = server.data_dir.clone();
    let secrets = Secrets::load_or_create(&cfg).unwrap();
    let (_, seen) =
        apiserver::start_on(secrets.ca(), 200, &format!("127.0.0.100:{api_port}")).await;

    let ports: Vec<(String, u16, u16)> = (1..=3)
        .map(|i| (format!("127.0.0.1{i}"), etcd::ETCD_CLIENT_PORT, 2380))
        .collect();
    let mut cluster = EtcdCluster::start_at(tmp.path(), secrets.etcd_ca(), &ports);
    let client = test_client(secrets.etcd_ca());
    wait_healthy(&cluster, &client).await;
    settle().await;
    let cp1 = cluster.client_url("cp1").to_string();

    let out = server.cli_cmd(&["reimage", "cp3"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.log()
    );
    assert_eq!(member_names(&client, &cp1).await, ["cp1", "cp2"]);
    let requests = seen.lock().unwrap().clone();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(
        (requests[0].method.as_str(), requests[0].path.as_str()),
        ("DELETE", "/api/v1/nodes/cp3")
    );
    cluster.kill("cp3");

    cluster.kill("cp2");
    let before = machine_states(&server);
    let out = server.cli_cmd(&["reimage", "cp1"]).output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("409"), "{said}");
    assert!(
        said.contains("removing cp1 would leave 0 of 1 etcd members healthy: quorum needs 1; bring cp2 back first"),
        "{said}"
    );
    assert_eq!(machine_states(&server), before, "a refusal changes nothing");
    assert_eq!(member_names(&client, &cp1).await, ["cp1", "cp2"]);
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "no Node deleted on a refusal"
    );
}

fn machine_states(server: &common::Server) -> Vec<(String, String)> {
    let (code, body) = server.curl(&[&format!("{}/api/v1/machines", server.http)]);
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

/// A control-plane join that failed half-way left a learner that never
/// started (no name, only its peer URL); `kubeadm reset` leaves it, and the
/// node's next join would fail beside it. The role script asks bootherd to
/// remove it; once the node has joined, its member is its own.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_joins_unstarted_member_is_removed_on_request() {
    let tmp = tempfile::tempdir().unwrap();
    let http_port = free_port();
    let machines: String = (1..=3)
        .map(|i| {
            common::machine(
                &format!("52:54:00:aa:00:0{i}"),
                &format!("cp{i}"),
                "control-plane",
                &format!("127.0.0.2{i}"),
            )
        })
        .collect();
    let server = common::Server::start_local(&common::http_only_config(http_port, &machines));
    let (mut cfg, _) = bootherd::config::Config::load(&server.config_path).unwrap();
    cfg.server.data_dir = server.data_dir.clone();
    let secrets = Secrets::load_or_create(&cfg).unwrap();
    let ports: Vec<(String, u16, u16)> = (1..=2)
        .map(|i| (format!("127.0.0.2{i}"), etcd::ETCD_CLIENT_PORT, 2380))
        .collect();
    let cluster = EtcdCluster::start_at(tmp.path(), secrets.etcd_ca(), &ports);
    let client = test_client(secrets.etcd_ca());
    wait_healthy(&cluster, &client).await;
    settle().await;
    let cp1 = cluster.client_url("cp1").to_string();
    let added: serde_json::Value = client
        .post(format!("{cp1}/v3/cluster/member/add"))
        .json(&serde_json::json!({"peerURLs": ["https://127.0.0.23:2380"], "isLearner": true}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(added["member"]["ID"].is_string(), "{added}");
    assert_eq!(member_names(&client, &cp1).await, ["", "cp1", "cp2"]);

    // cp3 is installed and in its first boot.
    // (Its own addresses: the other API test runs etcd on 127.0.0.1x.)
    let mac = "52-54-00-aa-00-03";
    let (code, user_data) = server.curl(&[&format!("{}/cloud-init/{mac}/user-data", server.http)]);
    assert_eq!(code, 200, "{user_data}");
    let i = user_data.find("installed?token=").unwrap() + "installed?token=".len();
    let token = &user_data[i..i + 32];
    let post = |what: &str| {
        server.curl(&[
            "-X",
            "POST",
            &format!("{}/api/v1/machines/{mac}/{what}?token={token}", server.http),
        ])
    };
    assert_eq!(post("installed").0, 204);
    let forget = || {
        server.curl(&[
            "-X",
            "DELETE",
            &format!(
                "{}/api/v1/machines/{mac}/etcd-member?token={token}",
                server.http
            ),
        ])
    };
    let (code, body) = forget();
    assert_eq!(code, 200, "{body}\n{}", server.log());
    assert!(body.contains("removed etcd member cp3"), "{body}");
    assert_eq!(member_names(&client, &cp1).await, ["cp1", "cp2"]);
    let (code, body) = forget();
    assert_eq!(
        (code, body.trim()),
        (200, "etcd lists no member cp3: nothing to remove")
    );

    assert_eq!(post("joined").0, 204);
    assert_eq!(
        forget().0,
        409,
        "a joined control plane's member is not stale"
    );
}

/// The control plane that ran `init` died before it could report `joined`:
/// its etcd still answers, so the next control plane to ask joins that
/// cluster instead of initialising a second one behind the same VIP.
#[tokio::test(flavor = "multi_thread")]
async fn a_cluster_that_answers_in_etcd_is_joined_not_initialised_again() {
    let tmp = tempfile::tempdir().unwrap();
    let machines: String = (1..=2)
        .map(|i| {
            common::machine(
                &format!("52:54:00:aa:00:0{i}"),
                &format!("cp{i}"),
                "control-plane",
                &format!("127.0.0.3{i}"),
            )
        })
        .collect();
    // (Its own addresses: the other etcd tests use 127.0.0.1x and 2x.)
    let server = common::Server::start_local(&common::http_only_config(free_port(), &machines));
    let (mut cfg, _) = bootherd::config::Config::load(&server.config_path).unwrap();
    cfg.server.data_dir = server.data_dir.clone();
    let secrets = Secrets::load_or_create(&cfg).unwrap();
    let install = |mac: &str| {
        let (code, user_data) =
            server.curl(&[&format!("{}/cloud-init/{mac}/user-data", server.http)]);
        assert_eq!(code, 200, "{user_data}");
        let i = user_data.find("installed?token=").unwrap() + "installed?token=".len();
        let token = user_data[i..i + 32].to_string();
        let url =
            |what: &str| format!("{}/api/v1/machines/{mac}/{what}?token={token}", server.http);
        assert_eq!(server.curl(&["-X", "POST", &url("installed")]).0, 204);
        url("control-plane-slot")
    };
    install("52-54-00-aa-00-01");
    let cp2 = install("52-54-00-aa-00-02");
    // Nothing answers yet: cp2 may init.
    assert_eq!(server.curl(&["-X", "POST", &cp2]), (200, "init".into()));
    assert_eq!(server.curl(&["-X", "DELETE", &cp2]).0, 204);

    // cp1 ran init (its etcd runs) and died before reporting.
    let ports = [("127.0.0.31".to_string(), etcd::ETCD_CLIENT_PORT, 2380)];
    let cluster = EtcdCluster::start_at(tmp.path(), secrets.etcd_ca(), &ports);
    let client = test_client(secrets.etcd_ca());
    wait_healthy(&cluster, &client).await;
    assert_eq!(server.curl(&["-X", "POST", &cp2]), (200, "join".into()));
}
