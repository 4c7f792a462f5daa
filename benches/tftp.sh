#!/usr/bin/env bash
# benches/tftp.sh — bootherd's TFTP beside tftpd-hpa, dnsmasq and atftpd, in one run.
#
#   sudo benches/tftp.sh            # needs root; run /work/shared/bench/setup.sh once first
#
# Part 1 is the shared harness (bench/tftp.sh: 64 MiB single client at blksize
# 512/1468/windowsize 16, 20 concurrent 8 MiB clients, OACK probe) with bootherd
# plugged in as "ours". Part 2, which the harness does not cover, adds delay
# where RFC 7440 windowsize pays off, and times lock-step vs windowsize 16
# downloads of the 8 MiB file per server. The delay is netem on the server's
# veth (LAT_DELAY each DATA/OACK) when the kernel has netem; otherwise
# benches/udp_delay.py, a userspace relay in the client namespace that holds
# every datagram LAT_DELAY in each direction (so a round trip gains 2 x LAT_DELAY
# plus the relay's own cost; the same for every server).
#
# Knobs: BENCH_HARNESS [../shared/bench], BOOTHERD [target/release/bootherd,
# built when missing], LAT_PEERS ["tftpd-hpa atftpd bootherd"], LAT_REPS [3],
# LAT_DELAY [1ms], LAT_METHOD [auto|netem|relay], SKIP_HARNESS=1 (part 2 only),
# and the harness's own knobs.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HARNESS=${BENCH_HARNESS:-$REPO/../shared/bench}
BOOTHERD=${BOOTHERD:-$REPO/target/release/bootherd}
echo "building bootherd (release)" >&2
cargo build --release --bin bootherd --manifest-path "$REPO/Cargo.toml" >&2

# The command the harness runs inside the server namespace: benches/bench-server.sh
# writes a config from the BENCH_* environment (for BENCH_ROLE=tftp: [tftp]
# root = $BENCH_TFTP_ROOT on port 69, DHCP off, one stacked control plane so it
# validates) and execs `bootherd serve --config ...`.
export BOOTHERD_BIN=$BOOTHERD
export OURS_NAME=bootherd
export OURS_TFTP_CMD=${OURS_TFTP_CMD:-"exec bash $REPO/benches/bench-server.sh"}

if [ "${SKIP_HARNESS:-0}" != 1 ]; then
    "$HARNESS/tftp.sh"
fi

# ---- part 2: windowsize under added latency ------------------------------------
# shellcheck source=/dev/null
. "$HARNESS/lib.sh"
LAT_PEERS=${LAT_PEERS:-"tftpd-hpa atftpd bootherd"}
LAT_REPS=${LAT_REPS:-3}
LAT_DELAY=${LAT_DELAY:-1ms}
# The same lookup as the harness: the private unpack first, then the PATH.
if [ -z "${ATFTPD:-}" ]; then
    for c in "$BENCH_SCRATCH/opt/atftpd/usr/sbin/atftpd" "$(command -v atftpd 2>/dev/null || true)"; do
        if [ -n "$c" ] && [ -x "$c" ]; then ATFTPD=$c; break; fi
    done
fi
ATFTPD=${ATFTPD:-none}
ROOT=$BENCH_TFTP_ROOT
OUTD="$BENCH_SCRATCH/tftp/out-latency"
FILE=mid.bin
bench_require_root
LAT_METHOD=${LAT_METHOD:-auto}
RELAY_PORT=6969
bench_require_cmds ip tc atftp cmp timeout python3
[ -f "$ROOT/$FILE" ] || bench_die "$ROOT/$FILE is missing: run the harness (without SKIP_HARNESS) once"
BYTES=$(stat -c %s "$ROOT/$FILE")
bench_install_trap
mkdir -p "$OUTD"
bench_net_up
# netem: egress delay on the server side only, every DATA (and OACK) waits
# LAT_DELAY, so one lock-step round trip costs >= LAT_DELAY.
if [ "$LAT_METHOD" != relay ] &&
   ip netns exec "$NS_SRV" tc qdisc add dev "$SRV_IF" root netem delay "$LAT_DELAY" limit 100000 2>/dev/null; then
    LAT_METHOD=netem
    TARGET=("$SRV_IP")
    LAT_WHAT="netem delay $LAT_DELAY on $SRV_IF (server egress)"
