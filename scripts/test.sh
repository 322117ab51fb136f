#!/usr/bin/env bash
# Builds and runs every test, as CI does (.ci/run), in stages:
#   dev    debug build, every suite
#   tsan   ThreadSanitizer on the suites labelled "threads"
#   asan   AddressSanitizer + UBSan on every suite but the tool, install and
#          format checks (loader, environments, context, registry, server, reload)
#   fuzz   the libFuzzer targets, $MODGRAPH_FUZZ_SECONDS (60) each
#   bench  release build, every benchmark program once for a short smoke run
# MODGRAPH_TEST_STAGES picks stages, e.g. MODGRAPH_TEST_STAGES="dev tsan".
set -euo pipefail
cd "$(dirname "$0")/.."
stages=${MODGRAPH_TEST_STAGES:-dev tsan asan fuzz bench}
wants() { [[ " $stages " == *" $1 "* ]]; }
stage() { printf '\n== %s (%s)\n' "$1" "$(date -u +%T)"; }

scripts/deps.sh

if wants dev || wants fuzz; then
  stage "dev: build and run every suite"
  cmake --preset dev
  cmake --build --preset dev
  wants dev && ctest --preset dev
fi

if wants tsan; then
  stage "tsan: threaded suites under ThreadSanitizer"
  cmake --preset tsan
  cmake --build --preset tsan --target modgraph_thread_tests
  ctest --preset tsan
fi

if wants asan; then
  stage "asan: AddressSanitizer + UBSan"
  cmake --preset asan
  cmake --build --preset asan
  ctest --preset asan
fi

if wants fuzz; then
  stage "fuzz: libFuzzer targets, ${MODGRAPH_FUZZ_SECONDS:-60}s each"
  scripts/fuzz.sh "${MODGRAPH_FUZZ_SECONDS:-60}" build/dev
fi

if wants bench; then
  stage "bench: release build and a smoke run of every benchmark"
  cmake --preset release
  cmake --build --preset release
  scripts/bench_smoke.sh build/release
fi
stage "all stages passed: $stages"
