//! Removing a control plane's etcd member before it is reimaged (README,
//! "Day-to-day"). A reinstalled control plane joins with an
//! empty data directory; if its old member were still listed, the cluster
//! would count a dead voter until someone removed it by hand, and a second
//! failure could then cost quorum. So bootherd removes the member first,
//! through a healthy control plane's etcd, and refuses when the removal
//! itself would leave the remaining members without a healthy quorum.
//!
//! bootherd talks to etcd through its JSON gRPC gateway (`/v3/…`, etcd 3.4
//! and later) over HTTPS, with a short-lived client cert from the etcd CA it
//! holds, trusting only that CA. kubeadm names each stacked etcd member after
//! the node's hostname and advertises `https://<node ip>:2379`.

use super::pki::{self, CertKey};
use super::Secrets;
use crate::config::{Config, Machine};
use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;
use std::time::Duration;
use tokio::task::JoinSet;

/// The etcd client port kubeadm's stacked etcd listens on.
pub const ETCD_CLIENT_PORT: u16 = 2379;
/// The etcd peer port kubeadm's stacked etcd listens on.
pub const ETCD_PEER_PORT: u16 = 2380;
/// A powered-off control plane never answers: give up on it quickly.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// etcd answers `/health` within about a second, or says false; a member
/// remove commits within etcd's own request timeout (a few seconds).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The client cert lives only as long as one reimage check needs.
const CLIENT_CERT_VALIDITY: time::Duration = time::Duration::hours(1);

/// Serializes control-plane reimages: two checks running side by side could
/// each see a healthy quorum and together remove two members.
static REIMAGE_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Where each control plane's etcd answers: (hostname, base URL). In
/// production [`EtcdEndpoints::from_config`] gives `https://<ip>:2379` for
/// every configured control plane; tests that run several members on one
/// address pass their own list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdEndpoints(Vec<(String, String)>);

impl EtcdEndpoints {
    pub fn from_config(config: &Config) -> EtcdEndpoints {
        EtcdEndpoints(
            config
                .control_planes()
                .map(|m| {
                    (
                        m.hostname.clone(),
                        format!("https://{}:{ETCD_CLIENT_PORT}", m.ip),
                    )
                })
                .collect(),
        )
    }

    /// (hostname, base URL such as `https://127.0.0.1:23791`) pairs.
    pub fn new(endpoints: Vec<(String, String)>) -> EtcdEndpoints {
        EtcdEndpoints(endpoints)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(h, u)| (h.as_str(), u.as_str()))
    }
}

/// What happened to the reimaged node's etcd member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberRemoval {
    /// Removed, through the member named `via`.
    Removed { member_id: String, via: String },
    /// The cluster answered but lists no member of that name: already removed
    /// (or the node never joined).
    NotAMember,
    /// Nothing listens on any configured control plane's etcd port: no
    /// cluster exists yet. (An endpoint that answers but cannot be asked is
    /// a [`RemovalError::Failed`] instead.)
    NoCluster { tried: Vec<String> },
    /// The reimaged node is the only member: etcd cannot remove its last
    /// member, and reinstalling the node starts the cluster over.
    LastMember,
    /// The config has no other control plane: there is no one to ask and
    /// nothing a removal would protect.
    SoleControlPlane,
}

impl MemberRemoval {
    /// A one-line note for the event log.
    pub fn describe(&self, hostname: &str) -> String {
        match self {
            MemberRemoval::Removed { member_id, via } => {
                format!("removed etcd member {hostname} ({member_id}) through {via}")
            }
            MemberRemoval::NotAMember => {
                format!("etcd lists no member {hostname}: nothing to remove")
            }
            MemberRemoval::NoCluster { .. } => {
                "no control plane's etcd answered: no cluster to leave yet".to_string()
            }
            MemberRemoval::LastMember => {
                format!("{hostname} is etcd's only member: the reinstall starts the cluster over")
            }
            MemberRemoval::SoleControlPlane => format!(
                "{hostname} is the only control plane: the reinstall starts the cluster over"
            ),
        }
    }
}

