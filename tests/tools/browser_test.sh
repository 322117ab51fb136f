#!/usr/bin/env bash
# `modgraph graph --format html` in headless Chromium: the page's script runs
# without a console message (it sets data-modgraph-page="ok" on <html> only
# when every check in it passed; a CSP violation would log), and a screenshot
# shows the findings table rows in their colour (#ffcdd2) for dev/warn — and
# none of them for dev/auto, which has no findings.
# Usage: browser_test.sh <modgraph> <work dir> <png_pixels.py>
set -euo pipefail
modgraph=$1
work=$2
pixels=$3
rm -rf "$work" && mkdir -p "$work"

chromium=""
for candidate in chromium chromium-browser google-chrome; do
  if command -v "$candidate" >/dev/null; then chromium=$candidate; break; fi
done
if [ -z "$chromium" ]; then
  echo "browser_test: Chromium not found; install it with scripts/deps.sh" >&2
  exit 1
fi

browse() {  # browse <profile name> <chromium args...>: a fresh profile each run
  local profile="$work/profile-$1"
  shift
  mkdir -p "$profile"
  timeout 120 "$chromium" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$profile" "$@"
}

for policy in warn auto; do
  page="$work/dev-$policy.html"
  "$modgraph" graph --topology dev --policy "$policy" --format html -o "$page"

  browse "dom-$policy" --enable-logging=stderr --v=0 --dump-dom "file://$page" \
    >"$work/dev-$policy.dom" 2>"$work/dev-$policy.log"
  if grep -E 'CONSOLE|Uncaught|Content Security Policy' "$work/dev-$policy.log"; then
    echo "browser_test: dev-$policy.html logged to the console (above)" >&2
    exit 1
  fi
  if ! grep -q 'data-modgraph-page="ok"' "$work/dev-$policy.dom"; then
    echo "browser_test: the page script of dev-$policy.html did not finish (no marker)" >&2
    exit 1
  fi

  browse "shot-$policy" --hide-scrollbars --screenshot="$work/dev-$policy.png" \
    --window-size=1200,900 "file://$page" >/dev/null 2>"$work/dev-$policy.shot-log"
  [ -s "$work/dev-$policy.png" ] || { echo "browser_test: no screenshot" >&2; exit 1; }
done

# The findings rows: at least two table rows' worth of #ffcdd2 on dev/warn.
python3 "$pixels" "$work/dev-warn.png" 255,205,210 --at-least 8000
# dev/auto has no findings: no such row, and the green "no findings" row instead.
python3 "$pixels" "$work/dev-auto.png" 255,205,210 --at-most 0
python3 "$pixels" "$work/dev-auto.png" 200,230,201 --at-least 4000
echo "browser_test: ok"
