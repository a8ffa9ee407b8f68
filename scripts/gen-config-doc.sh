#!/bin/sh
# Regenerate the configuration table of docs/configuration.md from the one
# table in code (common/config_vars.h), in place, between the lines
#   <!-- BEGIN CONFIG TABLE -->  and  <!-- END CONFIG TABLE -->
# Usage: scripts/gen-config-doc.sh [BUILD_DIR]   (default: build)
# tests/unit/check-config.c fails until this has been run after a change.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
case $build in
    /*) ;;
    *) build=$root/$build ;;
esac
doc=$root/docs/configuration.md
begin='<!-- BEGIN CONFIG TABLE -->'
end='<!-- END CONFIG TABLE -->'

if [ ! -d "$build" ]; then
    echo "gen-config-doc: no build directory $build (run: meson setup $build)" >&2
    exit 1
fi
ninja -C "$build" flashgate-config-doc >/dev/null
for marker in "$begin" "$end"; do
    if [ "$(grep -cxF "$marker" "$doc")" != 1 ]; then
        echo "gen-config-doc: $doc must contain the line '$marker' exactly once" >&2
        exit 1
    fi
done

table=$(mktemp)
out=$(mktemp)
trap 'rm -f "$table" "$out"' EXIT
"$build/flashgate-config-doc" >"$table"
awk -v table="$table" -v begin="$begin" -v end="$end" '
    $0 == begin { print; while ((getline line < table) > 0) print line; skip = 1; next }
    $0 == end   { skip = 0 }
    !skip       { print }
' "$doc" >"$out"
cat "$out" >"$doc"
echo "gen-config-doc: updated $doc"
