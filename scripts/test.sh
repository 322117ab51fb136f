#!/usr/bin/env bash
# Builds and runs every test: the dev preset (all suites), the asan preset on the
# request context's suites, then the tsan preset on the suites labelled "threads".
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
cmake --preset dev
cmake --build --preset dev
ctest --preset dev

# The request context's suites (context, Asio propagation, pooled I/O, loans)
# under AddressSanitizer + UBSan; the dev run above ran them with both TLS models.
cmake --preset asan
cmake --build --preset asan --target context_test context_propagation_test
ctest --preset asan -R '^(Context|RequestContext|RequestStore|Asio|ThreadPropagation)[A-Za-z]*Test\.'

cmake --preset tsan
cmake --build --preset tsan --target modgraph_thread_tests
ctest --preset tsan
