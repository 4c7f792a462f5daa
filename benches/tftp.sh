#!/usr/bin/env bash
# benches/tftp.sh — bootherd's TFTP beside tftpd-hpa, dnsmasq and atftpd, in one run.
#
#   sudo benches/tftp.sh            # needs root; run /work/shared/bench/setup.sh once first
#
# Part 1 is the shared harness (bench/tftp.sh: 64 MiB single client at blksize
# 512/1468/windowsize 16, 20 concurrent 8 MiB clients, OACK probe) with bootherd
# plugged in as "ours". Part 2, which the harness does not cover, adds 1 ms of
# delay (netem on the server's veth) where RFC 7440 windowsize pays off, and
# times lock-step vs windowsize 16 downloads of the 8 MiB file per server.
#
# Knobs: BENCH_HARNESS [../shared/bench], BOOTHERD [target/release/bootherd,
# built when missing], LAT_PEERS ["tftpd-hpa atftpd bootherd"], LAT_REPS [3],
# LAT_DELAY [1ms], SKIP_HARNESS=1 (part 2 only), and the harness's own knobs.
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
ATFTPD=${ATFTPD:-$BENCH_SCRATCH/opt/atftpd/usr/sbin/atftpd}
ROOT=$BENCH_TFTP_ROOT
OUTD="$BENCH_SCRATCH/tftp/out-latency"
FILE=mid.bin
bench_require_root
bench_require_cmds ip tc atftp cmp timeout
[ -f "$ROOT/$FILE" ] || bench_die "$ROOT/$FILE is missing: run the harness (without SKIP_HARNESS) once"
BYTES=$(stat -c %s "$ROOT/$FILE")
bench_install_trap
mkdir -p "$OUTD"
bench_net_up
# Egress delay on the server side only: every DATA (and OACK) waits 1 ms, so
# one lock-step round trip costs >= 1 ms.
if ! ip netns exec "$NS_SRV" tc qdisc add dev "$SRV_IF" root netem delay "$LAT_DELAY" limit 100000; then
    bench_die "this kernel has no netem qdisc (CONFIG_NET_SCH_NETEM): the latency part cannot run here"
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
    in_cli timeout 120 atftp "${opts[@]}" -g -r "$FILE" -l "$OUTD/$FILE" "$SRV_IP" >/dev/null 2>&1
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
        printf '%s\t%s\t1468\t%s\t%s\t%s\t%s\t%s\n' "$peer" "$LAT_DELAY" "$w" "$reps" "$med" "${MIBPS[$peer$w]}" "$verify" >> "$TSV"
    done
    bench_stop_srv "$PG"
done
bench_stop_all
bench_net_down
echo
echo "== TFTP with $LAT_DELAY added latency (netem on $SRV_IF), $((BYTES / 1048576)) MiB, atftp client =="
bench_header
bench_table "$TSV"
if [ -n "${MIBPS[tftpd-hpa-]:-}" ] && [ -n "${MIBPS[bootherd16]:-}" ]; then
    awk -v b="${MIBPS[bootherd16]}" -v h="${MIBPS[tftpd-hpa16]:-${MIBPS[tftpd-hpa-]}}" \
        'BEGIN { printf "bootherd windowsize 16 vs tftpd-hpa (same request): %.1fx\n", b / h }'
fi
echo "(table: $TSV)"
exit $fail
