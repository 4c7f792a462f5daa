# shellcheck shell=bash
# bootherd first boot: the steps every Kubernetes node shares, and the
# plumbing every role script uses (log, steps, retries, callbacks). Sourced
# by the role scripts, never run on its own. Every step checks before it
# changes anything, so running a role script again changes nothing.

if [ -n "${BOOTHERD_COMMON_LOADED:-}" ]; then
    return 0
fi
BOOTHERD_COMMON_LOADED=1

set -euo pipefail
umask 022
export DEBIAN_FRONTEND=noninteractive

BOOTHERD_ETC=${BOOTHERD_ETC:-/etc/bootherd}
BOOTHERD_LOG=${BOOTHERD_LOG:-/var/log/bootherd-firstboot.log}
BOOTHERD_STATE=${BOOTHERD_STATE:-/var/lib/bootherd}

# shellcheck source=/dev/null
. "$BOOTHERD_ETC/firstboot.env"

# Everything after this line goes to the log, including the tools' output.
exec >>"$BOOTHERD_LOG" 2>&1

BOOTHERD_STEP=start
BOOTHERD_DONE=0
CHANGED=0
SLOT_RENEWER=

log() {
    printf '%s bootherd %s: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$BOOTHERD_STEP" "$*"
}

step() {
    BOOTHERD_STEP=$1
    log "step $1"
}

# retry MAX CMD...: runs CMD until it succeeds, at most MAX times, waiting
# 2 s, 4 s, 8 s … (at most 60 s) in between: networks and mirrors come late.
retry() {
    local max=$1 n=1 delay=2
    shift
    until "$@"; do
        if [ "$n" -ge "$max" ]; then
            log "giving up after $n attempts: $*"
            return 1
        fi
        log "attempt $n failed: $*; again in ${delay}s"
        sleep "$delay"
        n=$((n + 1))
        delay=$((delay * 2))
        if [ "$delay" -gt 60 ]; then
            delay=60
        fi
    done
}

# put DEST MODE < content: writes DEST only when its content differs, and
# sets CHANGED=1 when it did (so services restart only on a change).
put() {
    local dest=$1 mode=$2 tmp
    tmp=$(mktemp)
    cat >"$tmp"
    if [ -f "$dest" ] && cmp -s "$tmp" "$dest"; then
        CHANGED=0
        rm -f "$tmp"
        return 0
    fi
    install -D -m "$mode" "$tmp" "$dest"
    rm -f "$tmp"
    CHANGED=1
    log "wrote $dest"
}

# callback URL [CURL_ARGS...]: POSTs to bootherd, retrying; the URL goes last.
callback() {
    local url=$1
    shift
    retry 8 curl -fsS -o /dev/null -X POST --max-time 20 "$@" "$url"
}

# On any failure, tell bootherd which step failed (once per run). The
# systemd unit runs the script again after a pause, until it reports success.
on_exit() {
    local rc=$?
    if [ -n "$SLOT_RENEWER" ]; then
        kill "$SLOT_RENEWER" 2>/dev/null || true
    fi
    if [ "$rc" -ne 0 ] && [ "$BOOTHERD_DONE" = 0 ]; then
        log "failed with exit code $rc"
        # The end of this log goes along: the operator sees the error on
        # bootherd's status page without logging in to the node.
        local log_tail
        log_tail=$(mktemp)
        tail -c 8192 "$BOOTHERD_LOG" >"$log_tail" || true
        callback "${BOOTHERD_FAILED_URL}&step=${BOOTHERD_STEP}" \
            -H "Content-Type: text/plain" --data-binary "@$log_tail" ||
            log "the failure callback failed too"
        rm -f "$log_tail"
    fi
}
trap on_exit EXIT

# The last step of every role: report success, once (the token works once).
finish() {
    step report
    if [ -f "$BOOTHERD_STATE/firstboot-reported" ]; then
        log "already reported to bootherd"
    else
        callback "$BOOTHERD_JOINED_URL"
        install -d -m 0755 "$BOOTHERD_STATE"
        touch "$BOOTHERD_STATE/firstboot-reported"
    fi
    BOOTHERD_DONE=1
    log "first boot finished"
}

# unattended-upgrades may hold dpkg's lock for many minutes on a fresh
# system: wait for it rather than fail.
APT_OPTS=(-q -o DPkg::Lock::Timeout=600)

# --error-on=any: a mirror that cannot be reached is a failure to retry,
# not a warning (apt-get update exits 0 on warnings).
apt_update() {
    retry 6 apt-get "${APT_OPTS[@]}" update --error-on=any
}

# apt_install PKG...: installs the packages that are missing.
apt_install() {
    local missing=() p
    for p in "$@"; do
        if ! dpkg -s "$p" >/dev/null 2>&1; then
            missing+=("$p")
        fi
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        apt_update
        retry 6 apt-get "${APT_OPTS[@]}" install -y --no-install-recommends "${missing[@]}"
    fi
}

