#!/usr/bin/env bash
# Renders a tidegate HTML report (e.g. from `tidegate demo --report report.html`) to a PNG with headless Chromium,
# so a report can be checked by eye or attached to a review. Nothing is fetched from the network.
#
#   scripts/screenshot-report.sh report.html [report.png]
#
# Needs Debian's `chromium` package (apt-get install chromium); it is not needed to build or test tidegate.
set -euo pipefail
html=${1:?usage: scripts/screenshot-report.sh REPORT.html [OUT.png]}
png=${2:-${html%.html}.png}
command -v chromium >/dev/null || { echo "chromium is not installed: apt-get install chromium" >&2; exit 2; }
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
chromium --headless --no-sandbox --disable-gpu --no-first-run --disable-background-networking \
    --disable-component-update --disable-sync --user-data-dir="$profile" \
    --window-size=1000,1500 --hide-scrollbars --screenshot="$(realpath -m "$png")" \
    "file://$(realpath "$html")" 2>/dev/null
echo "$png"
