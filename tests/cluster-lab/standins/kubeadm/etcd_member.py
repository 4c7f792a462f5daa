"""Stacked etcd membership as kubeadm manages it (cmd/kubeadm/app/util/etcd
and phases/etcd/local.go), against the real etcd through its JSON gateway:

- the cluster's etcd client URLs come from the etcd static Pods' mirror
  Pods (annotation kubeadm.kubernetes.io/etcd.advertise-client-urls), then
  from etcd's member list;
- a joining control plane is added as a *learner*: list members first and
  reuse an existing member with this peer URL, else MemberAddAsLearner,
  retried every 500 ms for timeouts.etcdAPICall (2 m) — so etcd's "too many
  learner members in cluster" while another learner is pending fails the
  join after that timeout with etcd's message;
- after the manifest is written, the learner is promoted, retried the same
  way until it has caught up ("can only promote a learner member which is
  in sync with leader");
- reset removes this node's member by its peer URL, unless it is the last.

The client certificate is apiserver-etcd-client, as kubeadm uses."""

import os

import etcdgw
from out import poll, say


def _client(cert_dir, endpoints):
    return etcdgw.Etcd(endpoints, os.path.join(cert_dir, "etcd/ca.crt"),
                       os.path.join(cert_dir, "apiserver-etcd-client.crt"),
                       os.path.join(cert_dir, "apiserver-etcd-client.key"))


def endpoints_from_cluster(client, timeout):
    def fetch():
        pods = client.get("/api/v1/namespaces/kube-system/pods?labelSelector=component%3Detcd,tier%3Dcontrol-plane")
        urls = []
        for p in pods.get("items") or []:
            u = (p["metadata"].get("annotations") or {}).get("kubeadm.kubernetes.io/etcd.advertise-client-urls")
            if u:
                urls += u.split(",")
        return urls
    urls, err = poll(timeout, 1, fetch)
    if not urls:
        raise RuntimeError(f"etcd cluster is not healthy: could not get the etcd endpoints from the etcd Pods' "
                           f"annotations: {err or 'no etcd Pods found'}")
    return urls


def from_cluster(client, cert_dir, timeout):
    """An etcd client for every member, kubeadm's NewFromCluster + Sync."""
    etcd = _client(cert_dir, endpoints_from_cluster(client, timeout))
    synced = [u for m in etcd.members() if not m["isLearner"] for u in m["clientURLs"]]
    if synced:
        etcd.endpoints = synced
    return etcd


def add_learner(etcd, node, peer_url, timeout):
    """[(name, peer URL)] for --initial-cluster, this node included."""
    state = {}

    def attempt():
        members = etcd.members()
        if any(m["peerURLs"] and m["peerURLs"][0] == peer_url for m in members):
            state["members"] = members
            return True
        etcd.add_member(peer_url, learner=True)
        state["members"] = etcd.members()
        return True

    ok, err = poll(timeout, 0.5, attempt)
    if not ok:
        raise RuntimeError(str(err))
    out = []
    for m in state["members"]:
        url = m["peerURLs"][0] if m["peerURLs"] else ""
        if url == peer_url:
            out.append((node, url))
        else:
            out.append((m["name"] or format(m["ID"], "x"), url))
    say("[etcd] Announced new etcd member joining to the existing etcd cluster")
    return out


def member_id(etcd, peer_url):
    for m in etcd.members():
        if peer_url in m["peerURLs"]:
            return m["ID"], m["isLearner"]
    raise RuntimeError(f"couldn't find a member matching peer address {peer_url}")


def promote(etcd, peer_url, timeout):
    mid, learner = member_id(etcd, peer_url)
    if not learner:
        return
    say(f"[etcd] Promoting the learner {mid:x} to a voting member")

    def attempt():
        etcd.promote(mid)
        return True

    ok, err = poll(timeout, 0.5, attempt)
    if not ok:
        raise RuntimeError(str(err))
    say(f"[etcd] The learner was promoted as a voting member: {mid:x}")


def wait_available(etcd, timeout):
    ok, err = poll(timeout, 1, lambda: etcd.status())
    if not ok:
        raise RuntimeError(f"timeout waiting for etcd cluster to be available: {err}")


def remove_this_member(client, cert_dir, local_ep, timeout):
    """reset's remove-etcd-member: through the cluster's other members."""
    etcd = from_cluster(client, cert_dir, timeout)
    members = etcd.members()
    ip = local_ep["advertiseAddress"]
    if len(members) == 1 and f"https://{ip}:2379" in etcd.endpoints:
        print("[reset] This is the only remaining etcd member in the etcd cluster, skip removing it")
        return
    mid, _ = member_id(etcd, f"https://{ip}:2380")
    etcd.endpoints = [e for e in etcd.endpoints if ip not in e] or etcd.endpoints
    etcd.remove(mid)
    print(f"[reset] Removed etcd member {mid:x}")

