#!/usr/bin/env bash
# One command for a fresh Debian 12 machine: installs what is missing, builds
# (release preset) and runs the main job on the shipped example topologies.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
cmake --preset release
cmake --build --preset release --target modgraph
echo
echo "== modgraph show: the dev and prod topologies, each instance and where its state lives"
build/release/tools/modgraph show --topology dev --topology prod
