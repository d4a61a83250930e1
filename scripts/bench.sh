#!/usr/bin/env bash
# Reference benchmark: sockscope against a plain libpcap read loop and peer
# flow/connection tools on the 1.08 GB synthetic capture (bench_1g.pcap).
#
#   scripts/bench.sh                 # 5 runs of every tool
#   scripts/bench.sh --quick         # 2 runs
#   scripts/bench.sh --runs 9 --only readloop,softflowd,sockscope
#
# Options:
#   --runs N        runs per tool (default 5, or $BENCH_RUNS)
#   --quick         same as --runs 2
#   --only LIST     comma-separated tool ids: readloop, sockscope (no charts),
#                   sockscope-plain (the same, built without the profile),
#                   sockscope-charts, sockscope-t1 (--threads 1),
#                   sockscope-records (--no-tables: the engine alone), softflowd,
#                   softflowd-v6, nfpcapd, argus, tcptrace, tshark
#   --cache DIR     where the capture and the readloop binary live
#                   (default $SOCKSCOPE_BENCH_CACHE or ~/.cache/sockscope-bench)
#   --pcap FILE     benchmark this capture instead of the cached bench_1g.pcap
#   --no-build      use the existing target/release/sockscope-pgo (and
#                   sockscope-plain) instead of building them
#   --no-install    do not apt-get missing peers (they show as not available)
#
# sockscope is measured as scripts/build-pgo.sh builds it (profile-guided);
# sockscope-plain is `cargo build --release`.
#
# Every tool runs N times, round-robin (run 1 of each, then run 2 of each, ...)
# so that noise from other work on the machine is spread over all of them.
# The page cache is warm (the file is read before every run): this measures CPU
# cost, not the disk. Wall time and peak RSS come from /usr/bin/time.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

runs=${BENCH_RUNS:-5}
only=""
cache=${SOCKSCOPE_BENCH_CACHE:-${HOME:-/tmp}/.cache/sockscope-bench}
pcap=""
build=1
install=1

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
    case $1 in
        --runs) runs=$2; shift 2 ;;
        --runs=*) runs=${1#*=}; shift ;;
        --quick) runs=2; shift ;;
        --only) only=$2; shift 2 ;;
        --only=*) only=${1#*=}; shift ;;
        --cache) cache=$2; shift 2 ;;
        --cache=*) cache=${1#*=}; shift ;;
        --pcap) pcap=$2; shift 2 ;;
        --pcap=*) pcap=${1#*=}; shift ;;
        --no-build) build=0; shift ;;
        --no-install) install=0; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "bench.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
done
case $runs in ''|*[!0-9]*|0) echo "bench.sh: --runs needs a positive integer" >&2; exit 2 ;; esac

log() { echo "bench: $*" >&2; }

# Tool ids, in the order they run within a round and appear in the table.
TOOLS=(readloop sockscope sockscope-plain sockscope-charts sockscope-t1 sockscope-records softflowd softflowd-v6
       nfpcapd argus tcptrace tshark)
if [ -n "$only" ]; then
    IFS=, read -r -a wanted <<<"$only"
    for w in "${wanted[@]}"; do
        [[ " ${TOOLS[*]} " == *" $w "* ]] || { echo "bench.sh: unknown tool '$w' (known: ${TOOLS[*]})" >&2; exit 2; }
    done
    sel=()
    for t in "${TOOLS[@]}"; do [[ ",$only," == *",$t,"* ]] && sel+=("$t"); done
    TOOLS=("${sel[@]}")
fi
wants() { [[ " ${TOOLS[*]} " == *" $1 "* ]]; }

# ---------------------------------------------------------------- installs
apt_updated=0
installed_now=()
# apt_need PACKAGE: install a Debian package if it is missing; fails quietly
# (the tool is then reported as not available) when we cannot install.
apt_need() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'ok installed' && return 0
    [ "$install" = 1 ] || return 1
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        log "$1 missing (not root, not installing)"
        return 1
    fi
    if [ "$apt_updated" = 0 ]; then
        apt-get update -qq </dev/null >&2 || true
        apt_updated=1
    fi
    log "installing $1"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" </dev/null >/dev/null 2>&1 || { log "could not install $1"; return 1; }
    installed_now+=("$1")
}

