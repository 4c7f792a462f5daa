//! Deleting a reimaged node's Node object, so that the cluster stops
//! scheduling onto (and counting) a machine that is being reinstalled, and
//! the reinstalled node registers afresh under the same name.

use super::pki::{self, CertKey};
use anyhow::{bail, Context, Result};
use std::time::Duration;

/// What became of the Node object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeDeletion {
    Deleted,
    /// The API server has no Node of that name: nothing to delete.
    NotFound,
}

impl NodeDeletion {
    pub fn describe(self, name: &str) -> String {
        match self {
            NodeDeletion::Deleted => format!("deleted Node {name}"),
            NodeDeletion::NotFound => format!("no Node {name} to delete"),
        }
    }
}

/// Deletes Node `name` through the API server at `endpoint` (`host:port`),
/// authenticating with a fresh admin client cert from the cluster CA and
/// trusting only that CA. A 404 is success: the Node is gone either way.
pub async fn delete_node(endpoint: &str, ca: &CertKey, name: &str) -> Result<NodeDeletion> {
    let admin = pki::issue_admin_client(ca)?;
    let client = pki::mutual_tls_client(ca, &admin, "admin client", "cluster CA")?
        .connect_timeout(Duration::from_secs(3))
        // Short enough that the whole reimage check stays within the CLI's 30 s.
        .timeout(Duration::from_secs(10))
        .build()
        .context("cannot build the HTTPS client for the API server")?;
    // Hostnames were validated by the config (DNS labels), so the name needs
    // no escaping in the path.
    let url = format!("https://{endpoint}/api/v1/nodes/{name}");
    let resp = client.delete(&url).send().await.with_context(|| {
        format!("cannot reach the API server at {endpoint}: is the cluster up and the VIP held?")
    })?;
    let status = resp.status();
    if status == reqwest::StatusCode::NOT_FOUND {
        return Ok(NodeDeletion::NotFound);
    }
    if !status.is_success() {
        let body = resp.text().await.unwrap_or_default();
        bail!("DELETE {url}: {status}: {}", body.trim());
    }
    Ok(NodeDeletion::Deleted)
}
