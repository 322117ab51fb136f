#!/usr/bin/env bash
# Installs modgraph into a fresh prefix, builds the out-of-tree project in
# project/ against it (find_package(modgraph), modgraph_add_module()), runs its
# host, and runs the installed `modgraph` tool on its installed modules.
# Usage: install_test.sh <modgraph build dir> <work dir> <project dir> <cmake> <c++ compiler>
#                        [<CMAKE_CXX_FLAGS>]
set -euo pipefail
build=$1
work=$2
project=$3
cmake=$4
cxx=$5
cxx_flags=${6:-}
prefix="$work/prefix"
rm -rf "$work" && mkdir -p "$work"

echo "== cmake --install $build --prefix $prefix"
"$cmake" --install "$build" --prefix "$prefix" >"$work/install.log" || {
  cat "$work/install.log" >&2
  echo "install_test: cmake --install failed; build everything first (cmake --build --preset dev)" >&2
  exit 1
}
for file in include/modgraph/context/context.h include/modgraph/loader/sdk.h \
    include/modgraph/registry/registry.h include/modgraph/environments/topology.h \
    include/modgraph/modules/head.h include/modgraph/server/http_server.h \
    include/modgraph/testing/testkit.h lib/cmake/modgraph/modgraphConfig.cmake \
    lib/cmake/modgraph/ModgraphModule.cmake lib/modgraph/modules/head.so \
    lib/modgraph/bundle/modgraph-bundle.so bin/modgraph; do
  [ -e "$prefix/$file" ] || { echo "install_test: $file was not installed" >&2; exit 1; }
done

echo "== configure and build $project against $prefix"
generator=()
if command -v ninja >/dev/null; then generator=(-G Ninja); fi
"$cmake" -S "$project" -B "$work/build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Debug \
  -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_CXX_FLAGS="$cxx_flags" -DCMAKE_PREFIX_PATH="$prefix" >"$work/configure.log" || {
  cat "$work/configure.log" >&2
  exit 1
}
"$cmake" --build "$work/build" || exit 1

echo "== run the host"
"$work/build/embed_host"

echo "== the installed tool finds the installed modules"
status=0
env -u MODGRAPH_MODULE_DIR "$prefix/bin/modgraph" doctor --topology dev >"$work/doctor.txt" || status=$?
if [ "$status" -ne 1 ] || ! grep -q "^finding: ssr#head" "$work/doctor.txt"; then
  cat "$work/doctor.txt" >&2
  echo "install_test: installed 'modgraph doctor' exited $status, expected 1 with ssr#head" >&2
  exit 1
fi
env -u MODGRAPH_MODULE_DIR "$prefix/bin/modgraph" doctor --topology prod >"$work/doctor-prod.txt"
tail -n 1 "$work/doctor.txt" "$work/doctor-prod.txt"
echo "install_test: ok"
