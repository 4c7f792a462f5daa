#!/usr/bin/env bash
# Checks the cluster lab itself (not bootherd): two load-balancer nodes
# boot and run a cloud-init user-data that installs containerd, haproxy,
# keepalived, conntrack and etcd from the lab mirror; containerd answers,
# etcd is healthy, the VIP moves over VRRP when its holder loses power, a
# blocked mirror makes `apt-get update` fail, a node powers off and reboots
# from its disk, and `down` leaves nothing behind. Prints the timings.
# Root; about a minute once the root and the package cache exist.
#
#   [VRRP=multicast] selftest.sh [STANDIN_DEBS_DIR]
#       STANDIN_DEBS_DIR default: placeholder kubeadm/kubelet/kubectl debs
#       built in a temporary directory. VRRP: unicast (default, as bootherd's
#       keepalived.conf) or multicast.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
lab=$here/lab.sh
NS=bhclst$$
work=$(mktemp -d /tmp/bhlab-selftest.XXXXXX)
# Its own state and disks: a lab someone else runs is left alone.
export LAB_STATE=/run/bootherd-cluster-lab-selftest-$$
export LAB_DISKS=/var/tmp/bootherd-cluster-lab-selftest-$$

cleanup() {
    "$lab" down || true
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 143' TERM INT HUP

fail() {
    echo "selftest: FAIL: $*" >&2
    exit 1
}

now() {
    date +%s.%N
}

since() {
    awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'
}

placeholder_debs() {
    local out=$1 p dep
    for p in kubeadm kubelet kubectl; do
        mkdir -p "$out/$p/DEBIAN" "$out/$p/usr/bin"
        dep=""
        [[ "$p" == kubelet ]] && dep="Depends: etcd-server"
        {
            printf 'Package: %s\nVersion: 1.31.4-1.1\nArchitecture: amd64\n' "$p"
            printf 'Maintainer: bootherd lab <lab@bootherd.invalid>\n'
            [[ -z "$dep" ]] || echo "$dep"
            printf 'Description: placeholder %s for the lab self-test\n' "$p"
        } >"$out/$p/DEBIAN/control"
        printf '#!/bin/sh\necho "placeholder %s v1.31.4"\n' "$p" >"$out/$p/usr/bin/$p"
        chmod 0755 "$out/$p/usr/bin/$p"
        dpkg-deb -b --root-owner-group "$out/$p" "$out/${p}_1.31.4-1.1_amd64.deb" >/dev/null
        rm -rf "${out:?}/$p"
    done
}

# VRRP=multicast: adverts to 224.0.0.18 instead of unicast to the peer.
vrrp=${VRRP:-unicast}
[[ "$vrrp" == unicast || "$vrrp" == multicast ]] || fail "VRRP must be unicast or multicast"
standins=${1:-}
if [[ -z "$standins" ]]; then
    standins=$work/standins
    mkdir -p "$standins"
    placeholder_debs "$standins"
fi

t=$(now)
"$lab" root >/dev/null
echo "root: $(since "$t") s"
t=$(now)
"$lab" repo "$work/repo" "$standins" 1.31
echo "repo: $(since "$t") s"

"$lab" net-up "$NS" 10.0.0.1/24
"$lab" mirror-start "$NS" 10.0.0.5 "$work/repo"

# What the user-data runs: the packages from the mirror, then the configs
# (the NIC found by the node's address, as load-balancer.sh does).
cat >"$work/lab-setup.sh" <<'SETUP'
#!/bin/sh
set -eu
apt-get update --error-on=any
apt-get install -y -q containerd haproxy keepalived conntrack etcd-server etcd-client >/var/log/lab-apt.log 2>&1
install -m 0644 /etc/bootherd/haproxy.cfg /etc/haproxy/haproxy.cfg
systemctl restart haproxy
iface=$(ip -o -4 addr show | awk -v ip="$1" '{ split($4, a, "/"); if (a[1] == ip) { print $2; exit } }')
sed "s/@NODE_INTERFACE@/$iface/" /etc/bootherd/keepalived.conf >/etc/keepalived/keepalived.conf
keepalived -t -f /etc/keepalived/keepalived.conf
systemctl restart keepalived
SETUP

# The two load balancers of the example cluster, with the same keepalived
# shape as templates/keepalived/keepalived.conf (unicast peers, haproxy
# tracked) and a haproxy that answers with the node's name.
for n in 1 2; do
    peer=$((3 - n))
    seed=$work/seed-lb$n
    mkdir -p "$seed"
    printf 'instance-id: lb%s-%s\nlocal-hostname: lb%s\n' "$n" "$$" "$n" >"$seed/meta-data"
    cat >"$seed/user-data" <<EOF
#cloud-config
write_files:
  - path: /etc/bootherd/keepalived.conf
    owner: root:root
    permissions: "0600"
    content: |
      global_defs {
          router_id lb$n
          enable_script_security
          script_user root
      }
      vrrp_script check_haproxy {
          script "/usr/bin/systemctl is-active --quiet haproxy"
          interval 2
          fall 2
          rise 2
      }
      vrrp_instance bootherd_api {
          state BACKUP
          interface @NODE_INTERFACE@
          virtual_router_id 51
          priority $((200 - n * 50))
          advert_int 1
$(if [[ "$vrrp" == unicast ]]; then printf '          unicast_src_ip 10.0.0.2%s\n          unicast_peer {\n              10.0.0.2%s\n          }\n' "$n" "$peer"; fi)
          authentication {
              auth_type PASS
              auth_pass labtest1
          }
          virtual_ipaddress {
              10.0.0.100/24
          }
          track_script {
              check_haproxy
          }
      }
  - path: /etc/bootherd/haproxy.cfg
    owner: root:root
    permissions: "0644"
    content: |
      global
          log /dev/log local0
      defaults
          mode http
          timeout connect 5s
          timeout client 30s
          timeout server 30s
      frontend whoami
          bind *:8080
          http-request return status 200 content-type text/plain string "lb$n\n"
  - path: /etc/bootherd/lab-setup.sh
    owner: root:root
    permissions: "0755"
    content: |
$(sed 's/^/      /' "$work/lab-setup.sh")
runcmd:
  - [/etc/bootherd/lab-setup.sh, "10.0.0.2$n"]
EOF
done

declare -A started
for n in 1 2; do
    started[lb$n]=$(now)
    "$lab" node-start "$NS" "lb$n" "52:54:00:aa:00:2$n" "10.0.0.2$n/24" 10.0.0.1 10.0.0.1 "$work/seed-lb$n"
done
for n in 1 2; do
    "$lab" node-wait "lb$n" 600 >"$work/lb$n.status" || {
        cat "$work/lb$n.status" >&2
        "$lab" node-exec "lb$n" tail -n 30 /var/log/cloud-init-output.log >&2 || true
        fail "cloud-init failed on lb$n"
    }
    echo "lb$n: node-start to cloud-init done: $(since "${started[lb$n]}") s;" \
        "boot: $("$lab" node-exec "lb$n" systemd-analyze | sed -n 's/.*graphical.target reached after \(.*\) in userspace.*/\1/p')"
done

for n in 1 2; do
    "$lab" node-exec "lb$n" ctr version >/dev/null || fail "containerd does not answer on lb$n"
    for u in containerd haproxy keepalived; do
        "$lab" node-exec "lb$n" systemctl is-active --quiet "$u" || fail "$u is not active on lb$n"
    done
done
echo "containerd answers (ctr version), haproxy and keepalived run on lb1 and lb2"
for _ in $(seq 1 20); do
    "$lab" node-exec lb1 env ETCDCTL_API=3 etcdctl endpoint health >/dev/null 2>&1 && break
    sleep 0.5
done
"$lab" node-exec lb1 env ETCDCTL_API=3 etcdctl endpoint health >/dev/null 2>&1 || fail "etcd (Debian's etcd-server unit) is not healthy on lb1"
echo "etcd-server runs and is healthy on lb1"
"$lab" node-exec lb1 sh -c 'modprobe overlay && modprobe br_netfilter &&
    sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1 &&
    sysctl --system >/dev/null && swapoff -a' || fail "the kernel steps of common.sh fail in a node"
echo "modprobe, sysctl (net.*) and swapoff -a work in a node"
# shellcheck disable=SC2016 # expanded in the node
echo "cgroups in a node: $("$lab" node-exec lb1 sh -c 'if [ -f /sys/fs/cgroup/cgroup.controllers ]; then echo "cgroup2: $(cat /sys/fs/cgroup/cgroup.controllers)"; else echo "v1/hybrid: $(ls /sys/fs/cgroup | tr "\n" " ")"; fi')"

whoami_vip() {
    ip netns exec "$NS" curl -fsS --max-time 1 http://10.0.0.100:8080/ 2>/dev/null || true
}
for _ in $(seq 1 40); do
    [[ "$(whoami_vip)" == lb1 ]] && break
    sleep 0.5
done
[[ "$(whoami_vip)" == lb1 ]] || fail "the VIP 10.0.0.100 is not answered by lb1 (priority 150)"
echo "VIP 10.0.0.100 held by lb1 (VRRP $vrrp)"
t=$(now)
"$lab" node-kill lb1
for _ in $(seq 1 80); do
    [[ "$(whoami_vip)" == lb2 ]] && break
    sleep 0.25
done
[[ "$(whoami_vip)" == lb2 ]] || fail "the VIP did not move to lb2"
echo "VIP moved to lb2 $(since "$t") s after lb1 lost power"

"$lab" mirror-block "$NS"
if "$lab" node-exec lb2 apt-get update -q --error-on=any >/dev/null 2>&1; then
    fail "apt-get update passed with the mirror blocked"
fi
"$lab" mirror-unblock "$NS"
"$lab" node-exec lb2 apt-get update -q --error-on=any >/dev/null || fail "apt-get update failed with the mirror back"
echo "mirror blocked: apt-get update fails; unblocked: it passes"

t=$(now)
"$lab" node-stop lb2
echo "lb2 powered off cleanly in $(since "$t") s"
# A reboot: the same disk, cloud-init does not run the user-data again.
t=$(now)
"$lab" node-start "$NS" lb2 52:54:00:aa:00:22 10.0.0.22/24 10.0.0.1 10.0.0.1 "$work/seed-lb2" 2>/dev/null
"$lab" node-wait lb2 120 >/dev/null || fail "lb2 did not boot again"
"$lab" node-exec lb2 systemctl is-active --quiet keepalived || fail "keepalived did not come back on lb2's reboot"
echo "lb2 rebooted from its disk in $(since "$t") s (cloud-init done, keepalived back)"

"$lab" down
ip netns list | grep -qw "$NS" && fail "namespace $NS left behind"
grep -q "$LAB_DISKS" /proc/mounts && fail "mounts left behind"
[[ ! -e "$LAB_STATE" ]] || fail "state left behind"
echo "down: nothing left"
echo "selftest: 1 passed, 0 failed"
