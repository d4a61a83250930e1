#!/usr/bin/env bash
# Sustained-load test of live capture: replay a capture onto a veth pair with
# tcpreplay at a ladder of packet rates while `sockscope capture` listens on
# the other end, and print sent vs captured vs dropped for each rate.
#
#   sudo scripts/live-load.sh                       # default ladder, default buffer
#   sudo scripts/live-load.sh --buffer-size 64      # a 64 MiB kernel buffer
#   sudo scripts/live-load.sh --rates 50000,topspeed --loops 3 --pcap my.pcap
#
# Options:
#   --pcap FILE         what to replay (default: the 55 MB generated capture,
#                       made with gen_bench.py --size-mb 55 --seed 3 if missing)
#   --rates LIST        packets/s for tcpreplay --pps, or `topspeed`
#                       (default 25000,50000,100000,200000,400000,topspeed)
#   --loops N           replay the file N times per rate (default 2)
#   --buffer-size MiB   passed to sockscope capture (default: sockscope's 64 MiB)
#
# Needs root, iproute2 and tcpreplay (apt-get install tcpreplay), and the
# release binary (or SOCKSCOPE=path). The network is two namespaces of this
# script's own (ssload-tx, ssload-rx) joined by a veth pair; nothing is sent
# anywhere else, and both are deleted when the script ends, also on failure.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SOCKSCOPE=${SOCKSCOPE:-${CARGO_TARGET_DIR:-$ROOT/target}/release/sockscope}
PCAP=""
RATES=25000,50000,100000,200000,400000,topspeed
LOOPS=2
BUFFER=()

while [ $# -gt 0 ]; do
    case $1 in
        --pcap) PCAP=$2; shift 2 ;;
        --rates) RATES=$2; shift 2 ;;
        --loops) LOOPS=$2; shift 2 ;;
        --buffer-size) BUFFER=(--buffer-size "$2"); shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "live-load: unknown option $1" >&2; exit 2 ;;
    esac
done

TX_NS=ssload-tx RX_NS=ssload-rx TX_IF=ssload-t RX_IF=ssload-r
WORK=$(mktemp -d)

cleanup() {
    local pid
    for pid in $(jobs -p); do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    ip netns del "$TX_NS" 2>/dev/null || true
    ip netns del "$RX_NS" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

command -v tcpreplay >/dev/null || { echo "live-load: needs tcpreplay" >&2; exit 1; }
[ -x "$SOCKSCOPE" ] || (cd "$ROOT" && cargo build --release --quiet)
[ -x "$SOCKSCOPE" ] || { echo "live-load: no $SOCKSCOPE (build it or set SOCKSCOPE)" >&2; exit 1; }
if [ -z "$PCAP" ]; then
    PCAP=${TMPDIR:-/tmp}/sockscope-load-55m.pcap
    if [ ! -f "$PCAP" ]; then
        # Under a temporary name: an interrupted run leaves no cut capture.
        python3 "$ROOT/scripts/gen_bench.py" --size-mb 55 --seed 3 -o "$PCAP.part" >&2
        mv "$PCAP.part.truth.json" "$PCAP.truth.json"
        mv "$PCAP.part" "$PCAP"
    fi
fi

ip netns del "$TX_NS" 2>/dev/null || true
ip netns del "$RX_NS" 2>/dev/null || true
ip netns add "$TX_NS"
ip netns add "$RX_NS"
ip link add "$TX_IF" netns "$TX_NS" type veth peer name "$RX_IF" netns "$RX_NS"
for ns_if in "$TX_NS:$TX_IF" "$RX_NS:$RX_IF"; do
    ns=${ns_if%%:*} dev=${ns_if#*:}
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
    # Room for any frame of the capture (jumbo frames would fail to send).
    ip -n "$ns" link set "$dev" mtu 9000 up
done

printf '%-9s %9s %9s %9s %9s %9s %8s %8s\n' rate_pps sent_pps sent received analyzed dropped if_drop lost_%
IFS=, read -ra ladder <<<"$RATES"
for rate in "${ladder[@]}"; do
    out=$WORK/out-$rate
    ip netns exec "$RX_NS" "$SOCKSCOPE" capture -i "$RX_IF" --out "$out" --no-charts -q \
        "${BUFFER[@]}" &
    cap=$!
    sleep 1  # the capture is open before the first packet is sent
    if [ "$rate" = topspeed ]; then speed=(--topspeed); else speed=(--pps "$rate"); fi
    ip netns exec "$TX_NS" tcpreplay -q -i "$TX_IF" --loop "$LOOPS" "${speed[@]}" "$PCAP" \
        >"$WORK/replay-$rate.txt" 2>&1
    sleep 1  # let the capture drain what is in its buffer
    kill -INT "$cap"
    wait "$cap" || true
    sent=$(sed -n 's/.*Actual: \([0-9]*\) packets.*/\1/p' "$WORK/replay-$rate.txt")
    pps=$(sed -n 's/.*Rated: .*, \([0-9.]*\) pps.*/\1/p' "$WORK/replay-$rate.txt")
    python3 - "$out/summary.json" "$rate" "$sent" "$pps" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
live, rate, sent, pps = s["live"], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
analyzed = s["packets"]["read"]
lost = 100.0 * (sent - analyzed) / sent if sent else 0.0
print(f"{rate:<9} {pps:9.0f} {sent:9d} {live['received']:9d} {analyzed:9d} "
      f"{live['dropped_by_kernel']:9d} {live['dropped_by_interface']:8d} {lost:8.2f}")
EOF
done
