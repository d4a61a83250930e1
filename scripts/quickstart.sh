#!/usr/bin/env bash
# From a fresh Debian/Ubuntu machine to a report: install the system
# packages and Rust if missing, build sockscope (release, profile-guided),
# analyse a bundled sample. Re-running skips what is already done.
set -euo pipefail
cd "$(dirname "$0")/.."

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
need=()
for pkg in libpcap-dev pkg-config build-essential curl ca-certificates python3; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
    echo "installing ${need[*]}"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
    [ -f "$HOME/.cargo/env" ] || curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs |
        sh -s -- -y --profile minimal
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi

echo "building sockscope (release; a cold build takes about 15 minutes on two cores)"
target=${CARGO_TARGET_DIR:-target}
# Profile-guided (about a minute more, 10% less CPU); the plain release
# build if that cannot be done here.
if scripts/build-pgo.sh; then
    bin=$target/release/sockscope-pgo
else
    echo "the profile-guided build failed (above); building without a profile"
    cargo build --release --locked
    bin=$target/release/sockscope
fi

out=out/fanin-synthetic
"$bin" analyze samples/fanin-synthetic.pcap.gz --out "$out" --force
echo
echo "report: $out/report.html   (tables and charts in $out/)"
echo "binary: $bin   (try: $bin analyze --help)"
