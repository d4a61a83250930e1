#!/usr/bin/env bash
# Profile-guided release build of sockscope: about a minute on top of
# `cargo build --release`, and about 10% less CPU.
#
#   scripts/build-pgo.sh            # writes target/release/sockscope-pgo
#
# Builds sockscope instrumented, runs it on training captures, and builds it
# again with the profile it wrote. All of it is redone on every run, so the
# profile always matches the sources. The training captures: a 100 MB
# capture from scripts/gen_bench.py with seed 2 (the benchmark's
# bench_1g.pcap is seed 1), and the bundled samples.
#
# Only sockscope's own crate is built twice: the flags reach rustc through
# RUSTC_WORKSPACE_WRAPPER, which cargo applies to this workspace alone, so
# the dependencies (polars) are the ones `cargo build --release` built.
# Cargo remembers the wrapper's path, so a later plain `cargo build
# --release` rebuilds target/release/sockscope without the profile; the
# profiled binary is the copy named sockscope-pgo.
#
# Needs python3 and llvm-profdata of rustc's own LLVM (rustup's llvm-tools
# component, added here if rustup is present).
set -euo pipefail
cd "$(dirname "$0")/.."

target=${CARGO_TARGET_DIR:-target}
out=$target/release/sockscope-pgo
work=$(mktemp -d "${TMPDIR:-/tmp}/sockscope-pgo.XXXXXX")
trap 'rm -rf "$work"' EXIT
log() { echo "build-pgo: $*" >&2; }

profdata="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin/llvm-profdata"
if [ ! -x "$profdata" ] && command -v rustup >/dev/null 2>&1; then
    log "rustup component add llvm-tools"
    rustup component add llvm-tools >&2
fi
[ -x "$profdata" ] || { echo "build-pgo.sh: no $profdata (install rustup's llvm-tools component)" >&2; exit 1; }

# build FLAGS: sockscope's crate rebuilt with FLAGS. Both phases go through
# one wrapper: cargo hashes the wrapper's path into the crate's symbol names,
# and the profile finds functions by those names.
printf '#!/bin/sh\nexec "$@" ${SOCKSCOPE_PGO_FLAGS:+"$SOCKSCOPE_PGO_FLAGS"}\n' >"$work/rustc"
chmod +x "$work/rustc"
build() {
    cargo clean --release --quiet -p sockscope
    SOCKSCOPE_PGO_FLAGS=$1 RUSTC_WORKSPACE_WRAPPER="$work/rustc" \
        cargo build --release --locked --quiet --bin sockscope
}

log "building instrumented"
build "-Cprofile-generate=$work/profiles"
bin=$target/release/sockscope

log "training"
train=$work/train
mkdir "$train"
python3 scripts/gen_bench.py --size-mb 100 --seed 2 -o "$train/mix.pcap" >/dev/null
# The benchmark's command lines, and the other paths a user takes: charts,
# one thread, records only, several inputs, the report and sockets commands.
"$bin" analyze "$train/mix.pcap" --out "$train/a" -q
"$bin" analyze "$train/mix.pcap" --out "$train/b" --no-charts -q
"$bin" analyze "$train/mix.pcap" --out "$train/c" --no-charts --threads 1 -q
"$bin" analyze "$train/mix.pcap" --out "$train/d" --no-tables -q
"$bin" analyze samples/*.pcap* --out "$train/e" -q
"$bin" report "$train/e" -q
"$bin" sockets samples/http-fanin.pcap.gz --at +1s >/dev/null
"$profdata" merge -o "$work/sockscope.profdata" "$work/profiles"

log "building with the profile"
build "-Cprofile-use=$work/sockscope.profdata"
cp "$bin" "$out"
log "wrote $out"
