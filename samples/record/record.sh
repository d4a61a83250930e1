#!/usr/bin/env bash
# Record the sample captures in samples/ from real traffic between real
# programs (peers.py) across a veth pair joining two network namespaces this
# script creates, captured by `sockscope capture` on the server's end.
#
#   sudo samples/record/record.sh            # every sample
#   sudo samples/record/record.sh refused    # just one (or several)
#
# Samples: http-fanin port-reuse refused reset-mid-transfer dns-udp long-idle
# fanin-synthetic.  fanin-synthetic is made by `sockscope generate` and
# needs neither root nor namespaces.
#
# Needs: root, iproute2 (ip, ss), python3 (standard library only), gzip, the
# release binary (cargo build --release; or set SOCKSCOPE=path). ethtool is
# optional: with it, checksum and segmentation offloads are turned off so the
# saved packets carry real checksums and are at most one MTU long.
#
# Set OUT=DIR to write the captures elsewhere than samples/.
#
# The network: namespace sscope-cli (veth sscope-c, 10.77.0.1/24 and, for the
# fan-in clients, 10.77.0.101-140) and namespace sscope-srv (veth sscope-s,
# 10.77.0.2/24). No traffic leaves the two namespaces; both are deleted when
# the script ends, also on failure or Ctrl-C.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
SAMPLES=$(dirname "$HERE")
ROOT=$(dirname "$SAMPLES")
OUT=${OUT:-$SAMPLES}  # where the captures go (default: samples/)
SOCKSCOPE=${SOCKSCOPE:-$ROOT/target/release/sockscope}
PYTHON=${PYTHON:-python3}
PEERS="$HERE/peers.py"

CLI_NS=sscope-cli SRV_NS=sscope-srv
CLI_IF=sscope-c SRV_IF=sscope-s
CLI_IP=10.77.0.1 SRV_IP=10.77.0.2
FANIN_SOURCES=10.77.0.101-140  # 40 client addresses
FEW_SOURCES=10.77.0.141-148    # 8 more, for the second listener
# Captures larger than this are saved gzip'd (sockscope reads .pcap.gz).
GZIP_OVER=65536

ALL=(http-fanin port-reuse refused reset-mid-transfer dns-udp long-idle fanin-synthetic)

say() { echo "record: $*" >&2; }
die() { say "$*"; exit 1; }

WORK=""

# Stops this script's own background jobs (servers, clients, the capture) by
# pid, then deletes the namespaces.
cleanup() {
    local pid pids
    pids=$(jobs -p)
    for pid in $pids; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in $pids; do
        wait "$pid" 2>/dev/null || true
    done
    ip netns del "$CLI_NS" 2>/dev/null || true
    ip netns del "$SRV_NS" 2>/dev/null || true
    [ -n "$WORK" ] && rm -rf "$WORK"
    WORK=""
}
trap cleanup EXIT
trap 'exit 130' INT TERM

in_cli() { ip netns exec "$CLI_NS" "$@"; }
in_srv() { ip netns exec "$SRV_NS" "$@"; }

net_up() {
    # Leftovers of an interrupted run of this script.
    ip netns del "$CLI_NS" 2>/dev/null || true
    ip netns del "$SRV_NS" 2>/dev/null || true
    ip netns add "$CLI_NS"
    ip netns add "$SRV_NS"
    local ns
    for ns in "$CLI_NS" "$SRV_NS"; do
        # No IPv6: no router solicitations, MLD reports or DAD probes.
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
        ip -n "$ns" link set lo up
    done
    ip link add "$CLI_IF" type veth peer name "$SRV_IF"
    ip link set "$CLI_IF" netns "$CLI_NS"
    ip link set "$SRV_IF" netns "$SRV_NS"
    ip -n "$CLI_NS" addr add "$CLI_IP/24" dev "$CLI_IF"
    local n
    for n in $(seq 101 148); do
        ip -n "$CLI_NS" addr add "10.77.0.$n/24" dev "$CLI_IF"
    done
    ip -n "$SRV_NS" addr add "$SRV_IP/24" dev "$SRV_IF"
    if command -v ethtool >/dev/null; then
        in_cli ethtool -K "$CLI_IF" tx off rx off tso off gso off gro off >/dev/null 2>&1 || true
        in_srv ethtool -K "$SRV_IF" tx off rx off tso off gso off gro off >/dev/null 2>&1 || true
    else
        say "no ethtool: packets keep offloaded (unfilled) checksums"
    fi
    ip -n "$CLI_NS" link set "$CLI_IF" up
    ip -n "$SRV_NS" link set "$SRV_IF" up
    # The first ARP exchange, before the capture starts.
    in_cli ping -c 1 -W 2 "$SRV_IP" >/dev/null 2>&1 || true
}

# serve ROLE PROTO PORT [ARGS...]: a peers.py server in the server namespace,
# returning once PORT is open.
serve() {
    local role=$1 proto=$2 port=$3
    shift 3
    # Not through in_srv: $! must be the server's own pid.
    ip netns exec "$SRV_NS" "$PYTHON" "$PEERS" "$role" --bind "$SRV_IP" --port "$port" "$@" &
    local flag=-Hltn
    [ "$proto" = udp ] && flag=-Hlun
    for _ in $(seq 100); do
        [ -n "$(in_srv ss $flag "sport = :$port")" ] && return 0
        sleep 0.05
    done
    die "$role did not open $port/$proto"
}

