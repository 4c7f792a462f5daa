#!/usr/bin/env bash
# Image fetch benchmark: `bootherd images fetch` (download + SHA-256 verify in
# one pass) beside `curl -o` followed by `sha256sum`, on the same file from the
# same local nginx (loopback only), in the same run, alternating rounds.
# Prints both times and the ratio curl+sha256sum / bootherd (>= 1.0: bootherd
# is as fast or faster). Usage: benches/images.sh [SIZE_MIB] [ROUNDS]
set -euo pipefail
size_mib=${1:-1024}
rounds=${2:-3}
here=$(cd "$(dirname "$0")/.." && pwd)
for t in nginx curl sha256sum; do
    command -v "$t" >/dev/null || { echo "$t is not installed (apt-get install nginx curl coreutils)" >&2; exit 1; }
done

work=$(mktemp -d /var/tmp/bootherd-images-bench.XXXXXX)
nginx_pid=
cleanup() {
    if [ -n "$nginx_pid" ]; then kill "$nginx_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

echo "building bootherd (release)" >&2
cargo build --release --quiet --manifest-path "$here/Cargo.toml" >&2
bin="$here/target/release/bootherd"

mkdir -p "$work/www" "$work/nginx" "$work/out"
echo "making a ${size_mib} MiB test file" >&2
head -c "$((size_mib * 1048576))" /dev/urandom > "$work/www/big.img"
(cd "$work/www" && sha256sum big.img > SHA256SUMS)

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$work/nginx/nginx.conf" <<CONF
daemon off;
master_process off;
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 64; }
http {
    access_log off;
    sendfile on;
    client_body_temp_path $work/nginx;
    proxy_temp_path $work/nginx;
    fastcgi_temp_path $work/nginx;
    uwsgi_temp_path $work/nginx;
    scgi_temp_path $work/nginx;
    server {
        listen 127.0.0.1:$port;
        root $work/www;
    }
}
CONF
setsid nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" &
nginx_pid=$!
for _ in $(seq 50); do
    curl -sf -o /dev/null "http://127.0.0.1:$port/SHA256SUMS" && break
    sleep 0.1
done
curl -sf -o /dev/null "http://127.0.0.1:$port/SHA256SUMS" || { echo "nginx did not start: $(cat "$work/nginx/error.log")" >&2; exit 1; }

cat > "$work/catalog.toml" <<CAT
[[image]]
name = "big"
kind = "file"
dest = "big.img"
sha256sums = "http://127.0.0.1:$port/SHA256SUMS"
pattern = "big.img"
CAT
cat > "$work/bootherd.toml" <<'CFG'
[server]
address = "10.0.0.2"
data_dir = "/nonexistent"
[dhcp]
subnet = "10.0.0.0/24"
gateway = "10.0.0.1"
pool = "10.0.0.200-10.0.0.250"
[cluster]
name = "lab"
kubernetes_version = "1.36"
endpoint = "10.0.0.100:6443"
pod_cidr = "10.244.0.0/16"
service_cidr = "10.96.0.0/12"
[[machine]]
mac = "52:54:00:aa:00:21"
hostname = "lb1"
role = "load-balancer"
ip = "10.0.0.21"
[[machine]]
mac = "52:54:00:aa:00:01"
hostname = "cp1"
role = "control-plane"
ip = "10.0.0.11"
CFG

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
expected=$(cut -d' ' -f1 "$work/www/SHA256SUMS")

run_curl() {
    rm -f "$work/out/curl.img"
    local t0 t1 sum
    t0=$(now)
    curl -sf -o "$work/out/curl.img" "http://127.0.0.1:$port/big.img"
    sum=$(sha256sum "$work/out/curl.img" | cut -d' ' -f1)
    t1=$(now)
    [ "$sum" = "$expected" ] || { echo "curl download is corrupt" >&2; exit 1; }
    secs "$t0" "$t1"
}
run_ours() {
    rm -rf "$work/out/data"
    local t0 t1
    t0=$(now)
    RUST_LOG=warn "$bin" --config "$work/bootherd.toml" --data-dir "$work/out/data" \
        images --catalog "$work/catalog.toml" fetch big --attempts 1 >/dev/null
    t1=$(now)
    cmp -s "$work/out/data/images/big.img" "$work/www/big.img" || { echo "bootherd download differs" >&2; exit 1; }
    secs "$t0" "$t1"
}

# Warm the page cache for the served file, so neither side pays its first read.
cat "$work/www/big.img" > /dev/null
curl_times=()
ours_times=()
for r in $(seq "$rounds"); do
    c=$(run_curl); o=$(run_ours)
    echo "round $r: curl+sha256sum ${c}s, bootherd ${o}s" >&2
    curl_times+=("$c"); ours_times+=("$o")
done
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
c=$(median "${curl_times[@]}")
o=$(median "${ours_times[@]}")
echo "== image fetch + verify, ${size_mib} MiB over loopback, median of $rounds =="
printf '%-22s %10s %10s\n' "client" "seconds" "MiB/s"
printf '%-22s %10s %10s\n' "curl -o + sha256sum" "$c" "$(awk -v s="$c" -v m="$size_mib" 'BEGIN { printf "%.0f", m / s }')"
printf '%-22s %10s %10s\n' "bootherd images fetch" "$o" "$(awk -v s="$o" -v m="$size_mib" 'BEGIN { printf "%.0f", m / s }')"
echo "ratio (curl+sha256sum / bootherd): $(awk -v c="$c" -v o="$o" 'BEGIN { printf "%.2f", c / o }')x"
