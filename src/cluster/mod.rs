//! The cluster's shared secrets, generated once into `<data_dir>/cluster/`
//! and handed to each machine only as far as its role needs them (README,
//! "Security").
//!
//! - `files` — atomic 0600 writes, and errors that say what to restore.
//! - `pki`   — the CAs, the service-account keys, serving and client certs, the CA hash.
//! - `token` — the bootstrap token, the VRRP password, minting a token on a live cluster.
//! - `etcd`  — removing a reimaged control plane's etcd member without breaking quorum.
//! - `nodes` — deleting a reimaged node's Node object.

pub mod etcd;
mod files;
pub mod nodes;
pub mod pki;
pub mod token;

use crate::config::{Config, Machine, Role};
use anyhow::{Context, Result};
use pki::{CertKey, CorePki, ServiceAccountKeys};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use time::OffsetDateTime;
use token::BootstrapToken;

/// The directory under `data_dir` that holds the secrets.
pub const CLUSTER_DIR: &str = "cluster";

/// Everything bootherd keeps for the cluster. Load it with
/// [`Secrets::load_or_create`]; hand it out with [`Secrets::for_role`] /
/// [`Secrets::for_machine`], never whole. Its `Debug` shows no secret.
#[derive(Clone)]
pub struct Secrets {
    dir: PathBuf,
    pki: CorePki,
    /// Serving certs by control-plane hostname.
    apiservers: BTreeMap<String, CertKey>,
    token: BootstrapToken,
    vrrp_password: String,
    ca_cert_hash: String,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets")
            .field("dir", &self.dir)
            .field("pki", &self.pki)
            .field("apiservers", &self.apiservers.keys().collect::<Vec<_>>())
            .field("token", &self.token)
            .field("vrrp_password", &"<redacted>")
            .field("ca_cert_hash", &self.ca_cert_hash)
            .finish()
    }
}

/// What one machine may receive, by role. Serializable so that templates can
/// take it as their context.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "role", rename_all = "kebab-case")]
pub enum RoleSecrets {
    ControlPlane(Box<ControlPlaneSecrets>),
    Worker(WorkerSecrets),
    LoadBalancer(LoadBalancerSecrets),
}

/// The shared PKI (written to `/etc/kubernetes/pki` before kubeadm runs) and
/// the join material.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ControlPlaneSecrets {
    pub ca: CertKey,
    pub front_proxy_ca: CertKey,
    pub etcd_ca: CertKey,
    pub service_account: ServiceAccountKeys,
    /// This control plane's serving cert; `None` from [`Secrets::for_role`].
    pub apiserver: Option<CertKey>,
    pub token: String,
    pub token_expires: String,
    pub ca_cert_hash: String,
    /// Set in `stacked` mode, where the control planes also run keepalived.
    pub vrrp_password: Option<String>,
}

/// Join material only: no key of any kind.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WorkerSecrets {
    pub token: String,
    pub ca_cert_hash: String,
}

/// No PKI at all.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LoadBalancerSecrets {
    pub vrrp_password: String,
}

impl Secrets {
    /// Loads the secrets from `<data_dir>/cluster/`, creating the whole set
    /// when the directory does not exist yet. An existing set is never
    /// regenerated: a missing or corrupt file is an error that names it. The
    /// only thing added to an existing set is the serving cert of a control
    /// plane that has none yet.
    pub fn load_or_create(config: &Config) -> Result<Secrets> {
        let data_dir = &config.server.data_dir;
        let dir = data_dir.join(CLUSTER_DIR);
        if is_absent_or_empty(&dir)? {
            create(data_dir, &dir)?;
        }
        let pki = CorePki::load(&dir)?;
        let token = BootstrapToken::load(&dir)?;
        let vrrp_password = token::load_vrrp_password(&dir)?;
        let control_planes: Vec<&Machine> = config.control_planes().collect();
        let apiservers =
            pki::load_or_issue_apiservers(&dir, &pki.ca, &config.cluster, &control_planes)?;
        let ca_cert_hash = pki::ca_cert_hash(&pki.ca.cert_pem)?;
        Ok(Secrets {
            dir,
            pki,
            apiservers,
            token,
            vrrp_password,
            ca_cert_hash,
        })
    }