/// Why a removal did not happen.
#[derive(Debug, thiserror::Error)]
pub enum RemovalError {
    /// Removing the member would break quorum: the reason says which members
    /// to bring back first. Nothing was changed.
    #[error("{0}")]
    Refused(String),
    /// etcd could not be asked, or did not confirm the removal; the message
    /// says what to check before trying again.
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

#[derive(Debug, Clone, Deserialize)]
struct Member {
    /// uint64, as a string in proto3's JSON mapping.
    #[serde(rename = "ID", default)]
    id: String,
    /// Empty for a member that was added but has not started yet.
    #[serde(default)]
    name: String,
    #[serde(rename = "clientURLs", default)]
    client_urls: Vec<String>,
    #[serde(rename = "peerURLs", default)]
    peer_urls: Vec<String>,
    /// Learners do not vote, so they count for no quorum.
    #[serde(rename = "isLearner", default)]
    is_learner: bool,
}

#[derive(Debug, Deserialize)]
struct MemberList {
    #[serde(default)]
    members: Vec<Member>,
}

#[derive(Debug, Deserialize)]
struct Health {
    health: String,
}

/// An HTTPS client for etcd: a fresh client cert from the etcd CA, and only
/// that CA trusted.
fn client(etcd_ca: &CertKey) -> Result<reqwest::Client> {
    let cert = pki::issue_client(etcd_ca, "bootherd", &[], CLIENT_CERT_VALIDITY)?;
    pki::mutual_tls_client(etcd_ca, &cert, "etcd client", "etcd CA")?
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .build()
        .context("cannot build the HTTPS client for etcd")
}

/// POSTs a gateway call and parses the JSON answer.
async fn call<T: serde::de::DeserializeOwned>(
    client: &reqwest::Client,
    base: &str,
    path: &str,
    body: serde_json::Value,
) -> Result<T> {
    let url = format!("{}{path}", base.trim_end_matches('/'));
    let resp = client
        .post(&url)
        .json(&body)
        .send()
        .await
        .with_context(|| format!("{url}: no answer"))?;
    let status = resp.status();
    let text = resp
        .text()
        .await
        .with_context(|| format!("{url}: the answer broke off"))?;
    if !status.is_success() {
        bail!("{url}: {status}: {}", text.trim());
    }
    serde_json::from_str(&text).with_context(|| format!("{url}: not the expected JSON: {text}"))
}

async fn list_members(client: &reqwest::Client, base: &str) -> Result<Vec<Member>> {
    let list: MemberList = call(
        client,
        base,
        "/v3/cluster/member/list",
        serde_json::json!({}),
    )
    .await?;
    Ok(list.members)
}

/// Whether any of the member's client URLs says `{"health":"true"}`. etcd
/// answers false (503) when the member cannot reach a quorum.
async fn member_is_healthy(client: reqwest::Client, urls: Vec<String>) -> bool {
    for base in urls {
        let url = format!("{}/health", base.trim_end_matches('/'));
        let Ok(resp) = client.get(&url).send().await else {
            continue;
        };
        if !resp.status().is_success() {
            continue;
        }
        if let Ok(h) = resp.json::<Health>().await {
            if h.health == "true" {
                return true;
            }
        }
    }
    false
}

/// Whether a failed call means that nothing listens there (refused, no
/// route, no answer in time), as on a machine that has no cluster
/// installed yet, rather than an etcd that answered and turned bootherd
/// away.
fn nobody_listens(e: &anyhow::Error) -> bool {
    use std::io::ErrorKind;
    e.chain().any(|cause| {
        if let Some(r) = cause.downcast_ref::<reqwest::Error>() {
            if r.is_timeout() {
                return true;
            }
        }
        cause.downcast_ref::<std::io::Error>().is_some_and(|io| {
            matches!(
                io.kind(),
                ErrorKind::ConnectionRefused
                    | ErrorKind::TimedOut
                    | ErrorKind::HostUnreachable
                    | ErrorKind::NetworkUnreachable
            )
        })
    })
}

/// The members' health, probed side by side (a dead member costs one
/// connect timeout, not one per member), in the members' order.
async fn probe_all(client: &reqwest::Client, members: &[Member]) -> Vec<bool> {
    let mut probes = JoinSet::new();
    for (i, m) in members.iter().enumerate() {
        let (c, urls) = (client.clone(), m.client_urls.clone());
        probes.spawn(async move { (i, member_is_healthy(c, urls).await) });
    }
    let mut healthy = vec![false; members.len()];
    while let Some(done) = probes.join_next().await {
        if let Ok((i, h)) = done {
            healthy[i] = h;
        }
    }
    healthy
}

fn display_name(m: &Member) -> String {
    if m.name.is_empty() {
        format!("the unstarted member {}", m.id)
    } else {
        m.name.clone()
    }
}

/// Decides whether removing `target` (an index into `members`) keeps a
/// healthy quorum, given each member's health. Learners neither vote nor
/// count.
fn check_quorum(
    hostname: &str,
    members: &[Member],
    healthy: &[bool],
    target: usize,
) -> Result<(), String> {
    if members[target].is_learner {
        return Ok(());
    }
    let voters: Vec<usize> = (0..members.len())
        .filter(|&i| !members[i].is_learner)
        .collect();
    let n = voters.len();
    let h = voters.iter().filter(|&&i| healthy[i]).count();
    let mut down: Vec<String> = voters
        .iter()
        .filter(|&&i| i != target && !healthy[i])
        .map(|&i| display_name(&members[i]))
        .collect();
    down.sort();
    let bring_back = if down.is_empty() {
        "check the etcd logs on the control planes first".to_string()
    } else {
        format!("bring {} back first", down.join(", "))
    };
    let remaining = n - 1;
    let healthy_remaining = h - usize::from(healthy[target]);
    let needed = remaining / 2 + 1;
    if healthy_remaining < needed {
        return Err(format!(
            "removing {hostname} would leave {healthy_remaining} of {remaining} etcd members healthy: quorum needs {needed}; {bring_back}"
        ));
    }
    // Removing a dead member still has to be committed by a quorum of today's members.
    let needed_now = n / 2 + 1;
    if h < needed_now {
        return Err(format!(
            "etcd has lost quorum ({h} of {n} members healthy, quorum needs {needed_now}), so it cannot remove {hostname}; {bring_back}"
        ));
    }
    Ok(())
}

/// Removes `hostname`'s etcd member, asking the control planes in
/// `endpoints` (the others first, the reimaged one last, since it may be
/// the only one that still answers and its view must not be ignored).
/// Refuses when the removal would leave the remaining members without a
/// healthy quorum; nothing is changed then.
pub async fn remove_member(
    etcd_ca: &CertKey,
    endpoints: &EtcdEndpoints,
    hostname: &str,
) -> Result<MemberRemoval, RemovalError> {
    remove_member_of(etcd_ca, endpoints, hostname, None).await
}

/// [`remove_member`], matching also a member that was added for the node
/// but never started (it has no name yet, only `peer_url`): what a
/// control-plane join that failed half-way leaves behind, and what
/// `kubeadm reset` does not remove.
pub async fn remove_member_of(
    etcd_ca: &CertKey,
    endpoints: &EtcdEndpoints,
    hostname: &str,
    peer_url: Option<&str>,
) -> Result<MemberRemoval, RemovalError> {
    if endpoints.iter().all(|(h, _)| h == hostname) {
        return Ok(MemberRemoval::SoleControlPlane);
    }
    let _serial = REIMAGE_LOCK.lock().await;
    let client = client(etcd_ca)?;
    let order = endpoints
        .iter()
        .filter(|(h, _)| *h != hostname)
        .chain(endpoints.iter().filter(|(h, _)| *h == hostname));
    let mut tried = Vec::new();
    let mut answered = Vec::new();
    let mut members = None;
    for (host, base) in order {
        match list_members(&client, base).await {
            Ok(m) => {
                members = Some(m);
                break;
            }
            Err(e) => {
                tracing::debug!(%host, "etcd member list failed: {e:#}");
                let line = format!("{host} ({base}): {e:#}");
                if nobody_listens(&e) {
                    tried.push(line);
                } else {
                    answered.push(line);
                }
            }
        }
    }
    let Some(members) = members else {
        // Something that answers but cannot be asked (another CA, a
        // refused cert, an error status) is a cluster bootherd cannot see
        // into: going ahead could take a member's quorum share unnoticed.
        if !answered.is_empty() {
            return Err(RemovalError::Failed(anyhow!(
                "cannot list the etcd members of the cluster, so the reimage of {hostname} is not started:\n  {}\ncheck that etcd on the control planes uses bootherd's etcd CA (<data_dir>/cluster/etcd-ca.crt) and answers on :{ETCD_CLIENT_PORT}",
                answered.join("\n  ")
            )));
        }
        return Ok(MemberRemoval::NoCluster { tried });
    };
    let unstarted_for_node = |m: &Member| {
        m.name.is_empty() && peer_url.is_some_and(|p| m.peer_urls.iter().any(|u| u == p))
    };
    let Some(target) = members
        .iter()
        .position(|m| m.name == hostname || unstarted_for_node(m))
    else {
        return Ok(MemberRemoval::NotAMember);
    };
    if members.len() == 1 {
        return Ok(MemberRemoval::LastMember);
    }
    let healthy = probe_all(&client, &members).await;
    check_quorum(hostname, &members, &healthy, target).map_err(RemovalError::Refused)?;

    // Ask a healthy member other than the one leaving: the leaving member's
    // own answer would come from a process that is about to stop serving.
    let via = (0..members.len())
        .find(|&i| i != target && healthy[i] && !members[i].is_learner)
        .ok_or_else(|| anyhow!("no healthy etcd member other than {hostname} to ask"))?;
    let id = &members[target].id;
    let mut last_err = None;
    for base in &members[via].client_urls {
        let removed: Result<serde_json::Value> = call(
            &client,
            base,
            "/v3/cluster/member/remove",
            serde_json::json!({ "ID": id }),
        )
        .await;
        match removed {
            Ok(_) => {
                return Ok(MemberRemoval::Removed {
                    member_id: id.clone(),
                    via: display_name(&members[via]),
                })
            }
            Err(e) => last_err = Some(e),
        }
    }
    Err(RemovalError::Failed(
        last_err
            .unwrap_or_else(|| anyhow!("{} advertises no client URL", members[via].name))
            .context(format!(
                "etcd did not confirm removing {hostname}'s member (a timed-out removal may still apply): check the member list on a control plane and try the reimage again, which skips a member already gone"
            )),
    ))
}

/// Whether the etcd of a control plane other than `asker` answers with a
/// member list: a cluster exists even if no control plane has reported
/// `joined` yet (the one that ran `init` may have died before it could).
/// Asked side by side, so dead machines cost one connect timeout.
pub async fn another_member_answers(config: &Config, asker: &Machine) -> Result<bool> {
    let endpoints = EtcdEndpoints::from_config(config);
    let others: Vec<String> = endpoints
        .iter()
        .filter(|(h, _)| *h != asker.hostname)
        .map(|(_, base)| base.to_string())
        .collect();
    if others.is_empty() {
        return Ok(false);
    }
    let secrets = Secrets::load_or_create(config)?;
    let client = client(secrets.etcd_ca())?;
    let mut asks = JoinSet::new();
    for base in others {
        let client = client.clone();
        asks.spawn(async move { list_members(&client, &base).await.is_ok() });
    }
    while let Some(done) = asks.join_next().await {
        if done.unwrap_or(false) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The peer URL kubeadm gives a stacked etcd member.
fn peer_url(machine: &Machine) -> String {
    format!("https://{}:{ETCD_PEER_PORT}", machine.ip)
}

/// Removes `machine`'s etcd member (by name, or an unstarted one by its
/// peer URL), asking the other configured control planes; the secrets are
/// loaded only when there is someone to ask. Returns the secrets it used.
async fn remove_machines_member(
    config: &Config,
    machine: &Machine,
) -> Result<(MemberRemoval, Option<Secrets>), RemovalError> {
    let endpoints = EtcdEndpoints::from_config(config);
    if endpoints.iter().all(|(h, _)| h == machine.hostname) {
        return Ok((MemberRemoval::SoleControlPlane, None));
    }
    let secrets = Secrets::load_or_create(config)?;
    let removal = remove_member_of(
        secrets.etcd_ca(),
        &endpoints,
        &machine.hostname,
        Some(&peer_url(machine)),
    )
    .await?;
    Ok((removal, Some(secrets)))
}

/// A control plane whose join failed half-way, before it joined: its
/// member, if etcd lists one (started or not), is stale, and the next
/// attempt could not join beside it. Removed under the same quorum rules as
/// a reimage's.
pub async fn forget_failed_join(
    config: &Config,
    machine: &Machine,
) -> Result<String, RemovalError> {
    let (removal, _) = remove_machines_member(config, machine).await?;
    Ok(removal.describe(&machine.hostname))
}

/// Everything a control plane's reimage needs first: its etcd member
/// removed (or a reason why there is none to remove), then its Node object
/// deleted through the API server at the cluster endpoint. A Node that
/// cannot be deleted is only a warning in the returned note: the member is
/// gone by then, and the reinstalled node replaces a stale Node when it
/// registers again.
pub async fn prepare_control_plane_reimage(
    config: &Config,
    machine: &Machine,
) -> Result<String, RemovalError> {
    let (removal, secrets) = remove_machines_member(config, machine).await?;
    let mut note = removal.describe(&machine.hostname);
    match &removal {
        MemberRemoval::NoCluster { tried } => {
            tracing::info!(host = %machine.hostname, ?tried, "no etcd answered: the reimage proceeds");
            return Ok(note);
        }
        MemberRemoval::SoleControlPlane | MemberRemoval::LastMember => {
            tracing::warn!(host = %machine.hostname, "{note}");
            return Ok(note);
        }
        MemberRemoval::Removed { .. } | MemberRemoval::NotAMember => {
            tracing::info!(host = %machine.hostname, "{note}");
        }
    }
    let Some(secrets) = secrets else {
        return Ok(note); // only a sole control plane has none, handled above
    };
    let endpoint = config.cluster.endpoint.to_string();
    match super::nodes::delete_node(&endpoint, secrets.ca(), &machine.hostname).await {
        Ok(d) => note.push_str(&format!("; {}", d.describe(&machine.hostname))),
        Err(e) => {
            tracing::warn!(host = %machine.hostname, "cannot delete the Node: {e:#}");
            note.push_str(&format!(
                "; the Node object was not deleted ({e:#}): kubectl delete node {} once the API server answers",
                machine.hostname
            ));
        }
    }
    Ok(note)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::{machine_toml, parse, NET10, STACKED};

    fn members(names: &[&str]) -> Vec<Member> {
        names
            .iter()
            .enumerate()
            .map(|(i, n)| Member {
                id: (i + 1).to_string(),
                name: n.to_string(),
                client_urls: vec![],
                peer_urls: vec![],
                is_learner: false,
            })
            .collect()
    }

    #[test]
    fn three_healthy_members_lose_one() {
        let m = members(&["cp1", "cp2", "cp3"]);
        assert_eq!(check_quorum("cp2", &m, &[true, true, true], 1), Ok(()));
    }

    #[test]
    fn removing_a_healthy_member_next_to_a_dead_one_is_refused() {
        let m = members(&["cp1", "cp2", "cp3"]);
        let e = check_quorum("cp2", &m, &[true, true, false], 1).unwrap_err();
        assert_eq!(
            e,
            "removing cp2 would leave 1 of 2 etcd members healthy: quorum needs 2; bring cp3 back first"
        );
    }

    #[test]
    fn the_dead_member_itself_may_go() {
        let m = members(&["cp1", "cp2", "cp3"]);
        assert_eq!(check_quorum("cp3", &m, &[true, true, false], 2), Ok(()));
    }

    #[test]
    fn a_cluster_without_quorum_removes_nothing() {
        let m = members(&["cp1", "cp2"]);
        let e = check_quorum("cp2", &m, &[true, false], 1).unwrap_err();
        assert!(e.starts_with("etcd has lost quorum (1 of 2"), "{e}");
        let e = check_quorum("cp1", &m, &[true, false], 0).unwrap_err();
        assert!(e.contains("0 of 1") && e.contains("bring cp2 back"), "{e}");
    }

    #[test]
    fn learners_do_not_count() {
        let mut m = members(&["cp1", "cp2", "cp3", "cp4"]);
        m[3].is_learner = true;
        assert_eq!(
            check_quorum("cp4", &m, &[true, false, false, true], 3),
            Ok(())
        );
        assert!(check_quorum("cp1", &m, &[true, true, false, true], 0).is_err());
    }

    #[test]
    fn production_endpoints_are_the_control_planes_on_2379() {
        let cp1 = machine_toml("52:54:00:aa:00:01", "cp1", "control-plane", "10.0.0.11");
        let w1 = machine_toml("52:54:00:aa:00:31", "w1", "worker", "10.0.0.31");
        let config = parse(&format!("{NET10}{STACKED}{cp1}{w1}"));
        assert_eq!(
            EtcdEndpoints::from_config(&config),
            EtcdEndpoints::new(vec![("cp1".into(), "https://10.0.0.11:2379".into())])
        );
    }
}