# client_start ROLE [ARGS...]: a peers.py client in the client namespace,
# in the background (its pid in CLIENT), so that a signal interrupts the
# script at once rather than after the client.
client_start() {
    local role=$1
    shift
    ip netns exec "$CLI_NS" "$PYTHON" "$PEERS" "$role" --server "$SRV_IP" "$@" &
    CLIENT=$!
}

# client ROLE [ARGS...]: the same, waiting for it to finish.
client() {
    client_start "$@"
    wait "$CLIENT" || die "client $1 failed"
}

# capture_start NAME: sockscope capture on the server's end of the veth.
capture_start() {
    local name=$1
    rm -f "$OUT/$name.pcap" "$OUT/$name.pcap.gz"
    ip netns exec "$SRV_NS" "$SOCKSCOPE" capture -q -i "$SRV_IF" --filter ip --no-charts \
        --write "$OUT/$name.pcap" --out "$WORK/$name" &
    CAPTURE=$!
    # conn.log appears once the interface is open.
    for _ in $(seq 200); do
        [ -e "$WORK/$name/conn.log" ] && { sleep 0.3; return 0; }
        kill -0 "$CAPTURE" 2>/dev/null || die "sockscope capture failed"
        sleep 0.05
    done
    die "sockscope capture did not start"
}

# capture_stop NAME: let the last packets arrive, stop with SIGTERM, gzip
# a large capture.
capture_stop() {
    local name=$1
    sleep 1
    kill -TERM "$CAPTURE"
    wait "$CAPTURE" || die "sockscope capture exited with $?"
    local f="$OUT/$name.pcap"
    if [ "$(stat -c %s "$f")" -gt "$GZIP_OVER" ]; then
        gzip -9 -n -f "$f"
        f="$f.gz"
    fi
    say "$name: $(stat -c %s "$f") bytes in $f"
}

record_http_fanin() {
    serve http-server tcp 8080 --delay 0.05
    serve http-server tcp 8000 --delay 0.05
    capture_start http-fanin
    client_start http-clients --port 8080 --sources "$FANIN_SOURCES" --requests 3 --spread 0.5
    local main=$CLIENT
    sleep 0.2
    client http-clients --port 8000 --sources "$FEW_SOURCES" --requests 2 --spread 0.5
    wait "$main" || die "client http-clients failed"
    capture_stop http-fanin
}

record_port_reuse() {
    serve http-server tcp 8080
    capture_start port-reuse
    client port-reuse-client --port 8080 --source "$CLI_IP" --ports 40000-40007 \
        --connections 240 --abort-every 6 --pause 0.005
    capture_stop port-reuse
}

record_refused() {
    serve http-server tcp 8080
    capture_start refused
    client refused-client --port 8080 --closed-port 8081 --connections 30 --pause 0.05
    capture_stop refused
}

record_reset_mid_transfer() {
    serve abort-server tcp 9000 --abort-after 40000
    capture_start reset-mid-transfer
    client abort-clients --port 9000 --rounds 3 --read 24000 --pause 0.1
    capture_stop reset-mid-transfer
}

record_dns_udp() {
    serve dns-server udp 53
    serve sink-server udp 5300
    capture_start dns-udp
    client dns-clients --port 53 --queries 24 --sink-port 5300 --unanswered 4 \
        --closed-port 5301 --closed 3 --pause 0.05
    capture_stop dns-udp
}

record_long_idle() {
    serve echo-server tcp 7000
    serve http-server tcp 8080
    serve dns-server udp 53
    capture_start long-idle
    client idle-client --port 7000 --idle 90 --http-port 8080 --dns-port 53
    capture_stop long-idle
}

record_fanin_synthetic() {
    local f="$OUT/fanin-synthetic.pcap"
    rm -f "$f" "$f.gz"
    "$SOCKSCOPE" generate -q fan-in --connections 3000 --clients 800 -o "$f"
    gzip -9 -n -f "$f"
    say "fanin-synthetic: $(stat -c %s "$f.gz") bytes in $f.gz"
}

main() {
    [ -x "$SOCKSCOPE" ] || die "no $SOCKSCOPE: run cargo build --release first (or set SOCKSCOPE)"
    mkdir -p "$OUT"
    local names=("$@")
    [ ${#names[@]} -eq 0 ] || [ "${names[0]}" = all ] && names=("${ALL[@]}")
    local name
    for name in "${names[@]}"; do
        [[ " ${ALL[*]} " == *" $name "* ]] || die "unknown sample $name (one of: ${ALL[*]})"
    done
    for name in "${names[@]}"; do
        local start=$SECONDS
        say "recording $name"
        if [ "$name" = fanin-synthetic ]; then
            record_fanin_synthetic
            continue
        fi
        [ "$(id -u)" = 0 ] || die "$name needs root (network namespaces, capture)"
        WORK=$(mktemp -d)
        net_up
        "record_${name//-/_}"
        cleanup
        say "$name took $((SECONDS - start)) s"
    done
}

main "$@"