disable_swap() {
    step swap-off
    swapoff -a
    # Comment swap out of fstab too, or it comes back on the next boot.
    if grep -Eq '^[^#].*[[:space:]]swap[[:space:]]' /etc/fstab; then
        sed -Ei 's/^([^#].*[[:space:]]swap[[:space:]].*)$/# bootherd: kubelet needs swap off: \1/' /etc/fstab
        log "swap commented out of /etc/fstab"
    fi
}

kernel_modules() {
    step kernel-modules
    put /etc/modules-load.d/bootherd-kubernetes.conf 0644 <<'CONF'
overlay
br_netfilter
CONF
    local m
    for m in overlay br_netfilter; do
        # Loaded already, or built in: nothing to load (and in a container
        # modprobe cannot load anything).
        if [ ! -d "/sys/module/$m" ]; then
            modprobe "$m"
        fi
    done
}

# kubelet needs the memory cgroup controller; Raspberry Pi kernels come
# with it disabled unless the command line turns it on.
memory_cgroup() {
    step memory-cgroup
    local on=0
    if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
        # cgroup v2 (Ubuntu's default)
        grep -qw memory /sys/fs/cgroup/cgroup.controllers && on=1
    else
        # cgroup v1: /proc/cgroups says whether the controller is enabled.
        awk '$1 == "memory" && $4 == 1 { found = 1 } END { exit !found }' /proc/cgroups 2>/dev/null && on=1
    fi
    if [ "$on" = 0 ]; then
        log "the memory cgroup controller is off (kernel command line: $(cat /proc/cmdline 2>/dev/null)); kubelet cannot run without it"
        log "add 'cgroup_enable=memory cgroup_memory=1' to the kernel command line (on a Raspberry Pi: cmdline.txt on the boot partition) and reboot"
        return 1
    fi
}

# TLS, apt and the cluster's certificates need a clock that is not behind:
# Raspberry Pis have no battery clock. Waits for the clock to pass the day
# the seed was made, and for time sync where systemd reports it.
wait_for_clock() {
    step clock
    # timesyncd started before cloud-init wrote the network's servers.
    if [ -f /etc/systemd/timesyncd.conf.d/bootherd.conf ]; then
        systemctl try-restart systemd-timesyncd.service || true
    fi
    until [ "$(date +%s)" -ge "$BOOTHERD_NOT_BEFORE" ]; do
        log "the clock says $(date -u +%Y-%m-%dT%H:%M:%SZ), before this node's seed was made: waiting for time sync"
        timedatectl set-ntp true 2>/dev/null || true
        sleep 10
    done
    # Only where a time sync service runs (not in containers, or where
    # the site runs none): otherwise nothing will ever report sync.
    if command -v timedatectl >/dev/null && [ -d /run/systemd/system ] &&
        [ "$(timedatectl show -p CanNTP --value 2>/dev/null)" = yes ] &&
        [ "$(timedatectl show -p NTP --value 2>/dev/null)" = yes ]; then
        local n=0
        until [ "$(timedatectl show -p NTPSynchronized --value 2>/dev/null)" = yes ]; do
            # Containers and sites without NTP never sync: go on after
            # 5 minutes with a clock that is at least not behind the seed.
            if [ "$n" -ge 30 ]; then
                log "time is not synchronised after 5 minutes; going on with $(date -u +%Y-%m-%dT%H:%M:%SZ)"
                break
            fi
            n=$((n + 1))
            sleep 10
        done
    fi
}

sysctls() {
    step sysctl
    put /etc/sysctl.d/99-bootherd-kubernetes.conf 0644 <<'CONF'
net.ipv4.ip_forward = 1
net.bridge.bridge-nf-call-iptables = 1
net.bridge.bridge-nf-call-ip6tables = 1
CONF
    if [ "$CHANGED" = 1 ]; then
        sysctl --system >/dev/null
    fi
}

# The config format follows the installed containerd: version 2 for 1.x,
# version 3 for 2.x (the CRI plugin moved), SystemdCgroup = true in both.
containerd_setup() {
    step containerd
    apt_install containerd
    local version major
    version=$(containerd --version | awk '{print $3}')
    major=${version#v}
    major=${major%%.*}
    case "$major" in
        1) put /etc/containerd/config.toml 0644 <"$BOOTHERD_ETC/containerd/config-v2.toml" ;;
        2) put /etc/containerd/config.toml 0644 <"$BOOTHERD_ETC/containerd/config-v3.toml" ;;
        *)
            log "unknown containerd version '$version'"
            return 1
            ;;
    esac
    systemctl enable containerd
    if [ "$CHANGED" = 1 ]; then
        systemctl restart containerd
    fi
}

