#!/usr/bin/env bash
# Instructions per stage, counted by valgrind's callgrind: the same from run
# to run, where wall time on this VM moves by ±15% (a 3% change took over
# 100 paired runs to settle), so a change of 1% shows in one run each.
#
#   scripts/instructions.sh                  # target/release/sockscope
#   scripts/instructions.sh OLD NEW          # two binaries side by side
#
# Runs `analyze --no-charts -j1` (the caller's thread reads, decodes and
# tracks; the writer thread writes the records) on a 100 MB capture made by
# gen_bench.py with seed 1 (about 175 k packets, 10 k connections; made once
# in $SOCKSCOPE_BENCH_CACHE or ~/.cache/sockscope-bench), and prints
# instructions per packet for reading, decoding and the flow table, per
# connection for the records, and in millions for the tables and the whole
# run. Installs valgrind if it is missing.
#
# Instructions are not time: a cache miss costs none, and the flow table
# misses often. Confirm a gain in wall time with scripts/compare.sh.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
case ${1:-} in -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;; esac
if [ $# -eq 0 ]; then
    set -- "$repo/target/release/sockscope"
fi
for bin in "$@"; do
    [ -x "$bin" ] || { echo "instructions.sh: $bin is not an executable (cargo build --release?)" >&2; exit 2; }
done
if ! command -v valgrind >/dev/null; then
    echo "instructions: installing valgrind" >&2
    apt-get install -y -qq valgrind >/dev/null
fi

cache=${SOCKSCOPE_BENCH_CACHE:-${HOME:-/tmp}/.cache/sockscope-bench}
pcap=$cache/bench_100m.pcap
mkdir -p "$cache"
if [ ! -s "$pcap" ]; then
    echo "instructions: generating $pcap" >&2
    python3 "$repo/scripts/gen_bench.py" --size-mb 100 --seed 1 -o "$pcap" >/dev/null
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
i=0
for bin in "$@"; do
    i=$((i + 1))
    echo "instructions: $bin" >&2
    valgrind --tool=callgrind --callgrind-out-file="$work/$i.out" \
        "$bin" analyze "$pcap" --out "$work/out$i" --no-charts -q -j1 >/dev/null 2>"$work/$i.log" \
        || { cat "$work/$i.log" >&2; exit 1; }
    callgrind_annotate --inclusive=yes "$work/$i.out" >"$work/$i.txt" 2>/dev/null
done

python3 - "$work" "$@" <<'EOF'
import json, re, sys
work, bins = sys.argv[1], sys.argv[2:]
# (label, symbol, per): inclusive instructions of the symbol, divided by
# packets, connections or a million. A symbol may be "a|b": whichever the
# binary has (decode became decode_into).
stages = [
    ("read (records from the file)", "sockscope::source::merge::Merge::next_packet", "packet"),
    ("decode", "sockscope::decode::Decoder::decode_into|sockscope::decode::Decoder::decode", "packet"),
    ("flow table", "sockscope::flow::FlowTable::process", "packet"),
    # -j1 has a writer thread, which writes every record through write_next.
    ("records (conn.log, CSV, Parquet, table rows)",
     "sockscope::analyze::Writing::write_next", "connection"),
    ("record files finished", "sockscope::report::RecordFiles::finish", "million"),
    ("tables", "sockscope::report::build::run", "million"),
    ("whole run", None, "million"),
]
def inclusive(text, symbol):
    if symbol is None:
        m = re.search(r"^\s*([\d,]+) .*PROGRAM TOTALS", text, re.M)
        return int(m.group(1).replace(",", ""))
    best = 0
    # "count (share)  file:symbol [object]"; the object is not always there,
    # and inlined parts repeat a symbol under other files: take the largest.
    for m in re.finditer(r"^\s*([\d,]+) \([^)]*\)\s+\S*?:(.*?)(?: \[[^\]]*\])?\s*$", text, re.M):
        if m.group(2) in symbol.split("|"):
            best = max(best, int(m.group(1).replace(",", "")))
    return best
cols = []
for i, _ in enumerate(bins, 1):
    text = open(f"{work}/{i}.txt").read()
    s = json.load(open(f"{work}/out{i}/summary.json"))
    n = {"packet": s["packets"]["analyzed"], "connection": s["connections"]["total"], "million": 1e6}
    cols.append([inclusive(text, sym) / n[per] for _, sym, per in stages])
units = {"packet": "per packet", "connection": "per connection", "million": "millions"}
head = "| stage | unit | " + " | ".join(bins) + (" | change |" if len(bins) == 2 else " |")
print(head)
print("| --- | --- |" + " ---: |" * len(bins) + (" ---: |" if len(bins) == 2 else ""))
for k, (label, _, per) in enumerate(stages):
    vals = [c[k] for c in cols]
    row = f"| {label} | {units[per]} | " + " | ".join(f"{v:,.0f}" for v in vals) + " |"
    if len(bins) == 2:
        row += f" {100 * (vals[1] - vals[0]) / vals[0]:+.1f}% |" if vals[0] else " |"
    print(row)
EOF
