//! The cluster secrets a role's files are rendered from. `src/cluster`
//! generates them; this type is the narrow interface the renderers need, so
//! rendering can be tested with fixed values.

use anyhow::{bail, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleMaterial {
    /// Bootstrap token, `[a-z0-9]{6}.[a-z0-9]{16}`.
    pub token: String,
    /// `sha256:<hex>` of the Kubernetes CA's SubjectPublicKeyInfo.
    pub ca_cert_hash: String,
    /// keepalived VRRP password (PASS auth uses at most 8 characters).
    pub vrrp_password: String,
    /// The shared PKI; only control planes receive it.
    pub pki: Option<Pki>,
}

/// PEM texts of the shared cluster PKI, as kubeadm expects them in
/// `/etc/kubernetes/pki` (names relative to that directory in `files`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pki {
    pub ca_crt: String,
    pub ca_key: String,
    pub front_proxy_ca_crt: String,
    pub front_proxy_ca_key: String,
    pub etcd_ca_crt: String,
    pub etcd_ca_key: String,
    pub sa_key: String,
    pub sa_pub: String,
}

impl Pki {
    /// `(path relative to /etc/kubernetes/pki, PEM, is private)`.
    pub fn files(&self) -> [(&'static str, &str, bool); 8] {
        [
            ("ca.crt", &self.ca_crt, false),
            ("ca.key", &self.ca_key, true),
            ("front-proxy-ca.crt", &self.front_proxy_ca_crt, false),
            ("front-proxy-ca.key", &self.front_proxy_ca_key, true),
            ("etcd/ca.crt", &self.etcd_ca_crt, false),
            ("etcd/ca.key", &self.etcd_ca_key, true),
            ("sa.key", &self.sa_key, true),
            ("sa.pub", &self.sa_pub, false),
        ]
    }
}

impl RoleMaterial {
    /// Refuses values that would break the files they are written into
    /// (YAML, keepalived syntax) instead of rendering something broken.
    pub fn check(&self) -> Result<()> {
        let ok_token = self.token.len() == 23
            && self.token.as_bytes()[6] == b'.'
            && self
                .token
                .chars()
                .enumerate()
                .all(|(i, c)| i == 6 || c.is_ascii_lowercase() || c.is_ascii_digit());
        if !ok_token {
            bail!("the bootstrap token must look like abcdef.0123456789abcdef");
        }
        let hex = self.ca_cert_hash.strip_prefix("sha256:").unwrap_or("");
        if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            bail!("the CA cert hash must be sha256: followed by 64 hex digits");
        }
        if self.vrrp_password.is_empty()
            || !self
                .vrrp_password
                .chars()
                .all(|c| c.is_ascii_alphanumeric())
        {
            bail!("the VRRP password must be non-empty and alphanumeric");
        }
        Ok(())
    }

    /// The part of the VRRP password keepalived uses: PASS authentication
    /// silently truncates to 8 characters, so render exactly those.
    pub fn vrrp_pass(&self) -> &str {
        let end = self
            .vrrp_password
            .char_indices()
            .nth(8)
            .map_or(self.vrrp_password.len(), |(i, _)| i);
        &self.vrrp_password[..end]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn material() -> RoleMaterial {
        RoleMaterial {
            token: "abcdef.0123456789abcdef".into(),
            ca_cert_hash: format!("sha256:{}", "0f".repeat(32)),
            vrrp_password: "abcdEFGH1234".into(),
            pki: None,
        }
    }

    #[test]
    fn well_formed_material_passes_and_keepalived_gets_eight_characters() {
        let m = material();
        m.check().unwrap();
        assert_eq!(m.vrrp_pass(), "abcdEFGH");
        let short = RoleMaterial {
            vrrp_password: "abc".into(),
            ..material()
        };
        assert_eq!(short.vrrp_pass(), "abc");
    }

    #[test]
    fn values_that_would_break_the_rendered_files_are_refused() {
        let bad = [
            RoleMaterial {
                token: "ABCDEF.0123456789abcdef".into(),
                ..material()
            },
            RoleMaterial {
                token: "abcdef-0123456789abcdef".into(),
                ..material()
            },
            RoleMaterial {
                token: "abcdef.0123456789abcde\"".into(),
                ..material()
            },
            RoleMaterial {
                ca_cert_hash: "sha1:abcd".into(),
                ..material()
            },
            RoleMaterial {
                vrrp_password: "pass word".into(),
                ..material()
            },
            RoleMaterial {
                vrrp_password: String::new(),
                ..material()
            },
        ];
        for m in bad {
            assert!(m.check().is_err(), "{m:?} was accepted");
        }
    }
}
