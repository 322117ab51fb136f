#!/usr/bin/env bash
# Builds and runs every test: the dev preset (all suites), then the tsan preset
# on the suites labelled "threads", then the asan preset (ASan + UBSan) on the
# reload suites (serving through reloads and the reload stress test).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
cmake --preset dev
cmake --build --preset dev
ctest --preset dev

cmake --preset tsan
cmake --build --preset tsan --target modgraph_thread_tests
ctest --preset tsan

cmake --preset asan
cmake --build --preset asan --target modgraph_reload_tests
ctest --preset asan -R '^(ReloadStressTest|PageHostReloadTest|WatcherTest|Policies/WatchedDevTest)[.]'