kubernetes_repo() {
    step kubernetes-repo
    apt_install ca-certificates curl gpg
    # pkgs.k8s.io's repository of the cluster's minor, or the site's copy.
    local url=$BOOTHERD_K8S_REPO
    local keyring=/etc/apt/keyrings/kubernetes-apt-keyring.gpg
    if [ ! -s "$keyring" ]; then
        local key
        key=$(mktemp)
        retry 6 curl -fsSL --max-time 60 -o "$key" "${url}Release.key"
        install -d -m 0755 /etc/apt/keyrings
        gpg --batch --yes --dearmor -o "$keyring" "$key"
        rm -f "$key"
    fi
    put /etc/apt/sources.list.d/kubernetes.list 0644 <<LIST
deb [signed-by=$keyring] $url /
LIST
    if [ "$CHANGED" = 1 ]; then
        apt_update
    fi
}

kubernetes_packages() {
    step kubernetes-packages
    # kubeadm's preflight wants these tools, and kubelet's package no longer
    # pulls them all in (conntrack since 1.31).
    apt_install kubelet kubeadm kubectl conntrack socat ebtables ethtool iptables
    # Held: an unattended upgrade must never move the cluster's version.
    apt-mark hold kubelet kubeadm kubectl >/dev/null
    systemctl enable kubelet
}

# Everything a node needs before kubeadm.
prepare_node() {
    wait_for_clock
    memory_cgroup
    disable_swap
    kernel_modules
    sysctls
    containerd_setup
    kubernetes_repo
    kubernetes_packages
}

# The bootstrap token bootherd holds now: the seed's token may have expired
# while this machine sat waiting (bootherd renews it). Falls back to the
# seed's token when bootherd cannot be asked.
current_token() {
    local t
    t=$(curl -fsS --max-time 20 "$BOOTHERD_TOKEN_URL" 2>/dev/null) || t=
    if [[ "$t" =~ ^[a-z0-9]{6}\.[a-z0-9]{16}$ ]]; then
        printf '%s\n' "$t"
    else
        log "cannot ask bootherd for the current bootstrap token; using the seed's" >&2
    fi
}

# kubeadm_config init|join: that kubeadm config, with the installed
# kubeadm's exact version and bootherd's current bootstrap token filled in,
# at $KUBEADM_CONFIG.
KUBEADM_CONFIG=
kubeadm_config() {
    step kubeadm-config
    local version token edits
    version=$(kubeadm version -o short)
    edits=(-E -e "s/@KUBERNETES_VERSION@/${version}/")
    token=$(current_token)
    if [ -n "$token" ]; then
        edits+=(-e "s/(token: )\"[a-z0-9]{6}\.[a-z0-9]{16}\"/\\1\"${token}\"/")
    fi
    KUBEADM_CONFIG=$BOOTHERD_ETC/kubeadm-$1.final.yaml
    put "$KUBEADM_CONFIG" 0600 < <(sed "${edits[@]}" "$BOOTHERD_ETC/kubeadm-$1.yaml")
}

api_answers() {
    curl -ksf -o /dev/null --max-time 5 "https://${BOOTHERD_ENDPOINT}/livez"
}

# Waits (hours, if need be) for the API behind the VIP: nodes install in
# any order, and the first control plane may come up last.
wait_for_api() {
    step wait-for-api
    until api_answers; do
        log "the API at https://${BOOTHERD_ENDPOINT} does not answer yet; again in 10s"
        sleep 10
    done
}

# kubeadm_attempts MAX CMD...: runs a kubeadm init/join until it succeeds.
# A failed attempt leaves a half-made node that fails the next preflight,
# so it is reset first, and `restore_node_inputs` (per role) puts back what
# the reset removed.
kubeadm_attempts() {
    local max=$1 n=1 delay=15
    shift
    until "$@"; do
        if [ "$n" -ge "$max" ]; then
            log "giving up after $n attempts: $*"
            return 1
        fi
        log "attempt $n failed: $*; resetting, again in ${delay}s"
        kubeadm reset -f || log "kubeadm reset failed"
        restore_node_inputs
        sleep "$delay"
        n=$((n + 1))
        delay=$((delay * 2))
        if [ "$delay" -gt 120 ]; then
            delay=120
        fi
    done
}

# Whether kubeadm already made this node part of the cluster (a re-run).
joined_already() {
    [ -f /etc/kubernetes/kubelet.conf ]
}

# join_cluster: `kubeadm join` once the API behind the VIP answers. Workers
# and every control plane that does not init.
join_cluster() {
    wait_for_api
    kubeadm_config join
    step kubeadm-join
    kubeadm_attempts 10 kubeadm join --config "$KUBEADM_CONFIG"
}
