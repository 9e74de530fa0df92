#!/usr/bin/env bash
# Runs replicant's main job on a working example: two local registries, a
# source full of multi-platform images, one mirroring pass. Installs the
# Debian package docker-registry first when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v docker-registry >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq docker-registry
fi
cargo build -q --bin replicant --example demo
exec ./target/debug/examples/demo ./target/debug/replicant
