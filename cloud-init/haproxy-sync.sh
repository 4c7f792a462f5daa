#!/usr/bin/env bash
# bootherd: keeps haproxy's backends in step with bootherd's config, so a
# control plane added later becomes a backend without a reinstall. Run by
# bootherd-haproxy-sync.timer on every machine that holds the VIP; a config
# that haproxy refuses is never installed.
set -euo pipefail

# shellcheck source=/dev/null
. "${BOOTHERD_ETC:-/etc/bootherd}/firstboot.env"

tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
curl -fsS --max-time 20 -o "$tmp" "$BOOTHERD_HAPROXY_URL"
if cmp -s "$tmp" /etc/haproxy/haproxy.cfg; then
    exit 0
fi
haproxy -c -q -f "$tmp"
install -m 0644 "$tmp" /etc/haproxy/haproxy.cfg
# The first boot's copy too: a re-run of the role script must not undo this.
install -m 0644 "$tmp" "${BOOTHERD_ETC:-/etc/bootherd}/haproxy.cfg"
systemctl reload-or-restart haproxy
echo "bootherd: haproxy.cfg updated from $BOOTHERD_HAPROXY_URL"
