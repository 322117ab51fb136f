#!/usr/bin/env bash
# One command for a fresh Debian 12 machine: installs what is missing, builds
# (release preset) and runs the main job on the shipped example topologies:
# where each instance's state lives, then the bug found (doctor) and reproduced
# (probe) under dev+warn, gone under dev+auto, absent in prod.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
cmake --preset release
cmake --build --preset release --target modgraph
modgraph=build/release/tools/modgraph

# doctor and probe exit 1 when they find something: expected under warn.
expect_findings() { "$@" || [ $? -eq 1 ]; }

banner() { printf '\n== %s\n' "$*"; }
banner "modgraph show: each environment's instances and where their state lives"
$modgraph show --topology dev --topology prod
banner "modgraph doctor, dev topology, policy warn: unregistered instances"
expect_findings $modgraph doctor --topology dev --policy warn
banner "modgraph doctor, dev topology, policy auto"
$modgraph doctor --topology dev --policy auto
banner "modgraph doctor, prod topology"
$modgraph doctor --topology prod
banner "modgraph probe, dev topology, policy warn: 15 concurrent requests"
expect_findings $modgraph probe --topology dev --policy warn --requests 15 --seed 1
banner "modgraph probe, dev topology, policy auto"
$modgraph probe --topology dev --policy auto --requests 15 --seed 1
banner "modgraph probe, prod topology"
$modgraph probe --topology prod --requests 15 --seed 1