    /// `<data_dir>/cluster`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn ca(&self) -> &CertKey {
        &self.pki.ca
    }
    pub fn front_proxy_ca(&self) -> &CertKey {
        &self.pki.front_proxy_ca
    }
    pub fn etcd_ca(&self) -> &CertKey {
        &self.pki.etcd_ca
    }
    pub fn service_account(&self) -> &ServiceAccountKeys {
        &self.pki.sa
    }
    /// A control plane's serving cert, by hostname.
    pub fn apiserver(&self, hostname: &str) -> Option<&CertKey> {
        self.apiservers.get(hostname)
    }
    pub fn token(&self) -> &BootstrapToken {
        &self.token
    }
    /// `sha256:<hex>`, as kubeadm's `caCertHashes` takes it.
    pub fn ca_cert_hash(&self) -> &str {
        &self.ca_cert_hash
    }
    pub fn vrrp_password(&self) -> &str {
        &self.vrrp_password
    }

    /// Only what `role` may have: control planes get the PKI and the join
    /// material, workers the token and the CA hash, load balancers the VRRP
    /// password.
    pub fn for_role(&self, role: Role) -> RoleSecrets {
        match role {
            Role::ControlPlane => RoleSecrets::ControlPlane(Box::new(ControlPlaneSecrets {
                ca: self.pki.ca.clone(),
                front_proxy_ca: self.pki.front_proxy_ca.clone(),
                etcd_ca: self.pki.etcd_ca.clone(),
                service_account: self.pki.sa.clone(),
                apiserver: None,
                token: self.token.token(),
                token_expires: self.token.expires_rfc3339(),
                ca_cert_hash: self.ca_cert_hash.clone(),
                vrrp_password: None,
            })),
            Role::Worker => RoleSecrets::Worker(WorkerSecrets {
                token: self.token.token(),
                ca_cert_hash: self.ca_cert_hash.clone(),
            }),
            Role::LoadBalancer => RoleSecrets::LoadBalancer(LoadBalancerSecrets {
                vrrp_password: self.vrrp_password.clone(),
            }),
        }
    }

    /// [`Secrets::for_role`] for one machine: a control plane also gets its
    /// own serving cert, and in `stacked` mode the VRRP password.
    pub fn for_machine(&self, config: &Config, machine: &Machine) -> RoleSecrets {
        let mut s = self.for_role(machine.role);
        if let RoleSecrets::ControlPlane(cp) = &mut s {
            cp.apiserver = self.apiservers.get(&machine.hostname).cloned();
            if config.cluster.load_balancer == crate::config::LoadBalancerMode::Stacked {
                cp.vrrp_password = Some(self.vrrp_password.clone());
            }
        }
        s
    }

    /// Replaces the bootstrap token with a fresh one when it is near expiry
    /// (see [`Secrets::renew_token`]). Returns whether it minted one.
    pub async fn renew_token_if_due(
        &mut self,
        endpoint: &str,
        now: OffsetDateTime,
    ) -> Result<bool> {
        if !self.token.needs_renewal(now) {
            return Ok(false);
        }
        self.renew_token(endpoint, now).await?;
        Ok(true)
    }

    /// Mints a fresh bootstrap token valid for [`token::TOKEN_TTL`] from
    /// `now`: creates it on the live cluster first (through the API server
    /// at `endpoint`, `host:port`) and saves it only once the cluster has
    /// it, so the saved token is always one the cluster accepts.
    pub async fn renew_token(&mut self, endpoint: &str, now: OffsetDateTime) -> Result<()> {
        let fresh = BootstrapToken::generate(now, token::TOKEN_TTL);
        token::create_on_apiserver(endpoint, &self.pki.ca, &fresh)
            .await
            .context("cannot mint a fresh bootstrap token; the current one stays")?;
        fresh.write(&self.dir)?;
        tracing::info!(id = fresh.id(), expires = %fresh.expires_rfc3339(), "minted a bootstrap token");
        self.token = fresh;
        Ok(())
    }
}

/// True when there is nothing to lose: no directory, or an empty one (an
/// operator may have created it to choose its owner).
fn is_absent_or_empty(dir: &Path) -> Result<bool> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => Ok(entries.next().is_none()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(anyhow::anyhow!("cannot read {}: {e}", dir.display())),
    }
}

