//! The join secrets that are not keys: the kubeadm bootstrap token (with its
//! expiry) and the keepalived VRRP password; and minting a fresh bootstrap
//! token on a running cluster through its API server.

use super::files::{corrupt, read_required, write_private};
use super::pki::{self, CertKey};
use anyhow::{bail, Context, Result};
use rand::Rng;
use std::path::Path;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

pub const TOKEN_FILE: &str = "bootstrap-token.json";
pub const VRRP_FILE: &str = "vrrp-password";

/// kubeadm's default token TTL (`kubeadm token create --ttl`).
pub const TOKEN_TTL: Duration = Duration::hours(24);
/// A token with less than this left is replaced: a machine that starts
/// installing now must still be able to join at the end of its install.
pub const RENEW_BEFORE: Duration = Duration::hours(6);
/// The extra group kubeadm gives its node-join tokens; kubeadm's RBAC rules
/// (CSR creation and auto-approval) are bound to it.
pub const AUTH_EXTRA_GROUPS: &str = "system:bootstrappers:kubeadm:default-node-token";

const TOKEN_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
const VRRP_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
/// keepalived uses only the first 8 characters of `auth_pass` (VRRP v2's
/// simple password field is 8 bytes), so a longer one would be misleading.
pub const VRRP_PASSWORD_LEN: usize = 8;

fn random_string(alphabet: &[u8], len: usize) -> String {
    // ThreadRng is a CSPRNG seeded from the OS.
    let mut rng = rand::rng();
    (0..len)
        .map(|_| alphabet[rng.random_range(0..alphabet.len())] as char)
        .collect()
}

/// A kubeadm bootstrap token, `[a-z0-9]{6}.[a-z0-9]{16}`: the id is public
/// (it names the Secret), the secret part authenticates.
#[derive(Clone, PartialEq, Eq)]
pub struct BootstrapToken {
    id: String,
    secret: String,
    expires: OffsetDateTime,
}

// The id is public; the secret part never reaches a log.
impl std::fmt::Debug for BootstrapToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BootstrapToken")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .field("expires", &self.expires_rfc3339())
            .finish()
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct TokenFile {
    token: String,
    /// RFC 3339, UTC: the same form as the Secret's `expiration`.
    expires: String,
}

impl BootstrapToken {
    /// A fresh random token that expires `ttl` after `now`.
    pub fn generate(now: OffsetDateTime, ttl: Duration) -> BootstrapToken {
        BootstrapToken {
            id: random_string(TOKEN_ALPHABET, 6),
            secret: random_string(TOKEN_ALPHABET, 16),
            // Whole seconds: the file and the Secret carry no fractions.
            expires: (now + ttl).replace_nanosecond(0).unwrap_or(now + ttl),
        }
    }

    /// Parses `id.secret`; `None` unless it has kubeadm's exact form.
    pub fn parse(token: &str, expires: OffsetDateTime) -> Option<BootstrapToken> {
        let (id, secret) = token.split_once('.')?;
        let ok = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| TOKEN_ALPHABET.contains(&b));
        (ok(id, 6) && ok(secret, 16)).then(|| BootstrapToken {
            id: id.to_string(),
            secret: secret.to_string(),
            expires,
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }
    pub fn secret(&self) -> &str {
        &self.secret
    }
    /// The whole token, `id.secret`, as kubeadm takes it.
    pub fn token(&self) -> String {
        format!("{}.{}", self.id, self.secret)
    }
    pub fn expires(&self) -> OffsetDateTime {
        self.expires
    }
    /// The expiry in RFC 3339 (UTC), as the Secret's `expiration` wants it.
    pub fn expires_rfc3339(&self) -> String {
        self.expires
            .to_offset(time::UtcOffset::UTC)
            .format(&Rfc3339)
            .unwrap_or_else(|_| self.expires.unix_timestamp().to_string())
    }
    /// What is left of its life at `now` (negative once expired).
    pub fn remaining(&self, now: OffsetDateTime) -> Duration {
        self.expires - now
    }
    pub fn needs_renewal(&self, now: OffsetDateTime) -> bool {
        self.remaining(now) < RENEW_BEFORE
    }

    pub fn write(&self, dir: &Path) -> Result<()> {
        let file = TokenFile {
            token: self.token(),
            expires: self.expires_rfc3339(),
        };
        let mut text = serde_json::to_string_pretty(&file)?;
        text.push('\n');
        write_private(&dir.join(TOKEN_FILE), text.as_bytes())
    }

    pub fn load(dir: &Path) -> Result<BootstrapToken> {
        let path = dir.join(TOKEN_FILE);
        let what = "bootstrap token file ({\"token\": \"[a-z0-9]{6}.[a-z0-9]{16}\", \"expires\": RFC 3339})";
        let file: TokenFile =
            serde_json::from_str(&read_required(&path)?).map_err(|_| corrupt(&path, what))?;
        let expires =
            OffsetDateTime::parse(&file.expires, &Rfc3339).map_err(|_| corrupt(&path, what))?;
        BootstrapToken::parse(&file.token, expires).ok_or_else(|| corrupt(&path, what))
    }

    /// The bootstrap-token Secret, as the API server's bootstrap authenticator
    /// and kubeadm read it: named `bootstrap-token-<id>` in `kube-system`,
    /// type `bootstrap.kubernetes.io/token`. `stringData` spares base64; the
    /// API server stores it as `data`.
    pub fn secret_object(&self) -> serde_json::Value {
        serde_json::json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": format!("bootstrap-token-{}", self.id),
                "namespace": "kube-system",
            },
            "type": "bootstrap.kubernetes.io/token",
            "stringData": {
                "description": "Bootstrap token minted by bootherd for late joins and reimages.",
                "token-id": self.id,
                "token-secret": self.secret,
                "expiration": self.expires_rfc3339(),
                "usage-bootstrap-authentication": "true",
                "usage-bootstrap-signing": "true",
                "auth-extra-groups": AUTH_EXTRA_GROUPS,
            },
        })
    }
}

