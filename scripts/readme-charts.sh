#!/usr/bin/env bash
# Re-make the charts README.md shows (samples/charts/*.png) from the bundled
# fan-in sample with the current code; tests/readme_charts.rs fails until
# this is run after a change that alters them.
set -euo pipefail
cd "$(dirname "$0")/.."
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
# cargo run: the binary just built, wherever CARGO_TARGET_DIR puts it.
cargo run --release --quiet -- analyze samples/fanin-synthetic.pcap.gz --out "$out" --quiet
for png in samples/charts/*.png; do
    cp "$out/$(basename "$png")" "$png"
done
ls -l samples/charts