/// Generates the whole set into a staging directory and renames it into
/// place, so that a crash leaves either no `cluster/` or a complete one.
/// Two bootherd processes starting together (`serve` and a CLI command)
/// each stage their own set; the first rename wins and the other one's set
/// is dropped before anything used it.
fn create(data_dir: &Path, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
    let stage = data_dir.join(format!(".{CLUSTER_DIR}.new-{}", std::process::id()));
    if stage.exists() {
        // A leftover of a crashed run that had this pid: nothing trusts it.
        std::fs::remove_dir_all(&stage)
            .with_context(|| format!("cannot remove the leftover {}", stage.display()))?;
    }
    files::private_dir(&stage)?;
    CorePki::generate()?.write(&stage)?;
    BootstrapToken::generate(OffsetDateTime::now_utc(), token::TOKEN_TTL).write(&stage)?;
    token::write_vrrp_password(&stage, &token::generate_vrrp_password())?;
    // rename(2) replaces an empty directory, so an empty `cluster/` is fine;
    // a non-empty one means another process got there first.
    match std::fs::rename(&stage, dir) {
        Ok(()) => {
            files::sync_dir(data_dir)
                .with_context(|| format!("cannot sync {}", data_dir.display()))?;
            tracing::info!(dir = %dir.display(), "generated the cluster secrets");
        }
        Err(_) if !is_absent_or_empty(dir)? => {
            std::fs::remove_dir_all(&stage)
                .with_context(|| format!("cannot remove {}", stage.display()))?;
        }
        Err(e) => {
            return Err(anyhow::anyhow!(
                "cannot move {} to {}: {e}",
                stage.display(),
                dir.display()
            ))
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::{machine_toml, parse, NET10};

    fn config() -> Config {
        let machines = [
            ("52:54:00:aa:00:21", "lb1", "load-balancer", "10.0.0.21"),
            ("52:54:00:aa:00:01", "cp1", "control-plane", "10.0.0.11"),
            ("52:54:00:aa:00:31", "w1", "worker", "10.0.0.31"),
        ]
        .map(|(mac, host, role, ip)| machine_toml(mac, host, role, ip));
        parse(&format!("{NET10}{}", machines.concat()))
    }

    fn secrets() -> (tempfile::TempDir, Config, Secrets) {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config();
        config.server.data_dir = dir.path().to_path_buf();
        let s = Secrets::load_or_create(&config).unwrap();
        (dir, config, s)
    }

    fn text(s: &RoleSecrets) -> String {
        serde_json::to_string(s).unwrap()
    }

    #[test]
    fn worker_gets_join_material_and_no_key() {
        let (_d, config, s) = secrets();
        let w = s.for_machine(&config, config.machine_by_name("w1").unwrap());
        let RoleSecrets::Worker(ws) = &w else {
            panic!("{w:?}")
        };
        assert_eq!(ws.token, s.token().token());
        assert_eq!(ws.ca_cert_hash, s.ca_cert_hash());
        let t = text(&w);
        assert!(!t.contains("PRIVATE KEY"), "{t}");
        assert!(!t.contains(s.vrrp_password()), "{t}");
    }

    #[test]
    fn load_balancer_gets_the_vrrp_password_only() {
        let (_d, _config, s) = secrets();
        let lb = s.for_role(Role::LoadBalancer);
        assert_eq!(
            lb,
            RoleSecrets::LoadBalancer(LoadBalancerSecrets {
                vrrp_password: s.vrrp_password().to_string()
            })
        );
        let t = text(&lb);
        for secret in [s.token().secret(), s.ca_cert_hash(), "BEGIN"] {
            assert!(!t.contains(secret), "{secret} in {t}");
        }
    }

    #[test]
    fn control_plane_gets_the_pki_and_its_own_serving_cert() {
        let (_d, config, s) = secrets();
        let cp = s.for_machine(&config, config.machine_by_name("cp1").unwrap());
        let RoleSecrets::ControlPlane(c) = &cp else {
            panic!("{cp:?}")
        };
        assert_eq!(&c.ca, s.ca());
        assert_eq!(&c.front_proxy_ca, s.front_proxy_ca());
        assert_eq!(&c.etcd_ca, s.etcd_ca());
        assert_eq!(&c.service_account, s.service_account());
        assert_eq!(c.apiserver.as_ref(), s.apiserver("cp1"));
        assert!(c.apiserver.is_some());
        assert_eq!(c.token, s.token().token());
        // External load balancers hold the VIP: no VRRP password here.
        assert_eq!(c.vrrp_password, None);
        assert!(
            matches!(s.for_role(Role::ControlPlane), RoleSecrets::ControlPlane(c) if c.apiserver.is_none())
        );
    }

    #[test]
    fn debug_output_shows_no_secret() {
        let (_d, _config, s) = secrets();
        let d = format!("{s:?}");
        assert!(!d.contains("PRIVATE KEY"), "{d}");
        assert!(!d.contains(s.token().secret()), "{d}");
        assert!(!d.contains(s.vrrp_password()), "{d}");
        assert!(d.contains(s.token().id()), "{d}");
    }

    #[test]
    fn second_load_reads_the_same_secrets() {
        let (_d, config, s) = secrets();
        let again = Secrets::load_or_create(&config).unwrap();
        assert_eq!(again.ca(), s.ca());
        assert_eq!(again.token(), s.token());
        assert_eq!(again.apiserver("cp1"), s.apiserver("cp1"));
        assert_eq!(again.vrrp_password(), s.vrrp_password());
    }
}
