#!/bin/sh
# shellcheck shell=dash
# /init of the installer stand-in (busybox ash, PID 1). It does what the Ubuntu
# installer does with bootherd, minus installing: bring the NIC up with DHCP,
# read the NoCloud seed URL from the kernel command line, fetch the seed,
# check it, post the install-finished callback, power off.
#
# Every outcome is a line starting with "BOOTHERD-STANDIN:" on the console (the
# serial port: x86 names console=ttyS0 last on the command line, arm64 takes it
# from the firmware); the tests and the demo grep for them. PID 1 must never
# exit (the kernel would panic), so every path ends in `poweroff -f`.

/bin/busybox --install -s /bin
export PATH=/bin

say() { echo "BOOTHERD-STANDIN: $*"; }

finish() {
    sync
    poweroff -f
    # poweroff -f does not return; if it ever did, do not let PID 1 exit.
    while :; do sleep 3600; done
}

fail() {
    say "FAILED $*"
    finish
}

mkdir -p /proc /sys /dev /tmp
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
say "init started on $(uname -r)"

# Debian's kernel has virtio as modules and there is no udev/modprobe here:
# insmod them in dependency order (the list and the files come from
# make-initramfs.sh, which already left out the ones built into the kernel).
while read -r ko; do
    [ -n "$ko" ] || continue
    insmod "$ko" || fail "insmod $ko"
done < /etc/standin-modules

# The NIC shows up asynchronously after virtio_net loads.
i=0
while [ ! -e /sys/class/net/eth0 ]; do
    i=$((i + 1))
    [ "$i" -le 100 ] || fail "no eth0 after loading virtio_net"
    usleep 100000
done
ip link set lo up
ip link set eth0 up
udhcpc -i eth0 -s /etc/udhcpc.script -n -q -t 10 -T 3 >/tmp/udhcpc.log 2>&1 || {
    cat /tmp/udhcpc.log
    fail "no DHCP lease on eth0"
}
say "dhcp ip=$(cat /tmp/ip) mac=$(cat /sys/class/net/eth0/address)"

# Word-split on purpose: the kernel command line is space-separated arguments.
read -r cmdline </proc/cmdline
seed=""
for word in $cmdline; do
    case "$word" in
        ds=nocloud-net\;s=*) seed=${word#ds=nocloud-net;s=} ;;
        ds=*) fail "unexpected datasource argument: $word (want ds=nocloud-net;s=URL)" ;;
    esac
done
[ -n "$seed" ] || fail "no ds=nocloud-net;s=URL on the kernel command line: $cmdline"
case "$seed" in
    http://*/) ;;
    *) fail "seed URL must be http:// and end in / (cloud-init appends the file names): $seed" ;;
esac
say "cmdline $cmdline"
say "seed url=$seed"

# http METHOD URL OUTFILE [EXTRA-HEADER [BODY]]: one HTTP/1.0 request through
# busybox nc (the static busybox's wget crashes without a libc environment).
# Writes the response body to OUTFILE and prints the status line.
http() {
    rest=${2#http://}
    hostport=${rest%%/*}
    path=/${rest#*/}
    host=${hostport%%:*}
    port=80
    case "$hostport" in *:*) port=${hostport##*:} ;; esac
    # busybox nc half-closes the socket when its stdin ends, and hyper (under
    # bootherd's axum) drops a connection whose client half-closed before the
    # answer was ready. So feed nc through a FIFO held open until nc exits,
    # which it does when the server closes the connection (HTTP/1.0).
    rm -f /tmp/request
    mkfifo /tmp/request
    timeout 30 nc "$host" "$port" </tmp/request >/tmp/response &
    ncpid=$!
    exec 3>/tmp/request
    {
        body=${5:-}
        printf '%s %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: bootherd-standin\r\nContent-Length: %s\r\n' "$1" "$path" "$hostport" "${#body}"
        [ -z "${4:-}" ] || printf '%s\r\n' "$4"
        printf '\r\n%s' "$body"
    } >&3
    ncrc=0
    wait "$ncpid" || ncrc=$?
    exec 3>&-
    [ "$ncrc" -eq 0 ] || return 1
    tr -d '\r' </tmp/response >/tmp/response.lf
    sed '1,/^$/d' /tmp/response.lf >"$3"
    head -n 1 /tmp/response.lf
}

# fetch NAME: GET ${seed}NAME into /tmp/NAME, failing unless it is a 200.
fetch() {
    status=$(http GET "$seed$1" "/tmp/$1") || fail "GET $seed$1: connection failed"
    case "$status" in
        "HTTP/1."?" 200"*) ;;
        *) fail "GET $seed$1: $status" ;;
    esac
}

