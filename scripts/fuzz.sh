#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz preset: clang, ASan + UBSan) and runs each
# for a bounded time; fails on any crash, leak or timeout. The corpus is seeded
# with the modules, bundle and loader fixtures (malformed files included) of a
# built tree, the topology seeds, and every earlier crash (tests/fuzz/regressions/).
# A crash leaves its input in build/fuzz/artifacts/: add it to
# tests/fuzz/regressions/<target>/ with the fix.
#
# Usage: scripts/fuzz.sh [seconds per target (60)] [built tree for seeds (build/dev)]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
seeds=${2:-build/dev}
[ -d "$seeds/modules" ] || { echo "fuzz.sh: no modules in $seeds; build it first" >&2; exit 2; }

cmake --preset fuzz >/dev/null
cmake --build --preset fuzz

corpus=build/fuzz/corpus
artifacts=build/fuzz/artifacts
rm -rf "$corpus"
mkdir -p "$corpus/elf" "$corpus/topology" "$artifacts"
add_seed() {  # content-addressed, so fixtures of the same name do not collide
  cp "$2" "$corpus/$1/$(sha1sum "$2" | cut -c1-16)"
}
while IFS= read -r -d '' file; do add_seed elf "$file"; done < <(
  find "$seeds/modules" "$seeds/bundle" "$seeds/tests/loader/fixtures" tests/fuzz/regressions/elf \
    -type f \( -name '*.so' -o -path '*/regressions/*' \) ! -name '.gitkeep' -print0 2>/dev/null)
while IFS= read -r -d '' file; do add_seed topology "$file"; done < <(
  find tests/fuzz/seeds/topology tests/fuzz/regressions/topology -type f ! -name '.gitkeep' -print0)

for target in elf topology; do
  echo "== fuzzing ${target} for ${seconds}s ($(ls "$corpus/$target" | wc -l) seeds)"
  build/fuzz/tests/fuzz/${target}_fuzz -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$artifacts/${target}-" "$corpus/$target"
done
