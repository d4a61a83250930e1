#!/usr/bin/env bash
# Compare two sockscope binaries on one command line, fairly: both are
# copied fresh first (a just-written executable is cached and mapped
# differently: in an A/A test the copy run second showed 7 MiB more RSS and
# 0.07 s less CPU), and each pair of runs goes in random order.
#
#   scripts/compare.sh OLD NEW [--runs N] -- analyze capture.pcap --no-charts -q
#
# Each run gets its own empty output directory (`--out` is added), and the
# binary and every file named in the arguments are read just before it: this
# machine's page cache does not stay warm (a DAMON scheme pages out file pages
# untouched for about 30 s), and a run that read part of its capture back
# from disk took 12% more CPU samples in a profile. Times are taken to the µs
# (wait4's rusage; time's %e, %U and %S have 10 ms steps, 4% of a bench_1g
# run). Prints medians of wall, user and system time and peak RSS, then the
# paired differences NEW - OLD and how often NEW was the faster.
set -euo pipefail

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2; }
[[ $# -ge 2 ]] || usage
old=$1 new=$2; shift 2
runs=15
while [[ $# -gt 0 && $1 != -- ]]; do
    case $1 in
        --runs) runs=$2; shift 2 ;;
        *) usage ;;
    esac
done
[[ ${1:-} == -- ]] || usage
shift
for b in "$old" "$new"; do
    [[ -x $b ]] || { echo "compare.sh: $b is not an executable" >&2; exit 2; }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$old" "$work/A"
cp "$new" "$work/B"
sync

# One run: appends "WHO wall user sys maxrss_KiB" to the times file.
cat >"$work/run.py" <<'EOF'
import os, subprocess, sys, time
who, times, err, *cmd = sys.argv[1:]
with open(err, "w") as e:
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=e)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
if status:
    sys.exit(1)
with open(times, "a") as f:
    f.write(f"{who} {wall:.6f} {ru.ru_utime:.6f} {ru.ru_stime:.6f} {ru.ru_maxrss}\n")
EOF

one() {  # one run of binary $1 (A or B) with the rest as arguments
    local who=$1
    shift
    rm -rf "$work/out"
    cat "$work/$who" >/dev/null
    for f in "$@"; do [[ -f $f ]] && cat "$f" >/dev/null; done
    python3 "$work/run.py" "$who" "$work/times" "$work/stderr" \
        "$work/$who" "$@" --out "$work/out" ||
        { echo "compare.sh: run of $who failed:" >&2; cat "$work/stderr" >&2; exit 1; }
}

for ((i = 1; i <= runs; i++)); do
    if ((RANDOM % 2)); then order="A B"; else order="B A"; fi
    for x in $order; do one "$x" "$@"; done
done

python3 - "$work/times" "$old" "$new" <<'EOF'
import statistics as st, sys
rows = {"A": [], "B": []}
for line in open(sys.argv[1]):
    p = line.split()
    if p and p[0] in rows:
        rows[p[0]].append([float(x) for x in p[1:]])
names = {"A": sys.argv[2], "B": sys.argv[3]}
for k in "AB":
    r = rows[k]
    print(f"{names[k]}: wall {st.median(x[0] for x in r):.3f} s, user {st.median(x[1] for x in r):.3f}, "
          f"sys {st.median(x[2] for x in r):.3f}, peak RSS {st.median(x[3] for x in r) / 1024:.0f} MiB (medians of {len(r)})")
pairs = list(zip(rows["A"], rows["B"]))
wall = [b[0] - a[0] for a, b in pairs]
cpu = [(b[1] + b[2]) - (a[1] + a[2]) for a, b in pairs]
rss = [(b[3] - a[3]) / 1024 for a, b in pairs]
print(f"new - old: wall {st.median(wall) * 1e3:+.1f} ms (new faster in {sum(d < 0 for d in wall)}/{len(wall)}), "
      f"CPU {st.median(cpu) * 1e3:+.1f} ms (lower in {sum(d < 0 for d in cpu)}), RSS {st.median(rss):+.1f} MiB")
EOF
