#!/usr/bin/env bash
# Installs what dagwire needs beyond a Rust toolchain, idempotently. Called by
# ./experiment and ./run-tests, so a fresh machine needs no manual steps.
# System packages come from Debian (apt-get as root, or via sudo).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if ! command -v cargo >/dev/null 2>&1; then
    echo "dagwire needs a Rust toolchain (cargo); install it with rustup: https://rustup.rs" >&2
    exit 2
fi

# One Debian package per line in scripts/packages.txt (comments with #).
mapfile -t wanted < <(grep -v '^\s*#' "$here/packages.txt" | grep -v '^\s*$' || true)
missing=()
for pkg in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}" >&2
    sudo=""
    [[ $(id -u) -ne 0 ]] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
fi
