#!/usr/bin/env bash
# Installs the Debian 12 packages modgraph needs, only those missing.
# Usage: scripts/deps.sh            (called by setup.sh and test.sh)
set -euo pipefail

packages=(
  cmake ninja-build g++ pkg-config
  libboost1.81-dev            # Boost.DLL, Asio, Beast (headers)
  libabsl-dev libfmt-dev libtomlplusplus-dev libcli11-dev nlohmann-json3-dev
  libelf-dev                  # elfutils' libelf: inspecting module files before loading them
  libssl-dev                  # OpenSSL's SHA-256: which build of a module cached results came from
  libgtest-dev libgmock-dev libbenchmark-dev
  clang-format
  clang-14 libclang-rt-14-dev # scripts/fuzz.sh: libFuzzer targets with ASan + UBSan
  wrk                         # bench/server: requests/s over loopback
  graphviz python3            # tests: DOT through `dot -Tsvg`, PNG checks of screenshots
  chromium                    # tests: the HTML report in headless Chromium
)

missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "modgraph: installing missing Debian packages: ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