else
    [ "$LAT_METHOD" = netem ] && bench_die "this kernel has no netem qdisc (CONFIG_NET_SCH_NETEM)"
    LAT_METHOD=relay
    case $LAT_DELAY in
        *ms) delay_ms=${LAT_DELAY%ms} ;;
        *) bench_die "LAT_DELAY must be in ms for the relay (e.g. 1ms)" ;;
    esac
    bench_log "no netem here: relaying through benches/udp_delay.py ($LAT_DELAY each way) in $NS_CLI"
    # setsid: its own process group, which the harness's teardown stops.
    setsid ip netns exec "$NS_CLI" python3 "$REPO/benches/udp_delay.py" \
        --listen "127.0.0.1:$RELAY_PORT" --server "$SRV_IP:69" --delay-ms "$delay_ms" \
        >"$BENCH_LOG_DIR/udp_delay.log" 2>&1 </dev/null &
    relay_pid=$!
    _BENCH_PGIDS+=("$relay_pid")
    # shellcheck disable=SC2004  # an associative array (lib.sh): the key is the PID string
    _BENCH_NAME_OF[$relay_pid]=udp_delay
    sleep 0.5
    kill -0 "$relay_pid" 2>/dev/null || bench_die "udp_delay.py did not start (log: $BENCH_LOG_DIR/udp_delay.log)"
    TARGET=(127.0.0.1 "$RELAY_PORT")
    LAT_WHAT="udp_delay.py relay, $LAT_DELAY each way"
fi
bench_set_pin none

start() { # peer -> PG
    case $1 in
        tftpd-hpa) bench_start_srv tftpd-hpa in.tftpd -L -s "$ROOT" -a "$SRV_IP:69" ;;
        atftpd)    bench_start_srv atftpd "$ATFTPD" --daemon --no-fork --bind-address "$SRV_IP" --port 69 --logfile - "$ROOT" ;;
        bootherd)  bench_export_ours_env tftp "$BENCH_SCRATCH/tftp/state-latency-$$"
                   bench_start_srv_sh bootherd "$OURS_TFTP_CMD" ;;
    esac
    PG=$BENCH_LAST_PID
    bench_wait_listen udp 69 15 "$PG" || bench_die "$1 did not start (log: $BENCH_LOG_DIR/$1.log)"
    sleep 0.2
}

get() { # window(-|n) -> "<seconds> ok|CORRUPT|FAIL"
    local opts=(--option "blksize 1468") t0 t1 rc
    [ "$1" != - ] && opts+=(--option "windowsize $1")
    rm -f "$OUTD/$FILE"
    t0=$(bench_now)
    set +e
    in_cli timeout 120 atftp "${opts[@]}" -g -r "$FILE" -l "$OUTD/$FILE" "${TARGET[@]}" >/dev/null 2>&1
    rc=$?
    set -e
    t1=$(bench_now)
    if [ $rc -ne 0 ]; then echo "$(bench_elapsed "$t0" "$t1") FAIL"
    elif cmp -s "$OUTD/$FILE" "$ROOT/$FILE"; then echo "$(bench_elapsed "$t0" "$t1") ok"
    else echo "$(bench_elapsed "$t0" "$t1") CORRUPT"; fi
}

TSV="$BENCH_SCRATCH/results/tftp-latency-$(date +%Y%m%d-%H%M%S).tsv"
mkdir -p "$(dirname "$TSV")"
printf 'server\tdelay\tblksize\twindow\truns\tmedian s\tMiB/s\tverify\n' > "$TSV"
declare -A MIBPS
fail=0
for peer in $LAT_PEERS; do
    [ "$peer" = atftpd ] && [ ! -x "$ATFTPD" ] && { bench_log "atftpd not found, skipping"; continue; }
    start "$peer"
    for w in - 16; do
        times=""; verify=ok
        # lock-step at 1 ms costs seconds per run: once is enough for it
        reps=$LAT_REPS; [ "$w" = - ] && reps=1
        for _ in $(seq 1 "$reps"); do
            r=$(get "$w"); bench_log "$peer latency=$LAT_DELAY window=$w: $r"
            times="$times ${r%% *}"; [ "${r#* }" = ok ] || { verify=${r#* }; fail=1; }
        done
        # shellcheck disable=SC2086  # one time per word
        med=$(printf '%s\n' $times | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}')
        MIBPS[$peer$w]=$(bench_mibps "$BYTES" "$med")
        printf '%s\t%s %s\t1468\t%s\t%s\t%s\t%s\t%s\n' "$peer" "$LAT_DELAY" "$LAT_METHOD" "$w" "$reps" "$med" "${MIBPS[$peer$w]}" "$verify" >> "$TSV"
    done
    bench_stop_srv "$PG"
done
bench_stop_all
bench_net_down
echo
echo "== TFTP with added latency ($LAT_WHAT), $((BYTES / 1048576)) MiB, atftp client =="
bench_header
bench_table "$TSV"
if [ -n "${MIBPS[tftpd-hpa-]:-}" ] && [ -n "${MIBPS[bootherd16]:-}" ]; then
    awk -v b="${MIBPS[bootherd16]}" -v h="${MIBPS[tftpd-hpa16]:-${MIBPS[tftpd-hpa-]}}" \
        'BEGIN { printf "bootherd windowsize 16 vs tftpd-hpa (same request): %.1fx\n", b / h }'
fi
echo "(table: $TSV)"
exit $fail