fetch meta-data
fetch user-data
fetch vendor-data

head -n 1 /tmp/user-data | grep -qx '#cloud-config' || fail "user-data does not start with #cloud-config"
grep -q '^autoinstall:' /tmp/user-data || fail "user-data has no autoinstall: section"
# hostname: the first `hostname:` below `identity:` (indented YAML, optional quotes).
ud_host=$(awk '/^[[:space:]]*identity:/ { inid = 1; next }
    inid && /^[[:space:]]*hostname:/ { sub(/^[[:space:]]*hostname:[[:space:]]*/, ""); gsub(/["'\'']/, ""); print; exit }' /tmp/user-data)
md_host=$(sed -n 's/^local-hostname:[[:space:]]*//p' /tmp/meta-data | tr -d "\"'")
grep -q '^instance-id:' /tmp/meta-data || fail "meta-data has no instance-id"
[ -n "$ud_host" ] || fail "user-data has no autoinstall.identity.hostname"
[ "$ud_host" = "$md_host" ] || fail "hostname mismatch: user-data says '$ud_host', meta-data says '$md_host'"
say "seed ok hostname=$ud_host"

# The installer streams the ISO named by url=; ask for its first bytes the way
# a resuming client would, so Range support is exercised too.
iso=""
for word in $cmdline; do
    case "$word" in url=*) iso=${word#url=} ;; esac
done
if [ -n "$iso" ]; then
    status=$(http GET "$iso" /tmp/iso-head "Range: bytes=0-15") || fail "GET $iso: connection failed"
    case "$status" in
        "HTTP/1."?" 20"[06]*) say "iso $status" ;;
        *) fail "GET $iso: $status" ;;
    esac
fi

# subiquity reports progress to the `reporting` webhook; post what it posts
# when the install starts (bootherd records it and marks the machine installing).
events=$(sed -n 's/^[[:space:]]*endpoint:[[:space:]]*["'\'']\{0,1\}\(http:[^"'\'' ]*\).*/\1/p' /tmp/user-data | head -n 1)
[ -n "$events" ] || fail "user-data has no reporting webhook endpoint"
status=$(http POST "$events" /tmp/event "Content-Type: application/json" \
    '{"name": "subiquity/Install", "description": "bootherd installer stand-in", "event_type": "start", "origin": "curtin", "level": "INFO"}') ||
    fail "POST $events: connection failed"
case "$status" in
    "HTTP/1."?" 2"*) say "event $status" ;;
    *) fail "progress event refused: $status $(cat /tmp/event)" ;;
esac

# The late-command posts the install-finished callback with its one-time token.
callback=$(grep -o "http://[^'\" ]*/installed?token=[0-9A-Za-z]*" /tmp/user-data | head -n 1)
[ -n "$callback" ] || fail "user-data has no install-finished callback (…/installed?token=…)"
status=$(http POST "$callback" /tmp/callback) || fail "POST $callback: connection failed"
say "callback $status"
case "$status" in
    "HTTP/1."?" 2"*) ;;
    *) fail "callback refused: $(cat /tmp/callback)" ;;
esac
say "done; powering off"
finish
