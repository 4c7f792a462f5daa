//! The cluster's PKI: the Kubernetes CA, the front-proxy CA, the etcd CA, the
//! service-account key pair, the per-control-plane API server serving certs,
//! and short-lived admin client certs. bootherd holds the CAs so that it knows
//! the CA cert hash before any node exists and every node can install at once.
//!
//! Keys are ECDSA P-256 in PKCS#8 PEM: `ring` (which `rcgen` signs with here)
//! cannot generate RSA keys, and kubeadm, the API server and etcd all accept
//! P-256 (kubeadm's own `encryptionAlgorithm: ECDSA-P256`). File names follow
//! kubeadm's `/etc/kubernetes/pki` layout, except the etcd CA (`etcd-ca.*`
//! here, `etcd/ca.*` there) so that this directory stays flat.

use super::files::{corrupt, read_required, write_private};
use crate::config::{Cluster, Machine};
use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use time::{Duration, OffsetDateTime};

/// kubeadm's default CA lifetime.
const CA_VALIDITY: Duration = Duration::days(3650);
/// kubeadm's default leaf lifetime; `kubeadm upgrade` / `kubeadm certs renew`
/// on the node renew it from the CA that the node holds.
const LEAF_VALIDITY: Duration = Duration::days(365);
/// Admin client certs live only as long as one API call needs.
const ADMIN_VALIDITY: Duration = Duration::hours(1);
/// Backdated so that a node whose clock lags a little accepts a fresh cert.
const CLOCK_SKEW: Duration = Duration::minutes(5);

/// The DNS names kubeadm puts on every API server serving cert (with the
/// default service DNS domain `cluster.local`).
pub const APISERVER_DNS_NAMES: [&str; 4] = [
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
];

/// A certificate and its private key, both PEM.
#[derive(Clone, PartialEq, Eq, serde::Serialize)]
pub struct CertKey {
    pub cert_pem: String,
    pub key_pem: String,
}

/// The service-account signing key pair (`sa.key`, `sa.pub`).
#[derive(Clone, PartialEq, Eq, serde::Serialize)]
pub struct ServiceAccountKeys {
    pub private_pem: String,
    pub public_pem: String,
}

// Debug output ends up in logs and panic messages: it never shows a key.
impl std::fmt::Debug for CertKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertKey")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

impl std::fmt::Debug for ServiceAccountKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccountKeys")
            .field("private_pem", &"<redacted>")
            .field("public_pem", &self.public_pem)
            .finish()
    }
}

/// The cluster-wide PKI that is generated once and never changes.
#[derive(Debug, Clone)]
pub struct CorePki {
    pub ca: CertKey,
    pub front_proxy_ca: CertKey,
    pub etcd_ca: CertKey,
    pub sa: ServiceAccountKeys,
}

/// (file name, what it is) of every core PKI file, for loading and for errors.
pub const CORE_FILES: [(&str, &str); 8] = [
    ("ca.crt", "PEM certificate"),
    ("ca.key", "PEM private key"),
    ("front-proxy-ca.crt", "PEM certificate"),
    ("front-proxy-ca.key", "PEM private key"),
    ("etcd-ca.crt", "PEM certificate"),
    ("etcd-ca.key", "PEM private key"),
    ("sa.key", "PEM private key"),
    ("sa.pub", "PEM public key"),
];

/// The subdirectory that holds one serving cert per control plane, in
/// `<hostname>/apiserver.{crt,key}` (kubeadm's names on the node).
pub const APISERVER_DIR: &str = "apiserver";

impl CorePki {
    pub fn generate() -> Result<CorePki> {
        let sa = KeyPair::generate().context("cannot generate the service-account key")?;
        Ok(CorePki {
            ca: self_signed_ca("kubernetes")?,
            front_proxy_ca: self_signed_ca("front-proxy-ca")?,
            etcd_ca: self_signed_ca("etcd-ca")?,
            sa: ServiceAccountKeys {
                private_pem: sa.serialize_pem(),
                public_pem: sa.public_key_pem(),
            },
        })
    }