/// Creates `token`'s Secret through the API server at `endpoint`
/// (`host:port`), authenticating with a fresh admin client cert from the
/// cluster CA and trusting only that CA.
pub async fn create_on_apiserver(
    endpoint: &str,
    ca: &CertKey,
    token: &BootstrapToken,
) -> Result<()> {
    let admin = pki::issue_admin_client(ca)?;
    let client = pki::mutual_tls_client(ca, &admin, "admin client", "cluster CA")?
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .context("cannot build the HTTPS client for the API server")?;
    let url = format!("https://{endpoint}/api/v1/namespaces/kube-system/secrets");
    let resp = client
        .post(&url)
        .json(&token.secret_object())
        .send()
        .await
        .with_context(|| {
            format!(
                "cannot reach the API server at {endpoint}: is the cluster up and the VIP held?"
            )
        })?;
    let status = resp.status();
    if !status.is_success() {
        let body = resp.text().await.unwrap_or_default();
        bail!("{url}: {status}: {}", body.trim());
    }
    Ok(())
}

/// The keepalived VRRP password shared by the machines that hold the VIP.
pub fn generate_vrrp_password() -> String {
    random_string(VRRP_ALPHABET, VRRP_PASSWORD_LEN)
}

pub fn write_vrrp_password(dir: &Path, password: &str) -> Result<()> {
    write_private(&dir.join(VRRP_FILE), format!("{password}\n").as_bytes())
}

pub fn load_vrrp_password(dir: &Path) -> Result<String> {
    let path = dir.join(VRRP_FILE);
    let text = read_required(&path)?;
    let pw = text.trim_end_matches('\n');
    if pw.len() != VRRP_PASSWORD_LEN || !pw.bytes().all(|b| VRRP_ALPHABET.contains(&b)) {
        return Err(corrupt(&path, "VRRP password (8 letters or digits)"));
    }
    Ok(pw.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_has_kubeadms_form_and_round_trips() {
        let now = OffsetDateTime::now_utc();
        let t = BootstrapToken::generate(now, TOKEN_TTL);
        let s = t.token();
        assert_eq!(s.len(), 23);
        assert!(BootstrapToken::parse(&s, t.expires()).is_some(), "{s}");
        assert!(!t.needs_renewal(now));
        assert!(t.needs_renewal(now + Duration::hours(19)));
        let dir = tempfile::tempdir().unwrap();
        t.write(dir.path()).unwrap();
        assert_eq!(BootstrapToken::load(dir.path()).unwrap(), t);
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let now = OffsetDateTime::now_utc();
        for bad in [
            "abcdef0123456789abcdef",
            "ABCDEF.0123456789abcdef",
            "abcde.0123456789abcdefg",
            "abcdef.0123456789abcde",
        ] {
            assert!(BootstrapToken::parse(bad, now).is_none(), "{bad}");
        }
    }

    #[test]
    fn vrrp_password_is_eight_characters() {
        let dir = tempfile::tempdir().unwrap();
        let pw = generate_vrrp_password();
        assert_eq!(pw.len(), 8);
        write_vrrp_password(dir.path(), &pw).unwrap();
        assert_eq!(load_vrrp_password(dir.path()).unwrap(), pw);
    }
}
