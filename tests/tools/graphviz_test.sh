#!/usr/bin/env bash
# `modgraph graph --format dot` output is accepted by Graphviz: `dot -Tsvg`
# renders it without a warning, and the SVG names every environment and the
# unregistered instances.
# Usage: graphviz_test.sh <modgraph> <work dir>
set -euo pipefail
modgraph=$1
work=$2
rm -rf "$work" && mkdir -p "$work"

if ! command -v dot >/dev/null; then
  echo "graphviz_test: 'dot' not found; install Graphviz with scripts/deps.sh" >&2
  exit 1
fi

for case in "dev warn" "dev auto" "prod warn"; do
  read -r topology policy <<<"$case"
  name="$topology-$policy"
  "$modgraph" graph --topology "$topology" --policy "$policy" --format dot -o "$work/$name.dot"
  dot -Tsvg "$work/$name.dot" -o "$work/$name.svg" 2>"$work/$name.dot-stderr"
  if [ -s "$work/$name.dot-stderr" ]; then
    echo "graphviz_test: dot complained about $name.dot:" >&2
    cat "$work/$name.dot-stderr" >&2
    exit 1
  fi
  grep -q '<svg' "$work/$name.svg" || { echo "graphviz_test: $name.svg is not SVG" >&2; exit 1; }
  echo "graphviz_test: $name.dot -> $name.svg ($(wc -c <"$work/$name.svg") bytes)"
done

expect() {  # expect <file> <text>
  grep -qF -- "$2" "$1" || { echo "graphviz_test: '$2' not in $1" >&2; exit 1; }
}
expect "$work/dev-warn.svg" "environment node (isolated, policy warn)"
expect "$work/dev-warn.svg" "environment ssr (isolated, policy warn)"
expect "$work/dev-warn.svg" "unregistered: get_ssr_head_children"
expect "$work/dev-warn.svg" "unregistered: get_router_state"
expect "$work/dev-warn.svg" "registers get_ssr_head_children"
expect "$work/prod-warn.svg" "environment prod (bundled, policy warn)"
if grep -qF "unregistered:" "$work/dev-auto.svg"; then
  echo "graphviz_test: dev-auto.svg shows unregistered instances" >&2
  exit 1
fi
echo "graphviz_test: ok"