    pub fn write(&self, dir: &Path) -> Result<()> {
        for (name, contents) in self.files() {
            write_private(&dir.join(name), contents.as_bytes())?;
        }
        Ok(())
    }

    fn files(&self) -> [(&'static str, &str); 8] {
        [
            ("ca.crt", &self.ca.cert_pem),
            ("ca.key", &self.ca.key_pem),
            ("front-proxy-ca.crt", &self.front_proxy_ca.cert_pem),
            ("front-proxy-ca.key", &self.front_proxy_ca.key_pem),
            ("etcd-ca.crt", &self.etcd_ca.cert_pem),
            ("etcd-ca.key", &self.etcd_ca.key_pem),
            ("sa.key", &self.sa.private_pem),
            ("sa.pub", &self.sa.public_pem),
        ]
    }

    /// Loads every core file; each must exist and parse, and each CA key must
    /// match its cert (a swapped file would otherwise surface only on a node).
    pub fn load(dir: &Path) -> Result<CorePki> {
        let mut text = BTreeMap::new();
        for (name, _) in CORE_FILES {
            text.insert(name, read_required(&dir.join(name))?);
        }
        let pair = |crt: &'static str, key: &'static str| -> Result<CertKey> {
            let ck = CertKey {
                cert_pem: text[crt].clone(),
                key_pem: text[key].clone(),
            };
            check_cert_key(&ck, &dir.join(crt), &dir.join(key))?;
            Ok(ck)
        };
        let pki = CorePki {
            ca: pair("ca.crt", "ca.key")?,
            front_proxy_ca: pair("front-proxy-ca.crt", "front-proxy-ca.key")?,
            etcd_ca: pair("etcd-ca.crt", "etcd-ca.key")?,
            sa: ServiceAccountKeys {
                private_pem: text["sa.key"].clone(),
                public_pem: text["sa.pub"].clone(),
            },
        };
        let sa_key = KeyPair::from_pem(&pki.sa.private_pem)
            .map_err(|_| corrupt(&dir.join("sa.key"), "PEM private key"))?;
        if sa_key.public_key_pem().trim() != pki.sa.public_pem.trim() {
            return Err(corrupt(&dir.join("sa.pub"), "public key matching sa.key"));
        }
        Ok(pki)
    }
}

/// Checks that `ck` holds a parseable cert and the key that belongs to it.
fn check_cert_key(ck: &CertKey, crt: &Path, key: &Path) -> Result<()> {
    let spki = spki_der(&ck.cert_pem).map_err(|_| corrupt(crt, "PEM certificate"))?;
    let kp = KeyPair::from_pem(&ck.key_pem).map_err(|_| corrupt(key, "PEM private key"))?;
    if rcgen::PublicKeyData::subject_public_key_info(&kp) != spki {
        return Err(corrupt(
            key,
            &format!(
                "private key for {}",
                crt.file_name().unwrap_or_default().to_string_lossy()
            ),
        ));
    }
    Ok(())
}

fn validity(params: &mut CertificateParams, lifetime: Duration) {
    let now = OffsetDateTime::now_utc();
    params.not_before = now - CLOCK_SKEW;
    params.not_after = now + lifetime;
}

fn self_signed_ca(common_name: &str) -> Result<CertKey> {
    let key = KeyPair::generate().context("cannot generate a CA key")?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
        KeyUsagePurpose::KeyCertSign,
    ];
    validity(&mut params, CA_VALIDITY);
    let cert = params
        .self_signed(&key)
        .with_context(|| format!("cannot self-sign the {common_name} CA"))?;
    Ok(CertKey {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Signs `params` (with a fresh key) by the CA in `ca`.
fn issue(ca: &CertKey, params: &CertificateParams) -> Result<CertKey> {
    let ca_key = KeyPair::from_pem(&ca.key_pem).context("the CA key does not parse")?;
    let issuer =
        Issuer::from_ca_cert_pem(&ca.cert_pem, ca_key).context("the CA cert does not parse")?;
    let key = KeyPair::generate().context("cannot generate a key")?;
    let cert = params
        .signed_by(&key, &issuer)
        .context("cannot sign a certificate with the CA")?;
    Ok(CertKey {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// The SubjectPublicKeyInfo (DER) of a PEM certificate.
fn spki_der(cert_pem: &str) -> Result<Vec<u8>> {
    let (_, pem) =
        x509_parser::pem::parse_x509_pem(cert_pem.as_bytes()).context("not a PEM block")?;
    let cert = pem.parse_x509().context("not an X.509 certificate")?;
    Ok(cert.tbs_certificate.subject_pki.raw.to_vec())
}

/// The CA cert hash as kubeadm computes and expects it in
/// `caCertHashes`/`--discovery-token-ca-cert-hash`: `sha256:` and the hex of
/// the SHA-256 of the CA cert's DER-encoded SubjectPublicKeyInfo.
pub fn ca_cert_hash(ca_cert_pem: &str) -> Result<String> {
    let spki = spki_der(ca_cert_pem).context("the CA cert does not parse")?;
    Ok(format!("sha256:{}", hex::encode(Sha256::digest(spki))))
}

/// The first address of the service network: kubeadm gives it to the
/// `kubernetes` Service, so in-cluster clients reach the API server there.
pub fn first_service_ip(cluster: &Cluster) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(cluster.service_cidr.network()) + 1)
}

/// The SANs of a control plane's API server serving cert: what kubeadm puts
/// there (its hostname, the `kubernetes…` names, the service IP, its own
/// address, the control-plane endpoint), plus every control-plane IP so that
/// the cert stays valid when traffic reaches any of them directly.
pub fn apiserver_sans(
    cluster: &Cluster,
    control_planes: &[&Machine],
    machine: &Machine,
) -> Vec<SanType> {
    let mut dns: Vec<String> = vec![machine.hostname.clone()];
    dns.extend(APISERVER_DNS_NAMES.iter().map(|s| s.to_string()));
    let mut ips: Vec<Ipv4Addr> = vec![*cluster.endpoint.ip(), first_service_ip(cluster)];
    ips.push(machine.ip);
    ips.extend(control_planes.iter().map(|m| m.ip));
    let mut seen = std::collections::HashSet::new();
    ips.retain(|ip| seen.insert(*ip));
    let mut sans = Vec::new();
    for name in dns {
        // Hostnames were validated by the config; a non-IA5 one cannot occur.
        if let Ok(n) = name.try_into() {
            sans.push(SanType::DnsName(n));
        }
    }
    sans.extend(ips.into_iter().map(|ip| SanType::IpAddress(IpAddr::V4(ip))));
    sans
}

/// A control plane's API server serving cert (`apiserver.crt`/`.key` on the node).
pub fn issue_apiserver(ca: &CertKey, sans: Vec<SanType>) -> Result<CertKey> {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, "kube-apiserver");
    params.subject_alt_names = sans;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    validity(&mut params, LEAF_VALIDITY);
    issue(ca, &params).context("cannot issue an API server cert")
}

/// An HTTPS client builder that presents `cert` and trusts only `ca`: how
/// bootherd talks to the API server and to etcd. `cert_name` and `ca_name`
/// name them in errors. Callers add their timeouts.
pub fn mutual_tls_client(
    ca: &CertKey,
    cert: &CertKey,
    cert_name: &str,
    ca_name: &str,
) -> Result<reqwest::ClientBuilder> {
    let identity =
        reqwest::Identity::from_pem(format!("{}{}", cert.cert_pem, cert.key_pem).as_bytes())
            .with_context(|| format!("the {cert_name} cert does not load"))?;
    let root = reqwest::Certificate::from_pem(ca.cert_pem.as_bytes())
        .with_context(|| format!("the {ca_name} cert does not load"))?;
    Ok(reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(root)
        .identity(identity))
}

/// A short-lived client cert for bootherd's own calls to the API server:
/// CN `bootherd` (the user name in audit logs), O `system:masters` (the group
/// that is cluster-admin without any RBAC binding, so it works on a cluster
/// that has only just come up).
pub fn issue_admin_client(ca: &CertKey) -> Result<CertKey> {
    issue_client(ca, "bootherd", &["system:masters"], ADMIN_VALIDITY)
}

/// A client cert signed by `ca` (also used with the etcd CA for etcd's gateway).
pub fn issue_client(
    ca: &CertKey,
    common_name: &str,
    organizations: &[&str],
    lifetime: Duration,
) -> Result<CertKey> {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    for o in organizations {
        params.distinguished_name.push(DnType::OrganizationName, *o);
    }
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    validity(&mut params, lifetime);
    issue(ca, &params).with_context(|| format!("cannot issue a client cert for {common_name}"))
}

/// Loads the serving cert of each control plane from
/// `<dir>/apiserver/<hostname>/apiserver.{crt,key}`, issuing it for a control
/// plane that has none yet (one added to the config later). An existing cert
/// is never reissued, and a directory with one file missing is an error
/// rather than a silent replacement.
pub fn load_or_issue_apiservers(
    dir: &Path,
    ca: &CertKey,
    cluster: &Cluster,
    control_planes: &[&Machine],
) -> Result<BTreeMap<String, CertKey>> {
    let sub = dir.join(APISERVER_DIR);
    super::files::private_dir(&sub)?;
    let mut out = BTreeMap::new();
    for m in control_planes {
        let host_dir = sub.join(&m.hostname);
        if !host_dir.exists() {
            issue_apiserver_dir(&sub, &host_dir, ca, cluster, control_planes, m)?;
        }
        let (crt, key) = (
            host_dir.join("apiserver.crt"),
            host_dir.join("apiserver.key"),
        );
        let ck = CertKey {
            cert_pem: read_required(&crt)?,
            key_pem: read_required(&key)?,
        };
        check_cert_key(&ck, &crt, &key)?;
        out.insert(m.hostname.clone(), ck);
    }
    Ok(out)
}

/// Writes a control plane's cert and key into a staging directory and renames
/// it into place: the pair appears whole or not at all, and when two bootherd
/// processes race, the first rename wins and the other pair is dropped.
fn issue_apiserver_dir(
    sub: &Path,
    host_dir: &Path,
    ca: &CertKey,
    cluster: &Cluster,
    control_planes: &[&Machine],
    machine: &Machine,
) -> Result<()> {
    let stage = sub.join(format!(".{}.new-{}", machine.hostname, std::process::id()));
    if stage.exists() {
        std::fs::remove_dir_all(&stage)
            .with_context(|| format!("cannot remove the leftover {}", stage.display()))?;
    }
    super::files::private_dir(&stage)?;
    let ck = issue_apiserver(ca, apiserver_sans(cluster, control_planes, machine))?;
    write_private(&stage.join("apiserver.key"), ck.key_pem.as_bytes())?;
    write_private(&stage.join("apiserver.crt"), ck.cert_pem.as_bytes())?;
    match std::fs::rename(&stage, host_dir) {
        Ok(()) => {
            super::files::sync_dir(sub).with_context(|| format!("cannot sync {}", sub.display()))
        }
        // Another process issued this control plane's cert first: use theirs.
        Err(_) if host_dir.join("apiserver.crt").exists() => std::fs::remove_dir_all(&stage)
            .with_context(|| format!("cannot remove {}", stage.display())),
        Err(e) => Err(anyhow::anyhow!(
            "cannot move {} to {}: {e}",
            stage.display(),
            host_dir.display()
        )),
    }
}