apt_need time || true
[ -x /usr/bin/time ] || { echo "bench.sh: /usr/bin/time is needed (package 'time')" >&2; exit 1; }

declare -A avail=()
# Peers: tool id, Debian package, the command it provides.
while read -r id pkg cmd; do
    if wants "$id" && apt_need "$pkg" && command -v "$cmd" >/dev/null; then
        avail[$id]=1
    fi
done <<'EOF'
softflowd     softflowd     softflowd
softflowd-v6  softflowd     softflowd
nfpcapd       nfdump        nfpcapd
argus         argus-server  argus
tcptrace      tcptrace      tcptrace
tshark        tshark        tshark
EOF

# The packages above ship daemons (argus, softflowd, nfcapd) that a systemd
# machine starts on install; left running they would sniff the network and
# skew every timing, so stop the ones we just installed.
if [ ${#installed_now[@]} -gt 0 ] && command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    for unit in argus softflowd nfdump; do systemctl disable --now "$unit" >/dev/null 2>&1 || true; done
fi
for d in argus softflowd nfcapd nfpcapd tshark; do
    pgrep -x "$d" >/dev/null 2>&1 && log "warning: a '$d' process is already running; timings may suffer"
done

# ---------------------------------------------------------------- capture
mkdir -p "$cache"
if [ -z "$pcap" ]; then
    pcap=$cache/bench_1g.pcap
    if [ ! -e "$pcap" ]; then
        # A workplace copy next to the repo saves the ~5 minute generation;
        # same seed and size give the same bytes.
        if [ -s "$repo/../bench/bench_1g.pcap" ]; then
            log "linking $repo/../bench/bench_1g.pcap into $cache"
            ln -s "$(cd "$repo/../bench" && pwd)/bench_1g.pcap" "$pcap"
        else
            log "generating $pcap (about 5 minutes)"
            # Write under a temporary name so an interrupted run leaves no
            # truncated capture behind to be benchmarked next time.
            python3 "$repo/scripts/gen_bench.py" --size-mb 1050 --seed 1 -o "$cache/bench_1g.pcap.part"
            mv "$cache/bench_1g.pcap.part.truth.json" "$cache/bench_1g.pcap.truth.json"
            mv "$cache/bench_1g.pcap.part" "$pcap"
        fi
    fi
fi
[ -r "$pcap" ] || { echo "bench.sh: cannot read $pcap" >&2; exit 1; }

# ---------------------------------------------------------------- builds
target=${CARGO_TARGET_DIR:-$repo/target}
case $target in /*) ;; *) target=$repo/$target ;; esac
sockscope=$target/release/sockscope-pgo
sockscope_plain=$target/release/sockscope-plain
SOCKSCOPE_TOOLS=(sockscope sockscope-charts sockscope-t1 sockscope-records)
wanted_sockscope=()
for t in "${SOCKSCOPE_TOOLS[@]}"; do wants "$t" && wanted_sockscope+=("$t"); done
if [ "$build" = 1 ] && wants sockscope-plain; then
    log "cargo build --release"
    cargo build --release --locked --quiet >&2
    cp "$target/release/sockscope" "$sockscope_plain"
fi
if wants sockscope-plain; then
    if [ -x "$sockscope_plain" ]; then avail[sockscope-plain]=1; else log "no $sockscope_plain"; fi
fi
if [ ${#wanted_sockscope[@]} -gt 0 ]; then
    if [ "$build" = 1 ]; then
        log "scripts/build-pgo.sh"
        "$repo/scripts/build-pgo.sh" >&2
    fi
    [ -x "$sockscope" ] || { echo "bench.sh: no $sockscope (run scripts/build-pgo.sh or drop --no-build)" >&2; exit 1; }
    for t in "${wanted_sockscope[@]}"; do avail[$t]=1; done
fi

readloop=$cache/readloop
if wants readloop; then
    if apt_need libpcap-dev && command -v cc >/dev/null; then
        if [ ! -x "$readloop" ] || [ "$repo/scripts/readloop.c" -nt "$readloop" ]; then
            cc -O2 -o "$readloop" "$repo/scripts/readloop.c" -lpcap
        fi
        avail[readloop]=1
    else
        log "cannot build readloop (needs cc and libpcap-dev)"
    fi
fi

# ---------------------------------------------------------------- commands
scratch=$(mktemp -d "${TMPDIR:-/tmp}/sockscope-bench.XXXXXX")
trap 'rm -rf "$scratch"' EXIT

# softflowd exports NetFlow v5 to a UDP port on loopback that nobody listens
# on (the datagrams are simply dropped): this is its real work, no collector
# needed. -d keeps it in the foreground.
nf_port=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

# cmd_for TOOL: sets CMD (the timed command line) and PREP (untimed set-up,
# run before each timed run so leftovers never count).
cmd_for() {
    PREP=":"
    case $1 in
        readloop)         CMD=("$readloop" "$pcap") ;;
        sockscope)        PREP="rm -rf $scratch/out"
                          CMD=("$sockscope" analyze "$pcap" --out "$scratch/out" --no-charts -q) ;;
        sockscope-plain)  PREP="rm -rf $scratch/out"
                          CMD=("$sockscope_plain" analyze "$pcap" --out "$scratch/out" --no-charts -q) ;;
        sockscope-charts) PREP="rm -rf $scratch/out"
                          CMD=("$sockscope" analyze "$pcap" --out "$scratch/out" -q) ;;
        sockscope-t1)     PREP="rm -rf $scratch/out"
                          CMD=("$sockscope" analyze "$pcap" --out "$scratch/out" --no-charts -q --threads 1) ;;
        sockscope-records) PREP="rm -rf $scratch/out"
                          CMD=("$sockscope" analyze "$pcap" --out "$scratch/out" --no-tables -q) ;;
        # NetFlow v5 cannot carry IPv6, so plain softflowd skips those ~10% of
        # packets; -6 makes it track them too, for an all-packets figure.
        softflowd)        CMD=(softflowd -d -r "$pcap" -n "127.0.0.1:$nf_port") ;;
        softflowd-v6)     CMD=(softflowd -d -6 -r "$pcap" -n "127.0.0.1:$nf_port") ;;
        nfpcapd)          PREP="rm -rf $scratch/nf && mkdir $scratch/nf"
                          CMD=(nfpcapd -r "$pcap" -w "$scratch/nf") ;;
        argus)            PREP="rm -f $scratch/argus.out"
                          CMD=(argus -r "$pcap" -w "$scratch/argus.out") ;;
        tcptrace)         CMD=(tcptrace -n "$pcap") ;;
        tshark)           CMD=(tshark -r "$pcap" -q -z "conv,tcp") ;;
    esac
}

# ---------------------------------------------------------------- runs
declare -A walls=() rsss=() failed=()
active=()
for t in "${TOOLS[@]}"; do [ -n "${avail[$t]:-}" ] && active+=("$t"); done
[ ${#active[@]} -gt 0 ] || { echo "bench.sh: no tool available" >&2; exit 1; }

log "capture $(readlink -f "$pcap") ($(du -Lh "$pcap" | cut -f1)), $runs runs of: ${active[*]}"
cat "$pcap" >/dev/null   # warm the page cache
load0=$(cut -d" " -f1-3 /proc/loadavg)

for ((r = 1; r <= runs; r++)); do
    for t in "${active[@]}"; do
        [ -n "${failed[$t]:-}" ] && continue
        cmd_for "$t"
        eval "$PREP"
        # Warm again: after a tool with a large footprint (tshark, 1.7 GB)
        # the VM's reclaim had dropped part of the file, and the next run
        # read it from disk (the read loop once took 1.66 s for 0.5). The
        # tool's executable too: sockscope's is 120 MB (polars), and pages
        # of it left untouched for 30 s are paged out (see README, "How
        # comparisons are taken").
        cat "$pcap" "$(command -v "${CMD[0]}")" >/dev/null
        # Wall time from the shell's clock, to the millisecond (time's %e
        # has 10 ms steps, 4% of the read loop's time); the same wrapper's
        # cost is in every tool's figure. Peak RSS from /usr/bin/time.
        t0=$EPOCHREALTIME
        if /usr/bin/time -f '%M' -o "$scratch/time" "${CMD[@]}" >/dev/null 2>"$scratch/err"; then
            t1=$EPOCHREALTIME
            wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
            read -r rss <"$scratch/time"
            walls[$t]+="$wall "
            rsss[$t]+="$rss "
            log "run $r/$runs $t: ${wall}s, $((rss / 1024)) MiB"
        else
            failed[$t]=1
            log "$t failed; its stderr ends with:"
            tail -n 5 "$scratch/err" >&2
        fi
    done
done

# ---------------------------------------------------------------- table
# median/min/max of a space-separated list
stats() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{v[NR]=$1} END {
    m = (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2
    printf "%s %s %s\n", m, v[1], v[NR] }'; }

med_of() { if [ -n "${walls[$1]:-}" ]; then stats "${walls[$1]}" | cut -d' ' -f1; fi; }
base_read=$(med_of readloop)
base_sf=$(med_of softflowd)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 > 0) printf "%.2f", a / b; else printf "-" }'; }
# round_ratios TOOL BASE: "median min max" of TOOL's time over BASE's in the
# same round. A round runs every tool within seconds, so these ratios do not
# depend on the machine's phase the way a ratio of two medians does.
round_ratios() {
    [ -n "${walls[$1]:-}" ] && [ -n "${walls[$2]:-}" ] && [ -z "${failed[$1]:-}${failed[$2]:-}" ] || return 0
    stats "$(paste -d' ' <(tr ' ' '\n' <<<"${walls[$1]}" | grep .) <(tr ' ' '\n' <<<"${walls[$2]}" | grep .) |
        awk '{ printf "%.4f ", $1 / $2 }')"
}

echo
echo "capture: $(readlink -f "$pcap"), $runs runs each, round-robin, warm cache;"
echo "$(nproc) CPUs, load average at start: $load0"
printf '%-17s %9s %7s %7s %9s %9s %9s\n' tool median_s min_s max_s rss_MiB x_readloop x_softflowd
for t in "${TOOLS[@]}"; do
    if [ -z "${avail[$t]:-}" ]; then
        printf '%-17s %s\n' "$t" "not available"
    elif [ -n "${failed[$t]:-}" ] || [ -z "${walls[$t]:-}" ]; then
        printf '%-17s %s\n' "$t" "failed"
    else
        read -r med lo hi < <(stats "${walls[$t]}")
        read -r rss _ < <(stats "${rsss[$t]}")
        printf '%-17s %9.3f %7.3f %7.3f %9.0f %9s %9s\n' "$t" "$med" "$lo" "$hi" \
            "$(awk -v k="$rss" 'BEGIN { print k / 1024 }')" "$(ratio "$med" "$base_read")" "$(ratio "$med" "$base_sf")"
    fi
done

echo
echo "per round (each run against the read loop's and softflowd's of its round): median [min-max]"
printf '%-17s %20s %20s\n' tool x_readloop x_softflowd
spread() { if [ $# -eq 3 ]; then awk -v m="$1" -v a="$2" -v b="$3" 'BEGIN { printf "%.2f [%.2f-%.2f]", m, a, b }'; else printf -- -; fi; }
for t in "${TOOLS[@]}"; do
    r1=$(round_ratios "$t" readloop) r2=$(round_ratios "$t" softflowd)
    [ -n "$r1$r2" ] || continue
    # shellcheck disable=SC2086 # "median min max" splits into three arguments
    printf '%-17s %20s %20s\n' "$t" "$(spread $r1)" "$(spread $r2)"
done

charts=$(med_of sockscope-charts)
nocharts=$(med_of sockscope)
if [ -n "$charts" ] && [ -n "$nocharts" ]; then
    awk -v c="$charts" -v p="$nocharts" 'BEGIN { printf "\ncharts add %+.2f s to the median (target: at most 0.20 s)\n", c - p }'
fi

echo
echo "commands:"
for t in "${active[@]}"; do
    cmd_for "$t"
    printf '  %-17s %s\n' "$t" "${CMD[*]}" | sed "s|$scratch|\$TMP|g"
done
